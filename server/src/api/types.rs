//! Request and response bodies of the REST API.

use chrono::{DateTime, Utc};
use headroom_core::accounts::{AuditAction, Role, Scope, Tier};
use headroom_store::accounts::{Invitation, Organization, User};
use headroom_store::api_keys::ApiKey;
use headroom_store::audit::{AuditEntry, AuditFilter};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
pub struct SignupRequest {
    #[schema(example = "Acme Analytics")]
    pub organization_name: String,
    #[schema(example = "ada@example.com")]
    pub email: String,
    /// At least 12 characters; not a common password; not containing the e-mail.
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

/// Proof of presence for an action that ends other sessions.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PasswordConfirmation {
    pub current_password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub email: String,
    #[schema(value_type = String, example = "owner")]
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            email: u.email,
            role: u.role,
            created_at: u.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationView {
    pub id: String,
    pub name: String,
    #[schema(value_type = String, example = "standard")]
    pub tier: Tier,
    /// Used by the allocation controller: higher is served first.
    pub priority: i32,
    pub created_at: DateTime<Utc>,
    /// Whether device and geography of end-user behaviour events are stored.
    pub store_behaviour_attributes: bool,
    /// What the organisation is billed in (ISO 4217, lower case).
    #[schema(value_type = String, example = "usd")]
    pub currency: String,
}

impl From<Organization> for OrganizationView {
    fn from(o: Organization) -> Self {
        Self {
            id: o.id,
            name: o.name,
            tier: o.tier,
            priority: o.priority,
            created_at: o.created_at,
            store_behaviour_attributes: o.store_behaviour_attributes,
            currency: o.currency.to_string(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PrivacyUpdate {
    /// Store device and geography of end-user behaviour events (off by default).
    pub store_behaviour_attributes: bool,
}

/// The logged-in user, their organisation, and the token for `X-CSRF-Token`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionInfo {
    pub user: UserView,
    pub organization: OrganizationView,
    pub csrf_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct MemberUpdate {
    #[schema(value_type = String, example = "owner")]
    pub role: Role,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct InvitationRequest {
    pub email: String,
    #[schema(value_type = String, example = "member")]
    pub role: Role,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationView {
    pub id: String,
    pub email: String,
    #[schema(value_type = String)]
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub expired: bool,
}

impl From<Invitation> for InvitationView {
    fn from(i: Invitation) -> Self {
        Self {
            expired: i.expires_at <= Utc::now(),
            id: i.id,
            email: i.email,
            role: i.role,
            created_at: i.created_at,
            expires_at: i.expires_at,
        }
    }
}

/// The token is shown once: pass it to the invitee (e.g. in a link to the app).
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationCreated {
    pub invitation: InvitationView,
    pub token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AcceptInvitation {
    pub token: String,
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ApiKeyRequest {
    #[schema(example = "telemetry agent, eu-west-1")]
    pub name: String,
    #[schema(value_type = Vec<String>, example = json!(["ingest"]))]
    pub scopes: Vec<Scope>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    pub id: String,
    pub name: String,
    /// `hr_` and the key's public id: enough to recognise it, not to use it.
    pub prefix: String,
    #[schema(value_type = Vec<String>)]
    pub scopes: Vec<Scope>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiKey> for ApiKeyView {
    fn from(k: ApiKey) -> Self {
        Self {
            scopes: k.scopes.iter().collect(),
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
        }
    }
}

/// The whole key is in `secret`, shown this once; only its hash is stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyCreated {
    pub key: ApiKeyView,
    #[schema(example = "hr_Ab3dEf7h_...")]
    pub secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    pub id: i64,
    pub organization_id: Option<String>,
    pub actor_user_id: Option<String>,
    pub actor_api_key_id: Option<String>,
    #[schema(example = "api_key_created")]
    pub action: String,
    pub target: Option<String>,
    pub ip: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    /// The acting user's e-mail (absent once the user is removed).
    pub actor_email: Option<String>,
    /// The acting API key's name.
    pub actor_api_key_name: Option<String>,
    pub organization_name: Option<String>,
}

impl From<AuditEntry> for AuditView {
    fn from(e: AuditEntry) -> Self {
        Self {
            id: e.id,
            organization_id: e.organization_id,
            actor_user_id: e.actor_user_id,
            actor_api_key_id: e.actor_api_key_id,
            action: e.action,
            target: e.target,
            ip: e.ip,
            details: e.details,
            created_at: e.created_at,
            actor_email: e.actor_email,
            actor_api_key_name: e.actor_api_key_name,
            organization_name: e.organization_name,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct OrganizationUpdate {
    #[schema(value_type = Option<String>, example = "premium")]
    pub tier: Option<Tier>,
    pub priority: Option<i32>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// At most this many entries, newest first (1–1000, default 100).
    pub limit: Option<u64>,
    /// Only entries older than this one: the `id` of the last entry of the previous page.
    pub before: Option<i64>,
    /// Only this action, e.g. `api_key_created`.
    pub action: Option<String>,
    /// Only this organisation's entries (platform administrators; an organisation's own
    /// log is always its own).
    pub organization_id: Option<String>,
}

impl AuditQuery {
    pub fn limit(&self) -> Result<u64, super::error::ApiError> {
        super::error::page_limit(self.limit, 100, 1000)
    }

    /// What to read; an unknown action is refused with the known ones.
    pub fn filter(&self) -> Result<AuditFilter, super::error::ApiError> {
        let action = match self.action.as_deref() {
            None => None,
            Some(name) => Some(AuditAction::parse(name).ok_or_else(|| {
                let known: Vec<&str> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
                super::error::ApiError::unprocessable(format!(
                    "unknown action {name:?}; known: {}",
                    known.join(", ")
                ))
            })?),
        };
        Ok(AuditFilter {
            before: self.before,
            action,
            organization_id: self.organization_id.clone(),
        })
    }
}
