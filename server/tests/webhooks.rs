//! Outgoing webhooks end to end, on SQLite and PostgreSQL, against a real
//! receiver on loopback: Standard Webhooks signatures, event filters, retries
//! while the receiver is down (nothing lost), the delivery log, secret
//! rotation, replay, 410 Gone and persistent failure disabling the endpoint.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::{Backend, Browser, Options, TestApp, expect_error};
use headroom_core::webhooks::verify;
use headroom_store::Tenant;
use headroom_store::billing::NewNotification;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";
const HOUR_MS: i64 = 3_600_000;

/// (webhook-id, timestamp, signature, body) of one request.
type Received = (String, i64, String, Vec<u8>);

#[derive(Clone, Default)]
struct Receiver {
    /// The status to answer with.
    status: Arc<Mutex<u16>>,
    got: Arc<Mutex<Vec<Received>>>,
}

async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let h = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    r.got.lock().unwrap().push((
        h("webhook-id"),
        h("webhook-timestamp").parse().unwrap_or(0),
        h("webhook-signature"),
        body.to_vec(),
    ));
    StatusCode::from_u16(*r.status.lock().unwrap()).unwrap()
}

async fn receiver() -> (Receiver, String) {
    let r = Receiver::default();
    *r.status.lock().unwrap() = 503;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/hook", post(hook))
        .with_state(r.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (r, url)
}

async fn spawn(backend: Backend) -> Option<TestApp> {
    TestApp::spawn_with(
        backend,
        Options {
            env: vec![("HEADROOM_WEBHOOKS_ALLOW_PRIVATE", "true".into())],
            ..Options::default()
        },
    )
    .await
}

fn note(kind: &'static str, n: u32) -> NewNotification {
    NewNotification {
        kind,
        title: format!("{kind} {n}"),
        body: json!({ "n": n }),
    }
}

async fn tick(app: &TestApp, now_ms: i64) -> (usize, usize) {
    headroom_jobs::webhooks::deliver_due(&app.db, &headroom_jobs::webhooks::client(), now_ms)
        .await
        .unwrap()
}

async fn deliveries_are_signed_retried_logged_and_replayed(backend: Backend) {
    let Some(app) = spawn(backend).await else {
        return;
    };
    let (rx, url) = receiver().await;
    let mut owner = Browser::new(&app);
    let info = owner.signup("Acme", "owner@acme.example", PASSWORD).await;
    let tenant = Tenant::new(info["organization"]["id"].as_str().unwrap());

    for (body, needle) in [
        (json!({ "url": "ftp://x.example/" }), "url"),
        (
            json!({ "url": url, "event_types": ["invoice_paid"] }),
            "event type",
        ),
        (json!({ "url": url, "secret": "mine" }), "unknown field"),
    ] {
        let msg = expect_error(owner.post("/api/v1/webhook-endpoints", body).await, 422).await;
        assert!(msg.contains(needle), "{msg}");
    }
    let res = owner
        .post(
            "/api/v1/webhook-endpoints",
            json!({ "url": url, "event_types": ["budget_threshold"] }),
        )
        .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let id = created["endpoint"]["id"].as_str().unwrap().to_owned();
    // Listing never shows the secret again.
    let listed = owner
        .get("/api/v1/webhook-endpoints")
        .await
        .text()
        .await
        .unwrap();
    assert!(!listed.contains(&secret));

    // Two events: only the subscribed type is queued.
    let t0 = chrono::Utc::now().timestamp_millis();
    app.db
        .notify(&tenant, &note("price_change", 1), t0)
        .await
        .unwrap();
    app.db
        .notify(&tenant, &note("budget_threshold", 2), t0)
        .await
        .unwrap();

    // The receiver is down: the attempt fails and the message waits.
    assert_eq!(tick(&app, t0).await, (1, 0));
    assert_eq!(
        tick(&app, t0 + 1000).await,
        (0, 0),
        "not due again before its retry"
    );
    // Back up: the retry delivers it, once.
    *rx.status.lock().unwrap() = 204;
    assert_eq!(tick(&app, t0 + 6000).await, (1, 1));
    assert_eq!(tick(&app, t0 + 3 * HOUR_MS).await, (0, 0));
    {
        let got = rx.got.lock().unwrap();
        assert_eq!(got.len(), 2);
        let (mid, ts, sig, body) = &got[1];
        assert_eq!(mid, &got[0].0, "the same webhook-id on every attempt");
        assert!(
            verify(&secret, mid, *ts, body, sig, *ts, 300),
            "signature {sig}"
        );
        let payload: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(payload["type"], "budget_threshold");
        assert_eq!(payload["data"]["details"]["n"], 2);
    }
    let log: Value = owner
        .get(&format!("/api/v1/webhook-endpoints/{id}/deliveries"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(log.as_array().unwrap().len(), 1);
    assert_eq!(log[0]["status"], "delivered");
    let codes: Vec<Value> = log[0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].clone())
        .collect();
    assert_eq!(codes, vec![json!(503), json!(204)]);
    let msg_id = log[0]["id"].as_str().unwrap().to_owned();

    // Rotation: the next message is signed with the new and the old secret.
    let rotated: Value = owner
        .post(
            &format!("/api/v1/webhook-endpoints/{id}/rotate-secret"),
            json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    // Replay: the same message id goes out again.
    let res = owner
        .post(
            &format!("/api/v1/webhook-deliveries/{msg_id}/replay"),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 202);
    expect_error(
        owner
            .post("/api/v1/webhook-deliveries/msg_nope/replay", json!({}))
            .await,
        404,
    )
    .await;
    let t1 = chrono::Utc::now().timestamp_millis();
    assert_eq!(tick(&app, t1).await, (1, 1));
    {
        let got = rx.got.lock().unwrap();
        let (mid, ts, sig, body) = got.last().unwrap();
        assert_eq!(mid, &msg_id);
        assert!(verify(&new_secret, mid, *ts, body, sig, *ts, 300));
        assert!(verify(&secret, mid, *ts, body, sig, *ts, 300));
    }

    // 410 Gone: the endpoint is disabled and says why.
    *rx.status.lock().unwrap() = 410;
    app.db
        .notify(&tenant, &note("budget_threshold", 3), t1)
        .await
        .unwrap();
    assert_eq!(tick(&app, t1).await, (1, 0));
    let eps: Value = owner
        .get("/api/v1/webhook-endpoints")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(eps[0]["status"], "disabled");
    assert!(eps[0]["disabled_reason"].as_str().unwrap().contains("410"));
    // Enabling it again works; the log kept everything.
    *rx.status.lock().unwrap() = 204;
    let en: Value = owner
        .post(&format!("/api/v1/webhook-endpoints/{id}/enable"), json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(en["status"], "active");

    // Another organisation cannot see or touch any of it.
    let mut other = Browser::new(&app);
    other
        .signup("Globex", "owner@globex.example", PASSWORD)
        .await;
    expect_error(
        other
            .get(&format!("/api/v1/webhook-endpoints/{id}/deliveries"))
            .await,
        404,
    )
    .await;
    expect_error(
        other
            .post(
                &format!("/api/v1/webhook-deliveries/{msg_id}/replay"),
                json!({}),
            )
            .await,
        404,
    )
    .await;
    expect_error(
        other
            .delete(&format!("/api/v1/webhook-endpoints/{id}"))
            .await,
        404,
    )
    .await;
    assert_eq!(
        owner
            .delete(&format!("/api/v1/webhook-endpoints/{id}"))
            .await
            .status(),
        204
    );

    // Each change to where the organisation's billing events go, and each
    // resend, is in its audit log, by whom; the other organisation's refused
    // attempts changed nothing and are not.
    let audit: Value = owner
        .get("/api/v1/audit?limit=1000")
        .await
        .json()
        .await
        .unwrap();
    let ours: Vec<(&str, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("webhook_"))
        .map(|e| {
            assert_eq!(e["actor_email"], "owner@acme.example", "{e}");
            (e["action"].as_str().unwrap(), e["target"].as_str().unwrap())
        })
        .collect();
    let id = id.as_str();
    let msg = msg_id.as_str();
    assert_eq!(
        ours.iter()
            .rev()
            .filter(|(_, t)| *t == id)
            .map(|(a, _)| *a)
            .collect::<Vec<_>>(),
        [
            "webhook_endpoint_created",
            "webhook_secret_rotated",
            "webhook_endpoint_enabled",
            "webhook_endpoint_deleted"
        ],
        "{audit}"
    );
    assert!(
        ours.iter()
            .filter(|(a, t)| *a == "webhook_delivery_replayed" && *t == msg)
            .count()
            >= 1,
        "{audit}"
    );
    app.stop().await;
}
both_backends!(
    deliveries,
    deliveries_are_signed_retried_logged_and_replayed
);

async fn persistent_failure_gives_up_after_a_day(backend: Backend) {
    let Some(app) = spawn(backend).await else {
        return;
    };
    let (rx, url) = receiver().await;
    let mut owner = Browser::new(&app);
    let info = owner.signup("Acme", "owner@acme.example", PASSWORD).await;
    let tenant = Tenant::new(info["organization"]["id"].as_str().unwrap());
    let created: Value = owner
        .post("/api/v1/webhook-endpoints", json!({ "url": url }))
        .await
        .json()
        .await
        .unwrap();
    let id = created["endpoint"]["id"].as_str().unwrap().to_owned();
    let t0 = chrono::Utc::now().timestamp_millis();
    app.db
        .notify(&tenant, &note("allocation_decision", 1), t0)
        .await
        .unwrap();
    // Ticking every 5 minutes of simulated time for two days, receiver down.
    let mut attempts = 0;
    let mut t = t0;
    while t < t0 + 48 * HOUR_MS {
        attempts += tick(&app, t).await.0;
        t += 5 * 60_000;
    }
    assert_eq!(
        attempts,
        1 + headroom_core::webhooks::RETRY_DELAYS_SECS.len()
    );
    let log: Value = owner
        .get(&format!("/api/v1/webhook-endpoints/{id}/deliveries"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(log[0]["status"], "failed");
    assert_eq!(log[0]["attempts"].as_array().unwrap().len(), attempts);
    let eps: Value = owner
        .get("/api/v1/webhook-endpoints")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(eps[0]["status"], "disabled", "{eps}");
    let per_id: HashMap<String, usize> =
        rx.got
            .lock()
            .unwrap()
            .iter()
            .fold(HashMap::new(), |mut m, g| {
                *m.entry(g.0.clone()).or_default() += 1;
                m
            });
    assert_eq!(per_id.len(), 1);
    app.stop().await;
}
both_backends!(give_up, persistent_failure_gives_up_after_a_day);
