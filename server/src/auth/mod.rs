//! Who is calling: sessions (browsers) and API keys (programs), passwords, CSRF
//! and log-in throttling. Handlers get a [`Caller`] and never look at credentials.

mod caller;
pub mod keys;
pub mod password;
pub mod rate_limit;
pub mod session_store;

pub use caller::{AuthMethod, Caller, PlatformAdmin, SESSION_USER, SessionUser};
