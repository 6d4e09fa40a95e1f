//! The caller of an API request, resolved once: an API key (`Authorization: Bearer
//! hr_...`) or a browser session. This is the only place that reads credentials;
//! handlers receive a [`Caller`] and scope every query by its tenant.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chrono::Utc;
use headroom_core::accounts::{ApiKeyParts, Role, Scope, Scopes};
use headroom_store::Tenant;
use headroom_store::audit::Actor;
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use super::keys::{constant_time_eq, sha256_hex};
use crate::api::error::ApiError;
use crate::http::AppState;

/// Session key under which the logged-in user is kept.
pub const SESSION_USER: &str = "user";
/// Header carrying the CSRF token on state-changing browser requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// What a session remembers about its user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionUser {
    pub user_id: String,
    /// Sent back by the browser in `X-CSRF-Token`; a cross-site page cannot read it.
    pub csrf: String,
    /// Unix seconds of the log-in: bounds the session's absolute lifetime.
    pub authenticated_at: i64,
    /// Unix seconds of the last recorded activity (renews the idle expiry).
    pub last_seen: i64,
}

#[derive(Debug, Clone)]
pub enum AuthMethod {
    Session { session: Session, user: SessionUser },
    ApiKey { key_id: String, scopes: Scopes },
}

#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: Tenant,
    /// The person, for sessions; `None` for API keys.
    pub user_id: Option<String>,
    pub role: Option<Role>,
    pub method: AuthMethod,
    pub ip: Option<String>,
}

/// Activity is written back at most this often (seconds), not on every request.
const TOUCH_EVERY_SECS: i64 = 60;

impl Caller {
    /// Members read and write their organisation's data; API keys need the scope.
    pub fn require_scope(&self, scope: Scope) -> Result<(), ApiError> {
        match &self.method {
            AuthMethod::Session { .. } if scope != Scope::Admin => Ok(()),
            AuthMethod::Session { .. } => self.require_manager(),
            AuthMethod::ApiKey { scopes, .. } if scopes.allows(scope) => Ok(()),
            AuthMethod::ApiKey { .. } => Err(ApiError::forbidden(format!(
                "this API key lacks the `{scope}` scope"
            ))),
        }
    }

    /// Owners and platform admins (or keys with the `admin` scope) manage keys,
    /// members and settings.
    pub fn require_manager(&self) -> Result<(), ApiError> {
        let allowed = match &self.method {
            AuthMethod::Session { .. } => self.role.is_some_and(Role::can_manage_organization),
            AuthMethod::ApiKey { scopes, .. } => scopes.allows(Scope::Admin),
        };
        if allowed {
            Ok(())
        } else {
            Err(ApiError::forbidden("only organisation owners can do this"))
        }
    }

    pub fn actor(&self) -> Actor {
        Actor {
            organization_id: Some(self.tenant.id().to_owned()),
            user_id: self.user_id.clone(),
            api_key_id: match &self.method {
                AuthMethod::ApiKey { key_id, .. } => Some(key_id.clone()),
                AuthMethod::Session { .. } => None,
            },
            ip: self.ip.clone(),
        }
    }
}

pub fn client_ip(parts: &Parts) -> Option<String> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ip = client_ip(parts);
        if let Some(value) = parts.headers.get(AUTHORIZATION) {
            return from_api_key(value.to_str().unwrap_or_default(), state, ip).await;
        }
        let session = parts
            .extensions
            .get::<Session>()
            .cloned()
            .ok_or_else(|| ApiError::internal("session layer missing"))?;
        let Some(mut user) = session.get::<SessionUser>(SESSION_USER).await? else {
            return Err(ApiError::unauthorized(
                "not logged in: log in, or send Authorization: Bearer <API key>",
            ));
        };
        let now = Utc::now().timestamp();
        if now - user.authenticated_at > state.auth.session_max_age.as_secs() as i64 {
            session.flush().await?;
            return Err(ApiError::unauthorized("session expired; log in again"));
        }
        let Some((account, _)) = state.db.user_by_id(&user.user_id).await? else {
            session.flush().await?;
            return Err(ApiError::unauthorized("this account no longer exists"));
        };
        // A password change ends every session opened before it.
        if account.password_changed_at.timestamp() > user.authenticated_at {
            session.flush().await?;
            return Err(ApiError::unauthorized("password changed; log in again"));
        }
        // As does "sign out everywhere else" from another session.
        if account
            .sessions_ended_at
            .is_some_and(|t| t.timestamp() >= user.authenticated_at)
        {
            session.flush().await?;
            return Err(ApiError::unauthorized(
                "signed out from another session; log in again",
            ));
        }
        if !parts.method.is_safe() {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !constant_time_eq(sent, &user.csrf) {
                return Err(ApiError::forbidden(
                    "missing or invalid CSRF token: send the X-CSRF-Token header from /api/v1/auth/me",
                ));
            }
        }
        if now - user.last_seen >= TOUCH_EVERY_SECS {
            user.last_seen = now;
            session.insert(SESSION_USER, &user).await?;
        }
        Ok(Caller {
            tenant: Tenant::new(account.organization_id),
            user_id: Some(account.id),
            role: Some(account.role),
            method: AuthMethod::Session { session, user },
            ip,
        })
    }
}

async fn from_api_key(
    header: &str,
    state: &AppState,
    ip: Option<String>,
) -> Result<Caller, ApiError> {
    let token = header
        .strip_prefix("Bearer ")
        .ok_or_else(|| ApiError::unauthorized("expected Authorization: Bearer <API key>"))?;
    let parts =
        ApiKeyParts::parse(token.trim()).map_err(|e| ApiError::unauthorized(e.to_string()))?;
    let rejected = || ApiError::unauthorized("unknown or revoked API key");
    let Some((key, secret_hash)) = state.db.api_key_for_auth(&parts.id).await? else {
        return Err(rejected());
    };
    if key.revoked_at.is_some() || !constant_time_eq(&sha256_hex(&parts.secret), &secret_hash) {
        return Err(rejected());
    }
    state.db.touch_api_key(&key).await?;
    Ok(Caller {
        tenant: Tenant::new(key.organization_id),
        user_id: None,
        role: None,
        method: AuthMethod::ApiKey {
            key_id: key.id,
            scopes: key.scopes,
        },
        ip,
    })
}

/// The operator's staff: a logged-in user with the platform `admin` role.
/// Everyone else, API keys included, gets 403.
#[derive(Debug, Clone)]
pub struct PlatformAdmin(pub Caller);

impl FromRequestParts<AppState> for PlatformAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        match (&caller.method, caller.role) {
            (AuthMethod::Session { .. }, Some(Role::Admin)) => Ok(Self(caller)),
            _ => Err(ApiError::forbidden("platform administrators only")),
        }
    }
}
