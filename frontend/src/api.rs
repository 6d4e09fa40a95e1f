//! The browser's client for Headroom's REST API (`/api/v1`). Mutations carry the
//! session's CSRF token in `X-CSRF-Token`; cookies go along because it is same-origin.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct UserInfo {
    pub id: String,
    pub email: String,
    pub role: String,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct OrgInfo {
    pub id: String,
    pub name: String,
    pub tier: String,
    pub priority: i32,
}

/// The logged-in user (from sign-up, log-in or `/auth/me`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Me {
    pub user: UserInfo,
    pub organization: OrgInfo,
    pub csrf_token: String,
}

impl Me {
    pub fn is_manager(&self) -> bool {
        matches!(self.user.role.as_str(), "owner" | "admin")
    }

    /// The operator's staff (role `admin`), who see the admin portal.
    pub fn is_platform_admin(&self) -> bool {
        self.user.role == "admin"
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ApiKeyInfo {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ApiKeyCreated {
    pub key: ApiKeyInfo,
    pub secret: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct InvitationInfo {
    pub id: String,
    pub email: String,
    pub role: String,
    pub expires_at: String,
    pub expired: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct InvitationCreated {
    pub invitation: InvitationInfo,
    pub token: String,
}

/// One line of the projected invoice (money as decimal strings, shown as sent).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct EstimateLine {
    pub dimension: String,
    pub actual: String,
    pub low: String,
    pub expected: String,
    pub high: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Estimate {
    pub period: String,
    pub currency: String,
    pub as_of: String,
    pub actual: String,
    pub low: String,
    pub expected: String,
    pub high: String,
    pub lines: Vec<EstimateLine>,
    pub method: String,
    /// The monthly budget cap, when one is set.
    #[serde(default)]
    pub budget_cap: Option<BudgetCap>,
}

/// One priced line of a statement (`/billing/statement`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct StatementLine {
    pub dimension: String,
    pub unit: String,
    pub unit_price: String,
    pub quantity: String,
    pub amount: String,
}

/// Usage no rule prices: shown, not charged.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct UnpricedUsage {
    pub dimension: String,
    pub quantity: String,
}

/// A month's charges as rated (`/billing/statement`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Statement {
    pub period: String,
    pub from: String,
    pub to: String,
    pub currency: String,
    pub lines: Vec<StatementLine>,
    pub tier_premium: String,
    pub demand_adjustment: String,
    pub sla_credit: String,
    pub profile_discount: String,
    pub total: String,
    pub unpriced: Vec<UnpricedUsage>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct BudgetCap {
    pub amount: String,
    pub currency: String,
    pub action: String,
    pub updated_at: String,
    pub announced: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Notification {
    pub seq: i64,
    pub kind: String,
    pub title: String,
    pub created_at: String,
}

/// One change of an effective price (old/new as decimal strings).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct PriceChange {
    pub id: String,
    pub at: String,
    pub subject: String,
    pub old: Option<String>,
    pub new: Option<String>,
    pub currency: String,
    pub reason: String,
}

/// One decision of the allocation log (`/allocation-decisions`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Decision {
    pub id: String,
    pub workload: String,
    pub source: String,
    pub decided_at: String,
    pub mode: String,
    pub before: i32,
    pub after: i32,
    pub warm: i32,
    pub reason: String,
    pub observed: Option<f64>,
    pub sized_for: Option<f64>,
    pub status: String,
    pub detail: Option<String>,
}

impl Decision {
    /// The query parameters of the decision log's page after this decision.
    pub fn page_after(&self) -> String {
        use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
        format!(
            "&before={}&before_id={}",
            utf8_percent_encode(&self.decided_at, NON_ALPHANUMERIC),
            utf8_percent_encode(&self.id, NON_ALPHANUMERIC)
        )
    }
}

/// A workload under allocation settings (`/allocations`), as far as the page shows it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Allocation {
    pub workload: String,
    pub metric: String,
    pub units_per_instance: f64,
    pub mode: String,
    pub min_instances: i32,
    pub max_instances: i32,
    pub target: f64,
    pub priority: f64,
    pub provider: String,
    #[serde(default)]
    pub provider_ref: Option<String>,
    #[serde(default)]
    pub readiness_event: Option<String>,
    #[serde(default)]
    pub memory_mib_per_instance: Option<i64>,
    #[serde(default)]
    pub network_mbit_per_instance: Option<i32>,
    #[serde(default)]
    pub instance_type: Option<String>,
    #[serde(default)]
    pub allow_spot: bool,
    #[serde(default)]
    pub on_demand_usd_per_hour: Option<f64>,
    pub instances: i32,
    pub warm: i32,
    pub ticks_scored: u64,
    pub ticks_under_provisioned: u64,
    pub last_decision: Option<Decision>,
}

/// An organisation as platform administrators see it (`/admin/organizations`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct AdminOrganization {
    pub id: String,
    pub name: String,
    pub tier: String,
    pub priority: i32,
    pub created_at: String,
    pub currency: String,
}

/// A pricing rule (`/admin/price-rules`; amounts as decimal strings).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct PriceRule {
    pub id: String,
    pub scope: String,
    pub scope_ref: Option<String>,
    pub kind: String,
    pub dimension: Option<String>,
    pub unit_price: Option<String>,
    pub rate: Option<String>,
    pub multiplier: Option<String>,
    pub min_load: Option<String>,
    pub currency: String,
    pub effective_from: String,
    pub effective_to: Option<String>,
}

/// What adding a rule did (`POST /admin/price-rules`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct PriceRuleCreated {
    pub rule: PriceRule,
    pub price_changes: usize,
}

/// A forecasting version and its measured accuracy (`/admin/models`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ModelVersion {
    pub horizon: String,
    pub version: String,
    pub status: String,
    pub mase: Option<f64>,
    pub coverage: Option<f64>,
    pub steps: i64,
    pub series: i64,
    pub scored_at: String,
    pub recent_mase: Option<f64>,
    pub note: Option<String>,
}

/// One audit log entry (`/audit`, `/admin/audit`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub organization_id: Option<String>,
    pub actor_user_id: Option<String>,
    pub actor_api_key_id: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub ip: Option<String>,
    pub details: Option<serde_json::Value>,
    pub created_at: String,
    pub actor_email: Option<String>,
    pub actor_api_key_name: Option<String>,
    pub organization_name: Option<String>,
}

/// A series the organisation reports (`/series`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct SeriesInfo {
    pub workload: String,
    pub metric: String,
    pub last_hour: String,
    /// The horizons with a stored forecast (`allocation`, `planning`).
    #[serde(default)]
    pub forecasts: Vec<String>,
}

/// One window of a series (`/metrics/query`), as far as charts use it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct SeriesPointInfo {
    pub t: String,
    pub mean: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct SeriesWindow {
    pub points: Vec<SeriesPointInfo>,
}

/// One step of a forecast, starting at `t`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ForecastStep {
    pub t: String,
    pub p10: f64,
    pub p50: f64,
    pub p90: f64,
}

/// A workload's latest forecast of one metric at one horizon.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct MetricForecast {
    pub metric: String,
    pub horizon: String,
    pub step_seconds: i64,
    pub origin: String,
    pub made_at: String,
    pub model_version: String,
    pub steps: Vec<ForecastStep>,
}

/// `/workloads/{workload}/forecast`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct WorkloadForecast {
    pub forecasts: Vec<MetricForecast>,
}

/// A step that deviated from its workload's profile (`/anomalies`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct AnomalyInfo {
    pub workload: String,
    pub metric: String,
    pub t: String,
    pub value: f64,
    pub expected: f64,
    pub score: f64,
    pub reason: String,
}

/// What a workload is like, for the forecaster (`/workload-profiles`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct WorkloadProfile {
    pub workload: String,
    pub category: String,
    pub peak_hours: Vec<u8>,
    pub expected_growth: f64,
    pub updated_at: String,
}

/// A coming event that changes demand (`/external-events`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ExternalEvent {
    pub id: String,
    pub name: String,
    pub workload: Option<String>,
    pub start: String,
    pub end: String,
    pub expected_multiplier: f64,
}

/// An endpoint that receives signed webhooks (`/webhook-endpoints`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct WebhookEndpoint {
    pub id: String,
    pub url: String,
    pub description: Option<String>,
    pub event_types: Vec<String>,
    pub status: String,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<String>,
    pub previous_secret_until: Option<String>,
    pub created_at: String,
}

/// An endpoint with its signing secret, as answered when made or rotated.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct WebhookEndpointWithSecret {
    pub endpoint: WebhookEndpoint,
    pub secret: String,
}

/// One attempt to deliver a webhook.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct DeliveryAttempt {
    pub n: i32,
    pub at: String,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i32,
}

/// A webhook delivery with its attempts (`/webhook-endpoints/{id}/deliveries`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Delivery {
    pub id: String,
    pub event_type: String,
    pub created_at: String,
    pub status: String,
    pub attempts: Vec<DeliveryAttempt>,
}

/// The notification kinds the server streams (each an SSE event name).
pub const NOTIFICATION_KINDS: [&str; 4] = [
    "price_change",
    "budget_threshold",
    "allocation_decision",
    "billing_event",
];

/// An HTTP method the client uses.
#[derive(Debug, Clone, Copy)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

/// Calls the API; `Err` carries the server's message (or a network error) for display.
/// Only in the browser: the server renders these pages without calling itself.
pub async fn call<T: DeserializeOwned>(
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
    csrf: Option<&str>,
) -> Result<T, String> {
    #[cfg(feature = "hydrate")]
    {
        use gloo_net::http::RequestBuilder;
        let url = format!("/api/v1{path}");
        let mut req = match method {
            Method::Get => RequestBuilder::new(&url).method(gloo_net::http::Method::GET),
            Method::Post => RequestBuilder::new(&url).method(gloo_net::http::Method::POST),
            Method::Put => RequestBuilder::new(&url).method(gloo_net::http::Method::PUT),
            Method::Patch => RequestBuilder::new(&url).method(gloo_net::http::Method::PATCH),
            Method::Delete => RequestBuilder::new(&url).method(gloo_net::http::Method::DELETE),
        };
        if let Some(token) = csrf {
            req = req.header("x-csrf-token", token);
        }
        let res = match body {
            Some(b) => req.json(&b).map_err(|e| e.to_string())?.send().await,
            None => req.send().await,
        }
        .map_err(|e| format!("network error: {e}"))?;
        if res.status() == 204 {
            return serde_json::from_value(serde_json::Value::Null).map_err(|e| e.to_string());
        }
        let text = res.text().await.map_err(|e| e.to_string())?;
        if res.ok() {
            serde_json::from_str(&text).map_err(|e| format!("unexpected answer: {e}"))
        } else {
            let message = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("request failed ({})", res.status()));
            Err(message)
        }
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = (method, path, body, csrf);
        Err("the API client runs in the browser only".to_owned())
    }
}
