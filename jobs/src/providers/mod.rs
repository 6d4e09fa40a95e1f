//! Where allocation decisions are carried out. Each adapter applies a desired
//! allocation idempotently (applying the same one twice changes nothing) and
//! reads back what is in force, so the controller can repair drift.

pub mod cgroup;
