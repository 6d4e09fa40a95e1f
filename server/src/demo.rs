//! `headroom demo`: a demo organisation with real AWS CloudWatch traces (NAB; see
//! data/demo/nab/SOURCES.md), replayed in a loop on the 5-minute grid; values unchanged.
//! Every series' workload is under allocation settings in forecast-only mode, so the
//! controller's decisions for it are logged from its first tick on. The workers go on
//! feeding each trace's next sample as its time comes ([`feed`]), so the demo stays
//! live: forecasts, anomalies and decisions follow the replayed demand.
//! Idempotent: an existing demo organisation is left as it is.

use chrono::Utc;
use headroom_core::accounts::{Email, Tier};
use headroom_core::telemetry::parse_timestamp;
use headroom_store::allocation::StoredSettings;
use headroom_store::telemetry::PointIn;
use headroom_store::{Db, Tenant};

pub const DEMO_EMAIL: &str = "demo@headroom.example";

/// (workload, metric, CSV) — the traces are compiled in, so the demo works anywhere.
pub const SERIES: [(&str, &str, &str); 6] = [
    (
        "ec2-24ae8d",
        "cpu",
        include_str!("../../data/demo/nab/ec2_cpu_utilization_24ae8d.csv"),
    ),
    (
        "ec2-77c1ca",
        "cpu",
        include_str!("../../data/demo/nab/ec2_cpu_utilization_77c1ca.csv"),
    ),
    (
        "ec2-fe7f93",
        "cpu",
        include_str!("../../data/demo/nab/ec2_cpu_utilization_fe7f93.csv"),
    ),
    (
        "ec2-c0d644",
        "disk_write_bytes",
        include_str!("../../data/demo/nab/ec2_disk_write_bytes_c0d644.csv"),
    ),
    (
        "ec2-5abac7",
        "net_in_bytes",
        include_str!("../../data/demo/nab/ec2_network_in_5abac7.csv"),
    ),
    (
        "rds-e47b3b",
        "cpu",
        include_str!("../../data/demo/nab/rds_cpu_utilization_e47b3b.csv"),
    ),
];

pub enum Seeded {
    AlreadyThere,
    Created {
        points: usize,
        password: Option<String>,
    },
}

/// The demo's samples are this far apart, as the traces' are.
pub const STEP_MS: i64 = 300_000;

/// A trace on the 5-minute grid, replayed in a loop: slot `i` holds the sample
/// taken `i` steps after the trace's first (`None` in the trace's gaps; a repeated
/// timestamp keeps its first value). Slot `(t / step) mod len` is shown at time
/// `t`, aligned to the Unix epoch, so seeding and every later feed agree on each
/// point without keeping any state, and a point fed twice is the same point.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    slots: Vec<Option<f64>>,
}

impl Trace {
    pub fn parse(csv: &str) -> anyhow::Result<Self> {
        let rows = parse_csv(csv)?;
        let first = rows.iter().map(|r| r.0).min().unwrap_or(0);
        let last = rows.iter().map(|r| r.0).max().unwrap_or(0);
        let len = usize::try_from((last - first) / STEP_MS + 1)?;
        let mut slots = vec![None; len];
        for (ts, value) in rows {
            // The NAB traces are on the grid; a sample off it goes to the step it falls in.
            let slot = &mut slots[usize::try_from((ts - first) / STEP_MS)?];
            if slot.is_none() {
                *slot = Some(value);
            }
        }
        Ok(Self { slots })
    }

    /// The sample shown at `t_ms` (a point on the grid).
    pub fn at(&self, t_ms: i64) -> Option<f64> {
        let len = i64::try_from(self.slots.len()).ok()?;
        self.slots[usize::try_from(t_ms.div_euclid(STEP_MS).rem_euclid(len)).ok()?]
    }

    /// The points of `(from_ms, to_ms]` on the grid, oldest first.
    fn points(&self, workload: &str, metric: &str, from_ms: i64, to_ms: i64) -> Vec<PointIn> {
        let first = from_ms.div_euclid(STEP_MS) + 1;
        let last = to_ms.div_euclid(STEP_MS);
        (first..=last)
            .filter_map(|step| {
                let ts_ms = step * STEP_MS;
                self.at(ts_ms).map(|value| PointIn {
                    workload: workload.to_owned(),
                    metric: metric.to_owned(),
                    ts_ms,
                    value,
                })
            })
            .collect()
    }
}

/// `(timestamp ms, value)` rows of a NAB CSV (`timestamp,value`, UTC without zone).
pub(crate) fn parse_csv(csv: &str) -> anyhow::Result<Vec<(i64, f64)>> {
    csv.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let (ts, value) = line
                .split_once(',')
                .ok_or_else(|| anyhow::anyhow!("bad demo row {line:?}"))?;
            let ts = parse_timestamp(&serde_json::json!(format!("{}Z", ts.trim())))
                .map_err(|e| anyhow::anyhow!("bad demo timestamp {ts:?}: {e}"))?;
            Ok((ts, value.trim().parse::<f64>()?))
        })
        .collect()
}

/// Seeds the demo organisation unless it exists. The owner's password comes from
/// HEADROOM_DEMO_PASSWORD, or is generated and returned (to be shown once).
pub async fn seed(db: &Db, keep_ms: i64) -> anyhow::Result<Seeded> {
    let email = Email::parse(DEMO_EMAIL)?;
    if db.user_by_email(&email).await?.is_some() {
        return Ok(Seeded::AlreadyThere);
    }
    let (password, generated) = match std::env::var("HEADROOM_DEMO_PASSWORD") {
        Ok(p) => (p, false),
        Err(_) => (crate::auth::keys::random_token(20), true),
    };
    headroom_core::accounts::check_password(&password, email.as_str())?;
    let hash = crate::auth::password::hash(password.clone()).await?;
    let (org, _) = db
        .create_organization_with_owner(
            "Demo (NAB AWS CloudWatch traces)",
            Tier::Premium,
            &email,
            hash,
        )
        .await?;
    let tenant = Tenant::new(org.id);
    // One pass of each trace up to now (a longer one wraps round); samples older than
    // the raw retention would be refused by ingest, so they are left out here too.
    let now = Utc::now().timestamp_millis();
    let mut points = 0;
    for (workload, metric, csv) in SERIES {
        let trace = Trace::parse(csv)?;
        let span = i64::try_from(trace.slots.len())? * STEP_MS;
        let batch = trace.points(workload, metric, now - span.min(keep_ms), now);
        let sizing = demo_allocation(workload, metric, &batch, now);
        points += insert(db, &tenant, &batch).await?;
        // Forecast-only: the controller logs what it would do, commands nothing.
        if let Some((settings, instances)) = sizing {
            db.upsert_allocation_settings(&tenant, &settings, Some(instances))
                .await?;
        }
    }
    Ok(Seeded::Created {
        points,
        password: generated.then_some(password),
    })
}

async fn insert(db: &Db, tenant: &Tenant, points: &[PointIn]) -> anyhow::Result<usize> {
    let mut inserted = 0;
    for chunk in points.chunks(2_000) {
        inserted += db.insert_points(tenant, chunk).await?.inserted.len();
    }
    Ok(inserted)
}

/// How far back a feed fills in: a worker that was stopped for longer leaves a
/// gap before that, as an agent that was down would.
const FEED_CATCH_UP_MS: i64 = 6 * 3_600_000;

/// Stores each demo trace's samples due by `now_ms` that are not stored yet
/// (those of the last [`FEED_CATCH_UP_MS`]); how many. Nothing without the demo
/// organisation. A point already there is left as it is, so feeds may overlap
/// and repeat.
pub async fn feed(db: &Db, now_ms: i64) -> anyhow::Result<usize> {
    let Some((owner, _)) = db.user_by_email(&Email::parse(DEMO_EMAIL)?).await? else {
        return Ok(0);
    };
    let tenant = Tenant::new(owner.organization_id);
    let mut inserted = 0;
    for (workload, metric, csv) in SERIES {
        let trace = Trace::parse(csv)?;
        let due = trace.points(workload, metric, now_ms - FEED_CATCH_UP_MS, now_ms);
        inserted += insert(db, &tenant, &due).await?;
    }
    Ok(inserted)
}

/// Feeds the demo at once, then a second after each step of the grid (before the
/// allocation tick of that step reads its window), until `stop` resolves.
pub async fn feed_until(db: Db, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        let now = Utc::now().timestamp_millis();
        match feed(&db, now).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(points = n, "demo traces fed"),
            Err(e) => tracing::warn!(error = %e, "demo traces not fed"),
        }
        let next = (now.div_euclid(STEP_MS) + 1) * STEP_MS + 1_000;
        let wait = std::time::Duration::from_millis(u64::try_from(next - now).unwrap_or(0));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = &mut stop => return,
        }
    }
}

/// Allocation settings for a demo series: one instance serves a tenth of the
/// median of its non-zero values (about ten instances at the median, as the
/// replay scales it), sized for the last value; `None` for a series of zeros.
fn demo_allocation(
    workload: &str,
    metric: &str,
    points: &[PointIn],
    now_ms: i64,
) -> Option<(StoredSettings, i32)> {
    let mut nonzero: Vec<f64> = points
        .iter()
        .map(|p| p.value)
        .filter(|v| v.is_finite() && *v > 0.0)
        .collect();
    nonzero.sort_by(f64::total_cmp);
    let median = *nonzero.get(nonzero.len() / 2)?;
    let units = median / 10.0;
    let last = points.last().map_or(median, |p| p.value);
    let max = 1_000;
    let instances = ((last / units / 0.7).ceil() as i32).clamp(1, max);
    let settings = StoredSettings {
        workload: workload.to_owned(),
        metric: metric.to_owned(),
        units_per_instance: units,
        mode: "forecast_only".to_owned(),
        min_instances: 1,
        max_instances: max,
        target: 0.7,
        priority: 1.0,
        provider: "none".to_owned(),
        provider_ref: None,
        commanded: instances,
        last_suggestion_ms: None,
        updated_ms: now_ms,
        readiness_event: None,
        memory_mib_per_instance: None,
        instance_type: None,
        allow_spot: false,
        on_demand_micros_per_hour: None,
        warm_commanded: 0,
        network_mbit_per_instance: None,
        controller: Default::default(),
    };
    Some((settings, instances))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_demo_series_parses() {
        for (workload, _, csv) in SERIES {
            let rows = parse_csv(csv).unwrap();
            assert!(rows.len() >= 4000, "{workload}: {}", rows.len());
            assert!(rows.iter().all(|(_, v)| v.is_finite()));
            let trace = Trace::parse(csv).unwrap();
            assert!(trace.slots.len() >= rows.len() - 20, "{workload}");
        }
    }

    const CSV: &str = "timestamp,value\n2014-02-14 14:30:00,1\n2014-02-14 14:35:00,2\n\
        2014-02-14 14:35:00,9\n2014-02-14 14:45:00,4\n";

    #[test]
    fn a_trace_keeps_its_gaps_and_the_first_of_a_repeated_sample() {
        let t = Trace::parse(CSV).unwrap();
        assert_eq!(t.slots, vec![Some(1.0), Some(2.0), None, Some(4.0)]);
    }

    #[test]
    fn a_trace_loops_on_the_grid_from_the_epoch() {
        let t = Trace::parse(CSV).unwrap();
        let at = |step: i64| t.at(step * STEP_MS);
        assert_eq!(
            (at(0), at(1), at(2), at(3)),
            (Some(1.0), Some(2.0), None, Some(4.0))
        );
        assert_eq!((at(4), at(5), at(-1)), (Some(1.0), Some(2.0), Some(4.0)));
        // Points are the grid's in (from, to], the gap left out.
        let p = t.points("w", "cpu", 4 * STEP_MS - 1, 8 * STEP_MS + 10);
        let got: Vec<(i64, f64)> = p.iter().map(|p| (p.ts_ms / STEP_MS, p.value)).collect();
        assert_eq!(got, vec![(4, 1.0), (5, 2.0), (7, 4.0), (8, 1.0)]);
        assert!(
            t.points("w", "cpu", 5 * STEP_MS, 5 * STEP_MS + 1)
                .is_empty()
        );
    }
}
