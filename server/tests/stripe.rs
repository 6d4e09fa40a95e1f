//! Stripe end to end on SQLite and PostgreSQL, against a Stripe stand-in that
//! checks every request against Stripe's OpenAPI description: customers and
//! meter events pushed exactly once (also across an outage, and across a
//! worker killed with SIGKILL mid-push), and signed webhooks received once.

mod common;

use std::time::{Duration, Instant};

use chrono::Utc;
use common::stripe::{SPEC, StripePeer, validate};
use common::{Backend, Options, TestApp, expect_error};
use headroom_core::billing::{Currency, HOUR_MS, Period, PriceRule, RuleKind, Scope};
use headroom_jobs::stripe::{StripeSettings, client, push_all};
use headroom_store::Tenant;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";
const WEBHOOK_SECRET: &str = "whsec_test_headroom";

#[test]
fn the_validator_refuses_what_stripe_refuses() {
    let spec: Value = serde_json::from_str(SPEC).unwrap();
    let schema = &spec["paths"]["/v1/billing/meter_events"]["post"]["requestBody"];
    let p = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    };
    assert!(validate(schema, &p(&[("event_name", "x"), ("payload[value]", "1")])).is_empty());
    assert!(
        !validate(schema, &p(&[("payload[value]", "1")])).is_empty(),
        "event_name is required"
    );
    assert!(
        !validate(
            schema,
            &p(&[
                ("event_name", "x"),
                ("payload[value]", "1"),
                ("quantity", "1")
            ])
        )
        .is_empty()
    );
    assert!(!validate(schema, &p(&[("event_name", "x"), ("payload", "1")])).is_empty());
    assert!(
        !validate(
            schema,
            &p(&[
                ("event_name", "x"),
                ("payload[v]", "1"),
                ("timestamp", "soon")
            ])
        )
        .is_empty()
    );
    assert!(
        !validate(
            schema,
            &p(&[("event_name", &"x".repeat(101)), ("payload[v]", "1")])
        )
        .is_empty()
    );
}

fn settings(peer: &StripePeer) -> StripeSettings {
    StripeSettings {
        secret_key: "sk_test_headroom".into(),
        api_base: Some(peer.url.clone()),
        event_name: "headroom_usage".into(),
    }
}

async fn spawn(backend: Backend, peer: &StripePeer) -> Option<TestApp> {
    TestApp::spawn_with(
        backend,
        Options {
            env: vec![
                ("HEADROOM_STRIPE_SECRET_KEY", "sk_test_headroom".into()),
                ("HEADROOM_STRIPE_API_BASE", peer.url.clone()),
                ("HEADROOM_STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET.into()),
            ],
            ..Options::default()
        },
    )
    .await
}

/// Rules from the start of the period holding `at`: calls at 0.01, instance-hours at 0.5.
async fn seed_rules(app: &TestApp, at: i64) {
    let period = Period::month_of(at);
    // From the previous month on, so usage an hour or two ago is always priced.
    let from = Period::month_of(period.start_ms - 1).start_ms;
    for (id, dim, price) in [
        ("r-call", "unit:api_call", "0.01"),
        ("r-inst", "resource:instance", "0.5"),
    ] {
        let rule = PriceRule {
            id: id.into(),
            scope: Scope::Default,
            kind: RuleKind::Price {
                dimension: dim.parse().unwrap(),
                unit_price: price.parse().unwrap(),
            },
            currency: Currency::USD,
            effective_from_ms: from,
            effective_to_ms: None,
            created_ms: 0,
        };
        app.db.insert_price_rule(&rule, None, &[], 0).await.unwrap();
    }
}

/// A new organisation with `calls` api_call events at `at_ms`; returns its tenant.
async fn org_with_usage(app: &TestApp, name: &str, at_ms: i64, calls: usize) -> Tenant {
    let (_owner, info, key) = common::org_with_key(app, name, PASSWORD, &["ingest"]).await;
    let events: Vec<Value> = (0..calls)
        .map(|i| json!({ "id": format!("{name}-{i}"), "type": "api_call", "quantity": 3, "timestamp": at_ms as f64 / 1000.0 }))
        .collect();
    let res = app
        .http
        .post(app.url("/api/v1/events"))
        .bearer_auth(&key)
        .json(&events)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    Tenant::new(info["organization"]["id"].as_str().unwrap())
}

async fn meter_events_reach_stripe_once(backend: Backend) {
    let peer = StripePeer::start().await;
    let Some(app) = spawn(backend, &peer).await else {
        return;
    };
    let now = Utc::now().timestamp_millis();
    // An hour that has closed: two hours ago.
    let used_at = (now / HOUR_MS - 2) * HOUR_MS + 60_000;
    seed_rules(&app, used_at).await;
    let tenant = org_with_usage(&app, "Acme", used_at, 40).await;
    let s = settings(&peer);
    let c = client(&s).unwrap();

    assert_eq!(push_all(&app.db, &c, &s, now).await.unwrap(), 1);
    // 40 × 3 calls at 0.01 = 1.20 → 120 cents, to the customer made for Acme.
    assert_eq!(peer.total_value(), 120);
    let org = app.db.organization(&tenant).await.unwrap().unwrap();
    let customer = org.stripe_customer_id.clone().unwrap();
    {
        let st = peer.state.lock().unwrap();
        let c = &st.customers[&customer];
        assert_eq!(c["metadata"]["headroom_organization_id"], tenant.id());
        // One meter, one product, one metered price per currency, one subscription each.
        assert_eq!(
            (st.meters.len(), st.products.len(), st.prices.len()),
            (1, 1, 1)
        );
        let meter = st.meters.values().next().unwrap();
        assert_eq!(meter["event_name"], "headroom_usage");
        assert_eq!(meter["default_aggregation"]["formula"], "sum");
        let price = st.prices.values().next().unwrap();
        assert_eq!(
            (price["currency"].as_str(), price["unit_amount"].as_i64()),
            (Some("usd"), Some(1))
        );
        assert_eq!(price["recurring"]["meter"], meter["id"]);
        let sub = st.subscriptions.values().next().unwrap();
        assert_eq!(
            (sub["customer"].as_str(), sub["collection_method"].as_str()),
            (Some(customer.as_str()), Some("send_invoice"))
        );
        let e = st.meter_events.values().next().unwrap();
        assert_eq!(
            (e.customer.as_str(), e.event_name.as_str()),
            (customer.as_str(), "headroom_usage")
        );
    }
    // The same hour again: nothing new.
    assert_eq!(push_all(&app.db, &c, &s, now + 60_000).await.unwrap(), 0);

    // A second customer's usage while Stripe is down: nothing is lost.
    let key_org = org_with_usage(&app, "Globex", used_at, 10).await;
    let next = now + 120_000;
    peer.set_down(true);
    assert!(push_all(&app.db, &c, &s, next).await.unwrap() == 0);
    assert_eq!(peer.total_value(), 120, "nothing got through while down");
    peer.set_down(false);
    let sent = push_all(&app.db, &c, &s, next).await.unwrap();
    assert!(
        sent >= 1,
        "the queued push went out: {:?}",
        peer.violations()
    );
    // Globex's 10 × 3 calls = 30 cents joined Acme's 120.
    assert_eq!(peer.total_value(), 150);
    {
        let st = peer.state.lock().unwrap();
        assert_eq!(
            (st.meters.len(), st.prices.len(), st.subscriptions.len()),
            (1, 1, 2)
        );
    }
    let pushes = app
        .db
        .meter_pushes(&key_org, &Period::month_of(next - HOUR_MS - 1).label())
        .await
        .unwrap();
    assert!(pushes.iter().all(|p| p.status == "sent"), "{pushes:?}");
    assert_eq!(peer.violations(), Vec::<String>::new());
    app.stop().await;
}
both_backends!(meter_events, meter_events_reach_stripe_once);

async fn a_killed_worker_sends_each_unit_once(backend: Backend) {
    let peer = StripePeer::start().await;
    let Some(app) = spawn(backend, &peer).await else {
        return;
    };
    let now = Utc::now().timestamp_millis();
    let used_at = (now / HOUR_MS - 1) * HOUR_MS + 60_000;
    seed_rules(&app, used_at).await;
    let orgs = 6;
    for i in 0..orgs {
        org_with_usage(&app, &format!("Org{i}"), used_at, 10 + i).await;
    }
    let expected: i64 = (0..orgs as i64).map(|i| (10 + i) * 3).sum();
    // Slow enough that the kill lands between pushes.
    peer.set_delay(Duration::from_millis(400));
    let worker = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_headroom"))
            .arg("worker")
            .env("HEADROOM_DATABASE_URL", app.database_url())
            .env("HEADROOM_DATA_DIR", std::env::temp_dir())
            .env(
                "HEADROOM_MODELS_DIR",
                concat!(env!("CARGO_MANIFEST_DIR"), "/../models"),
            )
            .env("HEADROOM_STRIPE_SECRET_KEY", "sk_test_headroom")
            .env("HEADROOM_STRIPE_API_BASE", &peer.url)
            .env("HEADROOM_STRIPE_SCHEDULE", "* * * * * *")
            .env(
                "HEADROOM_LOG",
                std::env::var("WORKER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("worker starts")
    };
    let mut first = worker();
    let started = Instant::now();
    while peer.state.lock().unwrap().meter_requests < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the worker never pushed"
        );
        assert!(first.try_wait().unwrap().is_none(), "the worker exited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // SIGKILL: no chance to finish or record anything.
    first.kill().unwrap();
    first.wait().unwrap();
    let killed_at = peer.state.lock().unwrap().meter_events.len();
    assert!(
        killed_at < orgs,
        "killed before it was done ({killed_at} of {orgs})"
    );
    let mut second = worker();
    let started = Instant::now();
    while peer.state.lock().unwrap().meter_events.len() < orgs {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the restarted worker did not finish"
        );
        assert!(
            second.try_wait().unwrap().is_none(),
            "the restarted worker exited"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let it run a few more ticks: nothing more may arrive.
    tokio::time::sleep(Duration::from_secs(3)).await;
    second.kill().unwrap();
    second.wait().unwrap();
    assert_eq!(peer.state.lock().unwrap().meter_events.len(), orgs);
    assert_eq!(peer.total_value(), expected);
    assert_eq!(peer.violations(), Vec::<String>::new());
    app.stop().await;
}
both_backends!(killed_worker, a_killed_worker_sends_each_unit_once);

async fn signed_webhooks_are_received_once(backend: Backend) {
    let peer = StripePeer::start().await;
    let Some(app) = spawn(backend, &peer).await else {
        return;
    };
    let tenant = org_with_usage(&app, "Acme", Utc::now().timestamp_millis() - 60_000, 1).await;
    app.db
        .set_stripe_customer(&tenant, "cus_acme")
        .await
        .unwrap();
    let event = json!({
        "id": "evt_1", "object": "event", "api_version": "2024-04-10", "created": Utc::now().timestamp(),
        "livemode": false, "pending_webhooks": 1, "request": { "id": null, "idempotency_key": null },
        "type": "invoice.paid",
        "data": { "object": { "id": "in_1", "object": "invoice", "customer": "cus_acme",
            "amount_due": 1234, "amount_paid": 1234, "currency": "usd" } }
    })
    .to_string();
    let post = |sig: Option<String>, body: String| {
        let mut req = app.http.post(app.url("/webhooks/stripe")).body(body);
        if let Some(s) = sig {
            req = req.header("stripe-signature", s);
        }
        req.send()
    };
    let sig = stripe_webhook::Webhook::generate_test_header(&event, WEBHOOK_SECRET, None);
    let res = post(Some(sig.clone()), event.clone()).await.unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    // A replay of the same request changes nothing.
    let res: Value = post(Some(sig.clone()), event.clone())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(res["duplicate"], true);
    expect_error(post(None, event.clone()).await.unwrap(), 400).await;
    let forged = stripe_webhook::Webhook::generate_test_header(&event, "whsec_not_ours", None);
    expect_error(post(Some(forged), event.clone()).await.unwrap(), 400).await;
    let stale = stripe_webhook::Webhook::generate_test_header(
        &event,
        WEBHOOK_SECRET,
        Some(Utc::now().timestamp() - 3600),
    );
    expect_error(post(Some(stale), event.clone()).await.unwrap(), 400).await;
    let tampered = event.replace("1234", "1");
    expect_error(post(Some(sig), tampered).await.unwrap(), 400).await;
    // The customer was told once.
    let notes = app.db.notifications(&tenant, None, None, 50).await.unwrap();
    let paid: Vec<_> = notes.iter().filter(|n| n.kind == "billing_event").collect();
    assert_eq!(paid.len(), 1, "{notes:?}");
    assert!(paid[0].body.contains("in_1"));
    app.stop().await;
}
both_backends!(webhooks_in, signed_webhooks_are_received_once);

/// localstripe, when the test command started it: `None` (and said so) otherwise.
fn localstripe() -> Option<String> {
    match std::env::var("HEADROOM_TEST_LOCALSTRIPE_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!(
                "CI=true and HEADROOM_TEST_LOCALSTRIPE_URL is unset: run the tests with ./dev test"
            )
        }
        Err(_) => {
            eprintln!("SKIPPED: localstripe is not running (./dev test starts it)");
            None
        }
    }
}

/// Against localstripe, a third-party Stripe fake: the customer is created
/// through async-stripe, and localstripe's own signed `customer.created`
/// webhook is accepted by `/webhooks/stripe` once.
async fn localstripe_customers_and_webhooks(backend: Backend) {
    let Some(ls) = localstripe() else {
        return;
    };
    let peer = StripePeer::start().await;
    let Some(app) = spawn(backend, &peer).await else {
        return;
    };
    let tenant = org_with_usage(&app, "Acme", Utc::now().timestamp_millis() - 60_000, 1).await;
    // localstripe signs its webhooks with the secret it is given here.
    let hook_id = format!("hr-{}", tenant.id());
    let res = app
        .http
        .post(format!("{ls}_config/webhooks/{hook_id}"))
        .form(&[
            ("url", app.url("/webhooks/stripe")),
            ("secret", WEBHOOK_SECRET.to_owned()),
        ])
        .send()
        .await
        .unwrap();
    assert!(
        res.status().is_success(),
        "localstripe webhook config: {}",
        res.status()
    );
    let s = StripeSettings {
        secret_key: "sk_test_headroom".into(),
        api_base: Some(ls.clone()),
        event_name: "headroom_usage".into(),
    };
    let c = client(&s).unwrap();
    let customer = headroom_jobs::stripe::ensure_customer(&app.db, &c, &tenant)
        .await
        .unwrap();
    assert!(customer.starts_with("cus_"), "{customer}");
    // Idempotent: asking again gives the same customer, created once.
    assert_eq!(
        headroom_jobs::stripe::ensure_customer(&app.db, &c, &tenant)
            .await
            .unwrap(),
        customer
    );
    let seen = |app: &TestApp| {
        let db = app.db.clone();
        async move {
            common::query_i64(
                &db,
                "SELECT COUNT(*) FROM stripe_events WHERE kind = 'customer.created'",
            )
            .await
        }
    };
    let started = Instant::now();
    while seen(&app).await < 1 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "localstripe's webhook never arrived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // localstripe sends each event once per endpoint: other tests' endpoints
    // may add theirs, but this organisation's customer appears once.
    let fetched: Value = app
        .http
        .get(format!("{ls}v1/customers/{customer}"))
        .basic_auth("sk_test_headroom", Some(""))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fetched["metadata"]["headroom_organization_id"], tenant.id());
    app.stop().await;
}
both_backends!(localstripe_peer, localstripe_customers_and_webhooks);
