//! Forecasts end to end, on SQLite and PostgreSQL: metrics in over HTTP, the
//! scheduled forecast job, forecasts out over HTTP, tenant-scoped.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Browser, Options, TestApp, expect_error, query_i64};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";

async fn key_for(app: &TestApp, org: &str) -> String {
    common::org_with_key(app, org, PASSWORD, &["ingest", "read"])
        .await
        .2
}

async fn get(app: &TestApp, key: Option<&str>, path: &str) -> reqwest::Response {
    let mut req = app.http.get(app.url(path));
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    req.send().await.unwrap()
}

/// POSTs `body` as JSON with `key`; the answer, which must be a 200.
async fn post_ok(app: &TestApp, key: &str, path: &str, body: &impl serde::Serialize) -> Value {
    let res = app
        .http
        .post(app.url(path))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "POST {path}");
    res.json().await.unwrap()
}

/// CPU of a web workload: a daily cycle between 20 and 80 %, one point a minute
/// for the last two days, up to now; from `jump_minutes` ago on, stuck at 200.
fn day_of_cpu(workload: &str, now_s: i64, jump_minutes: i64) -> Vec<Value> {
    const MINUTES: i64 = 2 * 1440;
    let start = now_s - now_s.rem_euclid(60) - (MINUTES - 1) * 60;
    (0..MINUTES)
        .map(|i| {
            let t = start + i * 60;
            let phase = (t.rem_euclid(86_400)) as f64 / 86_400.0 * std::f64::consts::TAU;
            let value = if i >= MINUTES - jump_minutes {
                200.0
            } else {
                50.0 + 30.0 * phase.sin()
            };
            json!({ "workload": workload, "metric": "cpu", "timestamp": t, "value": value })
        })
        .collect()
}

/// The forecast queue's jobs by status, with one result of each status:
/// what a test that waited in vain reports.
async fn forecast_jobs(app: &TestApp) -> String {
    let sql = match app.backend {
        Backend::Sqlite => {
            "SELECT COALESCE(group_concat(s, ' | '), 'none') FROM \
             (SELECT status || ' x' || COUNT(*) || ' ' || COALESCE(MAX(last_result), '') AS s \
              FROM Jobs WHERE job_type = 'forecast' GROUP BY status)"
        }
        Backend::Postgres => {
            "SELECT COALESCE(string_agg(s, ' | '), 'none') FROM \
             (SELECT status || ' x' || COUNT(*) || ' ' || COALESCE(MAX(last_result::text), '') AS s \
              FROM apalis.jobs WHERE job_type = 'forecast' GROUP BY status) j"
        }
    };
    common::query_string(&app.db, sql).await
}

async fn forecasts_are_made_on_schedule_and_served(backend: Backend) {
    let Some(app) = TestApp::spawn_with(
        backend,
        Options {
            with_worker: true,
            env: vec![("HEADROOM_FORECAST_SCHEDULE", "* * * * * *".to_owned())],
        },
    )
    .await
    else {
        return;
    };
    let key = key_for(&app, "Acme").await;
    let now_s = chrono::Utc::now().timestamp();
    // web-1 behaves as every day; web-2 jumped to 200 in the last 25 minutes.
    for (workload, jump) in [("web-1", 0), ("web-2", 25)] {
        let r = post_ok(
            &app,
            &key,
            "/api/v1/metrics",
            &day_of_cpu(workload, now_s, jump),
        )
        .await;
        assert_eq!(r["accepted"], 2880, "{r}");
    }

    // The job runs every second here; wait for its forecasts.
    let deadline = Instant::now() + Duration::from_secs(60);
    let body: Value = loop {
        let res = get(&app, Some(&key), "/api/v1/workloads/web-1/forecast").await;
        if res.status() == 200 {
            // A run stores one horizon after the other: wait for both.
            let body: Value = res.json().await.unwrap();
            if body["forecasts"].as_array().is_some_and(|f| f.len() == 2) {
                break body;
            }
        } else {
            assert_eq!(res.status(), 404, "{}", res.text().await.unwrap());
        }
        if Instant::now() >= deadline {
            panic!(
                "no forecast within a minute; forecast jobs: {}",
                forecast_jobs(&app).await
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(body["workload"], "web-1");
    let forecasts = body["forecasts"].as_array().unwrap();
    let by_horizon = |h: &str| {
        forecasts
            .iter()
            .find(|f| f["horizon"] == h)
            .unwrap_or_else(|| panic!("no {h} forecast in {body}"))
    };
    for (horizon, step, steps) in [("allocation", 300, 12), ("planning", 3600, 168)] {
        let f = by_horizon(horizon);
        assert_eq!(f["metric"], "cpu");
        assert_eq!(f["step_seconds"], step);
        // With ONNX Runtime present the LSTM takes part: `statistical-2+lstm-2`.
        assert!(
            f["model_version"]
                .as_str()
                .unwrap()
                .starts_with("statistical-2"),
            "{f}"
        );
        let origin = chrono::DateTime::parse_from_rfc3339(f["origin"].as_str().unwrap())
            .unwrap()
            .timestamp();
        // The origin is the last whole step: it ended before the forecast was made.
        assert_eq!(origin % step, 0);
        assert!(origin + step <= chrono::Utc::now().timestamp());
        let s = f["steps"].as_array().unwrap();
        assert_eq!(s.len(), steps, "{horizon}");
        let first_t = chrono::DateTime::parse_from_rfc3339(s[0]["t"].as_str().unwrap())
            .unwrap()
            .timestamp();
        assert_eq!(first_t, origin + step);
        for step in s {
            let (p10, p50, p90) = (
                step["p10"].as_f64().unwrap(),
                step["p50"].as_f64().unwrap(),
                step["p90"].as_f64().unwrap(),
            );
            assert!(p10 <= p50 && p50 <= p90, "{step}");
            assert!(!step["model"].as_str().unwrap().is_empty());
        }
    }
    // The next hour of a daily cycle seen twice: within a few points of the truth
    // whatever the time of day (the cycle's steepest hour moves 8 points).
    let alloc = by_horizon("allocation");
    let origin = chrono::DateTime::parse_from_rfc3339(alloc["origin"].as_str().unwrap())
        .unwrap()
        .timestamp();
    for (h, step) in alloc["steps"].as_array().unwrap().iter().enumerate() {
        // The mean of the 5-minute step starting at origin + (h+1)·300.
        let mid = origin + (h as i64 + 1) * 300 + 120;
        let phase = mid.rem_euclid(86_400) as f64 / 86_400.0 * std::f64::consts::TAU;
        let truth = 50.0 + 30.0 * phase.sin();
        let p50 = step["p50"].as_f64().unwrap();
        assert!(
            (p50 - truth).abs() < 6.0,
            "h={} p50 {p50} truth {truth}",
            h + 1
        );
    }

    // Filters, and clear errors.
    let only: Value = get(
        &app,
        Some(&key),
        "/api/v1/workloads/web-1/forecast?metric=cpu&horizon=planning",
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(only["forecasts"].as_array().unwrap().len(), 1);
    assert_eq!(only["forecasts"][0]["horizon"], "planning");
    for (path, status, needle) in [
        (
            "/api/v1/workloads/web-1/forecast?horizon=weekly",
            422,
            "horizon",
        ),
        (
            "/api/v1/workloads/web-1/forecast?metric=memory",
            404,
            "no forecast",
        ),
        ("/api/v1/workloads/db-9/forecast", 404, "no forecast"),
        ("/api/v1/workloads/bad%20name!/forecast", 422, "workload"),
    ] {
        let msg = expect_error(get(&app, Some(&key), path).await, status).await;
        assert!(msg.contains(needle), "{path}: {msg}");
    }
    expect_error(
        get(&app, None, "/api/v1/workloads/web-1/forecast").await,
        401,
    )
    .await;
    // Another organisation sees nothing of it.
    let other = key_for(&app, "Beta").await;
    expect_error(
        get(&app, Some(&other), "/api/v1/workloads/web-1/forecast").await,
        404,
    )
    .await;

    // A retried run at the same instant stores nothing twice (the scheduled
    // runs may already have stored this instant's forecasts, or not).
    let at = chrono::Utc::now().timestamp_millis();
    let first = headroom_jobs::forecast::forecast_all(&app.db, None, at)
        .await
        .unwrap();
    assert_eq!(first.series, 2);
    let before = query_i64(&app.db, "SELECT COUNT(*) FROM forecasts").await;
    let again = headroom_jobs::forecast::forecast_all(&app.db, None, at)
        .await
        .unwrap();
    assert_eq!((again.stored, again.anomalies), (0, 0), "{again:?}");
    // Nor does it forecast again what it already forecast from the same
    // closed step: every series and horizon is current or too short.
    assert_eq!(again.current + again.skipped, 2 * 2, "{again:?}");
    assert!(again.current >= 2, "{again:?}");

    // The jump was flagged, with its reason; the ordinary workload was not.
    let anomalies: Value = get(&app, Some(&key), "/api/v1/anomalies")
        .await
        .json()
        .await
        .unwrap();
    let list = anomalies.as_array().unwrap();
    assert!(!list.is_empty(), "the jump is an anomaly");
    assert!(list.iter().all(|a| a["workload"] == "web-2"), "{anomalies}");
    let newest = &list[0];
    assert_eq!(newest["metric"], "cpu");
    assert_eq!(newest["step_seconds"], 300);
    assert_eq!(newest["value"].as_f64(), Some(200.0));
    let t = chrono::DateTime::parse_from_rfc3339(newest["t"].as_str().unwrap())
        .unwrap()
        .timestamp();
    assert!(t >= now_s - 30 * 60, "{newest}");
    let reason = newest["reason"].as_str().unwrap();
    assert!(
        reason.contains("200 is") && reason.contains("above the usual"),
        "{reason}"
    );
    let only_web1: Value = get(&app, Some(&key), "/api/v1/anomalies?workload=web-1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(only_web1, json!([]));
    for (path, needle) in [
        ("/api/v1/anomalies?limit=0", "limit"),
        (
            "/api/v1/anomalies?from=2030-01-01T00:00:00Z&to=2029-01-01T00:00:00Z",
            "after",
        ),
        ("/api/v1/anomalies?from=last%20week", "from"),
        ("/api/v1/anomalies?workload=no%20spaces", "workload"),
    ] {
        let msg = expect_error(get(&app, Some(&key), path).await, 422).await;
        assert!(msg.contains(needle), "{path}: {msg}");
    }
    let theirs: Value = get(&app, Some(&other), "/api/v1/anomalies")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(theirs, json!([]), "another organisation sees none of them");
    assert!(query_i64(&app.db, "SELECT COUNT(*) FROM forecasts").await >= before);
    app.stop().await;
}
both_backends!(
    scheduled_forecasts,
    forecasts_are_made_on_schedule_and_served
);

async fn readiness_follows_recent_usage(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let key = key_for(&app, "Acme").await;
    let now_s = chrono::Utc::now().timestamp();
    // An API call every 5 s for the last 10 minutes; two exports six hours ago.
    let mut events: Vec<Value> = (0..120)
        .map(|i| json!({ "id": format!("call-{i}"), "type": "api_call", "quantity": 1, "timestamp": now_s - 600 + i * 5 }))
        .collect();
    for i in 0..2 {
        events.push(json!({ "id": format!("export-{i}"), "type": "export", "quantity": 1, "timestamp": now_s - 6 * 3600 + i }));
    }
    // Batches of four at the same instants as the calls: as likely to come,
    // four times the events.
    for i in 0..120 {
        for j in 0..4 {
            events.push(json!({ "id": format!("batch-{i}-{j}"), "type": "batch", "quantity": 1, "timestamp": now_s - 600 + i * 5 }));
        }
    }
    let r = post_ok(&app, &key, "/api/v1/events", &events).await;
    assert_eq!(r["accepted"], 602, "{r}");

    let all: Value = get(&app, Some(&key), "/api/v1/readiness")
        .await
        .json()
        .await
        .unwrap();
    let scores = all.as_array().unwrap();
    assert_eq!(scores.len(), 3, "{all}");
    assert_eq!(scores[0]["type"], "api_call");
    assert_eq!(scores[1]["type"], "batch");
    assert_eq!(scores[2]["type"], "export");
    let p_call = scores[0]["probability"].as_f64().unwrap();
    let p_export = scores[2]["probability"].as_f64().unwrap();
    // A batch arrives as often as a call: a burst is one arrival.
    let p_batch = scores[1]["probability"].as_f64().unwrap();
    assert!((p_batch - p_call).abs() < 1e-9, "{all}");
    let batch_rate = scores[1]["events_per_second"].as_f64().unwrap();
    // An event in a fifth of the seconds: P(one within 10 s) = 1 - 0.8^10 ≈ 0.89.
    assert!((0.7..0.95).contains(&p_call), "{all}");
    assert!(p_export < 0.01, "{all}");
    let rate = scores[0]["events_per_second"].as_f64().unwrap();
    assert!((0.12..0.3).contains(&rate), "{all}");
    assert!((batch_rate / rate - 4.0).abs() < 1e-6, "{all}");

    let one: Value = get(&app, Some(&key), "/api/v1/readiness?type=api_call&within=1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one.as_array().unwrap().len(), 1);
    assert!(one[0]["probability"].as_f64().unwrap() < p_call);
    assert_eq!(one[0]["within_seconds"], 1.0);
    for (path, status, needle) in [
        ("/api/v1/readiness?within=0", 422, "within"),
        ("/api/v1/readiness?within=soon", 400, "within"),
        ("/api/v1/readiness?type=no%20spaces", 422, "type"),
    ] {
        let msg = expect_error(get(&app, Some(&key), path).await, status).await;
        assert!(msg.contains(needle), "{path}: {msg}");
    }
    expect_error(get(&app, None, "/api/v1/readiness").await, 401).await;
    let other = key_for(&app, "Beta").await;
    let theirs: Value = get(&app, Some(&other), "/api/v1/readiness")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(theirs, json!([]));
    app.stop().await;
}
both_backends!(readiness_scores, readiness_follows_recent_usage);

async fn declared_events_and_profiles_shape_forecasts(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut owner = Browser::new(&app);
    owner.signup("Acme", "owner@acme.example", PASSWORD).await;
    let key: Value = owner
        .post(
            "/api/v1/api-keys",
            json!({ "name": "ops", "scopes": ["ingest", "read", "write"] }),
        )
        .await
        .json()
        .await
        .unwrap();
    let key = key["secret"].as_str().unwrap().to_owned();
    let post = |path: &'static str, body: Value| {
        let req = app.http.post(app.url(path)).bearer_auth(&key).json(&body);
        async move { req.send().await.unwrap() }
    };
    let now_s = chrono::Utc::now().timestamp();
    // Two workloads with the same day of history; a campaign for one of them.
    for w in ["shop-a", "shop-b"] {
        let res = post("/api/v1/metrics", json!(day_of_cpu(w, now_s, 0))).await;
        assert_eq!(res.status(), 200);
    }
    let res = post(
        "/api/v1/external-events",
        json!({ "name": "campaign", "start": now_s - 3600, "end": now_s + 7200,
                "expected_multiplier": 3, "workload": "shop-a" }),
    )
    .await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    // A new workload with half an hour of history at 30, and its profile:
    // peak in every hour but the ones its data came from.
    let fresh: Vec<Value> = (0..30)
        .map(|i| json!({ "workload": "fresh", "metric": "cpu", "timestamp": now_s - 1800 + i * 60, "value": 30.0 }))
        .collect();
    assert_eq!(post("/api/v1/metrics", json!(fresh)).await.status(), 200);
    let data_hours: Vec<i64> = [now_s - 1800, now_s]
        .iter()
        .map(|t| t.rem_euclid(86_400) / 3600)
        .collect();
    let peak: Vec<i64> = (0..24).filter(|h| !data_hours.contains(h)).collect();
    let res = post(
        "/api/v1/workload-profiles",
        json!({ "workload": "fresh", "category": "web", "peak_hours": peak, "expected_growth": 0 }),
    )
    .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());

    headroom_jobs::forecast::forecast_all(&app.db, None, chrono::Utc::now().timestamp_millis())
        .await
        .unwrap();
    let alloc = |w: &'static str| {
        let req = app
            .http
            .get(app.url(&format!(
                "/api/v1/workloads/{w}/forecast?horizon=allocation"
            )))
            .bearer_auth(&key);
        async move {
            let body: Value = req.send().await.unwrap().json().await.unwrap();
            body["forecasts"][0]["steps"].as_array().unwrap().clone()
        }
    };
    let (a, b) = (alloc("shop-a").await, alloc("shop-b").await);
    for (sa, sb) in a.iter().zip(&b) {
        let ratio = sa["p50"].as_f64().unwrap() / sb["p50"].as_f64().unwrap();
        assert!((ratio - 3.0).abs() < 1e-9, "{sa} vs {sb}");
        assert!(
            sa["model"].as_str().unwrap().ends_with("x3 (campaign)"),
            "{sa}"
        );
        assert!(!sb["model"].as_str().unwrap().contains("campaign"));
    }
    for step in alloc("fresh").await {
        let hour = chrono::DateTime::parse_from_rfc3339(step["t"].as_str().unwrap())
            .unwrap()
            .timestamp()
            .rem_euclid(86_400)
            / 3600;
        let p50 = step["p50"].as_f64().unwrap();
        // Off-peak like its data: about 30; peak hours: the web shape doubles it.
        let want = if peak.contains(&hour) { 60.0 } else { 30.0 };
        assert!((p50 - want).abs() < 0.1 * want, "{step} hour {hour}");
        assert!(
            step["model"].as_str().unwrap().starts_with("prior(web)"),
            "{step}"
        );
    }

    // Listing, deleting, and the checks.
    let events: Value = get(&app, Some(&key), "/api/v1/external-events")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(events.as_array().unwrap().len(), 1);
    let id = events[0]["id"].as_str().unwrap().to_owned();
    let profiles: Value = get(&app, Some(&key), "/api/v1/workload-profiles")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(profiles[0]["workload"], "fresh");
    assert_eq!(profiles[0]["category"], "web");
    for (body, needle) in [
        (
            json!({ "name": "x", "start": now_s, "end": now_s - 1, "expected_multiplier": 2 }),
            "after",
        ),
        (
            json!({ "name": "x", "start": now_s, "end": now_s + 60, "expected_multiplier": 0 }),
            "multiplier",
        ),
        (
            json!({ "name": "", "start": now_s, "end": now_s + 60, "expected_multiplier": 2 }),
            "name",
        ),
        (
            json!({ "name": "x", "start": "someday", "end": now_s + 60, "expected_multiplier": 2 }),
            "start",
        ),
    ] {
        let msg = expect_error(post("/api/v1/external-events", body).await, 422).await;
        assert!(msg.contains(needle), "{msg}");
    }
    for (body, needle) in [
        (
            json!({ "workload": "fresh", "category": "mainframe" }),
            "category",
        ),
        (
            json!({ "workload": "fresh", "category": "web", "peak_hours": [25] }),
            "peak_hours",
        ),
        (
            json!({ "workload": "fresh", "category": "web", "expected_growth": -5 }),
            "expected_growth",
        ),
    ] {
        let msg = expect_error(post("/api/v1/workload-profiles", body).await, 422).await;
        assert!(msg.contains(needle), "{msg}");
    }
    // A read-only key may list but not declare.
    let reader = key_for(&app, "Beta").await;
    let res = app
        .http
        .post(app.url("/api/v1/external-events"))
        .bearer_auth(&reader)
        .json(&json!({ "name": "x", "start": now_s, "end": now_s + 60, "expected_multiplier": 2 }))
        .send()
        .await
        .unwrap();
    expect_error(res, 403).await;
    let res = app
        .http
        .delete(app.url(&format!("/api/v1/external-events/{id}")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let events: Value = get(&app, Some(&key), "/api/v1/external-events")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(events, json!([]));
    app.stop().await;
}
both_backends!(
    declared_inputs,
    declared_events_and_profiles_shape_forecasts
);

/// The model registry: versions are scored on the same recent data, the best
/// goes live when none is, the live one's recent accuracy is checked between
/// scorings, a drop below its registered score re-scores at once, operators
/// see the registry, and the forecast job serves the live version.
async fn model_registry_scores_and_serves_the_live_version(backend: Backend) {
    use headroom_jobs::models::{STATISTICAL, check};
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (owner, _, key) = common::org_with_key(&app, "Acme", PASSWORD, &["ingest", "read"]).await;
    // Three days of 5-minute CPU with a daily cycle and a little noise.
    let now_s = chrono::Utc::now().timestamp();
    let start = now_s - now_s.rem_euclid(300) - 863 * 300;
    for (w, level) in [("web-1", 50.0), ("web-2", 20.0)] {
        let points: Vec<Value> = (0..864i64)
            .map(|i| {
                let t = start + i * 300;
                let phase = t.rem_euclid(86_400) as f64 / 86_400.0 * std::f64::consts::TAU;
                let noise = ((i * 7919) % 13 - 6) as f64 * 0.3;
                json!({ "workload": w, "metric": "cpu", "timestamp": t,
                        "value": level + 0.6 * level * phase.sin() + noise })
            })
            .collect();
        post_ok(&app, &key, "/api/v1/metrics", &points).await;
    }
    // The LSTM takes part where ONNX Runtime is present.
    let lstm = headroom_jobs::inference::init_runtime(None).ok().map(|()| {
        std::sync::Arc::new(
            headroom_jobs::lstm::LstmForecaster::load(std::path::Path::new(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../models"
            )))
            .unwrap(),
        )
    });
    let now_ms = now_s * 1000;

    let first = check(&app.db, lstm.as_ref(), now_ms, false).await.unwrap();
    let alloc = &first[0];
    assert_eq!(
        alloc.scored_because.as_deref(),
        Some("no version is live yet")
    );
    assert_eq!(alloc.scores.len(), 1 + usize::from(lstm.is_some()));
    let (_, stat) = alloc.scores.iter().find(|(n, _)| n == STATISTICAL).unwrap();
    // 24 hourly origins × 12 steps × 2 series, each forecast from its past.
    assert_eq!((stat.steps, stat.series), (576, 2), "{stat:?}");
    assert!(stat.mase.is_finite() && stat.mase < 3.0, "{stat:?}");
    assert!(stat.coverage > 0.2 && stat.coverage <= 1.0, "{stat:?}");
    let best = alloc
        .scores
        .iter()
        .min_by(|a, b| a.1.mase.total_cmp(&b.1.mase))
        .unwrap();
    assert_eq!(alloc.live.as_deref(), Some(best.0.as_str()));
    // Planning needs more than a week of history: nothing scored or live.
    assert!(first[1].scores.is_empty() && first[1].live.is_none());

    // Not due again: only the live version's recent accuracy is measured.
    let second = check(&app.db, lstm.as_ref(), now_ms, false).await.unwrap();
    assert_eq!(second[0].scored_because, None);
    let recent = second[0].recent.expect("recent accuracy measured");
    // Over the same whole day as the scoring: the same score.
    assert_eq!(recent.steps, 24 * 12 * 2);
    assert!((recent.mase - best.1.mase).abs() < 1e-9, "{recent:?}");

    // Operators see the registry; customers do not.
    let ops = common::operator(&app, PASSWORD).await;
    let models: Value = ops.get("/api/v1/admin/models").await.json().await.unwrap();
    let live = &models[0];
    assert_eq!(
        (live["horizon"].as_str(), live["status"].as_str()),
        (Some("allocation"), Some("live")),
        "{models}"
    );
    assert_eq!(live["version"].as_str(), Some(best.0.as_str()));
    assert!(live["recent_mase"].as_f64().is_some(), "{live}");
    assert!(
        live["note"]
            .as_str()
            .unwrap()
            .starts_with("no version is live yet"),
        "{live}"
    );
    expect_error(owner.get("/api/v1/admin/models").await, 403).await;

    // The registered score made to look far better than the live version
    // does now: the next check sees the drop and scores every version again.
    common::execute(&app.db, "UPDATE model_versions SET mase = 0.01").await;
    let third = check(&app.db, lstm.as_ref(), now_ms, false).await.unwrap();
    let why = third[0].scored_because.clone().unwrap_or_default();
    assert!(why.contains("recent MASE"), "{why}");
    let stored = app.db.live_model("allocation").await.unwrap().unwrap();
    assert!(
        (stored.mase.unwrap() - best.1.mase).abs() < 1e-9,
        "{stored:?}"
    );

    // A live version the build no longer ships (an older LSTM) gives way
    // at the next check to the best that runs here.
    if lstm.is_some() {
        common::execute(
            &app.db,
            "UPDATE model_versions SET version = 'statistical-1+lstm-0' WHERE status = 'live'",
        )
        .await;
        let fourth = check(&app.db, lstm.as_ref(), now_ms, false).await.unwrap();
        let why = fourth[0].scored_because.clone().unwrap_or_default();
        assert!(why.contains("statistical-1+lstm-0 is not shipped"), "{why}");
        assert_eq!(fourth[0].live.as_deref(), Some(best.0.as_str()));
        let stored = app.db.live_model("allocation").await.unwrap().unwrap();
        assert_eq!(stored.version, best.0, "{stored:?}");
    }

    // The forecast job serves the live version.
    headroom_jobs::forecast::forecast_all(&app.db, lstm.as_ref(), now_ms)
        .await
        .unwrap();
    let body: Value = get(
        &app,
        Some(&key),
        "/api/v1/workloads/web-1/forecast?horizon=allocation",
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        body["forecasts"][0]["model_version"].as_str(),
        Some(best.0.as_str()),
        "{body}"
    );
    app.stop().await;
}
both_backends!(
    model_registry,
    model_registry_scores_and_serves_the_live_version
);

/// The allocation forecast stored for `workload`, as the API serves it.
async fn allocation_forecast(app: &TestApp, key: &str, workload: &str) -> Value {
    let body: Value = get(
        app,
        Some(key),
        &format!("/api/v1/workloads/{workload}/forecast?horizon=allocation"),
    )
    .await
    .json()
    .await
    .unwrap();
    body["forecasts"][0].clone()
}

/// Anomalies of `workload` without when they were detected, oldest first.
async fn anomalies_of(app: &TestApp, key: &str, workload: &str) -> Vec<Value> {
    let list: Value = get(
        app,
        Some(key),
        &format!("/api/v1/anomalies?workload={workload}"),
    )
    .await
    .json()
    .await
    .unwrap();
    let mut list: Vec<Value> = list.as_array().unwrap().clone();
    for a in &mut list {
        a.as_object_mut().unwrap().remove("detected_at");
    }
    list.reverse();
    list
}

/// An engine and a detector kept between runs, fed only the step that closed
/// since, serve exactly what replaying the whole history gives (the same
/// data, in two applications: one kept them, the other replays).
async fn a_kept_engine_forecasts_as_a_replay_does(backend: Backend) {
    let (Some(kept), Some(replayed)) =
        (TestApp::spawn(backend).await, TestApp::spawn(backend).await)
    else {
        return;
    };
    let now_s = chrono::Utc::now().timestamp();
    // Two runs five minutes apart: the second sees one more step close.
    let current_step = now_s - now_s.rem_euclid(300);
    let first_ms = (current_step - 300) * 1000 + 1;
    let second_ms = current_step * 1000 + 1;
    // Noise on the daily cycle, so that the newest steps matter to the models;
    // stuck at 200 from the last step the first run sees on, so that the
    // step only the second run sees is the one flagged (two in a row).
    let jump_minutes = (now_s - now_s.rem_euclid(60) - (current_step - 600)) / 60 + 1;
    let points: Vec<Value> = day_of_cpu("web-1", now_s, jump_minutes)
        .into_iter()
        .enumerate()
        .map(|(i, mut p)| {
            let noise = ((i * 7919) % 23) as f64 - 11.0;
            p["value"] = json!(p["value"].as_f64().unwrap() + noise);
            p
        })
        .collect();
    let mut keys = Vec::new();
    for app in [&kept, &replayed] {
        let key = key_for(app, "Acme").await;
        let r = post_ok(app, &key, "/api/v1/metrics", &points).await;
        assert_eq!(r["accepted"], 2880, "{r}");
        keys.push(key);
    }
    let warm = headroom_jobs::warm::Warm::new(10);
    let handover = headroom_jobs::handover::Handover::new();
    let run = |app: &TestApp, at: i64| {
        let db = app.db.clone();
        let (warm, handover) = (&warm, &handover);
        async move {
            headroom_jobs::forecast::forecast_all_with(&db, None, warm, handover, None, at)
                .await
                .unwrap()
        }
    };
    let first = run(&kept, first_ms).await;
    assert_eq!((first.warm, first.stored), (0, 2), "{first:?}");
    assert_eq!(warm.engines.len(), 1, "the allocation engine is kept");
    assert_eq!(warm.detectors.len(), 1, "and the anomaly detector");
    let second = run(&kept, second_ms).await;
    assert_eq!(second.warm, 1, "{second:?}");
    let cold = headroom_jobs::forecast::forecast_all(&replayed.db, None, second_ms)
        .await
        .unwrap();
    assert_eq!(cold.warm, 0, "{cold:?}");

    let (a, b) = (
        allocation_forecast(&kept, &keys[0], "web-1").await,
        allocation_forecast(&replayed, &keys[1], "web-1").await,
    );
    let origin = chrono::DateTime::parse_from_rfc3339(a["origin"].as_str().unwrap())
        .unwrap()
        .timestamp();
    assert_eq!(origin, current_step - 300, "the step that closed last: {a}");
    assert_eq!(a["origin"], b["origin"]);
    assert_eq!(a["steps"], b["steps"], "kept: {a}\nreplayed: {b}");
    // The allocation forecast stored is handed to the allocation job with
    // its step's demand (the jump's 200, give or take the noise).
    let org = common::query_string(&kept.db, "SELECT organization_id FROM forecasts LIMIT 1").await;
    let handed = handover
        .take_all()
        .take((&org, "web-1", "cpu"), origin * 1000)
        .expect("handed over");
    let demand = handed.demand.expect("the step's demand");
    assert!((189.0..=211.0).contains(&demand), "{demand}");
    let stored = kept
        .db
        .latest_forecasts(&headroom_store::Tenant::new(org), "web-1")
        .await
        .unwrap()
        .into_iter()
        .find(|f| f.horizon == "allocation")
        .unwrap();
    assert_eq!(handed.forecast, stored, "the one stored");
    let flagged = anomalies_of(&kept, &keys[0], "web-1").await;
    assert_eq!(
        second.anomalies, 1,
        "the jump, flagged at its second step: {flagged:?}"
    );
    assert_eq!(
        flagged,
        anomalies_of(&replayed, &keys[1], "web-1").await,
        "kept and replayed detectors flag the same steps"
    );
    // Nothing closed since: a third run feeds nothing and stores nothing.
    let third = run(&kept, second_ms + 1000).await;
    assert_eq!((third.stored, third.warm), (0, 0), "{third:?}");
    kept.stop().await;
    replayed.stop().await;
}
both_backends!(kept_engines, a_kept_engine_forecasts_as_a_replay_does);

/// Migration 025 packs the forecasts stored as JSON: each keeps what it said
/// (quantiles bit for bit, the model of each step), across more than one of
/// its batches; an unreadable one is dropped; and the way down gives the JSON
/// back.
async fn stored_json_forecasts_are_packed_by_the_migration(backend: Backend) {
    use headroom_core::forecast::PackedSteps;
    use headroom_migrations::{Migrator, MigratorTrait};
    use headroom_store::sea_orm::ConnectionTrait;

    let Some(mut database) = common::TestDatabase::create(backend).await else {
        return;
    };
    let conn = database.connect_unmigrated().await;
    Migrator::up(&conn, Some(24)).await.unwrap();
    // 1,500 forecasts of one series (two batches and a half), then an
    // unreadable one; a few of them without a model, as early ones were.
    let json_of = |i: i64| {
        let model = if i % 500 == 7 {
            String::new()
        } else {
            format!(r#","model":"{}""#, if i % 2 == 0 { "ets" } else { "lstm" })
        };
        format!(
            r#"[{{"p10":{},"p50":{},"p90":{}{model}}},{{"p10":0.1,"p50":0.2,"p90":0.30000000000000004,"model":"ets"}}]"#,
            i as f64 / 3.0,
            i,
            i * 2
        )
    };
    let mut rows: Vec<String> = (0..1500)
        .map(|i| {
            format!(
                "('org-a', 'web', 'cpu', 'allocation', {}, 300, {}, 'statistical-1', '{}')",
                i * 300_000,
                i * 300_000 + 1000,
                json_of(i)
            )
        })
        .collect();
    rows.push(
        "('org-a', 'web', 'cpu', 'planning', 0, 3600, 1000, 'statistical-1', '[{\"p10\":')"
            .to_owned(),
    );
    conn.execute_unprepared(&format!(
        "INSERT INTO forecasts (organization_id, workload, metric, horizon, origin, step_secs, \
         made_at, model_version, steps) VALUES {}",
        rows.join(", ")
    ))
    .await
    .unwrap();

    // 025 only: the way down below undoes it.
    Migrator::up(&conn, Some(1)).await.unwrap();
    let db = headroom_store::Db::connect(&database.url).await.unwrap();
    assert_eq!(
        query_i64(&db, "SELECT COUNT(*) FROM forecasts").await,
        1500,
        "the unreadable forecast is dropped, none other"
    );
    let tenant = headroom_store::Tenant::new("org-a".to_owned());
    let latest = db.latest_forecasts(&tenant, "web").await.unwrap();
    assert_eq!(latest.len(), 1, "{latest:?}");
    assert_eq!(latest[0].origin_ms, 1499 * 300_000);
    assert_eq!(
        latest[0].steps,
        PackedSteps::from_json(&json_of(1499)).unwrap()
    );
    // Every one, read back as stored.
    for i in [0i64, 7, 999, 1000, 1001, 1499] {
        let bytes: Vec<u8> = conn
            .query_one_raw(headroom_store::sea_orm::Statement::from_string(
                conn.get_database_backend(),
                format!(
                    "SELECT steps_packed FROM forecasts WHERE origin = {}",
                    i * 300_000
                ),
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get_by_index(0)
            .unwrap();
        let packed = PackedSteps::from_bytes(bytes).unwrap();
        let steps: Vec<_> = packed.with_models().collect();
        assert_eq!(steps.len(), 2);
        assert_eq!(
            steps[0].0.p10.to_bits(),
            (i as f64 / 3.0).to_bits(),
            "forecast {i}"
        );
        assert_eq!(steps[0].0.p90, (i * 2) as f64);
        let model = match i {
            7 => "",
            _ if i % 2 == 0 => "ets",
            _ => "lstm",
        };
        assert_eq!(steps[0].1, model, "forecast {i}");
        assert_eq!(steps[1].0.p90.to_bits(), 0.30000000000000004f64.to_bits());
    }

    // Down again: the JSON says what it said.
    Migrator::down(&conn, Some(1)).await.unwrap();
    let json: String = conn
        .query_one_raw(headroom_store::sea_orm::Statement::from_string(
            conn.get_database_backend(),
            format!(
                "SELECT steps FROM forecasts WHERE origin = {}",
                1001 * 300_000
            ),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap();
    assert_eq!(
        PackedSteps::from_json(&json).unwrap(),
        PackedSteps::from_json(&json_of(1001)).unwrap()
    );
    db.close().await.ok();
    conn.close().await.ok();
    database.drop_now().await;
}
both_backends!(
    forecast_packing_migration,
    stored_json_forecasts_are_packed_by_the_migration
);
