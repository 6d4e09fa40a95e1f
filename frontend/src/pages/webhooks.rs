//! Signed webhooks to the organisation's billing systems: endpoints with
//! their signing secrets (shown once, when made or rotated), and each
//! endpoint's deliveries with their attempts, replayable.

use leptos::prelude::*;
use serde_json::{Value, json};

use super::{ErrorNote, RequireLogin, field, listing, when};
use crate::api::{Delivery, Method, WebhookEndpoint, WebhookEndpointWithSecret, call};
use crate::auth::use_auth;

/// Deliveries shown per endpoint, newest first.
const DELIVERIES_SHOWN: u32 = 20;

/// The event types an endpoint may subscribe to (none ticked: all).
const EVENT_TYPES: [(&str, &str); 3] = [
    ("price_change", "price changes"),
    ("budget_threshold", "budget thresholds"),
    ("allocation_decision", "allocation decisions"),
];

#[component]
pub fn WebhooksPage() -> impl IntoView {
    view! {
        <RequireLogin>
            <Webhooks />
        </RequireLogin>
    }
}

#[component]
fn Webhooks() -> impl IntoView {
    let auth = use_auth();
    let manager = move || auth.me.with(|m| m.as_ref().is_some_and(|m| m.is_manager()));
    let endpoints = RwSignal::new(None::<Vec<WebhookEndpoint>>);
    let secret = RwSignal::new(None::<(String, String)>);
    let shown = RwSignal::new(None::<(String, Vec<Delivery>)>);
    let error = RwSignal::new(None::<String>);
    let reload = move || {
        leptos::task::spawn_local(async move {
            match call::<Vec<WebhookEndpoint>>(Method::Get, "/webhook-endpoints", None, None).await
            {
                Ok(list) => endpoints.set(Some(list)),
                Err(e) => error.set(Some(e)),
            }
        });
    };
    Effect::new(move |_| reload());

    let deliveries = move |id: String| {
        leptos::task::spawn_local(async move {
            let path = format!("/webhook-endpoints/{id}/deliveries?limit={DELIVERIES_SHOWN}");
            match call::<Vec<Delivery>>(Method::Get, &path, None, None).await {
                Ok(list) => shown.set(Some((id, list))),
                Err(e) => error.set(Some(e)),
            }
        });
    };
    let (url, description) = (
        NodeRef::<leptos::html::Input>::new(),
        NodeRef::<leptos::html::Input>::new(),
    );
    // Sends a change; a new secret (creation, rotation) is shown once, and
    // with `clear_form` (a new endpoint) the form is emptied once it is taken.
    let send = move |method: Method, path: String, body: Option<Value>, clear_form: bool| {
        let csrf = auth.csrf();
        leptos::task::spawn_local(async move {
            match call::<Value>(method, &path, body, csrf.as_deref()).await {
                Ok(answer) => {
                    error.set(None);
                    if let Ok(made) = serde_json::from_value::<WebhookEndpointWithSecret>(answer) {
                        secret.set(Some((made.endpoint.url, made.secret)));
                    }
                    if clear_form {
                        for node in [url, description] {
                            if let Some(i) = node.get_untracked() {
                                i.set_value("");
                            }
                        }
                    }
                    reload();
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };

    let ticks: Vec<(&'static str, NodeRef<leptos::html::Input>)> = EVENT_TYPES
        .iter()
        .map(|(t, _)| (*t, NodeRef::new()))
        .collect();
    let ticked = ticks.clone();
    let add = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let types: Vec<&str> = ticked
            .iter()
            .filter(|(_, n)| n.get_untracked().is_some_and(|i| i.checked()))
            .map(|(t, _)| *t)
            .collect();
        let mut body = json!({ "url": field(url).trim(), "event_types": types });
        let d = field(description);
        if !d.trim().is_empty() {
            body["description"] = Value::from(d.trim());
        }
        send(Method::Post, "/webhook-endpoints".into(), Some(body), true);
    };

    view! {
        <ErrorNote error />
        {move || secret.get().map(|(to, s)| view! {
            <div class="secret" data-testid="webhook-secret">
                <p>"Signing secret for " <code>{to}</code> ", shown once: verify each delivery's "
                    <code>"webhook-signature"</code> " with it (Standard Webhooks)."</p>
                <code data-testid="webhook-secret-value">{s}</code>
            </div>
        })}
        <section class="card" data-testid="webhook-endpoints">
            <h2>"Webhook endpoints"</h2>
            <p class="notice">
                "Price changes, budget thresholds and allocation decisions are posted to these "
                "URLs, signed, and retried with backoff until they are taken; an endpoint failing "
                "for days is disabled until enabled again."
            </p>
            {listing(endpoints, || view! {
                    <p class="notice" data-testid="no-endpoints">"No endpoint yet."</p>
                }.into_any(), move |list| view! {
                    <table data-testid="endpoint-table">
                        <thead><tr><th>"URL"</th><th>"Events"</th><th>"Status"</th><th></th></tr></thead>
                        <tbody>
                            {list.into_iter().map(|e| {
                                let (id1, id2, id3, id4) = (e.id.clone(), e.id.clone(), e.id.clone(), e.id.clone());
                                let disabled = e.status == "disabled";
                                let status = match (&e.disabled_reason, &e.failing_since) {
                                    (Some(r), _) => format!("{}: {r}", e.status),
                                    (None, Some(t)) => format!("{}, failing since {}", e.status, when(t)),
                                    _ => e.status.clone(),
                                };
                                view! {
                                    <tr data-endpoint=e.id.clone()>
                                        <td><code>{e.url.clone()}</code> {e.description.clone().map(|d| view! { <br /> <small>{d}</small> })}</td>
                                        <td>{if e.event_types.is_empty() { "all".to_owned() } else { e.event_types.join(", ") }}</td>
                                        <td>{status}
                                            {e.previous_secret_until.as_deref().map(|t| format!(" (previous secret signs until {})", when(t)))}</td>
                                        <td class="actions">
                                            <button class="secondary" on:click=move |_| deliveries(id1.clone())>"Deliveries"</button>
                                            {move || manager().then(|| {
                                                let (rotate, enable, delete) = (id2.clone(), id3.clone(), id4.clone());
                                                view! {
                                                    <button class="secondary" data-testid="rotate"
                                                        on:click=move |_| send(Method::Post, format!("/webhook-endpoints/{rotate}/rotate-secret"), Some(json!({})), false)>"Rotate secret"</button>
                                                    {disabled.then(|| view! {
                                                        <button class="secondary"
                                                            on:click=move |_| send(Method::Post, format!("/webhook-endpoints/{enable}/enable"), Some(json!({})), false)>"Enable"</button>
                                                    })}
                                                    <button class="secondary" data-testid="delete"
                                                        on:click=move |_| send(Method::Delete, format!("/webhook-endpoints/{delete}"), None, false)>"Delete"</button>
                                                }
                                            })}
                                        </td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any())}
        </section>
        {move || shown.get().map(|(id, list)| view! {
            <section class="card" data-testid="deliveries">
                <h2>"Deliveries to " <code>{endpoints.with(|l| l.as_ref()
                    .and_then(|l| l.iter().find(|e| e.id == id).map(|e| e.url.clone()))
                    .unwrap_or_default())}</code></h2>
                {list.is_empty().then(|| view! { <p class="notice" data-testid="no-deliveries">"Nothing sent yet."</p> })}
                <table>
                    <tbody>
                        {list.into_iter().map(|d| {
                            let replay = d.id.clone();
                            let last = d.attempts.last().map(|a| match (a.status_code, &a.error) {
                                (Some(code), _) => format!("HTTP {code} in {} ms", a.duration_ms),
                                (None, Some(e)) => e.clone(),
                                (None, None) => String::new(),
                            });
                            view! {
                                <tr>
                                    <td><time datetime=d.created_at.clone()>{when(&d.created_at)}</time></td>
                                    <td>{d.event_type.clone()}</td>
                                    <td>{format!("{} after {} attempt(s)", d.status, d.attempts.len())}
                                        {last.map(|l| view! { <br /> <small>{l}</small> })}</td>
                                    <td>{move || manager().then(|| {
                                        let replay = replay.clone();
                                        view! {
                                            <button class="secondary"
                                                on:click=move |_| send(Method::Post, format!("/webhook-deliveries/{replay}/replay"), Some(json!({})), false)>"Send again"</button>
                                        }
                                    })}</td>
                                </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table>
            </section>
        })}
        {move || manager().then(|| {
            let ticks = ticks.clone();
            view! {
                <section class="card narrow">
                    <h2>"Add an endpoint"</h2>
                    <form method="post" on:submit=add.clone() data-testid="endpoint-form">
                        <label>"URL" <input node_ref=url name="url" required placeholder="https://billing.example.com/headroom" /></label>
                        <label>"Description (optional)" <input node_ref=description name="description" /></label>
                        <fieldset>
                            <legend>"Events (none ticked: all)"</legend>
                            {ticks.into_iter().zip(EVENT_TYPES).map(|((t, node), (_, what))| view! {
                                <label class="inline"><input type="checkbox" node_ref=node value=t name=t /> {what}</label>
                            }).collect_view()}
                        </fieldset>
                        <button type="submit">"Add endpoint"</button>
                    </form>
                </section>
            }
        })}
    }
}
