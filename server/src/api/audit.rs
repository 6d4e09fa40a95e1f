//! The organisation's audit log.

use axum::Json;
use axum::extract::State;

use super::error::{ApiQuery, ApiResult, ErrorBody};
use super::types::{AuditQuery, AuditView};
use crate::auth::Caller;
use crate::http::AppState;

/// Security-relevant actions in the caller's organisation (owners only), newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    security(("session" = []), ("api_key" = ["admin"])),
    responses((status = 200, body = Vec<AuditView>), (status = 403, body = ErrorBody)))]
pub async fn organization_audit(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<Vec<AuditView>>> {
    caller.require_manager()?;
    let entries = state.db.audit_log(Some(&caller.tenant), q.limit()?).await?;
    Ok(Json(entries.into_iter().map(Into::into).collect()))
}
