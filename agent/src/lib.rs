//! The Headroom telemetry agent and client SDK.
//!
//! The agent (`headroom-agent`): [`collect`] samples host metrics, [`spool`] keeps
//! them on disk, [`ship`] sends them to the ingest API and removes what the server
//! has answered for. [`sdk`] is for applications that report usage events and
//! micro-operations themselves.

pub mod collect;
pub mod config;
pub mod point;
pub mod sdk;
pub mod ship;
pub mod spool;

pub use point::MetricPoint;
