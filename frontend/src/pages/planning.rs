//! What customers tell the forecaster: workload profiles (the forecast's
//! prior while a workload has little history) and external events (demand
//! multiplied over a coming window).

use leptos::prelude::*;
use serde_json::{Value, json};

use super::{ErrorNote, RequireLogin, choice, field, listing, number, when};
use crate::api::{ExternalEvent, Method, WorkloadProfile, call};
use crate::auth::use_auth;

#[component]
pub fn PlanningPage() -> impl IntoView {
    view! {
        <RequireLogin>
            <Planning />
        </RequireLogin>
    }
}

/// `"9, 10,17"` → `[9, 10, 17]`; a part that is not an hour goes as text,
/// for the server to say why it cannot take it.
fn hours(typed: &str) -> Vec<Value> {
    typed
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<u8>().map_or_else(|_| Value::from(p), Value::from))
        .collect()
}

#[component]
fn Planning() -> impl IntoView {
    let auth = use_auth();
    let profiles = RwSignal::new(None::<Vec<WorkloadProfile>>);
    let events = RwSignal::new(None::<Vec<ExternalEvent>>);
    let error = RwSignal::new(None::<String>);
    let reload = move || {
        leptos::task::spawn_local(async move {
            match call::<Vec<WorkloadProfile>>(Method::Get, "/workload-profiles", None, None).await
            {
                Ok(list) => profiles.set(Some(list)),
                Err(e) => error.set(Some(e)),
            }
            match call::<Vec<ExternalEvent>>(Method::Get, "/external-events", None, None).await {
                Ok(list) => events.set(Some(list)),
                Err(e) => error.set(Some(e)),
            }
        });
    };
    Effect::new(move |_| reload());

    let send = move |method: Method, path: String, body: Option<Value>| {
        let csrf = auth.csrf();
        leptos::task::spawn_local(async move {
            match call::<Value>(method, &path, body, csrf.as_deref()).await {
                Ok(_) => {
                    error.set(None);
                    reload();
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };

    let (p_workload, p_hours, p_growth) = (NodeRef::new(), NodeRef::new(), NodeRef::new());
    let p_category = NodeRef::<leptos::html::Select>::new();
    let save_profile = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let body = json!({
            "workload": field(p_workload).trim(),
            "category": choice(p_category),
            "peak_hours": hours(&field(p_hours)),
            "expected_growth": number(&field(p_growth)),
        });
        send(Method::Post, "/workload-profiles".into(), Some(body));
    };

    let (e_name, e_start, e_end, e_multiplier, e_workload) = (
        NodeRef::new(),
        NodeRef::new(),
        NodeRef::new(),
        NodeRef::new(),
        NodeRef::new(),
    );
    let add_event = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let mut body = json!({
            "name": field(e_name),
            "start": field(e_start).trim(),
            "end": field(e_end).trim(),
            "expected_multiplier": number(&field(e_multiplier)),
        });
        let workload = field(e_workload);
        if !workload.trim().is_empty() {
            body["workload"] = Value::from(workload.trim());
        }
        send(Method::Post, "/external-events".into(), Some(body));
    };

    view! {
        <ErrorNote error />
        <section class="card" data-testid="profiles">
            <h2>"Workload profiles"</h2>
            <p class="notice">
                "What a workload is like, for the forecaster to start from while it has less than a "
                "day of history: its kind, the UTC hours of its peaks, and the growth expected per 30 days."
            </p>
            {listing(profiles, || view! {
                    <p class="notice" data-testid="no-profiles">"No profile yet."</p>
                }.into_any(), move |list| view! {
                    <table data-testid="profile-table">
                        <thead><tr><th>"Workload"</th><th>"Kind"</th><th>"Peak hours (UTC)"</th><th>"Growth / 30 days"</th><th>"Updated"</th></tr></thead>
                        <tbody>
                            {list.into_iter().map(|p| view! {
                                <tr data-workload=p.workload.clone()>
                                    <td><code>{p.workload.clone()}</code></td>
                                    <td>{p.category.clone()}</td>
                                    <td>{p.peak_hours.iter().map(u8::to_string).collect::<Vec<_>>().join(", ")}</td>
                                    <td>{format!("{:+.0} %", p.expected_growth * 100.0)}</td>
                                    <td><time datetime=p.updated_at.clone()>{when(&p.updated_at)}</time></td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any())}
            <form method="post" on:submit=save_profile data-testid="profile-form" class="narrow">
                <label>"Workload" <input node_ref=p_workload name="workload" required placeholder="web" /></label>
                <label>"Kind"
                    <select node_ref=p_category name="category">
                        <option value="web">"web"</option>
                        <option value="database">"database"</option>
                        <option value="batch">"batch"</option>
                        <option value="other">"other"</option>
                    </select>
                </label>
                <label>"Peak hours, UTC (comma-separated)" <input node_ref=p_hours name="peak_hours" placeholder="9, 10, 17" /></label>
                <label>"Expected growth per 30 days (0.1 = +10 %)" <input node_ref=p_growth name="expected_growth" inputmode="decimal" value="0" /></label>
                <button type="submit">"Save profile"</button>
            </form>
        </section>
        <section class="card" data-testid="events">
            <h2>"Coming events"</h2>
            <p class="notice">
                "A campaign, a launch, a sale: forecasts for the steps in its window are multiplied "
                "by what you expect. Events leave this list once they have ended."
            </p>
            {listing(events, || view! {
                    <p class="notice" data-testid="no-events">"No event coming."</p>
                }.into_any(), move |list| view! {
                    <table data-testid="event-table">
                        <thead><tr><th>"Event"</th><th>"Workload"</th><th>"From"</th><th>"To"</th><th>"Demand"</th><th></th></tr></thead>
                        <tbody>
                            {list.into_iter().map(|e| {
                                let path = format!("/external-events/{}", e.id);
                                view! {
                                    <tr>
                                        <td>{e.name.clone()}</td>
                                        <td>{e.workload.clone().unwrap_or_else(|| "every workload".into())}</td>
                                        <td><time datetime=e.start.clone()>{when(&e.start)}</time></td>
                                        <td><time datetime=e.end.clone()>{when(&e.end)}</time></td>
                                        <td>{format!("× {}", e.expected_multiplier)}</td>
                                        <td><button class="secondary" on:click=move |_| send(Method::Delete, path.clone(), None)>"Remove"</button></td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any())}
            <form method="post" on:submit=add_event data-testid="event-form" class="narrow">
                <label>"What happens" <input node_ref=e_name name="name" required placeholder="Black Friday campaign" /></label>
                <label>"From (RFC 3339)" <input node_ref=e_start name="start" required placeholder="2027-11-26T00:00:00Z" /></label>
                <label>"To (RFC 3339)" <input node_ref=e_end name="end" required placeholder="2027-11-29T00:00:00Z" /></label>
                <label>"Demand compared with usual (2 = double)" <input node_ref=e_multiplier name="expected_multiplier" inputmode="decimal" required value="2" /></label>
                <label>"Only this workload (optional)" <input node_ref=e_workload name="workload" /></label>
                <button type="submit">"Add event"</button>
            </form>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_hours_and_numbers_go_as_numbers_and_the_rest_as_text() {
        assert_eq!(hours("9, 10,17 ,"), vec![json!(9), json!(10), json!(17)]);
        assert_eq!(hours("9, noon"), vec![json!(9), json!("noon")]);
        assert!(hours(" ").is_empty());
        assert_eq!(number(" 0.25 "), json!(0.25));
        assert_eq!(number("lots"), json!("lots"));
    }
}
