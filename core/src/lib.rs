//! Headroom's domain: plain data and plain functions, no I/O, no async, no database.
//! Forecasting, allocation policy, pricing and rating land here as they are built.

pub mod accounts;
pub mod allocate;
pub mod billing;
pub mod forecast;
pub mod profile;
pub mod readiness;
pub mod retention;
pub mod telemetry;
pub mod webhooks;
