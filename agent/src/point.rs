//! A metric point as `POST /api/v1/metrics` takes it, and the server's naming rules,
//! checked here too so that a bad name is refused locally instead of by every batch.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};

/// Longest metric name the server accepts.
pub const MAX_METRIC_LEN: usize = 100;
/// Longest workload name the server accepts.
pub const MAX_WORKLOAD_LEN: usize = 200;

/// One sample of one metric of one workload. Its idempotency key on the server is
/// (workload, metric, timestamp at millisecond precision).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricPoint {
    pub workload: String,
    pub metric: String,
    #[serde(serialize_with = "rfc3339_millis")]
    pub timestamp: DateTime<Utc>,
    pub value: f64,
}

impl MetricPoint {
    pub fn new(
        workload: impl Into<String>,
        metric: impl Into<String>,
        timestamp: DateTime<Utc>,
        value: f64,
    ) -> Self {
        Self {
            workload: workload.into(),
            metric: metric.into(),
            timestamp,
            value,
        }
    }
}

/// RFC 3339 in UTC with milliseconds: the precision the server keys points by.
pub fn rfc3339_millis<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/')
}

/// The server's rule for metric and workload names: 1 to `max` characters among
/// letters, digits and `. _ - : /`.
pub fn check_name(field: &str, s: &str, max: usize) -> Result<(), String> {
    if s.is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    if s.chars().count() > max {
        return Err(format!("{field} must be at most {max} characters"));
    }
    if !s.chars().all(allowed) {
        return Err(format!(
            "{field} may contain only letters, digits and . _ - : / (got {s:?})"
        ));
    }
    Ok(())
}

/// Makes any text usable inside a name: disallowed characters become `_`, and the
/// result is cut to `max` characters.
pub fn sanitize(s: &str, max: usize) -> String {
    s.chars()
        .map(|c| if allowed(c) { c } else { '_' })
        .take(max)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_serialise_with_millisecond_rfc3339() {
        let t = DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
        let p = MetricPoint::new("api", "cpu", t, 0.5);
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"workload":"api","metric":"cpu","timestamp":"2023-11-14T22:13:20.123Z","value":0.5}"#
        );
        let back: MetricPoint = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn names_follow_the_server_rules() {
        assert!(check_name("metric", "process.nginx.cpu", MAX_METRIC_LEN).is_ok());
        assert!(check_name("metric", "", MAX_METRIC_LEN).is_err());
        assert!(check_name("metric", "cpu load", MAX_METRIC_LEN).is_err());
        assert!(check_name("metric", &"m".repeat(101), MAX_METRIC_LEN).is_err());
        assert_eq!(sanitize("my app (v2)", 8), "my_app__");
    }
}
