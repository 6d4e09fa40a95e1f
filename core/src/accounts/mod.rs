//! Tenancy vocabulary: tiers, roles, API-key scopes, and the rules for e-mail
//! addresses, passwords and key strings. Validation lives here so every entry
//! point (REST, server functions, CLI) applies the same rules.

mod api_key;
mod audit;
mod email;
mod password;
mod roles;

pub use api_key::{ApiKeyParts, ID_LEN, KEY_PREFIX, ParseKeyError, SECRET_LEN, Scope, Scopes};
pub use audit::AuditAction;
pub use email::{Email, EmailError};
pub use password::{MIN_PASSWORD_LEN, PasswordRule, check_password};
pub use roles::{Role, Tier};
