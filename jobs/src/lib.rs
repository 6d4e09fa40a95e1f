//! Headroom's background work: apalis workers whose queues live in the application
//! database, and the ONNX runtime used by forecasting.

pub mod allocate;
pub mod billing;
pub mod forecast;
pub mod handover;
pub mod housekeeping;
pub mod inference;
pub mod kept_settings;
pub mod kept_states;
pub mod lstm;
pub mod models;
mod on_cores;
pub mod providers;
mod queue;
pub mod readiness;
pub mod stripe;
pub mod warm;
pub mod webhooks;
mod worker;

pub use queue::setup_queue;
pub use worker::{WorkerError, WorkerSettings, run_workers};
