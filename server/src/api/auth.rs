//! Sign-up, log-in, log-out, the current session, password changes.

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use chrono::Utc;
use headroom_core::accounts::{AuditAction, Email, Tier, check_password};
use headroom_store::accounts::{Organization, User};
use headroom_store::audit::Actor;
use serde_json::json;
use std::net::SocketAddr;
use tower_sessions::Session;

use super::error::{ApiError, ApiJson, ApiResult, ErrorBody};
use super::types::{
    LoginRequest, OrganizationView, PasswordChange, PasswordConfirmation, SessionInfo,
    SignupRequest, UserView,
};
use crate::auth::keys::random_token;
use crate::auth::{AuthMethod, Caller, SESSION_USER, SessionUser, password};
use crate::http::AppState;

pub(super) fn parse_email(raw: &str) -> ApiResult<Email> {
    Email::parse(raw).map_err(|e| ApiError::unprocessable(e.to_string()))
}

/// Starts a fresh session for `user`: a new session id (no fixation) and CSRF token.
pub(super) async fn open_session(session: &Session, user: &User) -> ApiResult<String> {
    session.cycle_id().await?;
    let now = Utc::now().timestamp();
    let csrf = random_token(32);
    // Sessions of the second of a "sign out everywhere else" and before end
    // (times are whole seconds); one opened in that second must outlive it.
    let after_cut = user.sessions_ended_at.map_or(now, |t| t.timestamp() + 1);
    let record = SessionUser {
        user_id: user.id.clone(),
        csrf: csrf.clone(),
        authenticated_at: now.max(after_cut),
        last_seen: now,
    };
    session.insert(SESSION_USER, &record).await?;
    Ok(csrf)
}

/// The audit actor for a user acting from `addr` before they have a [`Caller`].
pub(super) fn user_actor(user: &User, addr: SocketAddr) -> Actor {
    Actor {
        organization_id: Some(user.organization_id.clone()),
        user_id: Some(user.id.clone()),
        api_key_id: None,
        ip: Some(addr.ip().to_string()),
    }
}

pub(super) fn session_info(user: User, org: Organization, csrf: String) -> SessionInfo {
    SessionInfo {
        user: user.into(),
        organization: org.into(),
        csrf_token: csrf,
    }
}

/// Create an organisation and its owner, and log in.
#[utoipa::path(post, path = "/api/v1/auth/signup", tag = "auth", request_body = SignupRequest,
    responses(
        (status = 201, body = SessionInfo, description = "Created; the session cookie is set"),
        (status = 409, body = ErrorBody, description = "E-mail address already registered"),
        (status = 422, body = ErrorBody, description = "Invalid e-mail, weak password (names the rule) or name"),
    ))]
pub async fn signup(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    session: Session,
    ApiJson(req): ApiJson<SignupRequest>,
) -> ApiResult<(StatusCode, Json<SessionInfo>)> {
    let email = parse_email(&req.email)?;
    let name = req.organization_name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::unprocessable(
            "organization_name must be 1 to 100 characters",
        ));
    }
    check_password(&req.password, email.as_str())
        .map_err(|rule| ApiError::unprocessable(rule.to_string()))?;
    let hash = password::hash(req.password)
        .await
        .map_err(ApiError::internal)?;
    let (org, user) = state
        .db
        .create_organization_with_owner(name, Tier::Standard, &email, hash)
        .await?;
    let csrf = open_session(&session, &user).await?;
    let actor = user_actor(&user, addr);
    state
        .db
        .audit(&actor, AuditAction::SignedUp, Some(&user.id), None)
        .await?;
    Ok((StatusCode::CREATED, Json(session_info(user, org, csrf))))
}

/// Log in with e-mail and password; rotates the session id.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, body = SessionInfo, description = "Logged in; the session cookie is set"),
        (status = 401, body = ErrorBody, description = "Wrong e-mail or password"),
        (status = 429, body = ErrorBody, description = "Too many attempts; see Retry-After"),
    ))]
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    session: Session,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Json<SessionInfo>> {
    let wrong = || ApiError::unauthorized("wrong e-mail or password");
    let Ok(email) = Email::parse(&req.email) else {
        return Err(wrong());
    };
    state
        .auth
        .login_limiter
        .check(Some(addr.ip()), email.as_str())
        .map_err(ApiError::too_many_attempts)?;
    let Some((user, hash)) = state.db.user_by_email(&email).await? else {
        let actor = Actor {
            ip: Some(addr.ip().to_string()),
            ..Actor::default()
        };
        password::verify_against_nothing(req.password).await;
        let details = json!({ "email": email.as_str(), "reason": "unknown account" });
        state
            .db
            .audit(&actor, AuditAction::LoginFailed, None, Some(details))
            .await?;
        return Err(wrong());
    };
    let actor = user_actor(&user, addr);
    if !password::verify(req.password, hash).await {
        let details = json!({ "email": email.as_str(), "reason": "wrong password" });
        state
            .db
            .audit(
                &actor,
                AuditAction::LoginFailed,
                Some(&user.id),
                Some(details),
            )
            .await?;
        return Err(wrong());
    }
    let org = state
        .db
        .organization(&headroom_store::Tenant::new(user.organization_id.clone()))
        .await?
        .ok_or_else(|| ApiError::internal("user without organisation"))?;
    let csrf = open_session(&session, &user).await?;
    state
        .db
        .audit(&actor, AuditAction::LoggedIn, Some(&user.id), None)
        .await?;
    Ok(Json(session_info(user, org, csrf)))
}

/// End the browser session.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    security(("session" = [])),
    responses(
        (status = 204, description = "Logged out"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "Missing CSRF token"),
    ))]
pub async fn logout(State(state): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    let AuthMethod::Session { session, .. } = &caller.method else {
        return Err(ApiError::bad_request(
            "API keys have no session to end; revoke the key instead",
        ));
    };
    session.flush().await?;
    state
        .db
        .audit(
            &caller.actor(),
            AuditAction::LoggedOut,
            caller.user_id.as_deref(),
            None,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The current user, organisation and CSRF token.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth",
    security(("session" = [])),
    responses((status = 200, body = SessionInfo), (status = 401, body = ErrorBody)))]
pub async fn me(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<SessionInfo>> {
    let AuthMethod::Session {
        user: session_user, ..
    } = &caller.method
    else {
        return Err(ApiError::bad_request(
            "this endpoint describes browser sessions; API keys have none",
        ));
    };
    let (user, _) = state
        .db
        .user_by_id(&session_user.user_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("this account no longer exists"))?;
    let org = state
        .db
        .organization(&caller.tenant)
        .await?
        .ok_or_else(|| ApiError::not_found("organization"))?;
    Ok(Json(SessionInfo {
        user: UserView::from(user),
        organization: OrganizationView::from(org),
        csrf_token: session_user.csrf.clone(),
    }))
}

/// Whether this browser is logged in: the session, or `null`. Never 401, so a page
/// can ask without producing an error for anonymous visitors.
#[utoipa::path(get, path = "/api/v1/auth/session", tag = "auth",
    responses((status = 200, body = Option<SessionInfo>)))]
pub async fn current_session(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
) -> ApiResult<Json<Option<SessionInfo>>> {
    match caller {
        Ok(caller) if matches!(caller.method, AuthMethod::Session { .. }) => {
            me(State(state), caller)
                .await
                .map(|Json(info)| Json(Some(info)))
        }
        Ok(_) => Ok(Json(None)),
        Err(e) if e.status() == StatusCode::UNAUTHORIZED => Ok(Json(None)),
        Err(e) => Err(e),
    }
}

/// The caller's user, once the password they gave is theirs: for actions
/// that end other sessions. `not_a_person` answers an API key.
async fn confirmed_user(
    state: &AppState,
    caller: &Caller,
    given: String,
    not_a_person: &str,
) -> ApiResult<User> {
    let AuthMethod::Session { user, .. } = &caller.method else {
        return Err(ApiError::bad_request(not_a_person));
    };
    let (user, hash) = state
        .db
        .user_by_id(&user.user_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("this account no longer exists"))?;
    if !password::verify(given, hash).await {
        return Err(ApiError::unauthorized("current password is wrong"));
    }
    Ok(user)
}

/// Re-stamps the caller's session after a cut made at `cut` (sessions
/// authenticated before it are refused), so this one goes on: the password
/// was just given.
async fn keep_this_session(caller: &Caller, cut: chrono::DateTime<Utc>) -> ApiResult<()> {
    if let AuthMethod::Session { session, user } = &caller.method {
        let mut renewed = user.clone();
        renewed.authenticated_at = cut.timestamp() + 1;
        session.insert(SESSION_USER, &renewed).await?;
    }
    Ok(())
}

/// Change the password; other sessions of this user end, this one continues.
#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth", request_body = PasswordChange,
    security(("session" = [])),
    responses(
        (status = 204, description = "Changed"),
        (status = 401, body = ErrorBody, description = "Current password wrong, or not logged in"),
        (status = 422, body = ErrorBody, description = "New password too weak (names the rule)"),
    ))]
pub async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<PasswordChange>,
) -> ApiResult<StatusCode> {
    let user = confirmed_user(
        &state,
        &caller,
        req.current_password,
        "passwords belong to people: log in to change yours",
    )
    .await?;
    check_password(&req.new_password, &user.email)
        .map_err(|rule| ApiError::unprocessable(rule.to_string()))?;
    let new_hash = password::hash(req.new_password)
        .await
        .map_err(ApiError::internal)?;
    state.db.set_password(&user.id, new_hash).await?;
    keep_this_session(&caller, Utc::now()).await?;
    state
        .db
        .audit(
            &caller.actor(),
            AuditAction::PasswordChanged,
            Some(&user.id),
            None,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sign out everywhere else: every other session of this user ends, this one
/// continues. The password is asked again, so a stolen session cannot shut
/// its owner out.
#[utoipa::path(post, path = "/api/v1/auth/sessions/end-others", tag = "auth",
    request_body = PasswordConfirmation,
    security(("session" = [])),
    responses(
        (status = 204, description = "Other sessions ended"),
        (status = 400, body = ErrorBody, description = "Called with an API key"),
        (status = 401, body = ErrorBody, description = "Password wrong, or not logged in"),
    ))]
pub async fn end_other_sessions(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<PasswordConfirmation>,
) -> ApiResult<StatusCode> {
    let user = confirmed_user(
        &state,
        &caller,
        req.current_password,
        "sessions belong to people: log in to end yours",
    )
    .await?;
    let now = Utc::now();
    state.db.end_sessions(&user.id, now).await?;
    keep_this_session(&caller, now).await?;
    state
        .db
        .audit(
            &caller.actor(),
            AuditAction::OtherSessionsEnded,
            Some(&user.id),
            None,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
