//! Billable-unit readiness from stored usage: the chance that an event of a
//! type arrives within a number of seconds, from a week of per-minute counts
//! (events, and the seconds they arrived in) and the last quarter hour per
//! second (`headroom_core::readiness`).

use headroom_core::readiness::{Readiness, ReadinessConfig};
use headroom_store::{Db, StoreError, Tenant};

/// History replayed into the estimator: a week for the hour-of-week profile,
/// per minute; the last minutes per second, so the recent rate is sharp.
pub const HISTORY_MS: i64 = 8 * 86_400_000;
pub const FINE_MS: i64 = 15 * 60_000;

/// The score for `event_type` at `now_ms`: (probability within `within_secs`,
/// events per second).
pub async fn score(
    db: &Db,
    tenant: &Tenant,
    event_type: &str,
    now_ms: i64,
    within_secs: f64,
) -> Result<(f64, f64), StoreError> {
    let fine_from = now_ms - FINE_MS;
    let coarse = db
        .usage_event_counts(tenant, event_type, now_ms - HISTORY_MS, fine_from, 60_000)
        .await?;
    let fine = db
        .usage_event_counts(tenant, event_type, fine_from, now_ms + 1, 1000)
        .await?;
    let mut r = Readiness::new(ReadinessConfig::default());
    for c in coarse.iter().chain(&fine) {
        r.observe(
            c.start_ms as f64 / 1000.0,
            c.events as f64,
            c.seconds as f64,
        );
    }
    r.advance(now_ms as f64 / 1000.0);
    Ok((r.probability(within_secs), r.rate()))
}
