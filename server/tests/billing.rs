//! Billing end to end, on SQLite and PostgreSQL: pricing rules, exact and
//! reproducible statements from ingested usage and capacity in force, price
//! history, budget caps with threshold notifications over server-sent events,
//! the controller held to a blocking cap, and clear errors that change nothing.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::{Backend, Browser, TestApp, expect_error, get};
use headroom_core::billing::{
    Currency, Decimal, HOUR_MS, Period, PriceRule, RuleBook, RuleKind, Scope,
};
use headroom_store::Tenant;
use headroom_store::allocation::{StoredDecision, StoredSettings};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";

async fn org_with_key(app: &TestApp, org: &str) -> (Browser, String, String) {
    let (owner, info, key) =
        common::org_with_key(app, org, PASSWORD, &["ingest", "read", "write"]).await;
    (
        owner,
        key,
        info["organization"]["id"].as_str().unwrap().to_owned(),
    )
}

async fn operator(app: &TestApp) -> Browser {
    common::operator(app, PASSWORD).await
}

async fn send(app: &TestApp, key: &str, path: &str, body: Value) -> Value {
    let res = app
        .http
        .post(app.url(path))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{path}: {}", res.status());
    res.json().await.unwrap()
}

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// A rule in force since `from_ms` (seeded through the store: the API only
/// takes rules from the next hour on, so past hours keep their prices).
fn rule(id: &str, dim: &str, price: &str, from_ms: i64) -> PriceRule {
    PriceRule {
        id: id.into(),
        scope: Scope::Default,
        kind: RuleKind::Price {
            dimension: dim.parse().unwrap(),
            unit_price: d(price),
        },
        currency: Currency::USD,
        effective_from_ms: from_ms,
        effective_to_ms: None,
        created_ms: from_ms,
    }
}

async fn seed_rules(app: &TestApp, rules: &[PriceRule]) {
    for r in rules {
        app.db.insert_price_rule(r, None, &[], 0).await.unwrap();
    }
}

fn applied(workload: &str, at_ms: i64, before: i32, after: i32) -> StoredDecision {
    StoredDecision {
        id: headroom_store::new_id(),
        workload: workload.into(),
        source: "controller".into(),
        slot: at_ms / 300_000,
        decided_ms: at_ms,
        mode: "on".into(),
        before,
        after,
        warm: 0,
        reason: "forecast".into(),
        limits_json: "[]".into(),
        observed: None,
        sized_for: None,
        forecast_version: None,
        status: "applied".into(),
        command_id: headroom_store::new_id(),
        detail: None,
        missed: None,
    }
}

fn settings(workload: &str) -> StoredSettings {
    StoredSettings {
        workload: workload.into(),
        metric: "cpu".into(),
        units_per_instance: 100.0,
        mode: "on".into(),
        min_instances: 1,
        max_instances: 20,
        target: 0.7,
        priority: 1.0,
        provider: "none".into(),
        provider_ref: None,
        commanded: 2,
        controller: Default::default(),
        last_suggestion_ms: None,
        updated_ms: 0,
        readiness_event: None,
        memory_mib_per_instance: None,
        instance_type: None,
        allow_spot: false,
        on_demand_micros_per_hour: None,
        warm_commanded: 0,
        network_mbit_per_instance: None,
    }
}

async fn statements_are_exact_and_reproducible(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (_owner, key, org_id) = org_with_key(&app, "Acme").await;
    let tenant = Tenant::new(org_id.clone());
    // Two whole hours ago, so all of it lies in rated hours.
    let now = Utc::now().timestamp_millis();
    let h0 = (now / HOUR_MS - 2) * HOUR_MS;
    let period = Period::month_of(h0);
    seed_rules(
        &app,
        &[
            rule("r-call", "unit:api_call", "0.0001", period.start_ms),
            rule("r-read", "microop:MEMORY_READ", "0.000002", period.start_ms),
            rule("r-net", "resource:network_gb", "0.05", period.start_ms),
            rule("r-inst", "resource:instance", "0.10", period.start_ms),
        ],
    )
    .await;

    let t = h0 / 1000 + 60;
    let events: Vec<Value> = (0..50)
        .map(|i| json!({ "id": format!("e-{i}"), "type": "api_call", "quantity": 250, "timestamp": t }))
        .collect();
    send(&app, &key, "/api/v1/events", json!(events)).await;
    // The same batch again (a client retry) is counted once.
    send(&app, &key, "/api/v1/events", json!(events)).await;
    let ops: Vec<Value> = (0..40)
        .map(|i| json!({ "timestamp": t, "operation_id": format!("op-{i}"), "micro_operation_type": "MEMORY_READ",
            "resource_usage": { "cpu_cycles": 10, "memory_bytes": 0, "network_bytes": 25_000_000, "disk_bytes": 0, "execution_time_ms": 1.0 } }))
        .collect();
    send(&app, &key, "/api/v1/micro-operations", json!(ops)).await;
    // Capacity: 2 instances from h0, 5 from h0 + 30 min, back to 2 at h0 + 90 min.
    app.db
        .upsert_allocation_settings(&tenant, &settings("api"), Some(2))
        .await
        .unwrap();
    for (at, b, a) in [
        (h0, 0, 2),
        (h0 + HOUR_MS / 2, 2, 5),
        (h0 + 3 * HOUR_MS / 2, 5, 2),
    ] {
        assert!(
            app.db
                .record_decision(&tenant, &applied("api", at, b, a), a, None)
                .await
                .unwrap()
        );
    }
    // A decision nobody carried out costs nothing.
    let mut logged = applied("api", h0 + HOUR_MS / 4, 2, 9);
    logged.status = "no_provider".into();
    app.db
        .record_decision(&tenant, &logged, 2, None)
        .await
        .unwrap();

    let path = format!("/api/v1/billing/statement?period={}", period.label());
    let res = get(&app, &key, &path).await;
    assert_eq!(res.status(), 200);
    let s: Value = res.json().await.unwrap();
    let line = |dim: &str| {
        s["lines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["dimension"] == dim)
            .cloned()
            .unwrap_or_else(|| panic!("{dim} in {s}"))
    };
    // 50 × 250 calls at 0.0001.
    assert_eq!(line("unit:api_call")["quantity"], "12500");
    assert_eq!(line("unit:api_call")["amount"], "1.25");
    // 40 reads at 0.000002 = 0.00008 → 0.00.
    assert_eq!(line("microop:MEMORY_READ")["amount"], "0.00");
    // 40 × 25 MB = 1 GB at 0.05.
    assert_eq!(line("resource:network_gb")["quantity"], "1");
    assert_eq!(line("resource:network_gb")["amount"], "0.05");
    // Instance-hours up to now: 2×0.5 + 5×1 + 2×(now − h0 − 1.5 h).
    let tail_h = Decimal::from(now - h0 - 3 * HOUR_MS / 2) / Decimal::from(HOUR_MS);
    let inst = line("resource:instance");
    let hours: Decimal = inst["quantity"].as_str().unwrap().parse().unwrap();
    assert!(
        hours >= d("6") + d("2") * tail_h && hours <= d("6") + d("2") * tail_h + d("0.01"),
        "{hours}"
    );
    // vCPU has no price: reported, not charged.
    assert_eq!(s["unpriced"][0]["dimension"], "resource:vcpu");
    let total: Decimal = s["total"].as_str().unwrap().parse().unwrap();
    let sum: Decimal = s["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["amount"].as_str().unwrap().parse::<Decimal>().unwrap())
        .sum();
    assert_eq!(total, sum);

    // A closed stretch re-rated gives the same cents: rate [period start, h0 + 2h) twice.
    let who = headroom_jobs::billing::customer(&app.db, &tenant)
        .await
        .unwrap()
        .unwrap();
    let book = RuleBook::new(app.db.price_rules().await.unwrap());
    let closed = h0 + 2 * HOUR_MS;
    let a = headroom_jobs::billing::statement(&app.db, &tenant, &who, &book, period, closed)
        .await
        .unwrap();
    let b = headroom_jobs::billing::statement(&app.db, &tenant, &who, &book, period, closed)
        .await
        .unwrap();
    assert_eq!(a, b);
    // 2×0.5 + 5×1 + 2×0.5 = 7 instance-hours at 0.10.
    let inst = a
        .lines
        .iter()
        .find(|l| l.dimension.to_string() == "resource:instance")
        .unwrap();
    assert_eq!((inst.quantity, inst.amount), (d("7"), d("0.70")));
    assert_eq!(a.total, d("0.70") + d("1.25") + d("0.05"));

    // Another organisation sees none of it.
    let (_o2, key2, _) = org_with_key(&app, "Globex").await;
    let other: Value = get(&app, &key2, &path).await.json().await.unwrap();
    assert_eq!(other["total"], "0");
    assert_eq!(other["lines"], json!([]));

    expect_error(
        get(&app, &key, "/api/v1/billing/statement?period=2026-13").await,
        400,
    )
    .await;
    expect_error(
        get(&app, &key, "/api/v1/billing/statement?period=2999-01").await,
        400,
    )
    .await;

    // The estimate carries the actual part and an ordered interval.
    let e: Value = get(&app, &key, "/api/v1/billing/estimate")
        .await
        .json()
        .await
        .unwrap();
    let num = |v: &Value| v.as_str().unwrap().parse::<Decimal>().unwrap();
    assert!(
        num(&e["low"]) <= num(&e["expected"]) && num(&e["expected"]) <= num(&e["high"]),
        "{e}"
    );
    assert!(num(&e["actual"]) <= num(&e["low"]), "{e}");
    app.stop().await;
}
both_backends!(statements, statements_are_exact_and_reproducible);

/// Ticks where observed demand exceeded the fleet in force earn the SLA
/// credit, counted from the decision log: controller decisions that were
/// applied, pending or failed; not decisions that commanded nothing, not
/// suggestions, not ticks the fleet could serve. What the controller recorded
/// stays when the instance size changes later; a decision logged before that
/// was recorded is judged on the current size.
async fn under_provisioned_ticks_earn_the_sla_credit(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (_owner, _key, org_id) = org_with_key(&app, "Acme").await;
    let tenant = Tenant::new(org_id);
    let now = Utc::now().timestamp_millis();
    let h0 = (now / HOUR_MS - 2) * HOUR_MS;
    let period = Period::month_of(h0);
    let mut sla = rule("r-sla", "resource:instance", "0", period.start_ms);
    sla.kind = RuleKind::SlaCredit { rate: d("0.5") };
    seed_rules(
        &app,
        &[
            rule("r-inst", "resource:instance", "6.00", period.start_ms),
            sla,
        ],
    )
    .await;
    // Two instances (100 units each) in force for the whole hour.
    app.db
        .upsert_allocation_settings(&tenant, &settings("api"), Some(2))
        .await
        .unwrap();
    assert!(
        app.db
            .record_decision(&tenant, &applied("api", h0, 0, 2), 2, None)
            .await
            .unwrap()
    );
    // (minutes into the hour, source, status, observed units, recorded as
    // above the fleet).
    let ticks = [
        (10, "controller", "failed", 500.0, Some(true)), // missed
        (20, "controller", "pending", 250.0, Some(true)), // missed
        (25, "controller", "failed", 300.0, None),       // 300 > 2 × 100: missed
        (30, "controller", "no_provider", 900.0, Some(true)), // nothing was commanded
        (40, "controller", "failed", 150.0, Some(false)), // the fleet could serve it
        (50, "suggestion", "failed", 900.0, None),       // not a tick
    ];
    for (minutes, source, status, observed, missed) in ticks {
        let mut tick = applied("api", h0 + minutes * 60_000, 2, 3);
        tick.source = source.into();
        tick.status = status.into();
        tick.observed = Some(observed);
        tick.missed = missed;
        assert!(
            app.db
                .record_decision(&tenant, &tick, 2, None)
                .await
                .unwrap()
        );
    }
    let who = headroom_jobs::billing::customer(&app.db, &tenant)
        .await
        .unwrap()
        .unwrap();
    let book = RuleBook::new(app.db.price_rules().await.unwrap());
    let hour_end = h0 + HOUR_MS;
    let s = headroom_jobs::billing::statement(&app.db, &tenant, &who, &book, period, hour_end)
        .await
        .unwrap();
    // 2 instance-hours at 6.00 = 12.00; three 5-minute ticks missed are a
    // quarter of the hour, credited at 50 %: 1.50.
    assert_eq!(s.lines[0].amount, d("12.00"), "{s:?}");
    assert_eq!(s.sla_credit, d("1.50"), "{s:?}");
    assert_eq!(s.total, d("10.50"));
    // Instances of 1,000 units from now on: the two recorded ticks still
    // count (a sixth of the hour: 1.00); the one judged on the size does not.
    let mut larger = settings("api");
    larger.units_per_instance = 1000.0;
    app.db
        .upsert_allocation_settings(&tenant, &larger, Some(2))
        .await
        .unwrap();
    let s = headroom_jobs::billing::statement(&app.db, &tenant, &who, &book, period, hour_end)
        .await
        .unwrap();
    assert_eq!(s.sla_credit, d("1.00"), "{s:?}");
    app.stop().await;
}
both_backends!(sla_credit, under_provisioned_ticks_earn_the_sla_credit);

async fn rules_are_validated_and_announced(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (owner, key, org_id) = org_with_key(&app, "Acme").await;
    let ops = operator(&app).await;
    let base = json!({ "scope": "default", "kind": "price", "dimension": "resource:instance",
        "unit_price": "0.10", "currency": "usd" });
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let past = (Utc::now() - chrono::Duration::hours(3)).to_rfc3339();
    for (body, status, needle) in [
        (with("dimension", json!("resource:gpu")), 422, "dimension"),
        (with("unit_price", json!("-1")), 422, "unit_price"),
        (with("currency", json!("euro")), 422, "currency"),
        (with("scope", json!("galaxy")), 422, "scope"),
        (
            with("kind", json!("demand_multiplier")),
            422,
            "HEADROOM_PLATFORM_CAPACITY_INSTANCES",
        ),
        (with("effective_from", json!(past)), 422, "next whole hour"),
        (
            json!({ "scope": "organization", "scope_ref": org_id, "kind": "price", "dimension": "unit:api_call",
            "unit_price": "1", "currency": "eur" }),
            422,
            "currency mismatch",
        ),
        (
            json!({ "scope": "organization", "scope_ref": "nope", "kind": "price", "dimension": "unit:api_call",
            "unit_price": "1", "currency": "usd" }),
            404,
            "",
        ),
    ] {
        let msg = expect_error(
            ops.post("/api/v1/admin/price-rules", body.clone()).await,
            status,
        )
        .await;
        assert!(msg.contains(needle), "{body}: {msg}");
    }
    // Customers cannot price themselves.
    expect_error(
        owner.post("/api/v1/admin/price-rules", base.clone()).await,
        403,
    )
    .await;
    let rules: Value = ops
        .get("/api/v1/admin/price-rules")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rules, json!([]), "refused rules left nothing behind");
    let history: Value = get(&app, &key, "/api/v1/prices/history")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(history, json!([]));

    let res = ops.post("/api/v1/admin/price-rules", base.clone()).await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    // Every organisation (Acme and the operator's) is told.
    assert_eq!(created["price_changes"], 2);
    let id = created["rule"]["id"].as_str().unwrap().to_owned();
    let history: Value = get(&app, &key, "/api/v1/prices/history")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(history.as_array().unwrap().len(), 1, "{history}");
    assert_eq!(history[0]["subject"], "resource:instance");
    assert_eq!(history[0]["old"], Value::Null);
    assert_eq!(history[0]["new"], "0.10");
    assert_eq!(history[0]["reason"], "rule");
    let notes: Value = get(&app, &key, "/api/v1/notifications")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(notes[0]["kind"], "price_change");

    // An organisation-specific price beats the default for that organisation only.
    let org_rule = json!({ "scope": "organization", "scope_ref": org_id, "kind": "price",
        "dimension": "resource:instance", "unit_price": "0.08", "currency": "usd" });
    let created: Value = ops
        .post("/api/v1/admin/price-rules", org_rule)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(created["price_changes"], 1);
    let history: Value = get(&app, &key, "/api/v1/prices/history")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (history[0]["old"].clone(), history[0]["new"].clone()),
        (json!("0.10"), json!("0.08"))
    );

    // Ending: unknown rule 404, a past end 422, then a valid end.
    expect_error(
        ops.post("/api/v1/admin/price-rules/nope/end", json!({}))
            .await,
        404,
    )
    .await;
    expect_error(
        ops.post(
            &format!("/api/v1/admin/price-rules/{id}/end"),
            json!({ "effective_to": past }),
        )
        .await,
        422,
    )
    .await;
    let ended = ops
        .post(
            &format!("/api/v1/admin/price-rules/{id}/end"),
            json!({ "effective_to": null }),
        )
        .await;
    // Ends before it starts: the rule begins at the next hour, which is also the earliest end.
    expect_error(ended, 422).await;
    let later = chrono::DateTime::from_timestamp_millis(
        (Utc::now().timestamp_millis() / HOUR_MS + 2) * HOUR_MS,
    )
    .unwrap()
    .to_rfc3339();
    let ended = ops
        .post(
            &format!("/api/v1/admin/price-rules/{id}/end"),
            json!({ "effective_to": later }),
        )
        .await;
    assert_eq!(ended.status(), 200);
    let ended: Value = ended.json().await.unwrap();
    assert_eq!(
        ended["effective_to"]
            .as_str()
            .map(|s| s.parse::<chrono::DateTime<Utc>>().unwrap().to_rfc3339()),
        Some(later)
    );
    // The default price ending changes nothing for Acme (its own price rules), but tells the operator's organisation.
    let history: Value = get(&app, &key, "/api/v1/prices/history")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(history.as_array().unwrap().len(), 2, "{history}");
    app.stop().await;
}
both_backends!(rules, rules_are_validated_and_announced);

/// Reads server-sent events until `want` events arrived or `within` passed.
async fn read_events(res: &mut reqwest::Response, want: usize, within: Duration) -> Vec<Value> {
    let mut buf = String::new();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while out.len() < want {
        let chunk = match tokio::time::timeout_at(deadline, res.chunk()).await {
            Ok(Ok(Some(c))) => c,
            _ => break,
        };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            if let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data:")) {
                out.push(serde_json::from_str(data.trim()).unwrap());
            }
        }
    }
    out
}

async fn budget_thresholds_reach_the_browser_once(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (owner, key, org_id) = org_with_key(&app, "Acme").await;
    let (_o2, key2, _) = org_with_key(&app, "Globex").await;
    let tenant = Tenant::new(org_id.clone());
    let now = Utc::now().timestamp_millis();
    let period = Period::month_of(now);
    seed_rules(
        &app,
        &[rule("r-call", "unit:api_call", "1", period.start_ms)],
    )
    .await;

    for (body, needle) in [
        (
            json!({ "amount": "100", "currency": "eur", "action": "notify" }),
            "currency mismatch",
        ),
        (
            json!({ "amount": "-5", "currency": "usd", "action": "notify" }),
            "positive",
        ),
        (
            json!({ "amount": "100", "currency": "usd", "action": "explode" }),
            "action",
        ),
    ] {
        let msg = expect_error(owner.put("/api/v1/budget-cap", body).await, 422).await;
        assert!(msg.contains(needle), "{msg}");
    }
    expect_error(get(&app, &key, "/api/v1/budget-cap").await, 404).await;
    let e: Value = get(&app, &key, "/api/v1/billing/estimate")
        .await
        .json()
        .await
        .unwrap();
    assert!(e["budget_cap"].is_null(), "{e}");
    // A key without the admin scope cannot set it.
    let res = app
        .http
        .put(app.url("/api/v1/budget-cap"))
        .bearer_auth(&key)
        .json(&json!({ "amount": "100", "currency": "usd", "action": "block" }))
        .send()
        .await
        .unwrap();
    expect_error(res, 403).await;
    let res = owner
        .put(
            "/api/v1/budget-cap",
            json!({ "amount": "100.00", "currency": "usd", "action": "block" }),
        )
        .await;
    assert_eq!(res.status(), 200);

    // Both organisations listen; only Acme's stream may carry Acme's notices.
    let mut stream = app
        .http
        .get(app.url("/api/v1/notifications/stream"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut other = app
        .http
        .get(app.url("/api/v1/notifications/stream"))
        .bearer_auth(&key2)
        .send()
        .await
        .unwrap();

    // 85 calls at 1 already this period: projected ≥ 85 of 100.
    // Within the hour in progress, so no past hour's history inflates the projection.
    let t = (now - 60_000).max(now / HOUR_MS * HOUR_MS) as f64 / 1000.0;
    let events: Vec<Value> = (0..85)
        .map(|i| json!({ "id": format!("e-{i}"), "type": "api_call", "quantity": 1, "timestamp": t }))
        .collect();
    send(&app, &key, "/api/v1/events", json!(events)).await;
    let who = headroom_jobs::billing::customer(&app.db, &tenant)
        .await
        .unwrap()
        .unwrap();
    let book = RuleBook::new(app.db.price_rules().await.unwrap());
    let announced = headroom_jobs::billing::check_budget(&app.db, &tenant, &who, &book, now)
        .await
        .unwrap();
    assert_eq!(announced, vec![50, 80]);
    let got = read_events(&mut stream, 2, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        (
            got[0]["body"]["threshold"].clone(),
            got[1]["body"]["threshold"].clone()
        ),
        (json!(50), json!(80))
    );
    assert_eq!(got[0]["kind"], "budget_threshold");
    // A second check announces nothing again.
    let again = headroom_jobs::billing::check_budget(&app.db, &tenant, &who, &book, now)
        .await
        .unwrap();
    assert!(again.is_empty());
    assert!(
        read_events(&mut other, 1, Duration::from_millis(500))
            .await
            .is_empty()
    );
    let cap: Value = get(&app, &key, "/api/v1/budget-cap")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(cap["announced"], json!([50, 80]));
    assert_eq!(cap["action"], "block");
    // The projection carries the cap it is held against, as the cap's own route shows it.
    let e: Value = get(&app, &key, "/api/v1/billing/estimate")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(e["budget_cap"], cap, "{e}");

    // Resuming from an event id replays what came after it.
    let first_seq = got[0]["seq"].as_i64().unwrap();
    let mut resumed = app
        .http
        .get(app.url("/api/v1/notifications/stream"))
        .bearer_auth(&key)
        .header("last-event-id", first_seq.to_string())
        .send()
        .await
        .unwrap();
    let replay = read_events(&mut resumed, 1, Duration::from_secs(5)).await;
    assert_eq!(replay[0]["seq"], got[1]["seq"]);
    let bad = app
        .http
        .get(app.url("/api/v1/notifications/stream"))
        .bearer_auth(&key)
        .header("last-event-id", "yesterday")
        .send()
        .await
        .unwrap();
    expect_error(bad, 400).await;
    // Unauthenticated: refused.
    expect_error(
        app.http
            .get(app.url("/api/v1/notifications/stream"))
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;

    // The controller, under a blocking cap that is spent, refuses to scale up.
    let mut s = settings("api");
    s.commanded = 1;
    app.db
        .upsert_allocation_settings(&tenant, &s, Some(1))
        .await
        .unwrap();
    seed_rules(
        &app,
        &[rule("r-inst", "resource:instance", "1", period.start_ms)],
    )
    .await;
    let budget = headroom_jobs::billing::budget_for_controller(
        &app.db,
        &tenant,
        &who,
        &RuleBook::new(app.db.price_rules().await.unwrap()),
        now,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(budget.apply(1, 1000).0, 1, "{budget:?}");
    // The controller's tick weighs the same cap (all caps read at once):
    // demand for three instances (150 units, 100 an instance, target 0.7),
    // and the fleet stays at one, saying why.
    let now_s = now / 1000;
    let points: Vec<Value> = (0..10)
        .map(|i| json!({ "workload": "api", "metric": "cpu", "timestamp": now_s - i * 60, "value": 150.0 }))
        .collect();
    send(&app, &key, "/api/v1/metrics", json!(points)).await;
    let providers = headroom_jobs::providers::Providers::default();
    let tick = headroom_jobs::allocate::allocate_all(&app.db, &providers, now)
        .await
        .unwrap();
    assert_eq!(tick.decided, 1, "{tick:?}");
    let list: Value = get(&app, &key, "/api/v1/allocation-decisions?workload=api")
        .await
        .json()
        .await
        .unwrap();
    let d = &list[0];
    assert_eq!(
        (d["before"].as_i64(), d["after"].as_i64()),
        (Some(1), Some(1)),
        "{d}"
    );
    assert!(d["observed"].as_f64() > Some(100.0), "demand seen: {d}");
    assert!(d["limits"].to_string().contains("budget"), "{d}");
    app.stop().await;
}
both_backends!(budget, budget_thresholds_reach_the_browser_once);

async fn demand_and_profile_rules_use_recorded_hours(backend: Backend) {
    let Some(app) = TestApp::spawn_with(
        backend,
        common::Options {
            env: vec![("HEADROOM_PLATFORM_CAPACITY_INSTANCES", "10".into())],
            ..common::Options::default()
        },
    )
    .await
    else {
        return;
    };
    let (owner, _key, org_id) = org_with_key(&app, "Acme").await;
    let tenant = Tenant::new(org_id.clone());
    let ops = operator(&app).await;
    // Through the API: schedules and discounts are validated like any rule.
    let step = json!({ "scope": "default", "kind": "demand_multiplier", "min_load": "0.5",
        "multiplier": "2", "currency": "usd" });
    let mut missing = step.clone();
    missing.as_object_mut().unwrap().remove("multiplier");
    let msg = expect_error(ops.post("/api/v1/admin/price-rules", missing).await, 422).await;
    assert!(msg.contains("multiplier"), "{msg}");
    assert_eq!(
        ops.post("/api/v1/admin/price-rules", step).await.status(),
        201
    );
    let discount =
        json!({ "scope": "default", "kind": "profile_discount", "rate": "1.5", "currency": "usd" });
    expect_error(ops.post("/api/v1/admin/price-rules", discount).await, 422).await;

    // For rating the past, the same rules seeded from before it.
    let now = Utc::now().timestamp_millis();
    let closed = now / HOUR_MS * HOUR_MS;
    let last = closed - HOUR_MS;
    let period = Period::month_of(last);
    let since = Period::month_of(period.start_ms - 1).start_ms;
    let mut rules = vec![rule("r-inst", "resource:instance", "1", since)];
    for (id, kind) in [
        (
            "r-demand",
            RuleKind::DemandMultiplier {
                min_load: d("0.5"),
                multiplier: d("2"),
            },
        ),
        ("r-profile", RuleKind::ProfileDiscount { rate: d("0.1") }),
    ] {
        let mut r = rule(id, "resource:instance", "1", since);
        r.kind = kind;
        rules.push(r);
    }
    seed_rules(&app, &rules).await;
    // 6 of the platform's 10 instances in force since three hours ago: load 0.6.
    app.db
        .upsert_allocation_settings(&tenant, &settings("api"), Some(6))
        .await
        .unwrap();
    app.db
        .record_decision(
            &tenant,
            &applied("api", closed - 3 * HOUR_MS, 0, 6),
            6,
            None,
        )
        .await
        .unwrap();
    let res = owner
        .post(
            "/api/v1/workload-profiles",
            json!({ "workload": "api", "category": "web", "peak_hours": [9] }),
        )
        .await;
    assert_eq!(res.status(), 200);

    headroom_jobs::billing::record_closed_hours(&app.db, now, Some(10))
        .await
        .unwrap();
    // Recording again changes nothing.
    headroom_jobs::billing::record_closed_hours(&app.db, now + 60_000, Some(10))
        .await
        .unwrap();
    let load = app.db.platform_load(last, closed).await.unwrap();
    assert_eq!(load.get(&last), Some(&d("0.6")));
    assert!(
        app.db
            .profile_current_hours(&tenant, last, closed)
            .await
            .unwrap()
            .contains(&last)
    );

    let who = headroom_jobs::billing::customer(&app.db, &tenant)
        .await
        .unwrap()
        .unwrap();
    let book = RuleBook::new(app.db.price_rules().await.unwrap());
    let s = headroom_jobs::billing::statement(&app.db, &tenant, &who, &book, period, closed)
        .await
        .unwrap();
    // Only the recorded hour carries load and profile state: 6 instance-hours
    // doubled (+6.00), and 10 % off that hour's 12.00.
    assert_eq!(s.demand_adjustment, d("6.00"), "{s:?}");
    assert_eq!(s.profile_discount, d("1.20"), "{s:?}");
    app.stop().await;
}
both_backends!(recorded_hours, demand_and_profile_rules_use_recorded_hours);

async fn the_estimate_follows_the_demand_forecast(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (_owner, key, org_id) = org_with_key(&app, "Acme").await;
    let tenant = Tenant::new(org_id.clone());
    let now = Utc::now().timestamp_millis();
    let period = Period::month_of(now);
    seed_rules(
        &app,
        &[rule("r-inst", "resource:instance", "1", period.start_ms)],
    )
    .await;
    // A controlled workload (100 units per instance, target 0.7) whose
    // planning forecast covers this hour and the next two.
    let mut s = settings("api");
    s.max_instances = 50;
    s.provider = "cgroup".into();
    s.provider_ref = Some("api".into());
    app.db
        .upsert_allocation_settings(&tenant, &s, Some(2))
        .await
        .unwrap();
    let hf = now / HOUR_MS * HOUR_MS;
    app.db
        .insert_forecast(
            &tenant,
            &headroom_store::forecasts::StoredForecast {
                workload: "api".into(),
                metric: "cpu".into(),
                horizon: "planning".into(),
                origin_ms: hf - HOUR_MS,
                step_secs: 3600,
                made_at_ms: now,
                model_version: "statistical-1".into(),
                steps: headroom_core::forecast::PackedSteps::from_json(r#"[{"p10":100,"p50":300,"p90":600,"model":"ets"},{"p10":100,"p50":300,"p90":600,"model":"ets"},{"p10":100,"p50":300,"p90":600,"model":"ets"}]"#).unwrap(),
            },
        )
        .await
        .unwrap();
    // A workload under no provider is decided for, never run: its forecast costs nothing.
    app.db
        .upsert_allocation_settings(&tenant, &settings("batch"), Some(2))
        .await
        .unwrap();
    app.db
        .insert_forecast(
            &tenant,
            &headroom_store::forecasts::StoredForecast {
                workload: "batch".into(),
                metric: "cpu".into(),
                horizon: "planning".into(),
                origin_ms: hf - HOUR_MS,
                step_secs: 3600,
                made_at_ms: now,
                model_version: "statistical-1".into(),
                steps: headroom_core::forecast::PackedSteps::from_json(
                    r#"[{"p10":9000,"p50":9000,"p90":9000,"model":"ets"}]"#,
                )
                .unwrap(),
            },
        )
        .await
        .unwrap();
    let e: Value = get(&app, &key, "/api/v1/billing/estimate")
        .await
        .json()
        .await
        .unwrap();
    // Fleets: ceil(100/70) = 2, ceil(300/70) = 5, ceil(600/70) = 9 instances,
    // for what is left of this hour and the next two (within the period).
    let hours: Decimal = [hf, hf + HOUR_MS, hf + 2 * HOUR_MS]
        .iter()
        .filter(|&&h| h < period.end_ms)
        .map(|&h| {
            if h == hf {
                Decimal::from(hf + HOUR_MS - now) / Decimal::from(HOUR_MS)
            } else {
                Decimal::ONE
            }
        })
        .sum();
    let num = |v: &Value| v.as_str().unwrap().parse::<Decimal>().unwrap();
    for (field, fleet) in [("low", 2), ("expected", 5), ("high", 9)] {
        let want = Decimal::from(fleet) * hours;
        let got = num(&e[field]);
        assert!(
            (got - want).abs() <= d("0.02"),
            "{field}: {got} vs {want}: {e}"
        );
    }
    assert!(e["method"].as_str().unwrap().contains("forecast"));
    app.stop().await;
}
both_backends!(forecast_estimate, the_estimate_follows_the_demand_forecast);

/// With concurrent writers a notification can commit after one with a
/// higher number; the stream still delivers it (once).
async fn late_commits_still_reach_the_stream(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (_owner, key, org_id) = org_with_key(&app, "Acme").await;
    let mut stream = app
        .http
        .get(app.url("/api/v1/notifications/stream"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let now = Utc::now().timestamp_millis();
    let insert = |seq: i64, title: &str| {
        format!(
            "INSERT INTO notifications (seq, organization_id, kind, title, body, created_at) \
             VALUES ({seq}, '{org_id}', 'price_change', '{title}', '{{}}', {now})"
        )
    };
    // Written behind the hub's back (as another process would), out of order.
    common::execute(&app.db, &insert(1_000_000, "later number, first commit")).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    common::execute(&app.db, &insert(999_999, "earlier number, late commit")).await;
    let got = read_events(&mut stream, 2, Duration::from_secs(5)).await;
    let titles: Vec<&str> = got.iter().map(|n| n["title"].as_str().unwrap()).collect();
    assert_eq!(
        titles,
        vec!["later number, first commit", "earlier number, late commit"]
    );
    assert!(
        read_events(&mut stream, 1, Duration::from_millis(800))
            .await
            .is_empty(),
        "each once"
    );
    app.stop().await;
}
both_backends!(late_commits, late_commits_still_reach_the_stream);
