//! The organisation's audit log.

use axum::Json;
use axum::extract::State;

use super::error::{ApiError, ApiQuery, ApiResult, ErrorBody};
use super::types::{AuditQuery, AuditView};
use crate::auth::Caller;
use crate::http::AppState;

/// Security-relevant actions in the caller's organisation (owners only), newest first;
/// page with `before` (the last entry's `id`).
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    security(("session" = []), ("api_key" = ["admin"])),
    responses((status = 200, body = Vec<AuditView>), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn organization_audit(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<Vec<AuditView>>> {
    caller.require_manager()?;
    if q.organization_id.is_some() {
        return Err(ApiError::unprocessable(
            "organization_id is for platform administrators; this log is your organisation's",
        ));
    }
    let entries = state
        .db
        .audit_log(Some(&caller.tenant), &q.filter()?, q.limit()?)
        .await?;
    Ok(Json(entries.into_iter().map(Into::into).collect()))
}
