//! The caller's organisation: details, members, invitations.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use chrono::{Duration, Utc};
use headroom_core::accounts::{AuditAction, Role, Scope, check_password};
use headroom_store::accounts::NewInvitation;
use serde_json::json;
use tower_sessions::Session;

use super::auth::{open_session, parse_email, session_info, user_actor};
use super::error::{ApiError, ApiJson, ApiResult, ErrorBody};
use super::types::{
    AcceptInvitation, InvitationCreated, InvitationRequest, InvitationView, MemberUpdate,
    OrganizationView, PrivacyUpdate, SessionInfo, UserView,
};
use crate::auth::keys::{random_token, sha256_hex};
use crate::auth::{Caller, password};
use crate::http::AppState;

/// How long an invitation can be accepted.
const INVITATION_VALID_FOR: Duration = Duration::days(7);

/// The caller's organisation.
#[utoipa::path(get, path = "/api/v1/organization", tag = "organization",
    security(("session" = []), ("api_key" = ["read"])),
    responses((status = 200, body = OrganizationView), (status = 401, body = ErrorBody)))]
pub async fn get_organization(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<OrganizationView>> {
    caller.require_scope(Scope::Read)?;
    let org = state
        .db
        .organization(&caller.tenant)
        .await?
        .ok_or_else(|| ApiError::not_found("organization"))?;
    Ok(Json(org.into()))
}

/// Privacy settings (owners only): whether end-user device and geography are stored.
#[utoipa::path(patch, path = "/api/v1/organization/privacy", tag = "organization", request_body = PrivacyUpdate,
    security(("session" = []), ("api_key" = ["admin"])),
    responses((status = 200, body = OrganizationView), (status = 403, body = ErrorBody)))]
pub async fn update_privacy(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<PrivacyUpdate>,
) -> ApiResult<Json<OrganizationView>> {
    caller.require_manager()?;
    state
        .db
        .set_store_behaviour_attributes(&caller.tenant, req.store_behaviour_attributes)
        .await?;
    let details = json!({ "store_behaviour_attributes": req.store_behaviour_attributes });
    state
        .db
        .audit(
            &caller.actor(),
            AuditAction::OrganizationUpdated,
            Some(caller.tenant.id()),
            Some(details),
        )
        .await?;
    let org = state
        .db
        .organization(&caller.tenant)
        .await?
        .ok_or_else(|| ApiError::not_found("organization"))?;
    Ok(Json(org.into()))
}

/// Members of the caller's organisation.
#[utoipa::path(get, path = "/api/v1/members", tag = "organization",
    security(("session" = []), ("api_key" = ["read"])),
    responses((status = 200, body = Vec<UserView>), (status = 401, body = ErrorBody)))]
pub async fn list_members(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<UserView>>> {
    caller.require_scope(Scope::Read)?;
    Ok(Json(
        state
            .db
            .members(&caller.tenant)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

/// Change a member's role (owners only). An organisation always keeps one owner.
#[utoipa::path(patch, path = "/api/v1/members/{id}", tag = "organization", request_body = MemberUpdate,
    params(("id" = String, Path, description = "User id")),
    security(("session" = []), ("api_key" = ["admin"])),
    responses(
        (status = 200, body = UserView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "Would leave no owner"),
        (status = 422, body = ErrorBody, description = "Role not grantable"),
    ))]
pub async fn update_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<MemberUpdate>,
) -> ApiResult<Json<UserView>> {
    caller.require_manager()?;
    if !req.role.grantable_by_owner() {
        return Err(ApiError::unprocessable("role must be member or owner"));
    }
    let member = state
        .db
        .member(&caller.tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("member"))?;
    if member.role == Role::Admin {
        return Err(ApiError::forbidden(
            "platform administrators' roles are managed by the operator",
        ));
    }
    if member.role == Role::Owner
        && req.role != Role::Owner
        && state.db.owner_count(&caller.tenant).await? <= 1
    {
        return Err(ApiError::conflict(
            "the organisation must keep at least one owner",
        ));
    }
    let updated = state
        .db
        .set_member_role(&caller.tenant, &id, req.role)
        .await?
        .ok_or_else(|| ApiError::not_found("member"))?;
    let details = json!({ "from": member.role.as_str(), "to": req.role.as_str() });
    state
        .db
        .audit(
            &caller.actor(),
            AuditAction::RoleChanged,
            Some(&id),
            Some(details),
        )
        .await?;
    Ok(Json(updated.into()))
}

/// Remove a member (owners only). The last owner cannot be removed.
#[utoipa::path(delete, path = "/api/v1/members/{id}", tag = "organization",
    params(("id" = String, Path, description = "User id")),
    security(("session" = []), ("api_key" = ["admin"])),
    responses(
        (status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Would leave no owner"),
    ))]
pub async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_manager()?;
    let member = state
        .db
        .member(&caller.tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("member"))?;
    if member.role == Role::Owner && state.db.owner_count(&caller.tenant).await? <= 1 {
        return Err(ApiError::conflict(
            "the organisation must keep at least one owner",
        ));
    }
    if !state.db.remove_member(&caller.tenant, &id).await? {
        return Err(ApiError::not_found("member"));
    }
    let details = json!({ "email": member.email });
    state
        .db
        .audit(
            &caller.actor(),
            AuditAction::MemberRemoved,
            Some(&id),
            Some(details),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Pending invitations (owners only).
#[utoipa::path(get, path = "/api/v1/invitations", tag = "organization",
    security(("session" = []), ("api_key" = ["admin"])),
    responses((status = 200, body = Vec<InvitationView>), (status = 403, body = ErrorBody)))]
pub async fn list_invitations(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<InvitationView>>> {
    caller.require_manager()?;
    Ok(Json(
        state
            .db
            .pending_invitations(&caller.tenant)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

/// Invite someone (owners only). The token in the answer is shown once.
#[utoipa::path(post, path = "/api/v1/invitations", tag = "organization", request_body = InvitationRequest,
    security(("session" = []), ("api_key" = ["admin"])),
    responses(
        (status = 201, body = InvitationCreated), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Already has an account"), (status = 422, body = ErrorBody),
    ))]
pub async fn create_invitation(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<InvitationRequest>,
) -> ApiResult<(StatusCode, Json<InvitationCreated>)> {
    caller.require_manager()?;
    let email = parse_email(&req.email)?;
    if !req.role.grantable_by_owner() {
        return Err(ApiError::unprocessable("role must be member or owner"));
    }
    if state.db.user_by_email(&email).await?.is_some() {
        return Err(ApiError::conflict(
            "an account with this e-mail address already exists",
        ));
    }
    let token = random_token(40);
    let invited_by = caller
        .user_id
        .clone()
        .unwrap_or_else(|| "api-key".to_owned());
    let invitation = state
        .db
        .create_invitation(
            &caller.tenant,
            NewInvitation {
                email: &email,
                role: req.role,
                token_hash: sha256_hex(&token),
                invited_by: &invited_by,
                expires_at: Utc::now() + INVITATION_VALID_FOR,
            },
        )
        .await?;
    let details = json!({ "email": email.as_str(), "role": req.role.as_str() });
    state
        .db
        .audit(
            &caller.actor(),
            AuditAction::MemberInvited,
            Some(&invitation.id),
            Some(details),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(InvitationCreated {
            invitation: invitation.into(),
            token,
        }),
    ))
}

/// Withdraw a pending invitation (owners only).
#[utoipa::path(delete, path = "/api/v1/invitations/{id}", tag = "organization",
    params(("id" = String, Path, description = "Invitation id")),
    security(("session" = []), ("api_key" = ["admin"])),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_invitation(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_manager()?;
    if !state.db.revoke_invitation(&caller.tenant, &id).await? {
        return Err(ApiError::not_found("invitation"));
    }
    state
        .db
        .audit(
            &caller.actor(),
            AuditAction::InvitationRevoked,
            Some(&id),
            None,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Accept an invitation: creates the account with this password and logs in.
#[utoipa::path(post, path = "/api/v1/invitations/accept", tag = "organization", request_body = AcceptInvitation,
    responses(
        (status = 201, body = SessionInfo),
        (status = 404, body = ErrorBody, description = "Unknown, used or expired invitation"),
        (status = 422, body = ErrorBody, description = "Weak password (names the rule)"),
    ))]
pub async fn accept_invitation(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    session: Session,
    ApiJson(req): ApiJson<AcceptInvitation>,
) -> ApiResult<(StatusCode, Json<SessionInfo>)> {
    let token_hash = sha256_hex(req.token.trim());
    let not_found = || ApiError::not_found("invitation (unknown, already used or expired)");
    let email = state
        .db
        .open_invitation_email(&token_hash)
        .await?
        .ok_or_else(not_found)?;
    check_password(&req.password, &email)
        .map_err(|rule| ApiError::unprocessable(rule.to_string()))?;
    let hash = password::hash(req.password)
        .await
        .map_err(ApiError::internal)?;
    let (org, user) = state
        .db
        .accept_invitation(&token_hash, hash)
        .await?
        .ok_or_else(not_found)?;
    let csrf = open_session(&session, &user).await?;
    let actor = user_actor(&user, addr);
    state
        .db
        .audit(
            &actor,
            AuditAction::InvitationAccepted,
            Some(&user.id),
            None,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(session_info(user, org, csrf))))
}
