//! The agent's spool and shipper through a server outage, against the real `headroom`
//! binary: points sent while the server is down wait in the spool (across an agent
//! restart too) and arrive once it is back; every point is stored exactly once.
//! Then the client SDK against the same server.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use headroom_agent::MetricPoint;
use headroom_agent::sdk::{Client, MicroOperationType};
use headroom_agent::ship::{ShipConfig, ShipCounts, ShipError, Shipper};
use headroom_agent::spool::{SharedSpool, Spool, SpoolConfig};
use headroom_store::Db;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const BIN: &str = env!("CARGO_BIN_EXE_headroom");
const WORKLOAD: &str = "outage-test";
const METRIC: &str = "synthetic";
const POINTS: i64 = 300;

/// The `headroom` binary with a clean `HEADROOM_*` environment.
fn headroom(data_dir: &Path, port: u16) -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars() {
        if key.starts_with("HEADROOM_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("HEADROOM_DATA_DIR", data_dir)
        .env("HEADROOM_ADDR", format!("127.0.0.1:{port}"))
        .env("HEADROOM_LOG", "warn")
        .env("HEADROOM_SHUTDOWN_TIMEOUT_SECS", "5")
        .env(
            "HEADROOM_MODELS_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../models"),
        );
    cmd
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running server; killed if the test fails before stopping it.
struct Server(Option<Child>);

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn start_server(data_dir: &Path, port: u16) -> Server {
    let logs = if std::env::var_os("TEST_LOG").is_some() {
        Stdio::inherit()
    } else {
        Stdio::null()
    };
    let mut server = Server(Some(
        headroom(data_dir, port)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(logs)
            .spawn()
            .unwrap(),
    ));
    let child = server.0.as_mut().expect("just started");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("server exited early: {status}");
        }
        let healthy = tokio::task::spawn_blocking(move || {
            Command::new(BIN)
                .env("HEADROOM_ADDR", format!("127.0.0.1:{port}"))
                .arg("healthcheck")
                .output()
                .unwrap()
                .status
                .success()
        })
        .await
        .unwrap();
        if healthy {
            return server;
        }
        assert!(Instant::now() < deadline, "server not healthy within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SIGTERM, and wait for a clean exit.
async fn stop_server(mut server: Server) {
    let mut child = server.0.take().expect("running");
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "server exit: {status}");
}

/// Signs up an organisation and creates an API key with `ingest` and `read`.
async fn api_key(base: &str) -> String {
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let res = browser
        .post(format!("{base}/api/v1/auth/signup"))
        .json(&json!({
            "organization_name": "Outage Ltd",
            "email": "ops@outage.example",
            "password": "correct horse battery staple",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let me: Value = res.json().await.unwrap();
    let csrf = me["csrf_token"].as_str().unwrap().to_owned();
    let res = browser
        .post(format!("{base}/api/v1/api-keys"))
        .header("x-csrf-token", csrf)
        .json(&json!({ "name": "agent", "scopes": ["ingest", "read"] }))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let key: Value = res.json().await.unwrap();
    key["secret"].as_str().unwrap().to_owned()
}

fn ship_config(base: &str, key: &str) -> ShipConfig {
    let mut config = ShipConfig::new(base, key);
    // Several requests per third; short waits so the test stays quick.
    config.batch_size = 40;
    config.backoff_base = Duration::from_millis(50);
    config.backoff_cap = Duration::from_millis(400);
    config.idle_poll = Duration::from_millis(20);
    config.request_timeout = Duration::from_secs(5);
    config
}

/// A shipper running in the background, as the agent runs it.
struct Running {
    cancel: CancellationToken,
    task: JoinHandle<Result<(), ShipError>>,
    stats: std::sync::Arc<headroom_agent::ship::ShipStats>,
}

fn start_shipper(base: &str, key: &str, spool: &SharedSpool) -> Running {
    let mut shipper = Shipper::new(ship_config(base, key)).unwrap();
    let stats = shipper.stats();
    let cancel = CancellationToken::new();
    let task = tokio::spawn({
        let (spool, cancel) = (spool.clone(), cancel.clone());
        async move { shipper.run(&spool, &cancel).await }
    });
    Running {
        cancel,
        task,
        stats,
    }
}

impl Running {
    async fn stop(self) -> ShipCounts {
        self.cancel.cancel();
        self.task.await.unwrap().unwrap();
        self.stats.snapshot()
    }
}

/// Appends in small chunks, as a collector would, with the shipper running.
async fn enqueue(spool: &SharedSpool, points: &[MetricPoint]) {
    for chunk in points.chunks(10) {
        spool.append(chunk).unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_point_arrives_exactly_once_across_a_server_restart() {
    let started = Instant::now();
    let phase = |name: &str| eprintln!("[{:>6.2} s] {name}", started.elapsed().as_secs_f64());
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let server = start_server(data.path(), port).await;
    let key = api_key(&base).await;
    phase("server up, key created");

    // One point per second over the last ten minutes: distinct idempotency keys.
    let t0 = Utc::now().timestamp() - 600;
    let points: Vec<MetricPoint> = (0..POINTS)
        .map(|i| {
            let at = DateTime::from_timestamp(t0 + i, 0).unwrap();
            MetricPoint::new(WORKLOAD, METRIC, at, i as f64)
        })
        .collect();
    let third = (POINTS / 3) as usize;

    let spool_dir = tempfile::tempdir().unwrap();
    let spool_config = SpoolConfig::new(spool_dir.path(), 1 << 20);
    let spool = Spool::open(spool_config.clone()).unwrap().shared();
    let shipper = start_shipper(&base, &key, &spool);

    // 1. The server is up: the first third goes straight through.
    enqueue(&spool, &points[..third]).await;
    wait_for("the first third to be sent", || spool.pending() == 0).await;
    assert_eq!(shipper.stats.snapshot().accepted, third as u64);
    phase("first third sent");

    // 2. The server stops; the second third can only be spooled.
    stop_server(server).await;
    phase("server stopped");
    let retries = shipper.stats.snapshot().retries;
    enqueue(&spool, &points[third..2 * third]).await;
    wait_for("failed attempts while the server is down", || {
        shipper.stats.snapshot().retries >= retries + 3
    })
    .await;
    assert_eq!(spool.pending(), third as u64, "nothing left the spool");

    // The agent restarts during the outage: the spool comes back from disk.
    let before_restart = shipper.stop().await;
    drop(spool);
    let spool = Spool::open(spool_config).unwrap().shared();
    assert_eq!(
        spool.pending(),
        third as u64,
        "spooled points survive a restart"
    );
    let shipper = start_shipper(&base, &key, &spool);
    wait_for("the restarted agent to fail too", || {
        shipper.stats.snapshot().retries > 0
    })
    .await;
    assert_eq!(spool.pending(), third as u64);
    phase("second third spooled across an agent restart");

    // 3. The server is back on the same port and data: the spool drains.
    let server = start_server(data.path(), port).await;
    phase("server restarted");
    wait_for("the spool to drain after the outage", || {
        spool.pending() == 0
    })
    .await;
    phase("second third sent");

    // 4. The last third, with everything back to normal; and the first third once
    // more, as an agent that lost its cursor would send it: the server keeps one copy.
    enqueue(&spool, &points[2 * third..]).await;
    enqueue(&spool, &points[..third]).await;
    wait_for("the last third to be sent", || spool.pending() == 0).await;
    let after_restart = shipper.stop().await;
    phase("last third (and a replay of the first) sent");

    let accepted = before_restart.accepted + after_restart.accepted;
    let duplicates = before_restart.duplicates + after_restart.duplicates;
    assert_eq!(
        accepted, POINTS as u64,
        "{before_restart:?} {after_restart:?}"
    );
    assert_eq!(
        duplicates, third as u64,
        "the replay is reported as duplicates"
    );
    assert_eq!(before_restart.rejected + after_restart.rejected, 0);
    assert_eq!(
        before_restart.dropped_points + after_restart.dropped_points,
        0
    );
    eprintln!(
        "shipper: {accepted} accepted, {duplicates} duplicates, {} retries",
        before_restart.retries + after_restart.retries
    );

    // Through the API: the minute rollups count every point once.
    let from = t0 - t0.rem_euclid(60);
    let to = from + 7 * 60;
    let res = reqwest::Client::new()
        .get(format!("{base}/api/v1/metrics/query"))
        .bearer_auth(&key)
        .query(&[
            ("workload", WORKLOAD.to_owned()),
            ("metric", METRIC.to_owned()),
            ("from", from.to_string()),
            ("to", to.to_string()),
            ("step", "60".to_owned()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let series: Value = res.json().await.unwrap();
    let windows = series["points"].as_array().unwrap();
    let count: i64 = windows.iter().map(|w| w["count"].as_i64().unwrap()).sum();
    let sum: f64 = windows.iter().map(|w| w["sum"].as_f64().unwrap()).sum();
    assert_eq!(count, POINTS, "{series}");
    assert_eq!(sum, (0..POINTS).sum::<i64>() as f64, "each value once");

    sdk_events_and_micro_operations_arrive(&base, &key).await;
    phase("SDK checked");

    stop_server(server).await;

    // And in the database itself.
    let db = Db::connect(&format!(
        "sqlite://{}",
        data.path().join("headroom.db").display()
    ))
    .await
    .unwrap();
    let scalar = |sql: &'static str| {
        let db = &db;
        async move {
            use headroom_store::sea_orm::{ConnectionTrait, Statement};
            let row = db
                .conn()
                .query_one_raw(Statement::from_string(
                    db.conn().get_database_backend(),
                    sql.to_owned(),
                ))
                .await
                .unwrap()
                .unwrap();
            row.try_get_by_index::<i64>(0).unwrap()
        }
    };
    assert_eq!(
        scalar("SELECT COUNT(*) FROM metric_points WHERE workload = 'outage-test'").await,
        POINTS
    );
    assert_eq!(
        scalar("SELECT COUNT(DISTINCT ts) FROM metric_points WHERE workload = 'outage-test'").await,
        POINTS
    );
    assert_eq!(scalar("SELECT COUNT(*) FROM usage_events").await, 2);
    assert_eq!(
        scalar("SELECT COUNT(*) FROM micro_operations WHERE execution_time_ms >= 5").await,
        1
    );
    db.close().await.ok();
    phase("done");
}

/// The SDK: usage events (one replayed by id) and a timed micro-operation.
async fn sdk_events_and_micro_operations_arrive(base: &str, key: &str) {
    let client = Client::new(base, key).unwrap();
    client
        .usage_event("api_call", 2.0)
        .workload(WORKLOAD)
        .attribute("route", "/v1/things")
        .record()
        .unwrap();
    let at = Utc::now() - chrono::Duration::seconds(30);
    let replayed = || {
        client
            .usage_event("api_call", 1.0)
            .id("req-7f3a9c")
            .timestamp(at)
            .record()
            .unwrap()
    };
    assert_eq!(replayed(), "req-7f3a9c");
    let value = client.time_micro_operation("op-1", MicroOperationType::DiskIo, || {
        std::thread::sleep(Duration::from_millis(5));
        42
    });
    assert_eq!(value, 42);
    let report = client.flush().await.unwrap();
    assert_eq!((report.accepted, report.duplicates), (3, 0), "{report:?}");
    assert!(report.rejected.is_empty(), "{report:?}");

    // The same event again (a retry after a lost answer): stored once.
    replayed();
    let report = client.flush().await.unwrap();
    assert_eq!((report.accepted, report.duplicates), (0, 1), "{report:?}");
    assert_eq!(client.buffered(), 0);
}
