use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TimeError {
    #[error("timestamp must be an RFC 3339 string or unix seconds")]
    Format,
    #[error("timestamp is more than {0} s in the future")]
    Future(i64),
    #[error("timestamp is older than the {0}-day raw retention")]
    TooOld(i64),
}

/// Accepted timestamps, in milliseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    pub now_ms: i64,
    /// How far in the future a clock may drift and still be believed.
    pub max_future_ms: i64,
    /// Older data would be pruned at once, so it is refused instead.
    pub max_age_ms: i64,
}

impl TimeWindow {
    pub fn check(&self, ts_ms: i64) -> Result<i64, TimeError> {
        if ts_ms > self.now_ms + self.max_future_ms {
            return Err(TimeError::Future(self.max_future_ms / 1000));
        }
        if ts_ms < self.now_ms - self.max_age_ms {
            return Err(TimeError::TooOld(self.max_age_ms / 86_400_000));
        }
        Ok(ts_ms)
    }
}

/// `"2026-11-25T10:00:00Z"` or `1795600000` / `1795600000.25` (seconds) → milliseconds.
pub fn parse_timestamp(v: &serde_json::Value) -> Result<i64, TimeError> {
    match v {
        serde_json::Value::Number(n) => {
            let secs = n.as_f64().ok_or(TimeError::Format)?;
            if !secs.is_finite() || !(0.0..1e11).contains(&secs) {
                return Err(TimeError::Format);
            }
            Ok((secs * 1000.0).round() as i64)
        }
        serde_json::Value::String(s) => parse_rfc3339(s).ok_or(TimeError::Format),
        _ => Err(TimeError::Format),
    }
}

/// A strict RFC 3339 subset: `YYYY-MM-DDTHH:MM:SS[.fff…](Z|±HH:MM)`.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || min > 59
        || sec > 60
    {
        return None;
    }
    let mut rest = &s[19..];
    let mut millis = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let padded = format!("{:0<3}", &frac[..digits.min(3)]);
        millis = padded.parse().ok()?;
        rest = &frac[digits..];
    }
    let offset_min = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && &rest[3..4] == ":" =>
        {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (rest[1..3].parse::<i64>().ok()? * 60 + rest[4..6].parse::<i64>().ok()?)
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec.min(59) - offset_min * 60;
    Some(secs * 1000 + millis)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_forms_give_milliseconds() {
        assert_eq!(parse_timestamp(&json!("1970-01-01T00:00:00Z")), Ok(0));
        assert_eq!(
            parse_timestamp(&json!("2026-11-25T10:00:00.250Z")),
            Ok(1_795_600_800_250)
        );
        assert_eq!(
            parse_timestamp(&json!("2026-11-25T11:00:00+01:00")),
            Ok(1_795_600_800_000)
        );
        assert_eq!(
            parse_timestamp(&json!(1_795_600_800)),
            Ok(1_795_600_800_000)
        );
        assert_eq!(parse_timestamp(&json!(1.5)), Ok(1500));
        assert_eq!(
            parse_timestamp(&json!("2024-02-29T00:00:00Z")),
            Ok(1_709_164_800_000)
        );
    }

    #[test]
    fn nonsense_is_refused() {
        for bad in [
            json!("yesterday"),
            json!("2026-02-30T00:00:00Z"),
            json!("2026-11-25 10:00"),
            json!(-5),
            json!(null),
            json!("2026-11-25T10:00:00"),
        ] {
            assert_eq!(parse_timestamp(&bad), Err(TimeError::Format), "{bad}");
        }
    }

    #[test]
    fn window_refuses_future_and_ancient() {
        let w = TimeWindow {
            now_ms: 1_000_000_000,
            max_future_ms: 300_000,
            max_age_ms: 86_400_000,
        };
        assert!(w.check(1_000_000_000).is_ok());
        assert_eq!(w.check(1_000_400_000), Err(TimeError::Future(300)));
        assert_eq!(
            w.check(1_000_000_000 - 86_400_001),
            Err(TimeError::TooOld(1))
        );
    }
}
