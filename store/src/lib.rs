//! Database access for Headroom: one connection pool (SQLite or PostgreSQL), the
//! entities, and the queries the application needs. Tenant-scoped queries take a
//! [`Tenant`], so none can forget whose rows it reads.

pub mod accounts;
pub mod allocation;
pub mod api_keys;
pub mod audit;
pub mod billing;
mod billing_hours;
mod connect;
mod decision_groups;
pub mod entities;
mod error;
pub mod forecast_inputs;
pub mod forecasts;
pub mod housekeeping;
pub mod models;
mod sessions;
mod sql;
pub mod stripe;
pub mod telemetry;
mod tenant;
pub mod webhooks;

pub use connect::{Backend, Db, is_loopback, redact};
pub use error::StoreError;
pub use sea_orm;
pub use sql::values_clause;
pub use tenant::{Tenant, new_id};
