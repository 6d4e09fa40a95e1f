//! `headroom bench ingest`: usage-event ingest throughput, measured three ways in one
//! run against the configured database: through the HTTP endpoint (batches, several
//! clients), straight into the store, and (PostgreSQL) a plain `COPY` of the same rows
//! as the yardstick. Deduplication is on throughout: every row is checked against its
//! idempotency key. Prints figures; asserts nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use headroom_core::accounts::{Email, Tier};
use headroom_store::sea_orm::sqlx;
use headroom_store::telemetry::UsageEventIn;
use headroom_store::{Backend, Db, Tenant};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::startup::Application;

#[derive(Debug, Clone, clap::Args)]
pub struct IngestBench {
    /// Events per measurement.
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
    /// Events per HTTP request (and per store call).
    #[arg(long, default_value_t = 1_000)]
    pub batch: usize,
    /// Concurrent HTTP clients (and concurrent store calls). Each batch is one commit,
    /// so throughput on PostgreSQL grows with concurrency until the CPU is busy.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
}

struct Figure {
    path: &'static str,
    events: usize,
    elapsed: Duration,
}

impl Figure {
    fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
}

pub async fn run(mut config: Config, args: IngestBench) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.events > 0 && args.batch > 0 && args.clients > 0,
        "--events, --batch and --clients must be positive"
    );
    // The measurement must not be throttled by the per-key budget or the batch cap.
    config.addr = "127.0.0.1:0".parse()?;
    config.ingest_requests_per_second = std::num::NonZeroU32::MAX;
    config.ingest_max_items = config.ingest_max_items.max(args.batch);
    let app = Application::build(config, false).await?;
    let db = app.db().clone();
    let base = format!("http://{}", app.local_addr());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run(shutdown.clone()));

    let run_id = headroom_store::new_id();
    let (tenant, key) = bench_tenant(&db, &run_id).await?;
    println!(
        "backend: {}   events per measurement: {}   batch: {}   HTTP clients: {}",
        db.backend().as_str(),
        args.events,
        args.batch,
        args.clients
    );

    let mut figures = Vec::new();
    figures.push(http(&base, &key, &run_id, &args).await?);
    figures.push(storage(&db, &tenant, &run_id, &args).await?);
    let replay = storage_replay(&db, &tenant, &run_id, &args).await?;
    figures.push(replay);
    if db.backend() == Backend::Postgres {
        figures.push(copy(&db, &run_id, &args).await?);
    }

    let copy_rate = figures
        .iter()
        .find(|f| f.path == "postgres COPY")
        .map(Figure::rate);
    println!(
        "{:<34} {:>10} {:>9} {:>12} {:>9}",
        "path", "events", "seconds", "events/s", "vs COPY"
    );
    for f in &figures {
        let ratio = copy_rate.map_or("-".to_owned(), |c| format!("{:.2}", f.rate() / c));
        println!(
            "{:<34} {:>10} {:>9.2} {:>12.0} {:>9}",
            f.path,
            f.events,
            f.elapsed.as_secs_f64(),
            f.rate(),
            ratio
        );
    }
    if let Some(peak) = peak_rss_kib() {
        println!(
            "peak resident memory of this process (server + load generator): {:.1} MiB",
            peak as f64 / 1024.0
        );
    }

    shutdown.cancel();
    server.await??;
    Ok(())
}

/// A throwaway organisation and ingest key for this run (left in the database,
/// like any other tenant, so the rows can be inspected afterwards).
async fn bench_tenant(db: &Db, run_id: &str) -> anyhow::Result<(Tenant, String)> {
    let email = Email::parse(&format!("bench-{run_id}@bench.invalid"))?;
    let hash = crate::auth::password::hash(crate::auth::keys::random_token(32)).await?;
    let (org, _) = db
        .create_organization_with_owner(&format!("bench {run_id}"), Tier::Standard, &email, hash)
        .await?;
    let tenant = Tenant::new(org.id);
    let parts = crate::auth::keys::new_api_key();
    let scopes = headroom_core::accounts::Scopes::new([headroom_core::accounts::Scope::Ingest])
        .map_err(anyhow::Error::msg)?;
    db.create_api_key(
        &tenant,
        headroom_store::api_keys::NewApiKey {
            name: "bench",
            key_id: &parts.id,
            secret_hash: crate::auth::keys::sha256_hex(&parts.secret),
            scopes: &scopes,
            created_by: None,
        },
    )
    .await?;
    Ok((tenant, parts.reveal()))
}

fn event_json(run_id: &str, path: &str, i: usize, ts: i64) -> serde_json::Value {
    serde_json::json!({ "id": format!("{run_id}-{path}-{i}"), "type": "api_call", "quantity": 1, "timestamp": ts, "workload": "bench" })
}

async fn http(base: &str, key: &str, run_id: &str, args: &IngestBench) -> anyhow::Result<Figure> {
    let ts = Utc::now().timestamp() - 60;
    // Bodies are serialised before the clock starts: we measure the server.
    let bodies: Vec<Vec<u8>> = (0..args.events)
        .collect::<Vec<_>>()
        .chunks(args.batch)
        .map(|c| {
            serde_json::to_vec(
                &c.iter()
                    .map(|&i| event_json(run_id, "http", i, ts))
                    .collect::<Vec<_>>(),
            )
        })
        .collect::<Result<_, _>>()?;
    let queue = Arc::new(tokio::sync::Mutex::new(bodies));
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.clients {
        let (queue, client, url, key) = (
            queue.clone(),
            client.clone(),
            format!("{base}/api/v1/events"),
            key.to_owned(),
        );
        workers.push(tokio::spawn(async move {
            let mut accepted = 0u64;
            loop {
                let Some(body) = queue.lock().await.pop() else {
                    break;
                };
                let res = client
                    .post(&url)
                    .bearer_auth(&key)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await?;
                anyhow::ensure!(
                    res.status().is_success(),
                    "ingest answered {}",
                    res.status()
                );
                let report: serde_json::Value = res.json().await?;
                accepted += report["accepted"].as_u64().unwrap_or(0);
            }
            anyhow::Ok(accepted)
        }));
    }
    let mut accepted = 0;
    for w in workers {
        accepted += w.await??;
    }
    let elapsed = started.elapsed();
    anyhow::ensure!(
        accepted as usize == args.events,
        "HTTP path accepted {accepted} of {}",
        args.events
    );
    Ok(Figure {
        path: "HTTP /api/v1/events",
        events: args.events,
        elapsed,
    })
}

fn store_rows(run_id: &str, path: &str, n: usize) -> Vec<UsageEventIn> {
    let ts = Utc::now().timestamp_millis() - 60_000;
    (0..n)
        .map(|i| UsageEventIn {
            id: format!("{run_id}-{path}-{i}"),
            event_type: "api_call".to_owned(),
            quantity: 1.0,
            ts_ms: ts,
            workload: Some("bench".to_owned()),
            attributes: None,
            fingerprint: format!("{i:064x}"),
        })
        .collect()
}

/// New rows straight into the store, `--clients` calls at a time.
async fn storage(
    db: &Db,
    tenant: &Tenant,
    run_id: &str,
    args: &IngestBench,
) -> anyhow::Result<Figure> {
    let stored = store_pass(
        db,
        tenant,
        store_rows(run_id, "store", args.events),
        args,
        |o| o.inserted.len(),
    )
    .await?;
    anyhow::ensure!(
        stored.0 == args.events,
        "store path inserted {} of {}",
        stored.0,
        args.events
    );
    Ok(Figure {
        path: "store, new events",
        events: args.events,
        elapsed: stored.1,
    })
}

/// The same rows again: all duplicates, nothing written (the retry-storm case).
async fn storage_replay(
    db: &Db,
    tenant: &Tenant,
    run_id: &str,
    args: &IngestBench,
) -> anyhow::Result<Figure> {
    let replayed = store_pass(
        db,
        tenant,
        store_rows(run_id, "store", args.events),
        args,
        |o| o.duplicates.len(),
    )
    .await?;
    anyhow::ensure!(
        replayed.0 == args.events,
        "replay found {} duplicates of {}",
        replayed.0,
        args.events
    );
    Ok(Figure {
        path: "store, replayed (all duplicates)",
        events: args.events,
        elapsed: replayed.1,
    })
}

/// Runs the batches through `insert_usage_events` on `--clients` tasks; returns the
/// sum of `count` over the outcomes and the elapsed time.
async fn store_pass(
    db: &Db,
    tenant: &Tenant,
    rows: Vec<UsageEventIn>,
    args: &IngestBench,
    count: fn(&headroom_store::telemetry::InsertOutcome) -> usize,
) -> anyhow::Result<(usize, Duration)> {
    let now = Utc::now().timestamp_millis();
    let batches: Vec<Vec<UsageEventIn>> = rows.chunks(args.batch).map(<[_]>::to_vec).collect();
    let queue = Arc::new(tokio::sync::Mutex::new(batches));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.clients {
        let (queue, db, tenant) = (queue.clone(), db.clone(), tenant.clone());
        workers.push(tokio::spawn(async move {
            let mut n = 0;
            loop {
                let Some(batch) = queue.lock().await.pop() else {
                    break;
                };
                n += count(&db.insert_usage_events(&tenant, &batch, now).await?);
            }
            anyhow::Ok(n)
        }));
    }
    let mut total = 0;
    for w in workers {
        total += w.await??;
    }
    Ok((total, started.elapsed()))
}

/// `COPY` of equivalent rows into a copy of the table with the same keys and indexes
/// (a regular, logged table, like the real one), dropped afterwards.
async fn copy(db: &Db, run_id: &str, args: &IngestBench) -> anyhow::Result<Figure> {
    let pool = db.postgres_pool().expect("postgres backend");
    let mut conn = pool.acquire().await?;
    let table = format!("bench_copy_{}", run_id.replace('-', "_"));
    // The table name is ours (a UUID), not input.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {table} (LIKE usage_events INCLUDING ALL)"
    )))
    .execute(&mut *conn)
    .await?;
    let ts = Utc::now().timestamp_millis();
    let mut data = Vec::with_capacity(args.events * 120);
    for i in 0..args.events {
        use std::io::Write;
        writeln!(
            data,
            "bench\t{run_id}-copy-{i}\tapi_call\t1\t{ts}\tbench\t\\N\t{i:064x}\t{ts}"
        )?;
    }
    let started = Instant::now();
    let statement = format!(
        "COPY {table} (organization_id, id, event_type, quantity, ts, workload, attributes, fingerprint, received_at) FROM STDIN"
    );
    let mut copy = conn.copy_in_raw(&statement).await?;
    copy.send(data.as_slice()).await?;
    let rows = copy.finish().await?;
    let elapsed = started.elapsed();
    anyhow::ensure!(
        rows as usize == args.events,
        "COPY wrote {rows} of {}",
        args.events
    );
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {table}")))
        .execute(&mut *conn)
        .await?;
    Ok(Figure {
        path: "postgres COPY",
        events: args.events,
        elapsed,
    })
}

pub(crate) fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
