//! `POST /webhooks/stripe`: events from Stripe. The signature is checked
//! (`Stripe-Signature`, five minutes' tolerance) before anything is read, each
//! event id is processed once (Stripe retries, and an attacker may replay a
//! captured request), and invoice events reach the organisation as
//! notifications.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use headroom_store::Tenant;
use headroom_store::billing::NewNotification;
use serde_json::{Value, json};
use stripe_webhook::{Webhook, WebhookError};

use crate::api::error::{ApiError, ApiResult};
use crate::http::AppState;

/// Invoice events worth telling the customer about, and how.
fn invoice_note(kind: &str, object: &Value) -> Option<NewNotification> {
    let title = match kind {
        "invoice.paid" => "Invoice paid",
        "invoice.payment_failed" => "Invoice payment failed",
        "invoice.finalized" => "Invoice finalised",
        _ => return None,
    };
    Some(NewNotification {
        kind: "billing_event",
        title: title.to_owned(),
        body: json!({
            "stripe_event": kind,
            "invoice": object.get("id"),
            "amount_due": object.get("amount_due"),
            "amount_paid": object.get("amount_paid"),
            "currency": object.get("currency"),
            "hosted_invoice_url": object.get("hosted_invoice_url"),
        }),
    })
}

pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Some(secret) = state.stripe_webhook_secret.as_deref() else {
        return Err(ApiError::not_found(
            "Stripe webhook endpoint (HEADROOM_STRIPE_WEBHOOK_SECRET is not set)",
        ));
    };
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::bad_request("missing Stripe-Signature header"))?;
    let payload =
        std::str::from_utf8(&body).map_err(|_| ApiError::bad_request("body is not UTF-8"))?;
    let raw: Value =
        serde_json::from_str(payload).map_err(|_| ApiError::bad_request("body is not JSON"))?;
    let (id, kind, created) = match Webhook::construct_event(payload, signature, secret) {
        Ok(e) => (
            e.id.as_str().to_owned(),
            e.type_.as_str().to_owned(),
            e.created,
        ),
        // The signature and timestamp were checked before parsing: this build
        // just does not model the event's object type. Read it as JSON.
        Err(WebhookError::BadParse(_)) => (
            raw["id"].as_str().unwrap_or_default().to_owned(),
            raw["type"].as_str().unwrap_or_default().to_owned(),
            raw["created"].as_i64().unwrap_or_default(),
        ),
        Err(e) => return Err(ApiError::bad_request(format!("rejected: {e}"))),
    };
    if id.is_empty() || kind.is_empty() {
        return Err(ApiError::bad_request("the event has no id or type"));
    }
    let now = chrono::Utc::now().timestamp_millis();
    let object = &raw["data"]["object"];
    let customer = object["customer"].as_str().or_else(|| {
        (object["object"] == "customer")
            .then(|| object["id"].as_str())
            .flatten()
    });
    let org = match customer {
        Some(c) => state.db.organization_by_stripe_customer(c).await?,
        None => None,
    };
    let tenant = org.clone().map(Tenant::new);
    let note = invoice_note(&kind, object);
    let told = tenant.as_ref().zip(note.as_ref());
    if !state
        .db
        .remember_stripe_event(&id, &kind, created, told, now)
        .await?
    {
        return Ok((
            StatusCode::OK,
            Json(json!({ "received": true, "duplicate": true })),
        ));
    }
    tracing::info!(
        event = id,
        kind,
        told = told.is_some(),
        "Stripe event recorded"
    );
    Ok((
        StatusCode::OK,
        Json(json!({ "received": true, "organization": org.is_some() })),
    ))
}
