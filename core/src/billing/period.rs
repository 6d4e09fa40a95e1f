//! Billing periods: calendar months in UTC, rated hour by hour.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

pub const HOUR_MS: i64 = 3_600_000;

/// The start of the hour holding `ms`.
pub fn hour_floor(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS) * HOUR_MS
}

/// `[start, end)` in milliseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Period {
    pub start_ms: i64,
    pub end_ms: i64,
}

impl Period {
    /// The calendar month (UTC) holding `ms`.
    pub fn month_of(ms: i64) -> Period {
        let t = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
        Self::month(t.year(), t.month()).unwrap_or(Period {
            start_ms: 0,
            end_ms: 0,
        })
    }

    /// `"2026-11"` → November 2026.
    pub fn parse_month(s: &str) -> Option<Period> {
        let (y, m) = s.split_once('-')?;
        if y.len() != 4 || m.len() != 2 {
            return None;
        }
        Self::month(y.parse().ok()?, m.parse().ok()?)
    }

    fn month(year: i32, month: u32) -> Option<Period> {
        let start = NaiveDate::from_ymd_opt(year, month, 1)?;
        let next = if month == 12 {
            NaiveDate::from_ymd_opt(year + 1, 1, 1)?
        } else {
            NaiveDate::from_ymd_opt(year, month + 1, 1)?
        };
        let ms = |d: NaiveDate| -> Option<i64> {
            Some(
                Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0)?)
                    .timestamp_millis(),
            )
        };
        Some(Period {
            start_ms: ms(start)?,
            end_ms: ms(next)?,
        })
    }

    /// `"2026-11"`.
    pub fn label(&self) -> String {
        let t = DateTime::<Utc>::from_timestamp_millis(self.start_ms).unwrap_or_default();
        format!("{:04}-{:02}", t.year(), t.month())
    }

    pub fn contains(&self, ms: i64) -> bool {
        self.start_ms <= ms && ms < self.end_ms
    }

    pub fn hours(&self) -> i64 {
        (self.end_ms - self.start_ms) / HOUR_MS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_have_their_calendar_length() {
        let nov = Period::parse_month("2026-11").unwrap();
        assert_eq!(nov.hours(), 30 * 24);
        assert_eq!(nov.label(), "2026-11");
        assert_eq!(Period::month_of(nov.start_ms), nov);
        assert_eq!(Period::month_of(nov.end_ms - 1), nov);
        assert_ne!(Period::month_of(nov.end_ms), nov);
        assert_eq!(Period::parse_month("2024-02").unwrap().hours(), 29 * 24);
        assert_eq!(
            Period::parse_month("2026-12").unwrap().end_ms,
            Period::parse_month("2027-01").unwrap().start_ms
        );
        assert!(Period::parse_month("2026-13").is_none());
        assert!(Period::parse_month("26-11").is_none());
    }

    #[test]
    fn hours_floor_down_even_before_the_epoch() {
        assert_eq!(hour_floor(HOUR_MS + 5), HOUR_MS);
        assert_eq!(hour_floor(-1), -HOUR_MS);
    }
}
