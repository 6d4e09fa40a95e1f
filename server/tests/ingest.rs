//! The intake over HTTP, on SQLite and PostgreSQL: every endpoint, bad items,
//! replays, limits, privacy, the live feed and rollup queries.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{Backend, Browser, Options, TestApp, expect_error, get, query_i64};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";

/// An organisation with an API key of the given scopes.
async fn tenant(app: &TestApp, name: &str, scopes: &[&str]) -> (Browser, String) {
    let (owner, _, key) = common::org_with_key(app, name, PASSWORD, scopes).await;
    (owner, key)
}

async fn send(app: &TestApp, key: &str, path: &str, body: Value) -> reqwest::Response {
    app.http
        .post(app.url(path))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// GET `path` with the API key `key`, its JSON answer.
async fn get_json<T: serde::de::DeserializeOwned>(app: &TestApp, key: &str, path: &str) -> T {
    get(app, key, path).await.json().await.unwrap()
}

async fn report(res: reqwest::Response) -> Value {
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The start of the current minute minus `n` minutes, in seconds: points placed
/// inside it fall in a known bucket.
fn minute(n: i64) -> i64 {
    let now = now_s();
    now - now.rem_euclid(60) - n * 60
}

async fn metrics_are_stored_once_and_rolled_up(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (_, key) = tenant(&app, "Acme", &["ingest", "read"]).await;
    let m = minute(5);
    let batch = json!([
        { "workload": "api", "metric": "cpu", "timestamp": m + 1, "value": 0.50 },
        { "workload": "api", "metric": "cpu", "timestamp": m + 20, "value": 0.90 },
        { "workload": "api", "metric": "cpu", "timestamp": m + 10, "value": 0.10 },
        { "workload": "api", "metric": "cpu", "timestamp": m + 61, "value": 0.40 },
        { "workload": "api", "metric": "cpu", "timestamp": m + 1, "value": 0.50 },
        { "workload": "api", "metric": "cpu load", "timestamp": m, "value": 1 },
        { "workload": "api", "metric": "cpu", "timestamp": "yesterday-ish", "value": 1 },
        { "workload": "api", "metric": "cpu", "timestamp": m + 5 },
        { "workload": "api", "metric": "cpu", "timestamp": now_s() + 3600, "value": 1 },
        { "workload": "api", "metric": "cpu", "timestamp": 946684800, "value": 1 },
        { "workload": "api", "metric": "cpu", "timestamp": m, "value": 1, "colour": "red" },
        "not an object",
    ]);
    let r = report(send(&app, &key, "/api/v1/metrics", batch.clone()).await).await;
    assert_eq!(
        (r["accepted"].as_u64(), r["duplicates"].as_u64()),
        (Some(4), Some(1)),
        "{r}"
    );
    let rejected: Vec<u64> = r["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["index"].as_u64().unwrap())
        .collect();
    assert_eq!(rejected, vec![5, 6, 7, 8, 9, 10, 11], "{r}");
    let reasons = r["rejected"].to_string();
    for expected in [
        "metric may contain only",
        "RFC 3339",
        "missing field `value`",
        "in the future",
        "retention",
        "unknown field `colour`",
    ] {
        assert!(reasons.contains(expected), "{expected} not in {reasons}");
    }

    // A replay changes nothing: every stored point is a duplicate.
    let again = report(send(&app, &key, "/api/v1/metrics", batch).await).await;
    assert_eq!(
        (again["accepted"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(5)),
        "{again}"
    );
    assert_eq!(
        query_i64(&app.db, "SELECT COUNT(*) FROM metric_points").await,
        4
    );

    let q = format!(
        "/api/v1/metrics/query?workload=api&metric=cpu&from={}&to={}&step=60",
        m,
        m + 180
    );
    let series: Value = get_json(&app, &key, &q).await;
    let points = series["points"].as_array().unwrap();
    assert_eq!(points.len(), 2, "{series}");
    let first = &points[0];
    assert_eq!(first["count"], 3);
    assert!((first["sum"].as_f64().unwrap() - 1.5).abs() < 1e-9);
    assert_eq!(
        (first["min"].as_f64(), first["max"].as_f64()),
        (Some(0.1), Some(0.9))
    );
    assert_eq!(
        first["last"].as_f64(),
        Some(0.9),
        "last by timestamp, not arrival"
    );
    assert_eq!(points[1]["count"], 1);
    // Hourly windows come from the hour rollup and agree with the minutes.
    let hour_start = m - m.rem_euclid(3600);
    let q = format!(
        "/api/v1/metrics/query?workload=api&metric=cpu&from={hour_start}&to={}&step=3600",
        hour_start + 7200
    );
    let hourly: Value = get_json(&app, &key, &q).await;
    let total: i64 = hourly["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["count"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 4, "{hourly}");

    let (from, to) = (m.to_string(), (m + 60).to_string());
    for (f, t, step) in [
        (from.as_str(), to.as_str(), "90"),
        (&from, &to, "0"),
        ("later", &to, "60"),
        (&to, &from, "60"),
    ] {
        let q =
            format!("/api/v1/metrics/query?workload=api&metric=cpu&from={f}&to={t}&step={step}");
        expect_error(get(&app, &key, &q).await, 422).await;
    }
    let missing = get(&app, &key, "/api/v1/metrics/query?workload=api").await;
    expect_error(missing, 400).await;
    app.stop().await;
}
both_backends!(metrics, metrics_are_stored_once_and_rolled_up);

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

async fn usage_events_count_exactly_once(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (_, key) = tenant(&app, "Acme", &["ingest"]).await;
    let t = now_s() - 10;
    let lines = [
        json!({ "id": "e-1", "type": "api_call", "quantity": 1, "timestamp": t, "workload": "api" }),
        json!({ "id": "e-2", "type": "gpu_seconds", "quantity": 2.5, "timestamp": t, "attributes": { "model": "x", "region": "eu" } }),
        json!({ "id": "e-3", "type": "api_call", "quantity": -1, "timestamp": t }),
        json!({ "type": "api_call", "quantity": 1, "timestamp": t }),
        json!({ "id": "e-4", "type": "api_call", "quantity": 1, "timestamp": t, "attributes": [1, 2] }),
        json!({ "id": "e-1", "type": "api_call", "quantity": 1, "timestamp": t, "workload": "api" }),
    ];
    let mut ndjson: String = lines.iter().map(|l| format!("{l}\n")).collect();
    ndjson.push_str("{broken json\n\n");
    let post = |body: Vec<u8>| {
        app.http
            .post(app.url("/api/v1/events"))
            .bearer_auth(&key)
            .header("content-type", "application/x-ndjson")
            .header("content-encoding", "gzip")
            .body(body)
            .send()
    };
    let r = report(post(gzip(ndjson.as_bytes())).await.unwrap()).await;
    assert_eq!(
        (r["accepted"].as_u64(), r["duplicates"].as_u64()),
        (Some(2), Some(1)),
        "{r}"
    );
    let rejected: Vec<u64> = r["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["index"].as_u64().unwrap())
        .collect();
    assert_eq!(rejected, vec![2, 3, 4, 6], "{r}");

    // The retry of a whole batch is all duplicates; the same id with new content is refused.
    let r = report(post(gzip(ndjson.as_bytes())).await.unwrap()).await;
    assert_eq!(
        (r["accepted"].as_u64(), r["duplicates"].as_u64()),
        (Some(0), Some(3)),
        "{r}"
    );
    let changed = json!([{ "id": "e-2", "type": "gpu_seconds", "quantity": 3.0, "timestamp": t }]);
    let r = report(send(&app, &key, "/api/v1/events", changed).await).await;
    assert_eq!(r["accepted"], 0);
    assert!(
        r["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("different content"),
        "{r}"
    );
    // Attribute order does not matter for "same content".
    let reordered = json!([{ "id": "e-2", "type": "gpu_seconds", "quantity": 2.5, "timestamp": t, "attributes": { "region": "eu", "model": "x" } }]);
    let r = report(send(&app, &key, "/api/v1/events", reordered).await).await;
    assert_eq!(r["duplicates"], 1, "{r}");

    assert_eq!(
        query_i64(&app.db, "SELECT COUNT(*) FROM usage_events").await,
        2
    );
    let total = query_i64(
        &app.db,
        "SELECT CAST(SUM(quantity) * 10 AS BIGINT) FROM usage_events",
    )
    .await;
    assert_eq!(total, 35, "1 + 2.5, each once");
    app.stop().await;
}
both_backends!(events, usage_events_count_exactly_once);

async fn micro_operations_and_behaviour(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (mut owner, key) = tenant(&app, "Acme", &["ingest"]).await;
    let t = now_s() - 5;
    let op = |kind: &str, ms: f64| {
        json!({ "timestamp": t, "operation_id": "op-42", "micro_operation_type": kind,
                "resource_usage": { "cpu_cycles": 1200, "memory_bytes": 4096, "network_bytes": 0, "disk_bytes": 512, "execution_time_ms": ms } })
    };
    let batch = json!([
        op("MEMORY_READ", 0.2),
        op("CPU_INSTRUCTION", 1.5),
        op("memory read", 1.0),
        op("DISK_IO", -3.0),
        op("MEMORY_READ", 0.2)
    ]);
    let r = report(send(&app, &key, "/api/v1/micro-operations", batch).await).await;
    assert_eq!(
        (r["accepted"].as_u64(), r["duplicates"].as_u64()),
        (Some(2), Some(1)),
        "{r}"
    );
    assert_eq!(r["rejected"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(
        query_i64(
            &app.db,
            "SELECT CAST(SUM(cpu_cycles) AS BIGINT) FROM micro_operations"
        )
        .await,
        2400
    );

    // Behaviour: user ids are hashed; device and geography only with the organisation's consent.
    let ev = |id: &str| {
        json!({ "id": id, "kind": "feature_used", "name": "export", "timestamp": t,
                "user_id": "alice@customer.example", "device": "mobile", "geo": "DE" })
    };
    let r = report(
        send(
            &app,
            &key,
            "/api/v1/behaviour",
            json!([ev("b-1"), { "id": "b-2", "kind": "clicked", "timestamp": t }]),
        )
        .await,
    )
    .await;
    assert_eq!(r["accepted"], 1, "{r}");
    assert!(
        r["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("kind must be one of"),
        "{r}"
    );
    let stored = query_i64(&app.db, "SELECT COUNT(*) FROM behaviour_events WHERE device IS NULL AND geo IS NULL AND user_hash IS NOT NULL").await;
    assert_eq!(stored, 1, "attributes dropped, user hashed");
    let raw = query_i64(
        &app.db,
        "SELECT COUNT(*) FROM behaviour_events WHERE user_hash LIKE '%alice%'",
    )
    .await;
    assert_eq!(raw, 0);

    let org: Value = owner
        .patch(
            "/api/v1/organization/privacy",
            json!({ "store_behaviour_attributes": true }),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(org["store_behaviour_attributes"], true);
    report(send(&app, &key, "/api/v1/behaviour", json!([ev("b-3")])).await).await;
    assert_eq!(
        query_i64(
            &app.db,
            "SELECT COUNT(*) FROM behaviour_events WHERE device = 'mobile' AND geo = 'DE'"
        )
        .await,
        1
    );
    // The same person hashes the same way within the organisation.
    assert_eq!(
        query_i64(
            &app.db,
            "SELECT COUNT(DISTINCT user_hash) FROM behaviour_events"
        )
        .await,
        1
    );
    owner.csrf = None;
    expect_error(
        owner
            .patch(
                "/api/v1/organization/privacy",
                json!({ "store_behaviour_attributes": false }),
            )
            .await,
        403,
    )
    .await;
    app.stop().await;
}
both_backends!(micro_and_behaviour, micro_operations_and_behaviour);

async fn limits_answer_clearly(backend: Backend) {
    let options = Options {
        env: vec![
            ("HEADROOM_INGEST_MAX_BODY_BYTES", "2000".to_owned()),
            ("HEADROOM_INGEST_MAX_ITEMS", "10".to_owned()),
            ("HEADROOM_INGEST_REQUESTS_PER_SECOND", "3".to_owned()),
        ],
        ..Options::default()
    };
    let Some(app) = TestApp::spawn_with(backend, options).await else {
        return;
    };
    let (_, key) = tenant(&app, "Acme", &["ingest"]).await;
    let (_, reader) = tenant(&app, "Other", &["read"]).await;
    let t = now_s();
    let point = |i: i64| json!({ "workload": "w", "metric": "m", "timestamp": t - i, "value": i });

    let many: Vec<Value> = (0..11).map(point).collect();
    let msg = expect_error(send(&app, &key, "/api/v1/metrics", json!(many)).await, 413).await;
    assert!(msg.contains("at most 10"), "{msg}");
    let huge = json!([{ "workload": "w".repeat(3000), "metric": "m", "timestamp": t, "value": 1 }]);
    expect_error(send(&app, &key, "/api/v1/metrics", huge).await, 413).await;
    // A small gzip body that inflates past the limit is refused too.
    let bomb = gzip(format!("[{}]", " ".repeat(100_000)).as_bytes());
    let res = app
        .http
        .post(app.url("/api/v1/metrics"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(bomb)
        .send()
        .await
        .unwrap();
    expect_error(res, 413).await;

    // The budget (3/s) is spent by now: 429 with Retry-After.
    let res = send(&app, &key, "/api/v1/metrics", json!([point(1)])).await;
    assert!(res.headers().contains_key("retry-after"));
    expect_error(res, 429).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

    let res = app
        .http
        .post(app.url("/api/v1/metrics"))
        .bearer_auth(&key)
        .header("content-type", "text/csv")
        .body("a,b")
        .send()
        .await
        .unwrap();
    expect_error(res, 415).await;
    let res = app
        .http
        .post(app.url("/api/v1/metrics"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .header("content-encoding", "br")
        .body("[]")
        .send()
        .await
        .unwrap();
    expect_error(res, 415).await;
    let res = app
        .http
        .post(app.url("/api/v1/metrics"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body("{\"not\":\"array\"}")
        .send()
        .await
        .unwrap();
    expect_error(res, 400).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

    let msg = expect_error(
        send(&app, &reader, "/api/v1/metrics", json!([point(1)])).await,
        403,
    )
    .await;
    assert!(msg.contains("`ingest` scope"), "{msg}");
    expect_error(
        app.http
            .post(app.url("/api/v1/events"))
            .json(&json!([]))
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
    app.stop().await;
}
both_backends!(limits, limits_answer_clearly);

/// Waits for the next notice about `org`, sending `probe` until one arrives (the
/// PostgreSQL relay may still be subscribing when the test starts).
async fn notice_after(
    feed: &mut tokio::sync::broadcast::Receiver<headroom_server::api::ingest::feed::IngestNotice>,
    org: &str,
    mut probe: impl FnMut(i64) -> futures::future::BoxFuture<'static, ()>,
) -> headroom_server::api::ingest::feed::IngestNotice {
    for attempt in 0..20 {
        probe(attempt).await;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(500);
        while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, feed.recv()).await {
            if n.organization_id == org {
                return n;
            }
        }
    }
    panic!("no feed notice for {org}");
}

async fn feed_and_isolation(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (_, a_key) = tenant(&app, "Alpha", &["ingest", "read"]).await;
    let (b_owner, b_key) = tenant(&app, "Beta", &["ingest", "read"]).await;
    let b_org = b_owner
        .get("/api/v1/organization")
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let m = minute(2);

    // Data ingested through one replica is announced on every replica's feed
    // (PostgreSQL: LISTEN/NOTIFY; SQLite has one process, so the same one).
    let other = match backend {
        Backend::Postgres => Some(app.sibling().await),
        Backend::Sqlite => None,
    };
    let mut feed = other.as_ref().map_or(&app.feed, |o| &o.feed).subscribe();
    let (http, url, key) = (app.http.clone(), app.url("/api/v1/metrics"), b_key.clone());
    let notice = notice_after(&mut feed, &b_org, move |i| {
        let (http, url, key) = (http.clone(), url.clone(), key.clone());
        Box::pin(async move {
            let body = json!([{ "workload": "probe", "metric": "cpu", "timestamp": m - 60 - i, "value": 1 }]);
            http.post(url).bearer_auth(key).json(&body).send().await.unwrap();
        })
    })
    .await;
    assert_eq!((notice.kind.as_str(), notice.accepted), ("metrics", 1));
    if let Some(other) = other {
        other.stop().await;
    }

    // A's identical point is A's own, not a duplicate of B's; and A never sees B's series.
    let batch =
        json!([{ "workload": "shared-name", "metric": "cpu", "timestamp": m + 1, "value": 1 }]);
    report(send(&app, &b_key, "/api/v1/metrics", batch.clone()).await).await;
    let r = report(send(&app, &a_key, "/api/v1/metrics", batch).await).await;
    assert_eq!(r["accepted"], 1);
    let q = format!(
        "/api/v1/metrics/query?workload=shared-name&metric=cpu&from={m}&to={}",
        m + 60
    );
    let a: Value = get_json(&app, &a_key, &q).await;
    assert_eq!(a["points"][0]["count"], 1, "only A's point: {a}");
    let events = json!([{ "id": "same-id", "type": "api_call", "quantity": 1, "timestamp": m }]);
    report(send(&app, &b_key, "/api/v1/events", events.clone()).await).await;
    let r = report(send(&app, &a_key, "/api/v1/events", events).await).await;
    assert_eq!(
        r["accepted"], 1,
        "idempotency ids are per organisation: {r}"
    );
    app.stop().await;
}
both_backends!(feed, feed_and_isolation);

/// Raw points, minute buckets, and points counted in hour buckets.
async fn observations_left(app: &TestApp) -> (i64, i64, i64) {
    (
        query_i64(&app.db, "SELECT COUNT(*) FROM metric_points").await,
        query_i64(
            &app.db,
            "SELECT COUNT(*) FROM metric_rollups WHERE resolution = 60",
        )
        .await,
        query_i64(
            &app.db,
            "SELECT CAST(SUM(count) AS BIGINT) FROM metric_rollups WHERE resolution = 3600",
        )
        .await,
    )
}

async fn retention_prunes_old_observations(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (_, key) = tenant(&app, "Acme", &["ingest"]).await;
    let t = now_s();
    let batch = json!([
        { "workload": "w", "metric": "m", "timestamp": t - 7200, "value": 1 },
        { "workload": "w", "metric": "m", "timestamp": t - 10, "value": 1 },
    ]);
    report(send(&app, &key, "/api/v1/metrics", batch).await).await;
    // A backlog larger than one delete's batch (as an earlier version that
    // never pruned leaves), and one recent micro-operation.
    common::execute(
        &app.db,
        &format!(
            "INSERT INTO micro_operations (organization_id, operation_id, micro_operation_type, \
             ts, cpu_cycles, memory_bytes, network_bytes, disk_bytes, execution_time_ms) \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 25000) \
             SELECT 'org', 'op-' || i, 'QUERY', i, 1, 1, 1, 1, 1.0 FROM n \
             UNION ALL SELECT 'org', 'recent', 'QUERY', {}, 1, 1, 1, 1, 1.0",
            t * 1000
        ),
    )
    .await;
    let keep = headroom_store::telemetry::Retention {
        raw_ms: 3_600_000,
        minute_ms: 3_600_000,
        hour_ms: 86_400_000,
    };
    let pruned = app.db.prune_telemetry(t * 1000, keep).await.unwrap();
    assert_eq!(
        pruned, 25_002,
        "the backlog, one raw point and its minute bucket"
    );
    assert_eq!(
        query_i64(&app.db, "SELECT COUNT(*) FROM micro_operations").await,
        1
    );
    // Hour buckets are kept for a day: both points still count there.
    assert_eq!(observations_left(&app).await, (1, 1, 2));
    app.stop().await;
}
both_backends!(retention, retention_prunes_old_observations);

/// The scheduled housekeeping job prunes observations and allocation
/// decisions past their retention, measured from its schedule slot, and keeps
/// the decisions billing and the controller still read however old.
async fn housekeeping_prunes_what_is_past_retention(backend: Backend) {
    use headroom_store::telemetry::PointIn;
    let options = Options {
        with_worker: true,
        env: vec![
            ("HEADROOM_HOUSEKEEPING_SCHEDULE", "* * * * * *".to_owned()),
            ("HEADROOM_RAW_RETENTION_DAYS", "1".to_owned()),
            ("HEADROOM_MINUTE_ROLLUP_RETENTION_DAYS", "1".to_owned()),
            ("HEADROOM_DECISION_RETENTION_DAYS", "1".to_owned()),
        ],
    };
    let Some(app) = TestApp::spawn_with(backend, options).await else {
        return;
    };
    // Off: no controller tick adds decisions while the test looks.
    let (_, acme) = acme_with_web(&app, "off").await;

    let now = now_s();
    let day = 86_400;
    // Ingest refuses what its retention would prune at once: the old point
    // goes in through the store, as it would have when it was new.
    let point = |ts: i64| PointIn {
        workload: "web".into(),
        metric: "cpu".into(),
        ts_ms: ts * 1000,
        value: 1.0,
    };
    let stored = app
        .db
        .insert_points(&acme, &[point(now - 3 * day), point(now - 10)])
        .await
        .unwrap();
    assert_eq!(stored.inserted.len(), 2);

    // (workload, minutes ago, status, (observed demand, recorded as above
    // the fleet)): one instance before each, 100 units an instance.
    type Row<'a> = (&'a str, i64, &'a str, (Option<f64>, Option<bool>));
    let log: [Row<'_>; 11] = [
        ("web", 5000, "applied", (None, None)), // the fleet billing rates: kept
        ("web", 4900, "logged", (None, None)),  // pruned
        // Under-provisioned ticks billing counts: kept, whether recorded so
        // or (logged before that was recorded) judged on the current size.
        ("web", 4850, "failed", (None, Some(true))),
        ("web", 4800, "failed", (Some(500.0), None)),
        // Recorded as served (the size was larger then): pruned.
        ("web", 4750, "failed", (Some(500.0), Some(false))),
        ("web", 4700, "failed", (Some(50.0), None)), // pruned
        // Nothing was commanded: pruned.
        ("web", 4600, "no_provider", (Some(500.0), Some(true))),
        ("web", 4500, "pending", (None, None)), // superseded: pruned
        ("web", 4400, "logged", (None, None)),  // pruned
        ("web", 10, "logged", (None, None)),    // within retention: kept
        ("api", 4000, "pending", (None, None)), // its workload's newest: kept
    ];
    let mut ids = Vec::new();
    for &(workload, ago, status, seen) in &log {
        let at = now - ago * 60;
        ids.push(log_decision(&app, &acme, workload, at, 2, status, seen).await);
    }

    // A run scheduled after the data was in (runs are recorded by slot).
    let after = now_s() + 1;
    let newest_run = format!("SELECT COUNT(*) FROM housekeeping_runs WHERE tick_at >= {after}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while query_i64(&app.db, &newest_run).await == 0 {
        assert!(Instant::now() < deadline, "no housekeeping run within 20 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let kept: Vec<String> = app
        .db
        .allocation_decisions(&acme, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    for (i, (workload, ago, status, _)) in log.iter().enumerate() {
        let want = [0, 2, 3, 9, 10].contains(&i);
        assert_eq!(
            kept.contains(&ids[i]),
            want,
            "{workload} {status} {ago} minutes ago: kept {want} expected"
        );
    }
    // Hour buckets are kept for the default 400 days: both points count there.
    assert_eq!(observations_left(&app).await, (1, 1, 2));
    app.stop().await;
}
both_backends!(housekeeping, housekeeping_prunes_what_is_past_retention);

/// Acme (key with `ingest`, `read` and `write`) with workload `web` under the
/// controller in `mode` (100 units an instance); returns the key and the
/// organisation.
async fn acme_with_web(app: &TestApp, mode: &str) -> (String, headroom_store::Tenant) {
    let (owner, key) = tenant(app, "Acme", &["ingest", "read", "write"]).await;
    let org = owner
        .get("/api/v1/organization")
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .http
        .put(app.url("/api/v1/workloads/web/allocation"))
        .bearer_auth(&key)
        .json(
            &json!({ "metric": "cpu", "units_per_instance": 100, "mode": mode,
                       "min_instances": 1, "max_instances": 9 }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    (key, headroom_store::Tenant::new(org))
}

/// A controller decision for `workload` made at `decided_s` (its slot, here),
/// from one instance to `after`, logged with `status` and `(observed demand,
/// whether it was recorded as above the fleet)`; returns its id.
async fn log_decision(
    app: &TestApp,
    org: &headroom_store::Tenant,
    workload: &str,
    decided_s: i64,
    after: i32,
    status: &str,
    (observed, missed): (Option<f64>, Option<bool>),
) -> String {
    let d = headroom_store::allocation::StoredDecision {
        id: headroom_store::new_id(),
        workload: workload.into(),
        source: "controller".into(),
        slot: decided_s,
        decided_ms: decided_s * 1000,
        mode: "on".into(),
        before: 1,
        after,
        warm: 0,
        reason: "reactive".into(),
        limits_json: "[]".into(),
        observed,
        sized_for: None,
        forecast_version: None,
        status: status.into(),
        command_id: headroom_store::new_id(),
        detail: None,
        missed,
    };
    assert!(app.db.record_decision(org, &d, after, None).await.unwrap());
    d.id
}

/// [`acme_with_web`] (mode `on`) and, in its decision log, one decision per
/// `(minutes ago, instances after, status)`; returns the key and the
/// decisions' ids.
async fn acme_with_decisions(app: &TestApp, log: &[(i64, i32, &str)]) -> (String, Vec<String>) {
    let (key, acme) = acme_with_web(app, "on").await;
    let now = now_s();
    let mut ids = Vec::new();
    for &(ago, after, status) in log {
        let at = now - ago * 60;
        ids.push(log_decision(app, &acme, "web", at, after, status, (None, None)).await);
    }
    (key, ids)
}

/// Each usage event records the allocation in force for its workload when it
/// happened (the last applied decision at or before its timestamp), and the
/// events are listed back with it, scoped to the organisation.
async fn events_link_the_allocation_in_force(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    // 3 instances applied 30 minutes ago, a failed change to 9 twenty minutes
    // ago, 5 applied ten minutes ago.
    let (key, ids) = acme_with_decisions(
        &app,
        &[(30, 3, "applied"), (20, 9, "failed"), (10, 5, "applied")],
    )
    .await;
    let now = now_s();
    let events = json!([
        { "id": "e-before", "type": "api_call", "quantity": 1, "timestamp": now - 40 * 60, "workload": "web" },
        { "id": "e-three", "type": "api_call", "quantity": 1, "timestamp": now - 25 * 60, "workload": "web" },
        { "id": "e-still-three", "type": "api_call", "quantity": 1, "timestamp": now - 15 * 60, "workload": "web" },
        { "id": "e-five", "type": "api_call", "quantity": 2, "timestamp": now - 60, "workload": "web" },
        { "id": "e-other", "type": "api_call", "quantity": 1, "timestamp": now - 60, "workload": "batch" },
        { "id": "e-none", "type": "export", "quantity": 1, "timestamp": now - 60 },
    ]);
    let r = report(send(&app, &key, "/api/v1/events", events).await).await;
    assert_eq!(r["accepted"], 6, "{r}");

    let (app_ref, key_ref) = (&app, key.as_str());
    let list = move |query: String| async move {
        get(app_ref, key_ref, &format!("/api/v1/events?{query}")).await
    };
    let window = format!("from={}&to={}", now - 3600, now + 1);
    let got: Vec<Value> = list(window.clone()).await.json().await.unwrap();
    let by_id = |id: &str| got.iter().find(|e| e["id"] == id).unwrap().clone();
    assert_eq!(got.len(), 6);
    assert_eq!(got[0]["timestamp"], got[1]["timestamp"], "newest first");
    assert!(by_id("e-before")["allocation"].is_null());
    for (id, decision, instances) in [
        ("e-three", &ids[0], 3),
        ("e-still-three", &ids[0], 3),
        ("e-five", &ids[2], 5),
    ] {
        let a = &by_id(id)["allocation"];
        assert_eq!(
            (a["decision_id"].as_str(), a["instances"].as_i64()),
            (Some(decision.as_str()), Some(instances)),
            "{id}: {a}"
        );
    }
    assert!(by_id("e-other")["allocation"].is_null());
    assert!(by_id("e-none")["allocation"].is_null());
    assert_eq!(by_id("e-five")["quantity"], 2.0);

    // Filters, limits and clear errors.
    let only: Vec<Value> = list(format!("{window}&type=export"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(only.len(), 1);
    let web: Vec<Value> = list(format!("{window}&workload=web&limit=2"))
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = web.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(names, ["e-five", "e-still-three"]);
    for (query, needle) in [
        (format!("from={now}&to={now}"), "to must be after from"),
        (format!("{window}&limit=0"), "limit"),
        (format!("{window}&workload=bad%20name!"), "workload"),
        ("from=yesterday&to=1".to_owned(), "from"),
    ] {
        let msg = expect_error(list(query.clone()).await, 422).await;
        assert!(msg.contains(needle), "{query}: {msg}");
    }
    // Another organisation sees none of them.
    let (_, other) = tenant(&app, "Beta", &["read"]).await;
    let theirs: Vec<Value> = get_json(&app, &other, &format!("/api/v1/events?{window}")).await;
    assert!(theirs.is_empty());
    app.stop().await;
}
both_backends!(event_allocation, events_link_the_allocation_in_force);

/// Batches large enough for PostgreSQL's bulk path: awkward ids and attribute
/// text come back exactly as sent, the allocation in force is linked, a replay
/// is all duplicates and a mixed batch is sorted item by item.
async fn large_batches_count_exactly_once(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (key, ids) = acme_with_decisions(&app, &[(60, 4, "applied")]).await;
    let now = now_s();

    // Backslashes, COPY's null marker, quotes and non-ASCII in ids; newlines
    // and tabs inside attribute values (escaped in JSON text, so backslashes).
    let id = |i: usize| match i % 4 {
        0 => format!("plain-{i}"),
        1 => format!("back\\slash\\N-{i}"),
        2 => format!("quo\"te'é✓-{i}"),
        _ => format!("\\N{i}"),
    };
    let event = |i: usize| {
        json!({ "id": id(i), "type": "api_call", "quantity": 0.1 + i as f64,
                "timestamp": now - 60, "workload": if i.is_multiple_of(2) { "web" } else { "batch" },
                "attributes": { "note": format!("line\none\ttab \\ {i}") } })
    };
    let batch: Vec<Value> = (0..200).map(event).collect();
    let r = report(send(&app, &key, "/api/v1/events", json!(batch)).await).await;
    assert_eq!(
        (r["accepted"].as_u64(), r["duplicates"].as_u64()),
        (Some(200), Some(0)),
        "{r}"
    );
    let window = format!(
        "/api/v1/events?from={}&to={}&limit=1000",
        now - 120,
        now + 1
    );
    let stored: Vec<Value> = get_json(&app, &key, &window).await;
    assert_eq!(stored.len(), 200);
    for e in &stored {
        let i: usize = e["id"]
            .as_str()
            .unwrap()
            .rsplit(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let sent = event(i);
        assert_eq!(e["id"], sent["id"]);
        assert_eq!(e["quantity"], sent["quantity"]);
        assert_eq!(e["attributes"], sent["attributes"], "{e}");
        let linked = e["allocation"]["decision_id"].as_str();
        if i.is_multiple_of(2) {
            assert_eq!(linked, Some(ids[0].as_str()), "{e}");
            assert_eq!(e["allocation"]["instances"], 4);
        } else {
            assert_eq!(linked, None, "{e}");
        }
    }

    // The same batch again: all duplicates, nothing stored.
    let r = report(send(&app, &key, "/api/v1/events", json!(batch)).await).await;
    assert_eq!(
        (r["accepted"].as_u64(), r["duplicates"].as_u64()),
        (Some(0), Some(200)),
        "{r}"
    );
    // Half new, half stored, one stored id with new content.
    let mut mixed: Vec<Value> = (100..300).map(event).collect();
    mixed[0]["quantity"] = json!(1000);
    let r = report(send(&app, &key, "/api/v1/events", json!(mixed)).await).await;
    assert_eq!(
        (r["accepted"].as_u64(), r["duplicates"].as_u64()),
        (Some(100), Some(99)),
        "{r}"
    );
    assert_eq!(r["rejected"][0]["index"], 0, "{r}");
    // New at both ends, one stored id inside (PostgreSQL's COPY is tried and
    // refused as a whole).
    let mut inside: Vec<Value> = (300..400).map(event).collect();
    inside.insert(50, event(5));
    let r = report(send(&app, &key, "/api/v1/events", json!(inside)).await).await;
    assert_eq!(
        (r["accepted"].as_u64(), r["duplicates"].as_u64()),
        (Some(100), Some(1)),
        "{r}"
    );
    assert_eq!(
        query_i64(&app.db, "SELECT COUNT(*) FROM usage_events").await,
        400
    );
    // New events of the mixed batches are linked to the allocation in force
    // too (their lookup follows the duplicate check on PostgreSQL).
    let stored: Vec<Value> = get_json(&app, &key, &window).await;
    assert_eq!(stored.len(), 400);
    let linked = stored
        .iter()
        .filter(|e| e["allocation"]["decision_id"].as_str() == Some(ids[0].as_str()))
        .count();
    let web = stored.iter().filter(|e| e["workload"] == "web").count();
    assert_eq!((linked, web), (200, 200));
    // Each of 0.1 + i for i in 0..400, once: 400 × 0.1 + 399 × 400 / 2.
    let total = query_i64(
        &app.db,
        "SELECT CAST(ROUND(SUM(quantity) * 10) AS BIGINT) FROM usage_events",
    )
    .await;
    assert_eq!(total, 400 + 399 * 400 * 10 / 2);
    app.stop().await;
}
both_backends!(large_event_batches, large_batches_count_exactly_once);

async fn series_are_listed_per_organisation(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (_, a_info, a_key) =
        common::org_with_key(&app, "Alpha", PASSWORD, &["ingest", "read"]).await;
    let (_, b_info, b_key) =
        common::org_with_key(&app, "Beta", PASSWORD, &["ingest", "read"]).await;
    let a_org = a_info["organization"]["id"].as_str().unwrap().to_owned();
    let b_org = b_info["organization"]["id"].as_str().unwrap().to_owned();
    let m = minute(3);
    let three_days_ago = m - 3 * 86_400;
    let point = |workload: &str, metric: &str, t: i64| json!({ "workload": workload, "metric": metric, "timestamp": t, "value": 1 });
    let batch = json!([
        point("web", "cpu", m),
        point("api", "memory", m),
        point("api", "cpu", m),
        point("api", "cpu", m + 5),
        point("batch", "cpu", three_days_ago),
    ]);
    report(send(&app, &a_key, "/api/v1/metrics", batch).await).await;
    report(
        send(
            &app,
            &b_key,
            "/api/v1/metrics",
            json!([point("beta-only", "cpu", m)]),
        )
        .await,
    )
    .await;

    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| {
                format!(
                    "{}/{}",
                    s["workload"].as_str().unwrap(),
                    s["metric"].as_str().unwrap()
                )
            })
            .collect()
    };
    let all: Value = get_json(&app, &a_key, "/api/v1/series").await;
    assert_eq!(
        names(&all),
        ["api/cpu", "api/memory", "batch/cpu", "web/cpu"],
        "by workload and metric, the organisation's own only: {all}"
    );
    let hour = |t: i64| {
        chrono::DateTime::from_timestamp(t - t.rem_euclid(3600), 0)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    assert_eq!(all[0]["last_hour"], hour(m), "{all}");
    assert_eq!(all[2]["last_hour"], hour(three_days_ago), "{all}");
    assert_eq!(all[0]["forecasts"], json!([]), "{all}");
    // A forecast of one series' planning horizon shows on that series only
    // (the other organisation's forecast of a same-named series does not).
    for (key_org, workload) in [(&a_org, "api"), (&b_org, "web")] {
        app.db
            .insert_forecast(
                &headroom_store::Tenant::new(key_org.clone()),
                &headroom_store::forecasts::StoredForecast {
                    workload: workload.into(),
                    metric: "cpu".into(),
                    horizon: "planning".into(),
                    origin_ms: m * 1000,
                    step_secs: 3600,
                    made_at_ms: m * 1000,
                    model_version: "statistical-1".into(),
                    steps: headroom_core::forecast::PackedSteps::from_json(
                        r#"[{"p10":1,"p50":2,"p90":3,"model":"naive"}]"#,
                    )
                    .unwrap(),
                },
            )
            .await
            .unwrap();
    }
    let all: Value = get_json(&app, &a_key, "/api/v1/series").await;
    let horizons: Vec<&Value> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["forecasts"])
        .collect();
    assert_eq!(
        horizons,
        [&json!(["planning"]), &json!([]), &json!([]), &json!([])],
        "{all}"
    );
    // Reported within the last day only.
    let recent: Value = get_json(&app, &a_key, "/api/v1/series?days=1").await;
    assert_eq!(names(&recent), ["api/cpu", "api/memory", "web/cpu"]);
    // Pages: each starts after the last of the one before.
    let first: Value = get_json(&app, &a_key, "/api/v1/series?limit=2").await;
    assert_eq!(names(&first), ["api/cpu", "api/memory"]);
    let next: Value = get_json(
        &app,
        &a_key,
        "/api/v1/series?limit=2&after_workload=api&after_metric=memory",
    )
    .await;
    assert_eq!(names(&next), ["batch/cpu", "web/cpu"]);
    for (q, status) in [
        ("days=0", 422),
        ("days=401", 422),
        ("limit=0", 422),
        ("limit=1001", 422),
        ("after_workload=api", 422),
        ("limit=many", 400),
    ] {
        expect_error(
            get(&app, &a_key, &format!("/api/v1/series?{q}")).await,
            status,
        )
        .await;
    }
    app.stop().await;
}
both_backends!(series_list, series_are_listed_per_organisation);
