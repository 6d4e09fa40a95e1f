//! A Stripe stand-in for tests. No available peer implements Billing Meters,
//! so this one checks every request Headroom sends against Stripe's official
//! OpenAPI description (the subset in `tests/data`, cut by
//! `scripts/stripe/extract_spec.py`): known parameters only, required ones
//! present, types and lengths as declared, form encoding. It keeps what
//! Stripe would: customers, meter events per `identifier`, and idempotent
//! replays per `Idempotency-Key`. It can be taken down and slowed.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};

pub const SPEC: &str = include_str!("../data/stripe-openapi-subset.json");

#[derive(Debug, Clone)]
pub struct MeterEvent {
    pub event_name: String,
    pub customer: String,
    pub value: i64,
    pub timestamp: i64,
}

#[derive(Default)]
pub struct PeerState {
    pub down: bool,
    pub delay: Duration,
    pub customers: BTreeMap<String, Value>,
    pub meters: BTreeMap<String, Value>,
    pub products: BTreeMap<String, Value>,
    pub prices: BTreeMap<String, Value>,
    pub subscriptions: BTreeMap<String, Value>,
    /// By identifier: each counted once, as Stripe does.
    pub meter_events: BTreeMap<String, MeterEvent>,
    /// Every meter-event request that reached the peer, replays included.
    pub meter_requests: usize,
    /// Requests that broke the contract, with why.
    pub violations: Vec<String>,
    idempotent: HashMap<String, (String, Value)>,
}

#[derive(Clone)]
pub struct StripePeer {
    pub url: String,
    pub state: Arc<Mutex<PeerState>>,
}

impl StripePeer {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(PeerState::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/v1/{*rest}", post(handle).get(handle_get))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, state }
    }

    pub fn set_down(&self, down: bool) {
        self.state.lock().unwrap().down = down;
    }

    pub fn set_delay(&self, d: Duration) {
        self.state.lock().unwrap().delay = d;
    }

    /// Sum of the values of distinct meter events.
    pub fn total_value(&self) -> i64 {
        self.state
            .lock()
            .unwrap()
            .meter_events
            .values()
            .map(|e| e.value)
            .sum()
    }

    pub fn violations(&self) -> Vec<String> {
        self.state.lock().unwrap().violations.clone()
    }
}

fn error(status: StatusCode, kind: &str, message: String) -> (StatusCode, axum::Json<Value>) {
    (
        status,
        axum::Json(json!({ "error": { "type": kind, "message": message } })),
    )
}

/// Checks form parameters against a request-body schema; returns what is wrong.
pub fn validate(schema: &Value, params: &[(String, String)]) -> Vec<String> {
    let mut errors = Vec::new();
    let props = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut seen: Vec<String> = Vec::new();
    for (key, value) in params {
        let (name, rest) = match key.find('[') {
            Some(i) => (&key[..i], &key[i..]),
            None => (key.as_str(), ""),
        };
        seen.push(name.to_owned());
        match props.get(name) {
            None => errors.push(format!("unknown parameter {name:?}")),
            Some(p) => {
                if let Err(e) = check(p, rest, value) {
                    errors.push(format!("{key}: {e}"));
                }
            }
        }
    }
    for r in schema["required"].as_array().into_iter().flatten() {
        let r = r.as_str().unwrap_or_default();
        if !seen.iter().any(|s| s == r) {
            errors.push(format!("missing required parameter {r:?}"));
        }
    }
    errors
}

/// One value at `rest` (`""`, `"[key]"`, `"[0]"`, …) under schema `p`.
fn check(p: &Value, rest: &str, value: &str) -> Result<(), String> {
    if let Some(any) = p["anyOf"].as_array() {
        return if any.iter().any(|alt| check(alt, rest, value).is_ok()) {
            Ok(())
        } else {
            Err(format!(
                "matches none of the allowed shapes (value {value:?})"
            ))
        };
    }
    let (head, tail) = match rest.strip_prefix('[').and_then(|r| r.split_once(']')) {
        Some((h, t)) => (Some(h), t),
        None => (None, rest),
    };
    match (p["type"].as_str(), head) {
        (Some("string"), None) => {
            if let Some(max) = p["maxLength"].as_u64()
                && value.chars().count() as u64 > max
            {
                return Err(format!("longer than {max}"));
            }
            if let Some(e) = p["enum"].as_array()
                && !e.iter().any(|x| x.as_str() == Some(value))
            {
                return Err(format!("{value:?} is not one of {e:?}"));
            }
            Ok(())
        }
        (Some("integer"), None) => value
            .parse::<i64>()
            .map(|_| ())
            .map_err(|_| format!("{value:?} is not an integer")),
        (Some("boolean"), None) => match value {
            "true" | "false" => Ok(()),
            _ => Err(format!("{value:?} is not a boolean")),
        },
        (Some("object"), Some(k)) => {
            if let Some(sub) = p["properties"].get(k) {
                check(sub, tail, value)
            } else if p["additionalProperties"].is_object() {
                check(&p["additionalProperties"], tail, value)
            } else {
                Err(format!("unknown key {k:?}"))
            }
        }
        (Some("array"), Some(_)) => check(&p["items"], tail, value),
        (t, h) => Err(format!("a {t:?} given as {h:?}")),
    }
}

async fn handle_get(
    State(state): State<Arc<Mutex<PeerState>>>,
    Path(rest): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> (StatusCode, axum::Json<Value>) {
    if state.lock().unwrap().down {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            "down for the test".into(),
        );
    }
    let path = format!("/v1/{rest}");
    let spec: Value = serde_json::from_str(SPEC).unwrap();
    let mut st = state.lock().unwrap();
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(op) = spec["paths"].get(&path).and_then(|p| p.get("get")) else {
        st.violations
            .push(format!("GET {path}: not an operation of the contract"));
        return error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "unknown".into(),
        );
    };
    let params: Vec<(String, String)> =
        form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let mut errors = validate(&op["requestBody"], &params);
    if !auth.starts_with("Bearer sk_") {
        errors.push(format!("authorization {auth:?} is not a secret key"));
    }
    if !errors.is_empty() {
        st.violations
            .push(format!("GET {path}: {}", errors.join("; ")));
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            errors.join("; "),
        );
    }
    let status = params
        .iter()
        .find(|(k, _)| k == "status")
        .map(|(_, v)| v.clone());
    let data: Vec<Value> = st
        .meters
        .values()
        .filter(|m| status.as_deref().is_none_or(|s| m["status"] == s))
        .cloned()
        .collect();
    (
        StatusCode::OK,
        axum::Json(json!({ "object": "list", "data": data, "has_more": false, "url": path })),
    )
}

async fn handle(
    State(state): State<Arc<Mutex<PeerState>>>,
    Path(rest): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, axum::Json<Value>) {
    let delay = state.lock().unwrap().delay;
    if state.lock().unwrap().down {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            "down for the test".into(),
        );
    }
    tokio::time::sleep(delay).await;
    let path = format!("/v1/{rest}");
    let spec: Value = serde_json::from_str(SPEC).unwrap();
    let mut st = state.lock().unwrap();
    let fail = |st: &mut PeerState, m: String| {
        st.violations.push(format!("POST {path}: {m}"));
        error(StatusCode::BAD_REQUEST, "invalid_request_error", m)
    };
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !auth.starts_with("Bearer sk_") {
        return fail(
            &mut st,
            format!("authorization {auth:?} is not a secret key"),
        );
    }
    let ctype = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !ctype.starts_with("application/x-www-form-urlencoded") {
        return fail(&mut st, format!("content type {ctype:?}"));
    }
    let Some(op) = spec["paths"].get(&path).and_then(|p| p.get("post")) else {
        return fail(&mut st, "not an operation of the contract".into());
    };
    let params: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let errors = validate(&op["requestBody"], &params);
    if !errors.is_empty() {
        return fail(&mut st, errors.join("; "));
    }
    // Stripe compares parameters, not bytes: the order of keys may differ.
    let mut sorted = params.clone();
    sorted.sort();
    let body_text = format!("{sorted:?}");
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if path == "/v1/billing/meter_events" {
        st.meter_requests += 1;
    }
    if let Some(k) = &key
        && let Some((seen_body, response)) = st.idempotent.get(k)
    {
        if seen_body != &body_text {
            return fail(
                &mut st,
                format!("idempotency key {k:?} reused with other parameters"),
            );
        }
        return (StatusCode::OK, axum::Json(response.clone()));
    }
    let p: HashMap<String, String> = params.into_iter().collect();
    let now = chrono::Utc::now().timestamp();
    let response = match path.as_str() {
        "/v1/customers" => {
            let id = format!("cus_test{}", st.customers.len() + 1);
            let metadata: HashMap<&str, &String> = p
                .iter()
                .filter_map(|(k, v)| Some((k.strip_prefix("metadata[")?.strip_suffix(']')?, v)))
                .collect();
            let c = json!({ "id": id, "object": "customer", "created": now, "livemode": false,
                "name": p.get("name"), "metadata": metadata, "email": null, "description": null,
                "balance": 0, "currency": null, "delinquent": false, "invoice_prefix": "TEST" });
            st.customers.insert(id, c.clone());
            c
        }
        "/v1/billing/meter_events" => {
            let identifier = p
                .get("identifier")
                .cloned()
                .unwrap_or_else(|| format!("gen-{now}"));
            if st.meter_events.contains_key(&identifier) {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    format!("An event already exists with identifier {identifier}"),
                );
            }
            let customer = p
                .get("payload[stripe_customer_id]")
                .cloned()
                .unwrap_or_default();
            if !st.customers.contains_key(&customer) {
                return fail(&mut st, format!("no such customer {customer:?}"));
            }
            let Some(value) = p.get("payload[value]").and_then(|v| v.parse::<i64>().ok()) else {
                return fail(&mut st, "payload[value] must be a whole number".into());
            };
            let timestamp = p
                .get("timestamp")
                .and_then(|t| t.parse().ok())
                .unwrap_or(now);
            if timestamp < now - 35 * 86_400 || timestamp > now + 300 {
                return fail(
                    &mut st,
                    format!("timestamp {timestamp} is outside the accepted window"),
                );
            }
            let event_name = p.get("event_name").cloned().unwrap_or_default();
            if !st
                .meters
                .values()
                .any(|m| m["event_name"] == event_name.as_str() && m["status"] == "active")
            {
                return fail(
                    &mut st,
                    format!("no active meter for event_name {event_name:?}"),
                );
            }
            st.meter_events.insert(
                identifier.clone(),
                MeterEvent {
                    event_name: event_name.clone(),
                    customer: customer.clone(),
                    value,
                    timestamp,
                },
            );
            json!({ "object": "billing.meter_event", "created": now, "event_name": event_name,
                "identifier": identifier, "livemode": false, "timestamp": timestamp,
                "payload": { "stripe_customer_id": customer, "value": value.to_string() } })
        }
        "/v1/billing/meters" => {
            let event_name = p.get("event_name").cloned().unwrap_or_default();
            if st
                .meters
                .values()
                .any(|m| m["event_name"] == event_name.as_str() && m["status"] == "active")
            {
                return fail(
                    &mut st,
                    format!("an active meter with event_name {event_name:?} exists"),
                );
            }
            let id = format!("mtr_test{}", st.meters.len() + 1);
            let m = json!({ "id": id, "object": "billing.meter", "created": now, "updated": now,
                "livemode": false, "status": "active", "status_transitions": { "deactivated_at": null },
                "display_name": p.get("display_name"), "event_name": event_name,
                "customer_mapping": { "type": p.get("customer_mapping[type]").cloned().unwrap_or("by_id".into()),
                    "event_payload_key": p.get("customer_mapping[event_payload_key]").cloned().unwrap_or("stripe_customer_id".into()) },
                "default_aggregation": { "formula": p.get("default_aggregation[formula]") },
                "value_settings": { "event_payload_key": p.get("value_settings[event_payload_key]").cloned().unwrap_or("value".into()) } });
            st.meters.insert(id, m.clone());
            m
        }
        "/v1/products" => {
            let id = format!("prod_test{}", st.products.len() + 1);
            let m = json!({ "id": id, "object": "product", "active": true, "created": now, "updated": now,
                "images": [], "livemode": false, "marketing_features": [], "metadata": {}, "name": p.get("name") });
            st.products.insert(id, m.clone());
            m
        }
        "/v1/prices" => {
            let product = p.get("product").cloned().unwrap_or_default();
            if !st.products.contains_key(&product) {
                return fail(&mut st, format!("no such product {product:?}"));
            }
            let meter = p.get("recurring[meter]").cloned();
            if let Some(m) = &meter
                && !st.meters.contains_key(m)
            {
                return fail(&mut st, format!("no such meter {m:?}"));
            }
            if meter.is_some()
                && p.get("recurring[usage_type]").map(String::as_str) != Some("metered")
            {
                return fail(&mut st, "a price with a meter must be metered".into());
            }
            let id = format!("price_test{}", st.prices.len() + 1);
            let m = json!({ "id": id, "object": "price", "active": true, "billing_scheme": "per_unit",
                "created": now, "currency": p.get("currency"), "livemode": false, "metadata": {},
                "product": product, "type": "recurring", "unit_amount": p.get("unit_amount").and_then(|u| u.parse::<i64>().ok()),
                "recurring": { "interval": p.get("recurring[interval]"), "usage_type": p.get("recurring[usage_type]"), "meter": meter } });
            st.prices.insert(id, m.clone());
            m
        }
        "/v1/subscriptions" => {
            let customer = p.get("customer").cloned().unwrap_or_default();
            if !st.customers.contains_key(&customer) {
                return fail(&mut st, format!("no such customer {customer:?}"));
            }
            let price = p.get("items[0][price]").cloned().unwrap_or_default();
            let Some(price_obj) = st.prices.get(&price).cloned() else {
                return fail(&mut st, format!("no such price {price:?}"));
            };
            if p.get("collection_method").map(String::as_str) == Some("send_invoice")
                && !p.contains_key("days_until_due")
            {
                return fail(&mut st, "send_invoice needs days_until_due".into());
            }
            let id = format!("sub_test{}", st.subscriptions.len() + 1);
            let metadata: HashMap<&str, &String> = p
                .iter()
                .filter_map(|(k, v)| Some((k.strip_prefix("metadata[")?.strip_suffix(']')?, v)))
                .collect();
            let m = json!({ "id": id, "object": "subscription", "automatic_tax": { "enabled": false },
                "billing_cycle_anchor": now, "cancel_at_period_end": false,
                "collection_method": p.get("collection_method").cloned().unwrap_or("charge_automatically".into()),
                "created": now, "currency": price_obj["currency"], "current_period_start": now,
                "current_period_end": now + 30 * 86_400, "customer": customer, "discounts": [],
                "items": { "object": "list", "data": [{ "price": price_obj }] }, "livemode": false,
                "metadata": metadata, "start_date": now, "status": "active" });
            st.subscriptions.insert(id, m.clone());
            m
        }
        _ => return fail(&mut st, "unhandled".into()),
    };
    // The response carries what Stripe's schema requires.
    let schema = spec["paths"][&path]["post"]["response"]["$ref"]
        .as_str()
        .and_then(|r| r.rsplit('/').next())
        .unwrap_or_default()
        .to_owned();
    for r in spec["schemas"][&schema]["required"]
        .as_array()
        .into_iter()
        .flatten()
    {
        assert!(
            response.get(r.as_str().unwrap()).is_some(),
            "peer response lacks {r}"
        );
    }
    if let Some(k) = key {
        st.idempotent.insert(k, (body_text, response.clone()));
    }
    (StatusCode::OK, axum::Json(response))
}
