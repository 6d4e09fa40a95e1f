//! `headroom bench notifications`: latency from a committed change (a price
//! change with its notification, as the controller records one) to the event
//! arriving at browsers' event streams over HTTP. Two paths: the change made
//! through this server's own database handle (an API handler or the embedded
//! worker), and, on PostgreSQL, through a separate connection pool as another
//! process (`headroom worker`) would, announced by `NOTIFY`. Prints
//! percentiles; asserts nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use headroom_core::accounts::{Email, Scope, Scopes, Tier};
use headroom_core::billing::{Currency, Decimal};
use headroom_store::billing::{NewNotification, PriceChange};
use headroom_store::{Backend, Db, Tenant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::startup::Application;

#[derive(Debug, Clone, clap::Args)]
pub struct NotificationBench {
    /// Open event streams (browsers) of the organisation.
    #[arg(long, default_value_t = 50)]
    pub subscribers: usize,
    /// Changes per path.
    #[arg(long, default_value_t = 200)]
    pub changes: usize,
    /// Pause between changes, milliseconds.
    #[arg(long, default_value_t = 20)]
    pub interval_ms: u64,
}

pub async fn run(mut config: Config, args: NotificationBench) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.subscribers > 0 && args.changes > 0,
        "--subscribers and --changes must be positive"
    );
    config.addr = "127.0.0.1:0".parse()?;
    let url = config.database_url.clone();
    let app = Application::build(config, false).await?;
    let db = app.db().clone();
    let base = format!("http://{}", app.local_addr());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run(shutdown.clone()));
    let (tenant, key) = bench_tenant(&db).await?;
    println!(
        "backend: {}   subscribers: {}   changes per path: {}   every {} ms   cores: {}",
        db.backend().as_str(),
        args.subscribers,
        args.changes,
        args.interval_ms,
        super::threads()
    );
    println!(
        "{:<44} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
        "path", "events", "p50 ms", "p95 ms", "p99 ms", "max ms", "lost"
    );
    measure(
        "this server's handle (API, embedded worker)",
        &db,
        &tenant,
        &base,
        &key,
        &args,
    )
    .await?;
    if db.backend() == Backend::Postgres {
        // Its own pool and wake-up signal: only NOTIFY reaches the hub.
        let other = Db::connect(&url).await?;
        measure(
            "another process (PostgreSQL NOTIFY)",
            &other,
            &tenant,
            &base,
            &key,
            &args,
        )
        .await?;
        other.close().await?;
    }
    shutdown.cancel();
    server.await??;
    Ok(())
}

async fn bench_tenant(db: &Db) -> anyhow::Result<(Tenant, String)> {
    let run_id = headroom_store::new_id();
    let email = Email::parse(&format!("bench-{run_id}@bench.invalid"))?;
    let hash = crate::auth::password::hash(crate::auth::keys::random_token(32)).await?;
    let (org, _) = db
        .create_organization_with_owner(&format!("bench {run_id}"), Tier::Standard, &email, hash)
        .await?;
    let tenant = Tenant::new(org.id);
    let parts = crate::auth::keys::new_api_key();
    let scopes = Scopes::new([Scope::Read]).map_err(anyhow::Error::msg)?;
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

/// One subscriber: reads the stream and reports, per event, the microseconds
/// since the change was started (`sent_us` in the body, on `clock`).
async fn subscribe(
    base: String,
    key: String,
    clock: Instant,
    out: mpsc::UnboundedSender<(String, u64)>,
    ready: mpsc::UnboundedSender<()>,
) -> anyhow::Result<()> {
    let mut res = reqwest::Client::new()
        .get(format!("{base}/api/v1/notifications/stream"))
        .bearer_auth(key)
        .send()
        .await?;
    anyhow::ensure!(
        res.status().is_success(),
        "stream refused: {}",
        res.status()
    );
    let _ = ready.send(());
    let mut buf = String::new();
    while let Some(chunk) = res.chunk().await? {
        let now_us = clock.elapsed().as_micros() as u64;
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data:")) else {
                continue;
            };
            let v: serde_json::Value = serde_json::from_str(data.trim())?;
            let (Some(run), Some(sent)) =
                (v["body"]["run"].as_str(), v["body"]["sent_us"].as_u64())
            else {
                continue;
            };
            if out
                .send((run.to_owned(), now_us.saturating_sub(sent)))
                .is_err()
            {
                return Ok(());
            }
        }
    }
    Ok(())
}

async fn measure(
    path: &str,
    writer: &Db,
    tenant: &Tenant,
    base: &str,
    key: &str,
    args: &NotificationBench,
) -> anyhow::Result<()> {
    let clock = Instant::now();
    let run = headroom_store::new_id();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let subs: Vec<_> = (0..args.subscribers)
        .map(|_| {
            tokio::spawn(subscribe(
                base.to_owned(),
                key.to_owned(),
                clock,
                tx.clone(),
                ready_tx.clone(),
            ))
        })
        .collect();
    drop(tx);
    for _ in 0..args.subscribers {
        ready_rx
            .recv()
            .await
            .ok_or_else(|| anyhow::anyhow!("a subscriber failed to connect"))?;
    }
    let writer = Arc::new(writer.clone());
    for i in 0..args.changes {
        let sent_us = clock.elapsed().as_micros() as u64;
        let change = PriceChange {
            id: String::new(),
            at_ms: chrono::Utc::now().timestamp_millis(),
            subject: "run_rate:bench".into(),
            old_price: Some(Decimal::from(i)),
            new_price: Some(Decimal::from(i + 1)),
            currency: Currency::USD,
            reason: "allocation".into(),
            cause: format!("{run}-{i}"),
        };
        let note = NewNotification {
            kind: "price_change",
            title: "bench".into(),
            body: serde_json::json!({ "run": run, "sent_us": sent_us }),
        };
        writer
            .record_price_change(tenant, &change, Some(&note), change.at_ms)
            .await?;
        tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
    }
    let want = args.subscribers * args.changes;
    let mut lat: Vec<u64> = Vec::with_capacity(want);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while lat.len() < want {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((r, us))) if r == run => lat.push(us),
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    for s in subs {
        s.abort();
    }
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .map_or(f64::NAN, |&us| us as f64 / 1000.0)
    };
    println!(
        "{:<44} {:>8} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>9}",
        path,
        lat.len(),
        pct(0.50),
        pct(0.95),
        pct(0.99),
        pct(1.0),
        want - lat.len()
    );
    Ok(())
}
