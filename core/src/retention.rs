//! How long finished background work is kept before housekeeping removes it.

use std::time::Duration;

/// Unix-seconds cutoff: records that finished strictly before it may be removed.
/// Measured from the schedule slot, not the wall clock, so a late or retried run
/// prunes exactly what an on-time run would have.
pub fn prune_cutoff(tick_at: i64, keep_for: Duration) -> i64 {
    let keep = i64::try_from(keep_for.as_secs()).unwrap_or(i64::MAX);
    tick_at.saturating_sub(keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoff_is_the_slot_minus_the_retention() {
        assert_eq!(prune_cutoff(1_000_000, Duration::from_secs(3600)), 996_400);
    }

    #[test]
    fn huge_retention_does_not_overflow() {
        assert_eq!(prune_cutoff(10, Duration::MAX), 10 - i64::MAX);
        assert_eq!(prune_cutoff(i64::MIN, Duration::from_secs(1)), i64::MIN);
    }
}
