//! Database access for Headroom: one connection pool (SQLite or PostgreSQL), the
//! entities, and the queries the application needs.

mod connect;
pub mod entities;
mod error;
pub mod housekeeping;

pub use connect::{Backend, Db, redact};
pub use error::StoreError;
pub use sea_orm;
