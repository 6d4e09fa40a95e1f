use leptos::prelude::*;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::json;

use super::{ErrorNote, RequireLogin, field, when};
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

#[component]
fn Allocations() -> impl IntoView {
    let auth = use_auth();
    let workloads = RwSignal::new(None::<Vec<Allocation>>);
    let decisions = RwSignal::new(Vec::<Decision>::new());
    let error = RwSignal::new(None::<String>);
    let pending = RwSignal::new(false);
    let reload = move || {
        leptos::task::spawn_local(async move {
            let path = format!("/allocations?limit={WORKLOAD_LIMIT}");
            match call::<Vec<Allocation>>(Method::Get, &path, None, None).await {
                Ok(list) => workloads.set(Some(list)),
                Err(e) => error.set(Some(e)),
            }
            let path = format!("/allocation-decisions?limit={LOG_LIMIT}");
            match call::<Vec<Decision>>(Method::Get, &path, None, None).await {
                Ok(list) => decisions.set(list),
                Err(e) => error.set(Some(e)),
            }
        });
    };
    Effect::new(move |_| {
        reload();
        // Decisions come every tick (five minutes by default), most without a
        // notification (forecast-only ones change nothing).
        refresh_every(REFRESH_EVERY, reload);
    });

    let (workload, metric, units, min, max, target, instances) = (
        NodeRef::new(),
        NodeRef::new(),
        NodeRef::new(),
        NodeRef::new(),
        NodeRef::new(),
        NodeRef::new(),
        NodeRef::new(),
    );
    let mode = NodeRef::<leptos::html::Select>::new();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        // Numbers go as typed, whole ones as integers (instance counts are);
        // the server says which one it cannot take.
        let number = |n: NodeRef<leptos::html::Input>| {
            let v = field(n);
            let t = v.trim();
            if let Ok(i) = t.parse::<i64>() {
                serde_json::Value::from(i)
            } else if let Ok(f) = t.parse::<f64>() {
                serde_json::Value::from(f)
            } else {
                serde_json::Value::String(v)
            }
        };
        let mut body = json!({
            "metric": field(metric),
            "units_per_instance": number(units),
            "mode": mode.get_untracked().map(|s| s.value()).unwrap_or_default(),
            "min_instances": number(min),
            "max_instances": number(max),
            "target": number(target),
        });
        if !field(instances).trim().is_empty() {
            body["instances"] = number(instances);
        }
        let name = field(workload);
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
                <code>"on"</code> " it commands the workload's provider (set through the API)."
            </p>
            {move || match workloads.get() {
                None => view! { <p class="notice">"Loading…"</p> }.into_any(),
                Some(list) if list.is_empty() => view! {
                    <p class="notice" data-testid="no-workloads">"No workload is under allocation settings yet."</p>
                }.into_any(),
                Some(list) => view! {
                    <table data-testid="workload-table">
                        <thead><tr>
                            <th>"Workload"</th><th>"Mode"</th><th>"Instances"</th><th>"Bounds"</th>
                            <th>"Sizing"</th><th>"Under-provisioned ticks"</th><th>"Last decision"</th>
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
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any(),
            }}
        </section>
        <section class="card narrow">
            <h2>"Set a workload's allocation"</h2>
            <form method="post" on:submit=submit data-testid="allocation-form">
                <label>"Workload" <input node_ref=workload name="workload" required placeholder="web" /></label>
                <label>"Demand metric" <input node_ref=metric name="metric" required placeholder="cpu" /></label>
                <label>"Demand one instance serves" <input node_ref=units name="units" inputmode="decimal" required placeholder="100" /></label>
                <label>"Mode"
                    <select node_ref=mode name="mode">
                        <option value="forecast_only">"forecast only: log decisions"</option>
                        <option value="on">"on: command the provider"</option>
                        <option value="off">"off"</option>
                    </select>
                </label>
                <label>"Fewest instances" <input node_ref=min name="min" inputmode="numeric" required value="1" /></label>
                <label>"Most instances" <input node_ref=max name="max" inputmode="numeric" required value="20" /></label>
                <label>"Target utilisation (0–1)" <input node_ref=target name="target" inputmode="decimal" required value="0.7" /></label>
                <label>"Instances running now (optional)" <input node_ref=instances name="instances" inputmode="numeric" /></label>
                <button type="submit" disabled=move || pending.get()>"Save"</button>
            </form>
            <ErrorNote error />
        </section>
        <section class="card">
            <h2>"Decisions " <button class="secondary" on:click=move |_| reload() data-testid="refresh">"Refresh"</button></h2>
            {move || decisions.with(Vec::is_empty).then(|| view! {
                <p class="notice" data-testid="no-decisions">"No decision logged yet."</p>
            })}
            <table data-testid="decision-log">
                <tbody>
                    <For each=move || decisions.get() key=|d| d.id.clone() let:d>
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
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::num;

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
