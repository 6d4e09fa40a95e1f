//! Per-item validation: each item becomes a row or a reason it was refused.

use headroom_core::telemetry::{
    TimeWindow, parse_timestamp, validate_metric, validate_micro_operation_type, validate_name,
    validate_workload,
};
use headroom_store::telemetry::{BehaviourEventIn, MicroOperationIn, PointIn, UsageEventIn};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// A metric point. `timestamp`: RFC 3339 or unix seconds.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricPointBody {
    #[schema(example = "api-eu-west-1")]
    pub workload: String,
    /// `cpu`, `memory`, `net_in`, `net_out`, `disk_read`, `disk_write`, `requests`, or your own.
    #[schema(example = "cpu")]
    pub metric: String,
    #[schema(value_type = String, example = "2026-11-25T10:00:00Z")]
    pub timestamp: Value,
    pub value: f64,
}

/// A billable usage event; `id` is its idempotency key within the organisation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageEventBody {
    #[schema(example = "req-7f3a9c")]
    pub id: String,
    #[serde(rename = "type")]
    #[schema(example = "api_call")]
    pub event_type: String,
    pub quantity: f64,
    #[schema(value_type = String)]
    pub timestamp: Value,
    pub workload: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Value>,
}

/// Resources one micro-operation used.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceUsageBody {
    pub cpu_cycles: u64,
    pub memory_bytes: u64,
    pub network_bytes: u64,
    pub disk_bytes: u64,
    pub execution_time_ms: f64,
}

/// A `MicroOperationEvent`: one step of an operation and what it cost.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MicroOperationBody {
    #[schema(value_type = String)]
    pub timestamp: Value,
    pub operation_id: String,
    /// `MEMORY_READ`, `CPU_INSTRUCTION`, `NETWORK_SEND`, `DISK_IO`, … (upper case).
    pub micro_operation_type: String,
    pub resource_usage: ResourceUsageBody,
    pub workload: Option<String>,
}

/// What the customer's end users did: leading signals for forecasts.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BehaviourEventBody {
    pub id: String,
    /// `api_call`, `feature_used`, `session_start` or `session_end`.
    pub kind: String,
    /// The API or feature, for `api_call` and `feature_used`.
    pub name: Option<String>,
    #[schema(value_type = String)]
    pub timestamp: Value,
    pub workload: Option<String>,
    /// Hashed with the organisation's salt before storage; never stored as sent.
    pub user_id: Option<String>,
    /// Stored only if the organisation enabled behaviour attributes.
    pub device: Option<String>,
    /// Stored only if the organisation enabled behaviour attributes.
    pub geo: Option<String>,
}

pub const BEHAVIOUR_KINDS: [&str; 4] = ["api_call", "feature_used", "session_start", "session_end"];

/// The item as `T`, parsed from its text (no `Value` tree in between: half
/// the cost per item). The reason leaves out the position within the item.
fn typed<T: for<'de> Deserialize<'de>>(v: &RawValue) -> Result<T, String> {
    serde_json::from_str(v.get()).map_err(|e| {
        let text = e.to_string();
        match text.rfind(" at line ") {
            Some(at) if e.line() > 0 => text[..at].to_owned(),
            _ => text,
        }
    })
}

fn finite(field: &str, v: f64, allow_negative: bool) -> Result<f64, String> {
    if !v.is_finite() || (!allow_negative && v < 0.0) {
        return Err(format!(
            "{field} must be a finite{} number",
            if allow_negative { "" } else { ", non-negative" }
        ));
    }
    Ok(v)
}

fn timestamp(v: &Value, window: &TimeWindow) -> Result<i64, String> {
    window
        .check(parse_timestamp(v).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())
}

/// Idempotency keys chosen by clients: any printable text up to 200 characters.
fn idempotency_key(field: &str, s: &str) -> Result<(), String> {
    if s.is_empty() || s.chars().count() > 200 || s.chars().any(char::is_control) {
        return Err(format!("{field} must be 1 to 200 printable characters"));
    }
    Ok(())
}

fn workload(w: Option<String>) -> Result<Option<String>, String> {
    if let Some(w) = &w {
        validate_workload(w).map_err(|e| e.to_string())?;
    }
    Ok(w)
}

pub fn point(v: &RawValue, window: &TimeWindow) -> Result<PointIn, String> {
    let b: MetricPointBody = typed(v)?;
    validate_workload(&b.workload).map_err(|e| e.to_string())?;
    validate_metric(&b.metric).map_err(|e| e.to_string())?;
    Ok(PointIn {
        ts_ms: timestamp(&b.timestamp, window)?,
        value: finite("value", b.value, true)?,
        workload: b.workload,
        metric: b.metric,
    })
}

pub fn usage_event(v: &RawValue, window: &TimeWindow) -> Result<UsageEventIn, String> {
    let b: UsageEventBody = typed(v)?;
    idempotency_key("id", &b.id)?;
    validate_name("type", &b.event_type, 100).map_err(|e| e.to_string())?;
    let quantity = finite("quantity", b.quantity, false)?;
    let ts_ms = timestamp(&b.timestamp, window)?;
    let workload = workload(b.workload)?;
    let attributes = match b.attributes {
        None | Some(Value::Null) => None,
        Some(a @ Value::Object(_)) => {
            let text = a.to_string();
            if text.len() > 4096 {
                return Err("attributes must be at most 4 KiB of JSON".to_owned());
            }
            Some(text)
        }
        Some(_) => return Err("attributes must be a JSON object".to_owned()),
    };
    let fingerprint = fingerprint(&b.event_type, quantity, ts_ms, &workload, &attributes);
    Ok(UsageEventIn {
        id: b.id,
        event_type: b.event_type,
        quantity,
        ts_ms,
        workload,
        attributes,
        fingerprint,
    })
}

/// What makes two events with one id the same event: the SHA-256 of
/// `[type, quantity, timestamp ms, workload, attributes]` as compact JSON
/// (attribute keys sorted, so their order does not matter). Stored with each
/// event: the bytes must never change.
fn fingerprint(
    event_type: &str,
    quantity: f64,
    ts_ms: i64,
    workload: &Option<String>,
    attributes: &Option<String>,
) -> String {
    let content = serde_json::to_vec(&(event_type, quantity, ts_ms, workload, attributes))
        .expect("a tuple of strings and numbers serialises");
    hex::encode(Sha256::digest(&content))
}

pub fn micro_operation(v: &RawValue, window: &TimeWindow) -> Result<MicroOperationIn, String> {
    let b: MicroOperationBody = typed(v)?;
    idempotency_key("operation_id", &b.operation_id)?;
    validate_micro_operation_type(&b.micro_operation_type)?;
    let u = &b.resource_usage;
    let signed = |field: &str, n: u64| {
        i64::try_from(n).map_err(|_| format!("resource_usage.{field} is too large"))
    };
    Ok(MicroOperationIn {
        ts_ms: timestamp(&b.timestamp, window)?,
        cpu_cycles: signed("cpu_cycles", u.cpu_cycles)?,
        memory_bytes: signed("memory_bytes", u.memory_bytes)?,
        network_bytes: signed("network_bytes", u.network_bytes)?,
        disk_bytes: signed("disk_bytes", u.disk_bytes)?,
        execution_time_ms: finite(
            "resource_usage.execution_time_ms",
            u.execution_time_ms,
            false,
        )?,
        workload: workload(b.workload)?,
        operation_id: b.operation_id,
        micro_operation_type: b.micro_operation_type,
    })
}

/// The organisation's privacy policy for behaviour events.
pub struct Privacy {
    pub store_attributes: bool,
    pub salt: String,
}

pub fn behaviour_event(
    v: &RawValue,
    window: &TimeWindow,
    privacy: &Privacy,
) -> Result<BehaviourEventIn, String> {
    let b: BehaviourEventBody = typed(v)?;
    idempotency_key("id", &b.id)?;
    if !BEHAVIOUR_KINDS.contains(&b.kind.as_str()) {
        return Err(format!(
            "kind must be one of {} (got {:?})",
            BEHAVIOUR_KINDS.join(", "),
            b.kind
        ));
    }
    if let Some(name) = &b.name {
        validate_name("name", name, 200).map_err(|e| e.to_string())?;
    }
    let short = |field: &str, s: Option<String>| -> Result<Option<String>, String> {
        match s {
            Some(s) if s.chars().count() > 64 || s.chars().any(char::is_control) => {
                Err(format!("{field} must be at most 64 printable characters"))
            }
            other => Ok(other),
        }
    };
    let (device, geo) = (short("device", b.device)?, short("geo", b.geo)?);
    let user_hash = b.user_id.map(|u| {
        hex::encode(Sha256::digest(
            format!("{}\u{0}{u}", privacy.salt).as_bytes(),
        ))
    });
    Ok(BehaviourEventIn {
        ts_ms: timestamp(&b.timestamp, window)?,
        workload: workload(b.workload)?,
        device: device.filter(|_| privacy.store_attributes),
        geo: geo.filter(|_| privacy.store_attributes),
        user_hash,
        id: b.id,
        kind: b.kind,
        name: b.name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(v: serde_json::Value) -> Box<RawValue> {
        RawValue::from_string(v.to_string()).unwrap()
    }

    fn window() -> TimeWindow {
        TimeWindow {
            now_ms: 1_765_000_060_000,
            max_age_ms: 86_400_000,
            max_future_ms: 300_000,
        }
    }

    /// Fingerprints are stored with every event and compared with replays:
    /// these are the bytes earlier versions stored for the same content.
    #[test]
    fn fingerprints_keep_their_bytes() {
        let e = usage_event(
            &raw(
                serde_json::json!({ "id": "e-1", "type": "api_call", "quantity": 1,
                "timestamp": 1_765_000_000, "workload": "api" }),
            ),
            &window(),
        )
        .unwrap();
        assert_eq!(
            e.fingerprint,
            "c6370b844c664c88223795a0f2878588d646a55540a04bf59da80818bab63849"
        );
        let e = usage_event(
            &raw(
                serde_json::json!({ "id": "e-2", "type": "gpu_seconds", "quantity": 2.5,
                "timestamp": 1_765_000_000, "attributes": { "region": "eu", "model": "x" } }),
            ),
            &window(),
        )
        .unwrap();
        assert_eq!(
            e.attributes.as_deref(),
            Some(r#"{"model":"x","region":"eu"}"#)
        );
        assert_eq!(
            e.fingerprint,
            "90abdc30d2eb4aad02ec6d54818a3bbd90efc207e1a55daf00a23930bdf34566"
        );
    }

    #[test]
    fn reasons_name_the_field_without_a_position() {
        let why = |v| point(&raw(v), &window()).unwrap_err();
        assert_eq!(
            why(
                serde_json::json!({ "workload": "api", "metric": "cpu", "timestamp": 1_765_000_000 })
            ),
            "missing field `value`"
        );
        assert!(
            why(
                serde_json::json!({ "workload": "api", "metric": "cpu", "timestamp": 1_765_000_000,
                "value": 1, "colour": "red" })
            )
            .starts_with("unknown field `colour`"),
        );
        assert_eq!(
            why(serde_json::json!("not an object")),
            "invalid type: string \"not an object\", expected struct MetricPointBody"
        );
    }
}
