//! The admin portal, for the operator's staff (platform role `admin`):
//! organisations with their tier and priority, pricing rules, the forecasting
//! versions with their measured accuracy, and the audit log of every
//! organisation. Everything here goes through the `/admin` API, which checks
//! the role itself; the page only spares others a screen of refusals.

use leptos::prelude::*;
use serde_json::{Value, json};

use super::audit::AuditLog;
use super::{ErrorNote, RequireLogin, choice, field, listing, load_page, number, when};
use crate::api::{AdminOrganization, Method, ModelVersion, PriceRule, PriceRuleCreated, call};
use crate::auth::use_auth;

/// Organisations asked for at a time.
const ORG_PAGE: usize = 100;

/// The query for a page of organisations: the search if any (encoded), after
/// the last one shown if continuing.
fn organizations_path(search: &str, after: Option<&str>) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    let mut path = format!("/admin/organizations?limit={ORG_PAGE}");
    let search = search.trim();
    if !search.is_empty() {
        path.push_str(&format!(
            "&q={}",
            utf8_percent_encode(search, NON_ALPHANUMERIC)
        ));
    }
    if let Some(id) = after {
        path.push_str(&format!(
            "&after={}",
            utf8_percent_encode(id, NON_ALPHANUMERIC)
        ));
    }
    path
}

#[component]
pub fn AdminPage() -> impl IntoView {
    let auth = use_auth();
    let admin = move || {
        auth.me
            .with(|m| m.as_ref().is_some_and(|m| m.is_platform_admin()))
    };
    view! {
        <RequireLogin>
            {move || if admin() {
                view! { <Admin /> }.into_any()
            } else {
                view! {
                    <p class="notice" data-testid="not-admin">
                        "The admin portal is for the operator's platform administrators."
                    </p>
                }.into_any()
            }}
        </RequireLogin>
    }
}

/// What a rule charges or changes, as one phrase.
fn rule_value(r: &PriceRule) -> String {
    match r.kind.as_str() {
        "price" => format!(
            "{} {} per unit",
            r.unit_price.as_deref().unwrap_or("?"),
            r.currency.to_uppercase()
        ),
        "demand_multiplier" => format!(
            "× {} from load {}",
            r.multiplier.as_deref().unwrap_or("?"),
            r.min_load.as_deref().unwrap_or("?")
        ),
        _ => format!("rate {}", r.rate.as_deref().unwrap_or("?")),
    }
}

fn ratio(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), |v| format!("{v:.3}"))
}

/// The add-rule form's fields as typed.
#[derive(Debug, Default)]
struct RuleForm {
    scope: String,
    scope_ref: String,
    kind: String,
    dimension: String,
    amount: String,
    min_load: String,
    currency: String,
    effective_from: String,
}

impl RuleForm {
    /// The request body: the amount goes where the kind takes it; empty
    /// fields are left out for the server's defaults (and its messages about
    /// what is missing).
    fn request(&self) -> Value {
        let mut body = json!({
            "scope": self.scope, "kind": self.kind, "currency": self.currency.trim(),
        });
        let mut put = |key: &str, v: &str| {
            if !v.trim().is_empty() {
                body[key] = Value::from(v.trim());
            }
        };
        put("scope_ref", &self.scope_ref);
        put("dimension", &self.dimension);
        let amount = match self.kind.as_str() {
            "price" => "unit_price",
            "demand_multiplier" => "multiplier",
            _ => "rate",
        };
        put(amount, &self.amount);
        put("min_load", &self.min_load);
        put("effective_from", &self.effective_from);
        body
    }
}

#[component]
fn Admin() -> impl IntoView {
    let auth = use_auth();
    let orgs = RwSignal::new(None::<Vec<AdminOrganization>>);
    let rules = RwSignal::new(None::<Vec<PriceRule>>);
    let models = RwSignal::new(None::<Vec<ModelVersion>>);
    // Bumped to make the audit log read its newest page again.
    let audit_refresh = RwSignal::new(0u32);
    let error = RwSignal::new(None::<String>);
    let added = RwSignal::new(None::<String>);
    let org_search = RwSignal::new(String::new());
    // Whether the last page of organisations was full, so another may follow.
    let more_orgs = RwSignal::new(false);
    let load_orgs = move |more: bool| {
        let after = if more {
            orgs.with_untracked(|l| l.as_ref().and_then(|l| l.last()).map(|o| o.id.clone()))
        } else {
            None
        };
        let path = organizations_path(&org_search.get_untracked(), after.as_deref());
        load_page(orgs, more_orgs, error, path, ORG_PAGE, more);
    };
    // The lists; `changed` also reads the audit log again (the log reads
    // itself when shown), since each change here is audited.
    let reload = move |changed: bool| {
        load_orgs(false);
        leptos::task::spawn_local(async move {
            match call::<Vec<PriceRule>>(Method::Get, "/admin/price-rules", None, None).await {
                Ok(list) => rules.set(Some(list)),
                Err(e) => error.set(Some(e)),
            }
            match call::<Vec<ModelVersion>>(Method::Get, "/admin/models", None, None).await {
                Ok(list) => models.set(Some(list)),
                Err(e) => error.set(Some(e)),
            }
            if changed {
                audit_refresh.update(|n| *n += 1);
            }
        });
    };
    Effect::new(move |_| reload(false));

    let update_org = move |id: String, tier: String, priority: String| {
        let body = json!({ "tier": tier, "priority": number(&priority) });
        let csrf = auth.csrf();
        leptos::task::spawn_local(async move {
            let path = format!("/admin/organizations/{id}");
            match call::<AdminOrganization>(Method::Patch, &path, Some(body), csrf.as_deref()).await
            {
                Ok(_) => {
                    error.set(None);
                    reload(true);
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };

    let end_rule = move |id: String| {
        let csrf = auth.csrf();
        leptos::task::spawn_local(async move {
            let path = format!("/admin/price-rules/{id}/end");
            match call::<PriceRule>(Method::Post, &path, Some(json!({})), csrf.as_deref()).await {
                Ok(_) => {
                    error.set(None);
                    reload(true);
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };

    let (scope_ref, dimension, amount, min_load, currency, from) = (
        NodeRef::new(),
        NodeRef::new(),
        NodeRef::new(),
        NodeRef::new(),
        NodeRef::new(),
        NodeRef::new(),
    );
    let scope = NodeRef::<leptos::html::Select>::new();
    let kind = NodeRef::<leptos::html::Select>::new();
    let add_rule = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let body = RuleForm {
            scope: choice(scope),
            scope_ref: field(scope_ref),
            kind: choice(kind),
            dimension: field(dimension),
            amount: field(amount),
            min_load: field(min_load),
            currency: field(currency),
            effective_from: field(from),
        }
        .request();
        let csrf = auth.csrf();
        leptos::task::spawn_local(async move {
            match call::<PriceRuleCreated>(
                Method::Post,
                "/admin/price-rules",
                Some(body),
                csrf.as_deref(),
            )
            .await
            {
                Ok(c) => {
                    error.set(None);
                    added.set(Some(format!(
                        "Rule added from {}: {} organisation(s) told of a price change.",
                        when(&c.rule.effective_from),
                        c.price_changes
                    )));
                    reload(true);
                }
                Err(e) => {
                    added.set(None);
                    error.set(Some(e));
                }
            }
        });
    };

    view! {
        <ErrorNote error />
        <section class="card" data-testid="admin-organizations">
            <h2>"Organisations"</h2>
            <form class="filters" data-testid="org-search" on:submit=move |ev: leptos::ev::SubmitEvent| {
                ev.prevent_default();
                load_orgs(false);
            }>
                <label>"Name or id"
                    <input name="q" type="search" placeholder="every organisation"
                        on:input=move |ev| org_search.set(event_target_value(&ev)) />
                </label>
                <button type="submit">"Search"</button>
            </form>
            {listing(orgs, || view! {
                    <p class="notice">"No organisation matches."</p>
                }.into_any(), move |list| view! {
                    <table>
                        <thead><tr><th>"Name"</th><th>"Billed in"</th><th>"Since"</th><th>"Tier and priority"</th></tr></thead>
                        <tbody>
                            {list.into_iter().map(|o| {
                                let tier = NodeRef::<leptos::html::Select>::new();
                                let priority = NodeRef::<leptos::html::Input>::new();
                                let id = o.id.clone();
                                let save = move |ev: leptos::ev::SubmitEvent| {
                                    ev.prevent_default();
                                    let t = choice(tier);
                                    update_org(id.clone(), t, field(priority));
                                };
                                let option = |value: &'static str, current: &str| {
                                    let selected = value == current;
                                    view! { <option value=value selected=selected>{value}</option> }
                                };
                                view! {
                                    <tr data-org=o.id.clone()>
                                        <td>{o.name.clone()} <br /> <code>{o.id.clone()}</code></td>
                                        <td>{o.currency.to_uppercase()}</td>
                                        <td><time datetime=o.created_at.clone()>{when(&o.created_at)}</time></td>
                                        <td>
                                            <form method="post" class="row" on:submit=save>
                                                <select node_ref=tier name="tier" aria-label="tier">
                                                    {option("standard", &o.tier)}
                                                    {option("premium", &o.tier)}
                                                    {option("guaranteed", &o.tier)}
                                                </select>
                                                <input node_ref=priority name="priority" inputmode="numeric"
                                                    aria-label="priority" value=o.priority.to_string() size="4" />
                                                <button type="submit" class="secondary">"Save"</button>
                                            </form>
                                        </td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any())}
            {move || more_orgs.get().then(|| view! {
                <button class="secondary" on:click=move |_| load_orgs(true)>"More organisations"</button>
            })}
        </section>
        <section class="card" data-testid="admin-rules">
            <h2>"Pricing rules"</h2>
            <p class="notice">
                "Rules are never edited: a rule is ended and another added. Each takes effect on a "
                "whole hour, never before the next one, so rated hours keep their prices; every "
                "organisation whose price it changes is told."
            </p>
            {listing(rules, || view! {
                    <p class="notice" data-testid="no-rules">"No pricing rule yet: nothing is rated."</p>
                }.into_any(), move |list| view! {
                    <table data-testid="rule-table">
                        <thead><tr><th>"Applies to"</th><th>"Rule"</th><th>"Value"</th><th>"In force"</th><th></th></tr></thead>
                        <tbody>
                            {list.into_iter().map(|r| {
                                let id = r.id.clone();
                                let open = r.effective_to.is_none();
                                view! {
                                    <tr data-rule=r.id.clone()>
                                        <td>{r.scope.clone()} {r.scope_ref.clone().map(|s| format!(" {s}"))}</td>
                                        <td>{r.kind.replace('_', " ")} {r.dimension.clone().map(|d| view! { " " <code>{d}</code> })}</td>
                                        <td>{rule_value(&r)}</td>
                                        <td>{format!("from {}", when(&r.effective_from))}
                                            {r.effective_to.as_deref().map(|t| format!(" to {}", when(t)))}</td>
                                        <td>{open.then(|| view! {
                                            <button class="secondary" on:click=move |_| end_rule(id.clone())>"End"</button>
                                        })}</td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any())}
        </section>
        <section class="card narrow">
            <h2>"Add a pricing rule"</h2>
            <form method="post" on:submit=add_rule data-testid="rule-form">
                <label>"Applies to"
                    <select node_ref=scope name="scope">
                        <option value="default">"everyone (default)"</option>
                        <option value="tier">"a tier"</option>
                        <option value="organization">"one organisation"</option>
                    </select>
                </label>
                <label>"Tier or organisation id" <input node_ref=scope_ref name="scope_ref" placeholder="premium" /></label>
                <label>"Kind"
                    <select node_ref=kind name="kind">
                        <option value="price">"price per unit"</option>
                        <option value="tier_premium">"tier premium (share added to capacity)"</option>
                        <option value="sla_credit">"SLA credit (share credited)"</option>
                        <option value="profile_discount">"profile discount"</option>
                        <option value="demand_multiplier">"demand multiplier"</option>
                    </select>
                </label>
                <label>"Dimension (prices)" <input node_ref=dimension name="dimension" placeholder="resource:instance" /></label>
                <label>"Unit price, rate or multiplier" <input node_ref=amount name="amount" inputmode="decimal" required placeholder="0.042" /></label>
                <label>"From platform load (demand multiplier)" <input node_ref=min_load name="min_load" inputmode="decimal" placeholder="0.8" /></label>
                <label>"Currency" <input node_ref=currency name="currency" required value="usd" /></label>
                <label>"From (RFC 3339, a whole hour; empty: the next one)" <input node_ref=from name="effective_from" placeholder="2027-01-01T00:00:00Z" /></label>
                <button type="submit">"Add rule"</button>
            </form>
            {move || added.get().map(|a| view! { <p class="notice" data-testid="rule-added">{a}</p> })}
        </section>
        <section class="card" data-testid="admin-models">
            <h2>"Forecasting versions"</h2>
            <p class="notice">
                "MASE is the error against the seasonal-naive forecast's (below 1 is better than it); "
                "coverage is the share of actual values inside the p10–p90 interval (0.8 is calibrated)."
            </p>
            {listing(models, || view! {
                    <p class="notice">"No version scored yet."</p>
                }.into_any(), move |list| view! {
                    <table>
                        <thead><tr><th>"Horizon"</th><th>"Version"</th><th>"Status"</th><th>"MASE"</th>
                            <th>"Coverage"</th><th>"Recent MASE"</th><th>"Scored"</th></tr></thead>
                        <tbody>
                            {list.into_iter().map(|m| view! {
                                <tr>
                                    <td>{m.horizon.clone()}</td>
                                    <td><code>{m.version.clone()}</code></td>
                                    <td>{m.status.clone()}</td>
                                    <td>{ratio(m.mase)}</td>
                                    <td>{ratio(m.coverage)}</td>
                                    <td>{ratio(m.recent_mase)}</td>
                                    <td><time datetime=m.scored_at.clone()>{when(&m.scored_at)}</time>
                                        {format!(" ({} series, {} steps)", m.series, m.steps)}
                                        {m.note.clone().map(|n| view! { <br /> <small>{n}</small> })}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any())}
        </section>
        <AuditLog base="/admin/audit" platform=true refresh=audit_refresh title="Audit log" />
    }
}

#[cfg(test)]
mod tests {
    use super::RuleForm;

    #[test]
    fn an_organisation_page_asks_for_the_search_encoded_and_continues_after_the_last() {
        assert_eq!(
            super::organizations_path(" ", None),
            "/admin/organizations?limit=100"
        );
        assert_eq!(
            super::organizations_path("100% Acme", Some("o-1")),
            "/admin/organizations?limit=100&q=100%25%20Acme&after=o%2D1"
        );
    }

    #[test]
    fn the_amount_goes_where_the_kind_takes_it_and_empty_fields_stay_out() {
        let form = |kind: &str| RuleForm {
            scope: "default".into(),
            scope_ref: " ".into(),
            kind: kind.into(),
            amount: "0.05".into(),
            currency: "usd ".into(),
            ..RuleForm::default()
        };
        let price = RuleForm {
            dimension: "resource:instance".into(),
            ..form("price")
        };
        assert_eq!(
            price.request(),
            serde_json::json!({ "scope": "default", "kind": "price", "currency": "usd",
                "dimension": "resource:instance", "unit_price": "0.05" })
        );
        let premium = RuleForm {
            scope: "tier".into(),
            scope_ref: "premium".into(),
            ..form("tier_premium")
        }
        .request();
        assert_eq!(premium["rate"], "0.05");
        assert_eq!(premium["scope_ref"], "premium");
        let demand = RuleForm {
            min_load: "0.8".into(),
            effective_from: "2030-01-01T00:00:00Z".into(),
            ..form("demand_multiplier")
        }
        .request();
        assert_eq!(demand["multiplier"], "0.05");
        assert_eq!(demand["min_load"], "0.8");
        assert_eq!(demand["effective_from"], "2030-01-01T00:00:00Z");
        assert!(demand.get("rate").is_none());
        assert!(demand.get("scope_ref").is_none());
    }
}
