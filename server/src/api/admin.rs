//! Platform administration: every organisation, tiers and priorities, the whole audit log,
//! the forecasting versions and their measured accuracy.

use crate::api::error::page_limit;
use axum::Json;
use axum::extract::{Path, State};
use headroom_core::accounts::AuditAction;
use headroom_store::audit::Actor;
use serde_json::json;

use super::error::{ApiError, ApiJson, ApiQuery, ApiResult, ErrorBody};
use super::types::{AuditQuery, AuditView, OrganizationUpdate, OrganizationView};
use crate::auth::PlatformAdmin;
use crate::http::AppState;

/// Which organisations to list.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrganizationQuery {
    /// Only those whose name holds this text (any case), or whose id it is.
    pub q: Option<String>,
    /// Continue after this organisation: the last `id` of the previous page.
    pub after: Option<String>,
    /// At most this many, by name (1–500, default 100).
    pub limit: Option<u64>,
}

/// Organisations by name, a page at a time.
#[utoipa::path(get, path = "/api/v1/admin/organizations", tag = "admin", params(OrganizationQuery),
    security(("session" = [])),
    responses((status = 200, body = Vec<OrganizationView>), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn list_organizations(
    State(state): State<AppState>,
    _admin: PlatformAdmin,
    ApiQuery(q): ApiQuery<OrganizationQuery>,
) -> ApiResult<Json<Vec<OrganizationView>>> {
    let limit = page_limit(q.limit, 100, 500)?;
    if q.q.as_ref().is_some_and(|t| t.chars().count() > 200) {
        return Err(ApiError::unprocessable("q: at most 200 characters"));
    }
    let page = state
        .db
        .organizations_page(q.q.as_deref(), q.after.as_deref(), limit)
        .await?
        .ok_or_else(|| ApiError::unprocessable("after: no such organisation"))?;
    Ok(Json(page.into_iter().map(Into::into).collect()))
}

/// Set an organisation's tier and/or priority.
#[utoipa::path(patch, path = "/api/v1/admin/organizations/{id}", tag = "admin", request_body = OrganizationUpdate,
    params(("id" = String, Path, description = "Organisation id")),
    security(("session" = [])),
    responses(
        (status = 200, body = OrganizationView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
    ))]
pub async fn update_organization(
    State(state): State<AppState>,
    PlatformAdmin(admin): PlatformAdmin,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<OrganizationUpdate>,
) -> ApiResult<Json<OrganizationView>> {
    if req.tier.is_none() && req.priority.is_none() {
        return Err(ApiError::unprocessable("give tier, priority or both"));
    }
    if let Some(p) = req.priority
        && !(0..=100).contains(&p)
    {
        return Err(ApiError::unprocessable(format!(
            "priority must be 0 to 100, not {p}"
        )));
    }
    let org = state
        .db
        .update_organization(&id, req.tier, req.priority)
        .await?
        .ok_or_else(|| ApiError::not_found("organization"))?;
    // Recorded in the changed organisation's log, where its owners see it.
    let details =
        json!({ "tier": org.tier.as_str(), "priority": org.priority, "platform_admin": true });
    let actor = Actor {
        organization_id: Some(id.clone()),
        ..admin.actor()
    };
    state
        .db
        .audit(
            &actor,
            AuditAction::OrganizationUpdated,
            Some(&id),
            Some(details),
        )
        .await?;
    Ok(Json(org.into()))
}

/// Every organisation's audit log, newest first; page with `before` (the last entry's `id`).
#[utoipa::path(get, path = "/api/v1/admin/audit", tag = "admin", params(AuditQuery),
    security(("session" = [])),
    responses((status = 200, body = Vec<AuditView>), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn platform_audit(
    State(state): State<AppState>,
    _admin: PlatformAdmin,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<Vec<AuditView>>> {
    Ok(Json(
        state
            .db
            .audit_log(None, &q.filter()?, q.limit()?)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

/// A forecasting version and its measured accuracy.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ModelVersionView {
    /// `allocation` (next hour, 5-minute steps) or `planning` (7 days, hourly).
    pub horizon: String,
    pub version: String,
    /// `live` (serves forecasts), `candidate` or `retired`.
    pub status: String,
    /// MASE over the recent data it was scored on (lower is better; 1 is the
    /// seasonal-naive error).
    pub mase: Option<f64>,
    /// Share of actual values inside its p10–p90 interval (0.8 is calibrated).
    pub coverage: Option<f64>,
    pub steps: i64,
    pub series: i64,
    pub scored_at: chrono::DateTime<chrono::Utc>,
    pub promoted_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The live version's MASE over the last hours, measured between scorings.
    pub recent_mase: Option<f64>,
    pub recent_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Why the last scoring kept or changed the live version.
    pub note: Option<String>,
}

/// The model registry: every forecasting version per horizon, live first.
#[utoipa::path(get, path = "/api/v1/admin/models", tag = "admin",
    security(("session" = [])),
    responses((status = 200, body = Vec<ModelVersionView>), (status = 403, body = ErrorBody)))]
pub async fn list_models(
    State(state): State<AppState>,
    _admin: PlatformAdmin,
) -> ApiResult<Json<Vec<ModelVersionView>>> {
    use crate::api::forecasts::instant;
    Ok(Json(
        state
            .db
            .model_versions()
            .await?
            .into_iter()
            .map(|m| ModelVersionView {
                horizon: m.horizon,
                version: m.version,
                status: m.status,
                mase: m.mase,
                coverage: m.coverage,
                steps: m.steps,
                series: m.series,
                scored_at: instant(m.scored_ms),
                promoted_at: m.promoted_ms.map(instant),
                recent_mase: m.recent_mase,
                recent_at: m.recent_ms.map(instant),
                note: m.note,
            })
            .collect(),
    ))
}
