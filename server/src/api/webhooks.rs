//! Outgoing webhook endpoints: where the organisation's billing systems hear
//! of price changes, budget thresholds and allocation decisions; signing
//! secrets and their rotation; the delivery log; manual replay.

use crate::api::error::page_limit;
use std::net::IpAddr;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use headroom_core::accounts::{AuditAction, Scope};
use headroom_core::webhooks::{ROTATION_OVERLAP_MS, secret_from_bytes};
use headroom_store::webhooks::{StoredAttempt, StoredDelivery, StoredEndpoint};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiJson, ApiQuery, ApiResult, ErrorBody};
use super::forecasts::instant;
use crate::auth::Caller;
use crate::http::AppState;

/// What an endpoint may subscribe to.
pub const EVENT_TYPES: [&str; 3] = ["price_change", "budget_threshold", "allocation_decision"];
const MAX_ENDPOINTS: usize = 20;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointRequest {
    /// `https://…` (plain `http` and private addresses only where the server allows them).
    pub url: String,
    pub description: Option<String>,
    /// Any of `price_change`, `budget_threshold`, `allocation_decision`;
    /// empty or absent: all.
    #[serde(default)]
    pub event_types: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointView {
    pub id: String,
    pub url: String,
    pub description: Option<String>,
    pub event_types: Vec<String>,
    /// `active` or `disabled`.
    pub status: String,
    pub disabled_reason: Option<String>,
    /// Since when every attempt has failed.
    pub failing_since: Option<DateTime<Utc>>,
    /// Until when the previous secret still signs (after a rotation).
    pub previous_secret_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<&StoredEndpoint> for EndpointView {
    fn from(e: &StoredEndpoint) -> Self {
        Self {
            id: e.id.clone(),
            url: e.url.clone(),
            description: e.description.clone(),
            event_types: e.event_types.clone(),
            status: e.status.clone(),
            disabled_reason: e.disabled_reason.clone(),
            failing_since: e.failing_since_ms.map(instant),
            previous_secret_until: e.previous_until_ms.map(instant),
            created_at: instant(e.created_ms),
        }
    }
}

/// An endpoint with its signing secret: shown when created and when rotated.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointWithSecret {
    pub endpoint: EndpointView,
    /// `whsec_…`: verify `webhook-signature` with it (Standard Webhooks).
    pub secret: String,
}

fn new_secret() -> String {
    secret_from_bytes(&crate::auth::keys::random_bytes::<32>())
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.octets()[0] == 100 && (64..128).contains(&v4.octets()[1])
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_private(IpAddr::V4(v4)))
        }
    }
}

fn check_url(raw: &str, allow_private: bool) -> ApiResult<String> {
    let bad = |m: &str| Err(ApiError::unprocessable(format!("url: {m}")));
    if raw.len() > 2000 {
        return bad("at most 2000 characters");
    }
    let Ok(url) = reqwest::Url::parse(raw) else {
        return bad("not a valid URL");
    };
    match (url.scheme(), allow_private) {
        ("https", _) | ("http", true) => {}
        ("http", false) => return bad("must be https"),
        _ => return bad("must be an http(s) URL"),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return bad("must not carry credentials");
    }
    let Some(host) = url.host_str() else {
        return bad("has no host");
    };
    if !allow_private {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let local = host.eq_ignore_ascii_case("localhost") || host.ends_with(".localhost");
        if local || host.parse::<IpAddr>().is_ok_and(is_private) {
            return bad("must not be a loopback or private-network address");
        }
    }
    Ok(url.to_string())
}

fn check_types(types: Vec<String>) -> ApiResult<Vec<String>> {
    let mut out = Vec::new();
    for t in types {
        if !EVENT_TYPES.contains(&t.as_str()) {
            return Err(ApiError::unprocessable(format!(
                "event type {t:?} is not one of: {}",
                EVENT_TYPES.join(", ")
            )));
        }
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

/// Adds an endpoint; the answer carries its signing secret.
#[utoipa::path(post, path = "/api/v1/webhook-endpoints", tag = "webhooks", request_body = EndpointRequest,
    security(("api_key" = ["admin"]), ("session" = [])),
    responses((status = 201, body = EndpointWithSecret), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_endpoint(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<EndpointRequest>,
) -> ApiResult<(StatusCode, Json<EndpointWithSecret>)> {
    caller.require_scope(Scope::Admin)?;
    let url = check_url(&req.url, state.webhooks_allow_private)?;
    let event_types = check_types(req.event_types)?;
    if req
        .description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 200)
    {
        return Err(ApiError::unprocessable(
            "description: at most 200 characters",
        ));
    }
    if state.db.webhook_endpoints(&caller.tenant).await?.len() >= MAX_ENDPOINTS {
        return Err(ApiError::conflict(format!(
            "at most {MAX_ENDPOINTS} endpoints per organisation"
        )));
    }
    let e = StoredEndpoint {
        id: headroom_store::new_id(),
        url,
        description: req.description,
        event_types,
        secret: new_secret(),
        previous_secret: None,
        previous_until_ms: None,
        status: "active".into(),
        disabled_reason: None,
        failing_since_ms: None,
        created_ms: Utc::now().timestamp_millis(),
    };
    state.db.create_webhook_endpoint(&caller.tenant, &e).await?;
    state
        .db
        .audit(
            &caller.actor(),
            AuditAction::WebhookEndpointCreated,
            Some(&e.id),
            Some(json!({ "url": e.url, "event_types": e.event_types })),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(EndpointWithSecret {
            endpoint: (&e).into(),
            secret: e.secret,
        }),
    ))
}

/// The organisation's endpoints (secrets are not shown again).
#[utoipa::path(get, path = "/api/v1/webhook-endpoints", tag = "webhooks",
    security(("api_key" = ["read"]), ("session" = [])),
    responses((status = 200, body = Vec<EndpointView>), (status = 401, body = ErrorBody)))]
pub async fn list_endpoints(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<EndpointView>>> {
    caller.require_scope(Scope::Read)?;
    let rows = state.db.webhook_endpoints(&caller.tenant).await?;
    Ok(Json(rows.iter().map(Into::into).collect()))
}

/// Removes an endpoint; messages not yet delivered to it are marked failed.
#[utoipa::path(delete, path = "/api/v1/webhook-endpoints/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Endpoint id")),
    security(("api_key" = ["admin"]), ("session" = [])),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_endpoint(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_scope(Scope::Admin)?;
    if !state
        .db
        .delete_webhook_endpoint(&caller.tenant, &id)
        .await?
    {
        return Err(ApiError::not_found("webhook endpoint"));
    }
    state
        .db
        .audit(
            &caller.actor(),
            AuditAction::WebhookEndpointDeleted,
            Some(&id),
            None,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new signing secret; the old one keeps signing beside it for 24 hours.
#[utoipa::path(post, path = "/api/v1/webhook-endpoints/{id}/rotate-secret", tag = "webhooks",
    params(("id" = String, Path, description = "Endpoint id")),
    security(("api_key" = ["admin"]), ("session" = [])),
    responses((status = 200, body = EndpointWithSecret), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<EndpointWithSecret>> {
    caller.require_scope(Scope::Admin)?;
    let secret = new_secret();
    let until = Utc::now().timestamp_millis() + ROTATION_OVERLAP_MS;
    if !state
        .db
        .rotate_webhook_secret(&caller.tenant, &id, &secret, until)
        .await?
    {
        return Err(ApiError::not_found("webhook endpoint"));
    }
    let e = state
        .db
        .webhook_endpoint(&caller.tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook endpoint"))?;
    state
        .db
        .audit(
            &caller.actor(),
            AuditAction::WebhookSecretRotated,
            Some(&id),
            None,
        )
        .await?;
    Ok(Json(EndpointWithSecret {
        endpoint: (&e).into(),
        secret,
    }))
}

/// Enables a disabled endpoint; what queued up for it is sent.
#[utoipa::path(post, path = "/api/v1/webhook-endpoints/{id}/enable", tag = "webhooks",
    params(("id" = String, Path, description = "Endpoint id")),
    security(("api_key" = ["admin"]), ("session" = [])),
    responses((status = 200, body = EndpointView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn enable_endpoint(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<EndpointView>> {
    caller.require_scope(Scope::Admin)?;
    if !state
        .db
        .enable_webhook_endpoint(&caller.tenant, &id, Utc::now().timestamp_millis())
        .await?
    {
        return Err(ApiError::not_found("webhook endpoint"));
    }
    let e = state
        .db
        .webhook_endpoint(&caller.tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook endpoint"))?;
    state
        .db
        .audit(
            &caller.actor(),
            AuditAction::WebhookEndpointEnabled,
            Some(&id),
            None,
        )
        .await?;
    Ok(Json((&e).into()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    pub n: i32,
    pub at: DateTime<Utc>,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i32,
}

impl From<StoredAttempt> for AttemptView {
    fn from(a: StoredAttempt) -> Self {
        Self {
            n: a.n,
            at: instant(a.at_ms),
            status_code: a.status_code,
            error: a.error,
            duration_ms: a.duration_ms,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// The `webhook-id` header: the same on every attempt and replay.
    pub id: String,
    pub event_type: String,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub attempts: Vec<AttemptView>,
}

fn delivery_view(d: StoredDelivery, attempts: Vec<StoredAttempt>) -> DeliveryView {
    DeliveryView {
        payload: serde_json::from_str(&d.payload).unwrap_or_default(),
        id: d.id,
        event_type: d.event_type,
        created_at: instant(d.created_ms),
        next_attempt_at: (d.status == "pending")
            .then_some(d.next_attempt_ms)
            .flatten()
            .map(instant),
        delivered_at: d.delivered_ms.map(instant),
        status: d.status,
        attempts: attempts.into_iter().map(Into::into).collect(),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// Default 50, at most 200.
    pub limit: Option<u64>,
}

/// The delivery log of an endpoint, newest first, with every attempt's status code.
#[utoipa::path(get, path = "/api/v1/webhook-endpoints/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "Endpoint id"), DeliveryQuery),
    security(("api_key" = ["read"]), ("session" = [])),
    responses((status = 200, body = Vec<DeliveryView>), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DeliveryQuery>,
) -> ApiResult<Json<Vec<DeliveryView>>> {
    caller.require_scope(Scope::Read)?;
    let limit = page_limit(q.limit, 50, 200)?;
    if state
        .db
        .webhook_endpoint(&caller.tenant, &id)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found("webhook endpoint"));
    }
    let mut out = Vec::new();
    for d in state
        .db
        .webhook_deliveries(&caller.tenant, &id, limit)
        .await?
    {
        let attempts = state.db.webhook_attempts(&caller.tenant, &d.id).await?;
        out.push(delivery_view(d, attempts));
    }
    Ok(Json(out))
}

/// Sends a message again, with the same `webhook-id` (receivers deduplicate
/// on it) and a fresh retry schedule.
#[utoipa::path(post, path = "/api/v1/webhook-deliveries/{id}/replay", tag = "webhooks",
    params(("id" = String, Path, description = "Delivery id (msg_…)")),
    security(("api_key" = ["admin"]), ("session" = [])),
    responses((status = 202, body = DeliveryView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn replay_delivery(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<DeliveryView>)> {
    caller.require_scope(Scope::Admin)?;
    let d = state
        .db
        .replay_webhook_delivery(&caller.tenant, &id, Utc::now().timestamp_millis())
        .await?
        .ok_or_else(|| ApiError::not_found("webhook delivery"))?;
    state
        .db
        .audit(
            &caller.actor(),
            AuditAction::WebhookDeliveryReplayed,
            Some(&d.id),
            Some(json!({ "event_type": d.event_type })),
        )
        .await?;
    let attempts = state.db.webhook_attempts(&caller.tenant, &d.id).await?;
    Ok((StatusCode::ACCEPTED, Json(delivery_view(d, attempts))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_public_https_unless_allowed() {
        assert!(check_url("https://billing.example.com/hooks", false).is_ok());
        for bad in [
            "http://billing.example.com/hooks",
            "https://localhost/x",
            "https://127.0.0.1/x",
            "https://10.1.2.3/x",
            "https://169.254.169.254/latest",
            "https://[::1]/x",
            "https://[::ffff:192.168.0.1]/x",
            "https://user:pw@billing.example.com/",
            "ftp://billing.example.com/",
            "not a url",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad}");
        }
        assert!(check_url("http://127.0.0.1:9000/hook", true).is_ok());
    }
}
