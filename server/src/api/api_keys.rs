//! API keys: create (the secret is shown once), list, revoke.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use headroom_core::accounts::{AuditAction, Scopes};
use headroom_store::api_keys::NewApiKey;
use serde_json::json;

use super::error::{ApiError, ApiJson, ApiResult, ErrorBody};
use super::types::{ApiKeyCreated, ApiKeyRequest, ApiKeyView};
use crate::auth::Caller;
use crate::auth::keys::{new_api_key, sha256_hex};
use crate::http::AppState;

/// The organisation's keys (prefix and last use only; never the secret).
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "api-keys",
    security(("session" = []), ("api_key" = ["admin"])),
    responses((status = 200, body = Vec<ApiKeyView>), (status = 403, body = ErrorBody)))]
pub async fn list_api_keys(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<ApiKeyView>>> {
    caller.require_manager()?;
    Ok(Json(
        state
            .db
            .api_keys(&caller.tenant)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

/// Create a key (owners only). The answer holds the whole key, this once.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "api-keys", request_body = ApiKeyRequest,
    security(("session" = []), ("api_key" = ["admin"])),
    responses(
        (status = 201, body = ApiKeyCreated), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "Empty name or no scopes"),
    ))]
pub async fn create_api_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<ApiKeyRequest>,
) -> ApiResult<(StatusCode, Json<ApiKeyCreated>)> {
    caller.require_manager()?;
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::unprocessable("name must be 1 to 100 characters"));
    }
    let scopes = Scopes::new(req.scopes).map_err(ApiError::unprocessable)?;
    let parts = new_api_key();
    let key = state
        .db
        .create_api_key(
            &caller.tenant,
            NewApiKey {
                name,
                key_id: &parts.id,
                secret_hash: sha256_hex(&parts.secret),
                scopes: &scopes,
                created_by: caller.user_id.as_deref(),
            },
        )
        .await?;
    let details = json!({ "name": name, "prefix": key.prefix, "scopes": scopes.to_db() });
    state
        .db
        .audit(
            &caller.actor(),
            AuditAction::ApiKeyCreated,
            Some(&key.id),
            Some(details),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(ApiKeyCreated {
            key: key.into(),
            secret: parts.reveal(),
        }),
    ))
}

/// Revoke a key (owners only): it stops working at once.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "api-keys",
    params(("id" = String, Path, description = "API key id")),
    security(("session" = []), ("api_key" = ["admin"])),
    responses((status = 200, body = ApiKeyView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_api_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ApiKeyView>> {
    caller.require_manager()?;
    let key = state
        .db
        .revoke_api_key(&caller.tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("API key"))?;
    let details = json!({ "prefix": key.prefix });
    state
        .db
        .audit(
            &caller.actor(),
            AuditAction::ApiKeyRevoked,
            Some(&id),
            Some(details),
        )
        .await?;
    Ok(Json(key.into()))
}
