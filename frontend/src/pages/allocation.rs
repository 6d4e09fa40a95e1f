use leptos::prelude::*;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use super::{ErrorNote, RequireLogin, choice, field, listing, load_page, number, when};
use crate::api::{Allocation, Decision, Method, call};
use crate::auth::use_auth;
use crate::live::refresh_every;

/// Decisions shown in the log.
const LOG_LIMIT: u32 = 50;
/// Workloads shown (the API pages by name; the page shows the first ones).
const WORKLOAD_LIMIT: u32 = 200;
/// How often the page reads workloads and decisions again while shown.
const REFRESH_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

#[component]
pub fn AllocationPage() -> impl IntoView {
    view! {
        <RequireLogin>
            <Allocations />
        </RequireLogin>
    }
}

/// `"ticks_scored, of which under-provisioned"` as a share, or a dash.
fn under_share(a: &Allocation) -> String {
    if a.ticks_scored == 0 {
        return "—".into();
    }
    let pct = a.ticks_under_provisioned as f64 * 100.0 / a.ticks_scored as f64;
    format!(
        "{} of {} ({pct:.1} %)",
        a.ticks_under_provisioned, a.ticks_scored
    )
}

/// A measured or configured quantity, to about four significant digits
/// (`6.840000000000001` → `6.84`, `0.25839999999999996` → `0.2584`).
fn num(v: f64) -> String {
    let s = if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// `reason_with_underscores` → `reason with underscores`.
fn words(s: &str) -> String {
    s.replace('_', " ")
}

fn fleet(d: &Decision) -> String {
    let warm = if d.warm > 0 {
        format!(" (+{} warm)", d.warm)
    } else {
        String::new()
    };
    if d.before == d.after {
        format!("{}{warm}", d.after)
    } else {
        format!("{} → {}{warm}", d.before, d.after)
    }
}

/// The settings form's fields: read into a PUT body, or filled from a
/// workload's settings to change them (a PUT replaces them all).
#[derive(Clone, Copy, Default)]
struct SettingsForm {
    workload: NodeRef<leptos::html::Input>,
    metric: NodeRef<leptos::html::Input>,
    units: NodeRef<leptos::html::Input>,
    mode: NodeRef<leptos::html::Select>,
    min: NodeRef<leptos::html::Input>,
    max: NodeRef<leptos::html::Input>,
    target: NodeRef<leptos::html::Input>,
    priority: NodeRef<leptos::html::Input>,
    instances: NodeRef<leptos::html::Input>,
    provider: NodeRef<leptos::html::Select>,
    provider_ref: NodeRef<leptos::html::Input>,
    memory: NodeRef<leptos::html::Input>,
    network: NodeRef<leptos::html::Input>,
    instance_type: NodeRef<leptos::html::Input>,
    allow_spot: NodeRef<leptos::html::Input>,
    on_demand: NodeRef<leptos::html::Input>,
    readiness: NodeRef<leptos::html::Input>,
}

impl SettingsForm {
    fn body(&self) -> Value {
        let mut body = json!({
            "metric": field(self.metric),
            "units_per_instance": number(&field(self.units)),
            "mode": choice(self.mode),
            "min_instances": number(&field(self.min)),
            "max_instances": number(&field(self.max)),
            "target": number(&field(self.target)),
            "priority": number(&field(self.priority)),
            "provider": choice(self.provider),
            "allow_spot": self.allow_spot.get_untracked().is_some_and(|c| c.checked()),
        });
        // Optional fields: left out when empty.
        for (key, node, numeric) in [
            ("instances", self.instances, true),
            ("provider_ref", self.provider_ref, false),
            ("memory_mib_per_instance", self.memory, true),
            ("network_mbit_per_instance", self.network, true),
            ("instance_type", self.instance_type, false),
            ("on_demand_usd_per_hour", self.on_demand, true),
            ("readiness_event", self.readiness, false),
        ] {
            let v = field(node);
            if !v.trim().is_empty() {
                body[key] = if numeric {
                    number(&v)
                } else {
                    Value::from(v.trim())
                };
            }
        }
        body
    }

    fn fill(&self, a: &Allocation) {
        let set = |node: NodeRef<leptos::html::Input>, v: String| {
            if let Some(i) = node.get_untracked() {
                i.set_value(&v);
            }
        };
        let opt = |v: Option<String>| v.unwrap_or_default();
        set(self.workload, a.workload.clone());
        set(self.metric, a.metric.clone());
        set(self.units, a.units_per_instance.to_string());
        set(self.min, a.min_instances.to_string());
        set(self.max, a.max_instances.to_string());
        set(self.target, a.target.to_string());
        set(self.priority, a.priority.to_string());
        // The fleet is the controller's from here on.
        set(self.instances, String::new());
        set(self.provider_ref, opt(a.provider_ref.clone()));
        set(
            self.memory,
            opt(a.memory_mib_per_instance.map(|v| v.to_string())),
        );
        set(
            self.network,
            opt(a.network_mbit_per_instance.map(|v| v.to_string())),
        );
        set(self.instance_type, opt(a.instance_type.clone()));
        set(
            self.on_demand,
            opt(a.on_demand_usd_per_hour.map(|v| v.to_string())),
        );
        set(self.readiness, opt(a.readiness_event.clone()));
        if let Some(c) = self.allow_spot.get_untracked() {
            c.set_checked(a.allow_spot);
        }
        for (node, v) in [(self.mode, &a.mode), (self.provider, &a.provider)] {
            if let Some(s) = node.get_untracked() {
                s.set_value(v);
            }
        }
    }
}

#[component]
fn Allocations() -> impl IntoView {
    let auth = use_auth();
    let workloads = RwSignal::new(None::<Vec<Allocation>>);
    let decisions = RwSignal::new(None::<Vec<Decision>>);
    let error = RwSignal::new(None::<String>);
    let pending = RwSignal::new(false);
    // The decision log of one workload, or of all.
    let only = RwSignal::new(None::<String>);
    // Whether the last page of decisions was full, so older ones may follow.
    let more = RwSignal::new(false);
    // Older pages are shown: the log stays as it is (new decisions would
    // shift the pages) until Refresh goes back to the newest.
    let browsing = RwSignal::new(false);
    let reload_decisions = move |older: bool| {
        let last = if older {
            decisions.with_untracked(|l| l.as_ref().and_then(|l| l.last()).cloned())
        } else {
            None
        };
        let path = decisions_path(only.get_untracked().as_deref(), last.as_ref());
        load_page(decisions, more, error, path, LOG_LIMIT as usize, older);
    };
    // The workloads, and the newest decisions unless older ones are shown.
    let reload = move || {
        leptos::task::spawn_local(async move {
            let path = format!("/allocations?limit={WORKLOAD_LIMIT}");
            match call::<Vec<Allocation>>(Method::Get, &path, None, None).await {
                Ok(list) => workloads.set(Some(list)),
                Err(e) => error.set(Some(e)),
            }
        });
        if !browsing.get_untracked() {
            reload_decisions(false);
        }
    };
    let newest = move || {
        browsing.set(false);
        reload();
    };
    let older = move || {
        browsing.set(true);
        reload_decisions(true);
    };
    Effect::new(move |_| {
        reload();
        // Decisions come every tick (five minutes by default), most without a
        // notification (forecast-only ones change nothing).
        refresh_every(REFRESH_EVERY, reload);
    });

    let form = SettingsForm::default();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let body = form.body();
        let name = field(form.workload);
        let path = format!(
            "/workloads/{}/allocation",
            utf8_percent_encode(name.trim(), NON_ALPHANUMERIC)
        );
        let csrf = auth.csrf();
        pending.set(true);
        leptos::task::spawn_local(async move {
            match call::<Allocation>(Method::Put, &path, Some(body), csrf.as_deref()).await {
                Ok(_) => {
                    error.set(None);
                    reload();
                }
                Err(e) => error.set(Some(e)),
            }
            pending.set(false);
        });
    };

    view! {
        <section class="card" data-testid="allocations">
            <h2>"Workloads"</h2>
            <p class="notice">
                "The controller decides every workload's fleet each tick from its forecast and "
                "measured demand. In " <code>"forecast_only"</code> " mode it logs what it would do; in "
                <code>"on"</code> " it commands the workload's provider (where it runs, below)."
            </p>
            {listing(workloads, || view! {
                    <p class="notice" data-testid="no-workloads">"No workload is under allocation settings yet."</p>
                }.into_any(), move |list| view! {
                    <table data-testid="workload-table">
                        <thead><tr>
                            <th>"Workload"</th><th>"Mode"</th><th>"Instances"</th><th>"Bounds"</th>
                            <th>"Sizing"</th><th>"Under-provisioned ticks"</th><th>"Last decision"</th><th></th>
                        </tr></thead>
                        <tbody>
                            {list.into_iter().map(|a| {
                                let last = match &a.last_decision {
                                    None => view! { "none yet" }.into_any(),
                                    Some(d) => view! {
                                        {format!("{}, {}", words(&d.reason), d.status)} <br />
                                        <time datetime=d.decided_at.clone()>{when(&d.decided_at)}</time>
                                    }.into_any(),
                                };
                                let warm = if a.warm > 0 { format!(" +{} warm", a.warm) } else { String::new() };
                                let edit = {
                                    let a = a.clone();
                                    move |_| form.fill(&a)
                                };
                                view! {
                                    <tr data-workload=a.workload.clone()>
                                        <td><code>{a.workload.clone()}</code></td>
                                        <td>{words(&a.mode)}</td>
                                        <td>{format!("{}{warm}", a.instances)}</td>
                                        <td>{format!("{}–{}", a.min_instances, a.max_instances)}</td>
                                        <td>{format!("{} at {} per instance, target {:.0} %, priority {}",
                                            a.metric, num(a.units_per_instance), a.target * 100.0, num(a.priority))}</td>
                                        <td>{under_share(&a)}</td>
                                        <td>{last}</td>
                                        <td><button class="secondary" on:click=edit data-testid="edit">"Edit"</button></td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any())}
        </section>
        <section class="card narrow">
            <h2>"Set a workload's allocation"</h2>
            <form method="post" on:submit=submit data-testid="allocation-form">
                <label>"Workload" <input node_ref=form.workload name="workload" required placeholder="web" /></label>
                <label>"Demand metric" <input node_ref=form.metric name="metric" required placeholder="cpu" /></label>
                <label>"Demand one instance serves" <input node_ref=form.units name="units" inputmode="decimal" required placeholder="100" /></label>
                <label>"Mode"
                    <select node_ref=form.mode name="mode">
                        <option value="forecast_only">"forecast only: log decisions"</option>
                        <option value="on">"on: command the provider"</option>
                        <option value="off">"off"</option>
                    </select>
                </label>
                <label>"Fewest instances" <input node_ref=form.min name="min" inputmode="numeric" required value="1" /></label>
                <label>"Most instances" <input node_ref=form.max name="max" inputmode="numeric" required value="20" /></label>
                <label>"Target utilisation (0–1)" <input node_ref=form.target name="target" inputmode="decimal" required value="0.7" /></label>
                <label>"Priority (1 = normal)" <input node_ref=form.priority name="priority" inputmode="decimal" required value="1" /></label>
                <label>"Instances running now (optional)" <input node_ref=form.instances name="instances" inputmode="numeric" /></label>
                <fieldset>
                    <legend>"Where it runs"</legend>
                    <label>"Provider"
                        <select node_ref=form.provider name="provider">
                            <option value="none">"none: decisions are logged only"</option>
                            <option value="cgroup">"cgroup: processes on the server's machine"</option>
                            <option value="aws">"aws: an EC2 Auto Scaling group"</option>
                        </select>
                    </label>
                    <label>"Group (cgroup name or Auto Scaling group)" <input node_ref=form.provider_ref name="provider_ref" /></label>
                    <label>"Memory per instance, MiB (cgroup)" <input node_ref=form.memory name="memory" inputmode="numeric" /></label>
                    <label>"Bandwidth per instance, Mbit/s (cgroup)" <input node_ref=form.network name="network" inputmode="numeric" /></label>
                    <label>"Instance type (aws)" <input node_ref=form.instance_type name="instance_type" placeholder="m7g.large" /></label>
                    <label class="inline"><input node_ref=form.allow_spot type="checkbox" name="allow_spot" /> "Buy spot when it is cheaper, risk priced in (aws)"</label>
                    <label>"On-demand price, USD per instance-hour (aws, spot)" <input node_ref=form.on_demand name="on_demand" inputmode="decimal" /></label>
                    <label>"Usage event that pre-allocates (readiness)" <input node_ref=form.readiness name="readiness_event" placeholder="checkout" /></label>
                </fieldset>
                <button type="submit" disabled=move || pending.get()>"Save"</button>
            </form>
            <ErrorNote error />
        </section>
        <section class="card">
            <h2>"Decisions " <button class="secondary" on:click=move |_| newest() data-testid="refresh">"Refresh"</button></h2>
            <form class="row" on:submit=|ev| ev.prevent_default()>
                <select name="only" aria-label="workload" data-testid="decision-filter"
                    on:change=move |ev| {
                        let v = event_target_value(&ev);
                        only.set((!v.is_empty()).then_some(v));
                        newest();
                    }>
                    <option value="">"every workload"</option>
                    {move || workloads.get().unwrap_or_default().into_iter().map(|a| {
                        let selected = only.with_untracked(|o| o.as_deref() == Some(a.workload.as_str()));
                        view! { <option value=a.workload.clone() selected=selected>{a.workload.clone()}</option> }
                    }).collect_view()}
                </select>
            </form>
            {move || decisions.with(|l| l.as_ref().is_some_and(Vec::is_empty)).then(|| view! {
                <p class="notice" data-testid="no-decisions">"No decision logged yet."</p>
            })}
            <table data-testid="decision-log">
                <tbody>
                    <For each=move || decisions.get().unwrap_or_default() key=|d| d.id.clone() let:d>
                        <tr>
                            <td><time datetime=d.decided_at.clone()>{when(&d.decided_at)}</time></td>
                            <td><code>{d.workload.clone()}</code></td>
                            <td>{fleet(&d)}</td>
                            <td>{words(&d.reason)}</td>
                            <td>{d.observed.map_or_else(|| "no demand measured".to_owned(), |o| format!("demand {}", num(o)))}</td>
                            <td>{d.status.clone()}{d.detail.clone().map(|x| format!(": {x}"))}</td>
                        </tr>
                    </For>
                </tbody>
            </table>
            {move || browsing.get().then(|| view! {
                <p class="notice">"Showing older decisions: the log is not read again until Refresh."</p>
            })}
            {move || more.get().then(|| view! {
                <button class="secondary" on:click=move |_| older() data-testid="older-decisions">"Older decisions"</button>
            })}
        </section>
    }
}

/// The decision log's page: of one workload or all, after `last` (the last
/// decision shown) when continuing.
fn decisions_path(only: Option<&str>, last: Option<&Decision>) -> String {
    let mut path = format!("/allocation-decisions?limit={LOG_LIMIT}");
    if let Some(w) = only {
        path += &format!("&workload={}", utf8_percent_encode(w, NON_ALPHANUMERIC));
    }
    if let Some(d) = last {
        path += &d.page_after();
    }
    path
}

#[cfg(test)]
mod tests {
    use super::num;

    #[test]
    fn a_decision_page_continues_after_the_last_one_shown() {
        use super::decisions_path;
        assert_eq!(decisions_path(None, None), "/allocation-decisions?limit=50");
        let last = crate::api::Decision {
            id: "d-1".into(),
            workload: "web".into(),
            source: "controller".into(),
            decided_at: "2026-12-06T21:00:00.125+00:00".into(),
            mode: "on".into(),
            before: 2,
            after: 3,
            warm: 0,
            reason: "forecast".into(),
            observed: None,
            sized_for: None,
            status: "applied".into(),
            detail: None,
        };
        assert_eq!(
            decisions_path(Some("web/api"), Some(&last)),
            "/allocation-decisions?limit=50&workload=web%2Fapi\
             &before=2026%2D12%2D06T21%3A00%3A00%2E125%2B00%3A00&before_id=d%2D1"
        );
    }

    #[test]
    fn quantities_show_about_four_significant_digits() {
        assert_eq!(num(6.840000000000001), "6.84");
        assert_eq!(num(0.25839999999999996), "0.2584");
        assert_eq!(num(792003.2), "792003");
        assert_eq!(num(1.0), "1");
        assert_eq!(num(0.0), "0");
        assert_eq!(num(-2.5), "-2.5");
    }
}
