pub mod api_key;
pub mod audit_log;
pub mod housekeeping_run;
pub mod invitation;
pub mod organization;
pub mod session;
pub mod user;
