use leptos::prelude::*;
use serde_json::json;

use super::statement::StatementCard;
use super::{ErrorNote, RequireLogin, choice, field, listing, when};
use crate::api::{BudgetCap, Estimate, Method, Notification, PriceChange, call};
use crate::auth::use_auth;
use crate::live::follow_notifications;

/// Price changes listed (the newest; the API pages further back).
const PRICE_CHANGES_SHOWN: u32 = 50;

#[component]
pub fn BillingPage() -> impl IntoView {
    view! {
        <RequireLogin>
            <Billing />
        </RequireLogin>
    }
}

/// `"1234.5"` → `"1,234.50"`: grouped, two decimals, as sent otherwise.
pub(super) fn money(s: &str) -> String {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let (sign, digits) = int.strip_prefix('-').map_or(("", int), |d| ("-", d));
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let frac: String = frac
        .chars()
        .chain(std::iter::repeat('0'))
        .take(2.max(frac.len()))
        .collect();
    format!("{sign}{grouped}.{frac}")
}

#[component]
fn Billing() -> impl IntoView {
    let auth = use_auth();
    let estimate = RwSignal::new(None::<Estimate>);
    let cap = RwSignal::new(None::<BudgetCap>);
    let notes = RwSignal::new(Vec::<Notification>::new());
    let prices = RwSignal::new(None::<Vec<PriceChange>>);
    let live = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let reload = move || {
        leptos::task::spawn_local(async move {
            // The projection carries the cap it is held against (none: unset).
            match call::<Estimate>(Method::Get, "/billing/estimate", None, None).await {
                Ok(e) => {
                    cap.set(e.budget_cap.clone());
                    estimate.set(Some(e));
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };
    let reload_prices = move || {
        leptos::task::spawn_local(async move {
            let path = format!("/prices/history?limit={PRICE_CHANGES_SHOWN}");
            match call::<Vec<PriceChange>>(Method::Get, &path, None, None).await {
                Ok(list) => prices.set(Some(list)),
                Err(e) => error.set(Some(e)),
            }
        });
    };
    Effect::new(move |_| {
        reload();
        reload_prices();
        leptos::task::spawn_local(async move {
            if let Ok(list) =
                call::<Vec<Notification>>(Method::Get, "/notifications?limit=20", None, None).await
            {
                notes.set(list);
            }
        });
        // New notifications go on top; the figures are read again when one
        // could have changed them.
        follow_notifications(live, move |n| {
            let price = n.kind == "price_change";
            notes.update(|v| {
                if !v.iter().any(|x| x.seq == n.seq) {
                    v.insert(0, n);
                    v.truncate(50);
                }
            });
            reload();
            if price {
                reload_prices();
            }
        });
    });

    let amount = NodeRef::new();
    let action = NodeRef::<leptos::html::Select>::new();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let currency = estimate.with_untracked(|e| e.as_ref().map(|e| e.currency.clone()));
        let body = json!({
            "amount": field(amount),
            "currency": currency.unwrap_or_else(|| "usd".into()),
            "action": choice(action),
        });
        let csrf = auth.csrf();
        leptos::task::spawn_local(async move {
            match call::<BudgetCap>(Method::Put, "/budget-cap", Some(body), csrf.as_deref()).await {
                Ok(c) => {
                    error.set(None);
                    cap.set(Some(c));
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };
    let manager = move || auth.me.with(|m| m.as_ref().is_some_and(|m| m.is_manager()));

    view! {
        <section class="card" data-testid="estimate">
            <h2>"This month"</h2>
            {move || match estimate.get() {
                None => view! { <p class="notice">"Loading…"</p> }.into_any(),
                Some(e) => {
                    let cur = e.currency.to_uppercase();
                    view! {
                        <p class="figure">
                            <span data-testid="expected">{money(&e.expected)}</span> " " {cur.clone()}
                            " expected (" {money(&e.low)} " – " {money(&e.high)} ")"
                        </p>
                        <p class="notice">{format!("{} so far in {}; ", money(&e.actual), e.period)} {e.method.clone()}</p>
                        {if e.lines.is_empty() {
                            view! { <p class="notice" data-testid="estimate-empty">"Nothing priced is used or expected this month."</p> }.into_any()
                        } else {
                            view! {
                                <table data-testid="estimate-lines">
                                    <thead><tr><th>"What"</th><th>"So far"</th><th>"Low"</th><th>"Expected"</th><th>"High"</th></tr></thead>
                                    <tbody>
                                        {e.lines.into_iter().map(|l| view! {
                                            <tr>
                                                <td><code>{l.dimension}</code></td>
                                                <td>{money(&l.actual)}</td>
                                                <td>{money(&l.low)}</td>
                                                <td>{money(&l.expected)}</td>
                                                <td>{money(&l.high)}</td>
                                            </tr>
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            }.into_any()
                        }}
                    }.into_any()
                }
            }}
        </section>
        <StatementCard />
        <section class="card" data-testid="budget">
            <h2>"Budget cap"</h2>
            {move || match cap.get() {
                None => view! { <p data-testid="cap">"No cap: spend is not limited."</p> }.into_any(),
                Some(c) => view! {
                    <p data-testid="cap">
                        {format!("{} {} per month, action: {}", money(&c.amount), c.currency.to_uppercase(), c.action)}
                        {(!c.announced.is_empty()).then(|| format!(" — reached this month: {} %",
                            c.announced.iter().map(u8::to_string).collect::<Vec<_>>().join(", ")))}
                    </p>
                }.into_any(),
            }}
            {move || manager().then(|| view! {
                <form method="post" on:submit=submit data-testid="cap-form">
                    <label>"Monthly cap" <input node_ref=amount name="amount" inputmode="decimal" placeholder="2500.00" required /></label>
                    <label>"When projected spend would pass it"
                        <select node_ref=action name="action">
                            <option value="notify">"notify me"</option>
                            <option value="reduce">"scale up only as far as it allows"</option>
                            <option value="block">"refuse scale-ups"</option>
                        </select>
                    </label>
                    <button type="submit">"Set cap"</button>
                </form>
            })}
            <ErrorNote error />
        </section>
        <section class="card">
            <h2>"Price changes"</h2>
            {listing(prices, || view! {
                    <p class="notice" data-testid="no-price-changes">"No price has changed in the last 90 days."</p>
                }.into_any(), move |list| view! {
                    <table data-testid="price-history">
                        <thead><tr><th>"From"</th><th>"What"</th><th>"Price"</th><th>"Why"</th></tr></thead>
                        <tbody>
                            {list.into_iter().map(|c| view! {
                                <tr>
                                    <td><time datetime=c.at.clone()>{when(&c.at)}</time></td>
                                    <td><code>{c.subject.clone()}</code></td>
                                    <td>{format!("{} → {} {}",
                                        c.old.as_deref().map_or("—".to_owned(), money),
                                        c.new.as_deref().map_or("—".to_owned(), money),
                                        c.currency.to_uppercase())}</td>
                                    <td>{c.reason.clone()}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any())}
        </section>
        <section class="card">
            <h2>"Notifications " <small data-testid="live">{move || if live.get() { "● live" } else { "○ connecting…" }}</small></h2>
            <ul data-testid="notifications">
                <For each=move || notes.get() key=|n| n.seq let:n>
                    <li><time datetime=n.created_at.clone()>{when(&n.created_at)}</time> " " {n.title.clone()}</li>
                </For>
            </ul>
        </section>
    }
}
