//! Adjustments suggested by the customer's application: taken within the
//! workload's bounds, at most a doubling or halving at a time, and no more
//! often than the configured interval.

use super::policy::Bounds;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SuggestionError {
    #[error("a suggestion was accepted {ago} s ago; the next is allowed in {retry_after} s")]
    TooSoon { ago: i64, retry_after: i64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Accepted {
    pub after: u32,
    /// Whether the suggestion was moved to fit the bounds or the step limit.
    pub clamped: bool,
}

/// Accepts `desired` instances for a fleet of `current`, or says why not.
/// Times are unix seconds.
pub fn accept(
    bounds: Bounds,
    current: u32,
    desired: u32,
    last_accepted: Option<i64>,
    now: i64,
    min_interval_secs: i64,
) -> Result<Accepted, SuggestionError> {
    if let Some(last) = last_accepted {
        let ago = now - last;
        if ago < min_interval_secs {
            return Err(SuggestionError::TooSoon {
                ago,
                retry_after: min_interval_secs - ago,
            });
        }
    }
    let step_max = current.max(1).saturating_mul(2);
    let step_min = current / 2;
    let after = desired
        .clamp(step_min, step_max)
        .clamp(bounds.min, bounds.max);
    Ok(Accepted {
        after,
        clamped: after != desired,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_bounds_and_step() {
        let b = Bounds::new(2, 30).unwrap();
        assert_eq!(
            accept(b, 10, 14, None, 0, 60),
            Ok(Accepted {
                after: 14,
                clamped: false
            })
        );
        assert_eq!(accept(b, 10, 100, None, 0, 60).unwrap().after, 20);
        assert_eq!(accept(b, 20, 100, None, 0, 60).unwrap().after, 30);
        assert_eq!(accept(b, 10, 0, None, 0, 60).unwrap().after, 5);
        assert_eq!(accept(b, 3, 0, None, 0, 60).unwrap().after, 2);
    }

    #[test]
    fn rate_limited() {
        let b = Bounds::UNBOUNDED;
        assert_eq!(
            accept(b, 10, 12, Some(100), 130, 60),
            Err(SuggestionError::TooSoon {
                ago: 30,
                retry_after: 30
            })
        );
        assert!(accept(b, 10, 12, Some(100), 160, 60).is_ok());
    }
}
