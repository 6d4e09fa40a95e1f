//! Outgoing webhooks as the Standard Webhooks specification has them:
//! `webhook-id`, `webhook-timestamp` and `webhook-signature` (`v1,` + base64
//! HMAC-SHA256 of `id.timestamp.body` under the endpoint's secret), secrets
//! spelled `whsec_` + base64, rotation by signing with old and new secret for
//! a while, and the retry schedule (about a day) after which a delivery fails.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use thiserror::Error;

pub const SECRET_PREFIX: &str = "whsec_";

/// Delays before each retry after the first attempt (seconds): 5 s, 5 min,
/// 30 min, 2 h, 5 h, 10 h, 10 h, so the last attempt is ~27.6 h after the first.
pub const RETRY_DELAYS_SECS: [i64; 7] = [5, 300, 1800, 7200, 18_000, 36_000, 36_000];

/// How long a rotated-out secret still signs, so receivers can switch over.
pub const ROTATION_OVERLAP_MS: i64 = 24 * 3_600_000;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SecretError {
    #[error("webhook secret must be whsec_ followed by base64 of 24 to 64 bytes")]
    Format,
}

/// The key bytes of a `whsec_…` secret.
pub fn secret_key(secret: &str) -> Result<Vec<u8>, SecretError> {
    let b = secret
        .strip_prefix(SECRET_PREFIX)
        .ok_or(SecretError::Format)?;
    let key = B64.decode(b).map_err(|_| SecretError::Format)?;
    if !(24..=64).contains(&key.len()) {
        return Err(SecretError::Format);
    }
    Ok(key)
}

/// A secret from random bytes (the caller brings the randomness).
pub fn secret_from_bytes(bytes: &[u8; 32]) -> String {
    format!("{SECRET_PREFIX}{}", B64.encode(bytes))
}

/// `v1,<base64 signature>` of one message under one secret.
pub fn sign(
    secret: &str,
    id: &str,
    timestamp_secs: i64,
    body: &[u8],
) -> Result<String, SecretError> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(&secret_key(secret)?).map_err(|_| SecretError::Format)?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!("v1,{}", B64.encode(mac.finalize().into_bytes())))
}

/// The `webhook-signature` header: one signature per secret in force,
/// space-separated (during rotation, new and old).
pub fn signature_header(
    secrets: &[&str],
    id: &str,
    timestamp_secs: i64,
    body: &[u8],
) -> Result<String, SecretError> {
    let sigs: Result<Vec<String>, _> = secrets
        .iter()
        .map(|s| sign(s, id, timestamp_secs, body))
        .collect();
    Ok(sigs?.join(" "))
}

/// Whether any `v1` signature in the header matches (constant-time compare),
/// and the timestamp is within `tolerance_secs` of `now_secs`.
pub fn verify(
    secret: &str,
    id: &str,
    timestamp_secs: i64,
    body: &[u8],
    header: &str,
    now_secs: i64,
    tolerance_secs: i64,
) -> bool {
    if (now_secs - timestamp_secs).abs() > tolerance_secs {
        return false;
    }
    let Ok(key) = secret_key(secret) else {
        return false;
    };
    header
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|sig| {
            let Ok(raw) = B64.decode(sig) else {
                return false;
            };
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key) else {
                return false;
            };
            mac.update(format!("{id}.{timestamp_secs}.").as_bytes());
            mac.update(body);
            mac.verify_slice(&raw).is_ok()
        })
}

/// When to try again after `attempts` failed attempts; `None` when the
/// schedule is spent and the delivery has failed for good.
pub fn next_attempt_ms(attempts: u32, now_ms: i64) -> Option<i64> {
    let i = usize::try_from(attempts).ok()?.checked_sub(1)?;
    RETRY_DELAYS_SECS.get(i).map(|d| now_ms + d * 1000)
}

/// What a response means for the delivery and the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Try again later.
    Retry,
    /// HTTP 410 Gone: the receiver asks to be removed; disable the endpoint.
    Gone,
}

pub fn outcome(status: Option<u16>) -> Outcome {
    match status {
        Some(s) if (200..300).contains(&s) => Outcome::Delivered,
        Some(410) => Outcome::Gone,
        _ => Outcome::Retry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The Standard Webhooks specification's own example.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TS: i64 = 1_614_265_330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn matches_the_specification_example() {
        assert_eq!(
            sign(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY).unwrap(),
            SPEC_SIG
        );
        assert!(verify(
            SPEC_SECRET,
            SPEC_ID,
            SPEC_TS,
            SPEC_BODY,
            SPEC_SIG,
            SPEC_TS + 10,
            300
        ));
    }

    #[test]
    fn tampering_staleness_and_wrong_secrets_fail() {
        assert!(!verify(
            SPEC_SECRET,
            SPEC_ID,
            SPEC_TS,
            br#"{"test": 1}"#,
            SPEC_SIG,
            SPEC_TS,
            300
        ));
        assert!(!verify(
            SPEC_SECRET,
            "msg_other",
            SPEC_TS,
            SPEC_BODY,
            SPEC_SIG,
            SPEC_TS,
            300
        ));
        assert!(!verify(
            SPEC_SECRET,
            SPEC_ID,
            SPEC_TS,
            SPEC_BODY,
            SPEC_SIG,
            SPEC_TS + 301,
            300
        ));
        let other = secret_from_bytes(&[7; 32]);
        assert!(!verify(
            &other, SPEC_ID, SPEC_TS, SPEC_BODY, SPEC_SIG, SPEC_TS, 300
        ));
        assert_eq!(secret_key("whsec_short"), Err(SecretError::Format));
        assert_eq!(
            secret_key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            Err(SecretError::Format)
        );
    }

    #[test]
    fn during_rotation_either_secret_verifies() {
        let new = secret_from_bytes(&[1; 32]);
        let h = signature_header(&[&new, SPEC_SECRET], SPEC_ID, SPEC_TS, SPEC_BODY).unwrap();
        assert!(verify(&new, SPEC_ID, SPEC_TS, SPEC_BODY, &h, SPEC_TS, 300));
        assert!(verify(
            SPEC_SECRET,
            SPEC_ID,
            SPEC_TS,
            SPEC_BODY,
            &h,
            SPEC_TS,
            300
        ));
    }

    #[test]
    fn retries_span_about_a_day_then_stop() {
        assert_eq!(next_attempt_ms(0, 0), None);
        assert_eq!(next_attempt_ms(1, 0), Some(5_000));
        let total: i64 = RETRY_DELAYS_SECS.iter().sum();
        assert!((86_400..=2 * 86_400).contains(&total), "{total}");
        assert_eq!(next_attempt_ms(RETRY_DELAYS_SECS.len() as u32 + 1, 0), None);
        assert_eq!(outcome(Some(204)), Outcome::Delivered);
        assert_eq!(outcome(Some(410)), Outcome::Gone);
        assert_eq!(outcome(Some(500)), Outcome::Retry);
        assert_eq!(outcome(None), Outcome::Retry);
    }
}
