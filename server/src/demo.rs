//! `headroom demo`: a demo organisation with real AWS CloudWatch traces (NAB; see
//! data/demo/nab/SOURCES.md), time-shifted so each series ends now; values unchanged.
//! Every series' workload is under allocation settings in forecast-only mode, so the
//! controller's decisions for it are logged from its first tick on.
//! Idempotent: an existing demo organisation is left as it is.

use chrono::Utc;
use headroom_core::accounts::{Email, Tier};
use headroom_core::telemetry::parse_timestamp;
use headroom_store::allocation::StoredSettings;
use headroom_store::telemetry::PointIn;
use headroom_store::{Db, Tenant};

pub const DEMO_EMAIL: &str = "demo@headroom.example";

/// (workload, metric, CSV) — the traces are compiled in, so the demo works anywhere.
pub(crate) const SERIES: [(&str, &str, &str); 6] = [
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
    // Each series is moved so that its last sample is now; samples older than the raw
    // retention would be refused by ingest, so they are left out here too.
    let now = Utc::now().timestamp_millis();
    let now = now - now.rem_euclid(300_000);
    let mut points = 0;
    for (workload, metric, csv) in SERIES {
        let rows = parse_csv(csv)?;
        let last = rows.iter().map(|r| r.0).max().unwrap_or(now);
        let batch: Vec<PointIn> = rows
            .into_iter()
            .map(|(ts, value)| PointIn {
                workload: workload.to_owned(),
                metric: metric.to_owned(),
                ts_ms: ts - last + now,
                value,
            })
            .filter(|p| p.ts_ms > now - keep_ms)
            .collect();
        let sizing = demo_allocation(workload, metric, &batch, now);
        for chunk in batch.chunks(2_000) {
            points += db.insert_points(&tenant, chunk).await?.inserted.len();
        }
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
        }
    }
}
