//! The real application, started in-process on a random port, over HTTP, against
//! SQLite and PostgreSQL.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Options, TestApp, execute, query_i64, query_string};
use headroom_store::housekeeping::RunRecord;
use serde_json::Value;

async fn probes_answer(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200);
    assert_eq!(health.json::<Value>().await.unwrap()["status"], "ok");
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.json::<Value>().await.unwrap()["status"], "ready");
    app.stop().await;
}
both_backends!(probes, probes_answer);

async fn readyz_refuses_an_unmigrated_database(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    execute(&app.db, "DELETE FROM seaql_migrations").await;
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "not_ready");
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("database migration(s) pending"),
        "{body}"
    );
    // Liveness is not readiness: the process still answers.
    assert_eq!(app.get("/healthz").await.status(), 200);
    app.stop().await;
}
both_backends!(readyz_unmigrated, readyz_refuses_an_unmigrated_database);

async fn home_page_renders_database_state_on_the_server(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let tick_at = 1_795_000_000;
    let at = chrono::DateTime::from_timestamp(tick_at, 0).unwrap();
    let run = RunRecord {
        tick_at,
        started_at: at,
        finished_at: at,
        pruned_jobs: 0,
    };
    assert!(app.db.record_housekeeping_run(run).await.unwrap());

    let page = app.get("/").await;
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("<h1>Headroom</h1>"), "{html}");
    let backend_name = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert!(
        html.contains(&format!(r#"data-testid="db-backend">{backend_name}<"#)),
        "{html}"
    );
    assert!(
        html.contains(r#"data-testid="housekeeping-runs">1<"#),
        "{html}"
    );
    assert!(
        html.contains(r#"data-testid="last-housekeeping">2026-11-18T11:06:40Z<"#),
        "{html}"
    );
    // The page links the hydration bundle.
    assert!(html.contains("/pkg/headroom.js"), "{html}");
    app.stop().await;
}
both_backends!(home_page, home_page_renders_database_state_on_the_server);

async fn housekeeping_runs_on_schedule_through_the_queue(backend: Backend) {
    let options = Options {
        with_worker: true,
        env: vec![
            ("HEADROOM_HOUSEKEEPING_SCHEDULE", "* * * * * *".to_owned()),
            ("HEADROOM_JOB_RETENTION_HOURS", "1".to_owned()),
        ],
    };
    let Some(app) = TestApp::spawn_with(backend, options).await else {
        return;
    };
    let (jobs_table, old_job, job_states) = match backend {
        Backend::Sqlite => (
            "Jobs",
            "INSERT INTO Jobs (job, id, job_type, status, done_at) \
             VALUES (x'00', 'old-done', 'housekeeping', 'Done', strftime('%s', 'now') - 7200)",
            "SELECT COALESCE(GROUP_CONCAT(status || ' ' || attempts || ' ' \
             || COALESCE(last_result, ''), ' | '), 'none') FROM Jobs WHERE job_type = 'housekeeping'",
        ),
        Backend::Postgres => (
            "apalis.jobs",
            "INSERT INTO apalis.jobs (job, id, job_type, status, done_at) \
             VALUES ('\\x00'::bytea, 'old-done', 'housekeeping', 'Done', now() - interval '2 hours')",
            "SELECT COALESCE(string_agg(status || ' ' || attempts || ' ' \
             || COALESCE(last_result::text, ''), ' | '), 'none') FROM apalis.jobs \
             WHERE job_type = 'housekeeping'",
        ),
    };
    execute(&app.db, old_job).await;

    // Wait until a scheduled tick has gone through the queue and been recorded.
    let deadline = Instant::now() + Duration::from_secs(20);
    let summary = loop {
        let summary = app.db.housekeeping_summary().await.unwrap();
        if summary.runs >= 2 {
            break summary;
        }
        if Instant::now() >= deadline {
            // What the queue holds says whether ticks were queued, failed or never run.
            let jobs = query_string(&app.db, job_states).await;
            panic!("no housekeeping run within 20 s: {summary:?}; housekeeping jobs: {jobs}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(summary.last_finished_at.is_some());

    // The ticks were queued in the application database and completed there
    // (the queue marks a job done after it returns, so a moment later)...
    let done = format!(
        "SELECT COUNT(*) FROM {jobs_table} WHERE job_type = 'housekeeping' AND status = 'Done'"
    );
    while query_i64(&app.db, &done).await < 1 {
        assert!(
            Instant::now() < deadline,
            "no housekeeping job marked done within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // ...and the finished job older than the retention was pruned, the fresh ones kept.
    let old = format!("SELECT COUNT(*) FROM {jobs_table} WHERE id = 'old-done'");
    assert_eq!(query_i64(&app.db, &old).await, 0);
    app.stop().await;
}
both_backends!(
    housekeeping,
    housekeeping_runs_on_schedule_through_the_queue
);

async fn a_tick_is_recorded_once(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let at = chrono::Utc::now();
    let run = RunRecord {
        tick_at: 42,
        started_at: at,
        finished_at: at,
        pruned_jobs: 3,
    };
    assert!(app.db.record_housekeeping_run(run.clone()).await.unwrap());
    assert!(!app.db.record_housekeeping_run(run).await.unwrap());
    assert_eq!(app.db.housekeeping_summary().await.unwrap().runs, 1);
    app.stop().await;
}
both_backends!(tick_once, a_tick_is_recorded_once);

#[tokio::test]
async fn metrics_are_exposed_in_prometheus_format() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    assert_eq!(app.get("/healthz").await.status(), 200);
    let metrics = app.get("/metrics").await;
    assert_eq!(metrics.status(), 200);
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains("# TYPE http_requests_total counter"),
        "{text}"
    );
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/healthz",status="200"}"#),
        "{text}"
    );
    app.stop().await;
}

/// Every listing takes `limit` the same way: out of its range is a 422 that
/// names the range; not a number is a 400.
#[tokio::test]
async fn every_listing_refuses_a_limit_out_of_range_alike() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let (_, _, key) =
        common::org_with_key(&app, "Acme", "a long enough password", &["read", "admin"]).await;
    let window = "from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z";
    for (path, max) in [
        ("/api/v1/notifications?", 500),
        ("/api/v1/prices/history?", 1000),
        ("/api/v1/audit?", 1000),
        ("/api/v1/allocations?", 200),
        ("/api/v1/allocation-decisions?", 1000),
        ("/api/v1/series?", 1000),
        ("/api/v1/anomalies?", 1000),
        ("/api/v1/webhook-endpoints/any/deliveries?", 200),
        (&format!("/api/v1/events?{window}&") as &str, 1000),
    ] {
        for (limit, status) in [
            ("0".to_owned(), 422),
            ((max + 1).to_string(), 422),
            ("many".to_owned(), 400),
        ] {
            let res = common::get(&app, &key, &format!("{path}limit={limit}")).await;
            let message = common::expect_error(res, status).await;
            if status == 422 {
                assert!(
                    message.contains(&format!("1 to {max}")),
                    "{path}: {message}"
                );
            }
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn unknown_routes_get_a_json_404() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let res = app.get("/no/such/thing").await;
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
    app.stop().await;
}

async fn demo_organization_is_seeded_once_from_real_traces(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let keep_ms = 13 * 86_400_000;
    let created = headroom_server::demo::seed(&app.db, keep_ms).await.unwrap();
    let headroom_server::demo::Seeded::Created {
        points,
        password: Some(password),
    } = created
    else {
        panic!("first run creates the demo with a generated password");
    };
    assert!(points > 20_000, "{points}");
    assert_eq!(
        query_i64(&app.db, "SELECT COUNT(*) FROM metric_points").await,
        points as i64
    );
    assert!(matches!(
        headroom_server::demo::seed(&app.db, keep_ms).await.unwrap(),
        headroom_server::demo::Seeded::AlreadyThere
    ));
    assert_eq!(
        query_i64(&app.db, "SELECT COUNT(*) FROM metric_points").await,
        points as i64
    );

    // The demo owner can log in and read the traces through the API.
    let mut demo = common::Browser::new(&app);
    assert_eq!(
        demo.login(headroom_server::demo::DEMO_EMAIL, &password)
            .await
            .status(),
        200
    );
    let now = chrono::Utc::now().timestamp();
    let q = format!(
        "/api/v1/metrics/query?workload=ec2-24ae8d&metric=cpu&from={}&to={}&step=3600",
        now - 86_400,
        now + 3600
    );
    let series: Value = demo.get(&q).await.json().await.unwrap();
    let hours = series["points"].as_array().unwrap();
    assert!(hours.len() >= 24, "{series}");
    assert_eq!(
        hours.iter().map(|h| h["count"].as_i64().unwrap()).max(),
        Some(12),
        "5-minute samples: 12 an hour"
    );
    // Every trace's workload is under forecast-only allocation settings, one
    // instance serving a tenth of its median.
    let list: Value = demo.get("/api/v1/allocations").await.json().await.unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 6, "{list:?}");
    let cpu = list.iter().find(|a| a["workload"] == "ec2-24ae8d").unwrap();
    assert_eq!(cpu["mode"], "forecast_only");
    assert_eq!(cpu["provider"], "none");
    assert_eq!(cpu["metric"], "cpu");
    let units = cpu["units_per_instance"].as_f64().unwrap();
    assert!(
        (units / 0.0134 - 1.0).abs() < 0.05,
        "{units}: the median 0.134 / 10"
    );
    assert!(cpu["instances"].as_i64().unwrap() >= 1);
    app.stop().await;
}
both_backends!(demo, demo_organization_is_seeded_once_from_real_traces);

/// A PostgreSQL on this machine is reached without TLS unless the URL asks
/// for it (TLS over loopback protects nothing and costs every row); a URL
/// that names `sslmode` gets what it names.
#[tokio::test]
async fn postgres_on_loopback_connects_without_tls_unless_asked() {
    let Some(admin) = common::postgres_admin_url() else {
        return;
    };
    let options: headroom_store::sea_orm::sqlx::postgres::PgConnectOptions =
        admin.parse().expect("a PostgreSQL URL");
    if !headroom_store::is_loopback(options.get_host()) {
        eprintln!("WARNING: {admin} is not on loopback; SKIPPING the loopback TLS test");
        return;
    }
    if std::env::var_os("PGSSLMODE").is_some() {
        eprintln!("WARNING: PGSSLMODE is set and chooses the mode; SKIPPING the loopback TLS test");
        return;
    }
    let tls =
        "SELECT CAST(COUNT(*) AS BIGINT) FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl";
    let db = headroom_store::Db::connect(&admin).await.expect("connect");
    assert_eq!(query_i64(&db, tls).await, 0, "loopback, no sslmode: plain");
    let server_tls = common::query_string(&db, "SHOW ssl").await == "on";
    db.close().await.ok();
    if !server_tls {
        eprintln!("WARNING: the PostgreSQL server has ssl=off; SKIPPING the sslmode=require half");
        return;
    }
    let sep = if admin.contains('?') { '&' } else { '?' };
    let db = headroom_store::Db::connect(&format!("{admin}{sep}sslmode=require"))
        .await
        .expect("connect with sslmode=require");
    assert_eq!(query_i64(&db, tls).await, 1, "sslmode=require is kept");
    db.close().await.ok();
}

async fn the_demo_goes_on_replaying_its_traces(backend: Backend) {
    use headroom_server::demo::{self, SERIES, STEP_MS, Seeded, Trace};
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let now = chrono::Utc::now().timestamp_millis();
    assert_eq!(demo::feed(&app.db, now).await.unwrap(), 0, "no demo yet");
    let Seeded::Created { points, .. } = demo::seed(&app.db, 30 * 86_400_000).await.unwrap() else {
        panic!("a fresh database holds no demo");
    };
    assert!(points > 6 * 4_000, "{points}");
    // Seeding reached the present: at most a step that began meanwhile is due.
    let now = chrono::Utc::now().timestamp_millis();
    let begun = demo::feed(&app.db, now).await.unwrap();
    assert!(begun <= SERIES.len(), "{begun}");

    // Fifteen minutes on: each trace's next samples, as the trace has them.
    let later = now + 15 * 60_000;
    let steps: Vec<i64> = (now / STEP_MS + 1..=later / STEP_MS)
        .map(|s| s * STEP_MS)
        .collect();
    assert_eq!(steps.len(), 3);
    // (workload, metric, time, value) of each sample due, as the traces have them.
    let due: Vec<(&str, &str, i64, f64)> = SERIES
        .iter()
        .flat_map(|&(workload, metric, csv)| {
            let trace = Trace::parse(csv).unwrap();
            steps
                .iter()
                .filter_map(|&ts| trace.at(ts).map(|v| (workload, metric, ts, v)))
                .collect::<Vec<_>>()
        })
        .collect();
    let stored = |(workload, metric, ts, value): &(&str, &str, i64, f64)| {
        format!(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM metric_points WHERE workload = '{workload}' \
             AND metric = '{metric}' AND ts = {ts} AND value = {value:?}"
        )
    };
    for point in &due {
        assert_eq!(query_i64(&app.db, &stored(point)).await, 0, "not yet fed");
    }
    assert_eq!(demo::feed(&app.db, later).await.unwrap(), due.len());
    for point in &due {
        assert_eq!(query_i64(&app.db, &stored(point)).await, 1, "{point:?}");
    }
    // Fed once, however often the feed runs.
    assert_eq!(demo::feed(&app.db, later).await.unwrap(), 0);
    app.stop().await;
}
both_backends!(demo_feed, the_demo_goes_on_replaying_its_traces);
