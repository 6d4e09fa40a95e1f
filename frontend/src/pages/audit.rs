//! The audit log: an organisation's for its owners (`/audit`), every
//! organisation's for platform administrators (inside the admin portal).
//! Newest first, a page at a time, narrowed to one action (and, for
//! administrators, one organisation).

use leptos::prelude::*;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::{ErrorNote, RequireLogin, load_page, when};
use crate::api::AuditEntry;
use crate::auth::use_auth;

/// Entries asked for at a time.
const PAGE: usize = 50;

/// The actions the API knows (its `AuditAction`; a test checks the two agree).
pub const ACTIONS: [&str; 24] = [
    "signed_up",
    "logged_in",
    "login_failed",
    "logged_out",
    "password_changed",
    "api_key_created",
    "api_key_revoked",
    "member_invited",
    "invitation_revoked",
    "invitation_accepted",
    "role_changed",
    "member_removed",
    "organization_updated",
    "allocation_settings_changed",
    "allocation_suggested",
    "price_rule_created",
    "price_rule_ended",
    "budget_cap_changed",
    "webhook_endpoint_created",
    "webhook_endpoint_enabled",
    "webhook_secret_rotated",
    "webhook_endpoint_deleted",
    "webhook_delivery_replayed",
    "other_sessions_ended",
];

#[component]
pub fn AuditPage() -> impl IntoView {
    let auth = use_auth();
    view! {
        <h1>"Audit log"</h1>
        <RequireLogin>
            {move || if auth.me.with(|m| m.as_ref().is_some_and(|m| m.is_manager())) {
                view! { <AuditLog base="/audit" platform=false refresh=RwSignal::new(0) /> }.into_any()
            } else {
                view! { <p class="notice">"Only the organisation's owners see its audit log."</p> }.into_any()
            }}
        </RequireLogin>
    }
}

/// The query for one page: `base` with the page size, the filters that are
/// set (encoded) and the id the page continues below.
pub fn page_path(base: &str, action: &str, organization: &str, before: Option<i64>) -> String {
    let mut path = format!("{base}?limit={PAGE}");
    if !action.is_empty() {
        path.push_str(&format!("&action={action}"));
    }
    let organization = organization.trim();
    if !organization.is_empty() {
        let org = utf8_percent_encode(organization, NON_ALPHANUMERIC);
        path.push_str(&format!("&organization_id={org}"));
    }
    if let Some(id) = before {
        path.push_str(&format!("&before={id}"));
    }
    path
}

/// Who acted, as people know them: the e-mail, else the API key's name,
/// else the platform's staff for their changes to an organisation (whose
/// e-mails its owners are not shown), else the bare id (a removed user or
/// key), else nobody (e.g. a failed log-in for an unknown address).
pub fn actor(e: &AuditEntry) -> String {
    let by_platform = e
        .details
        .as_ref()
        .is_some_and(|d| d["platform_admin"] == serde_json::Value::Bool(true));
    if let Some(email) = &e.actor_email {
        email.clone()
    } else if by_platform {
        "a platform administrator".to_owned()
    } else if let Some(key) = &e.actor_api_key_name {
        format!("API key “{key}”")
    } else if let Some(id) = e.actor_user_id.as_ref().or(e.actor_api_key_id.as_ref()) {
        id.clone()
    } else {
        "—".to_owned()
    }
}

/// An entry's details as people read them: `key: value` pairs (text
/// unquoted, `_` as spaces), `platform_admin` left out (the "Who" column says
/// it); anything but an object as JSON.
pub fn details_text(d: &serde_json::Value) -> String {
    let Some(fields) = d.as_object() else {
        return d.to_string();
    };
    fields
        .iter()
        .filter(|(k, _)| k.as_str() != "platform_admin")
        .map(|(k, v)| {
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            format!("{}: {v}", k.replace('_', " "))
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

/// The audit log from `base` (`/audit` or `/admin/audit`); `platform` adds
/// the organisation column and filter. It reads the newest page again when
/// `refresh` changes.
#[component]
pub fn AuditLog(
    base: &'static str,
    platform: bool,
    refresh: RwSignal<u32>,
    /// A heading inside the card, where the page has none of its own.
    #[prop(optional)]
    title: Option<&'static str>,
) -> impl IntoView {
    let entries = RwSignal::new(None::<Vec<AuditEntry>>);
    // Whether the last page was full, so an older one may exist.
    let more = RwSignal::new(false);
    let action = RwSignal::new(String::new());
    let organization = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let load = move |older: bool| {
        let before = if older {
            entries.with_untracked(|l| l.as_ref().and_then(|l| l.last()).map(|e| e.id))
        } else {
            None
        };
        let path = page_path(
            base,
            &action.get_untracked(),
            &organization.get_untracked(),
            before,
        );
        load_page(entries, more, error, path, PAGE, older);
    };
    Effect::new(move |_| {
        refresh.track();
        load(false);
    });
    let apply = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        load(false);
    };
    view! {
        <section class="card" data-testid="audit-log">
            {title.map(|t| view! { <h2>{t}</h2> })}
            <form class="filters" on:submit=apply data-testid="audit-filter">
                <label>"Action "
                    <select name="action" on:change=move |ev| action.set(event_target_value(&ev))>
                        <option value="">"every action"</option>
                        {ACTIONS.iter().map(|a| view! { <option value=*a>{a.replace('_', " ")}</option> }).collect_view()}
                    </select>
                </label>
                {platform.then(|| view! {
                    <label>"Organisation id "
                        <input name="organization_id" placeholder="every organisation"
                            on:input=move |ev| organization.set(event_target_value(&ev)) />
                    </label>
                })}
                <button type="submit">"Show"</button>
            </form>
            <ErrorNote error=error />
            {move || match entries.get() {
                None => view! { <p class="notice">"Loading…"</p> }.into_any(),
                Some(list) if list.is_empty() => view! {
                    <p class="notice" data-testid="audit-empty">"No entries."</p>
                }.into_any(),
                Some(list) => view! {
                    <table data-testid="audit-table">
                        <thead><tr><th>"When"</th><th>"What"</th><th>"Who"</th><th>"From"</th>
                            {platform.then(|| view! { <th>"Organisation"</th> })}</tr></thead>
                        <tbody>
                            {list.into_iter().map(|a| view! {
                                <tr data-action=a.action.clone()>
                                    <td><time datetime=a.created_at.clone()>{when(&a.created_at)}</time></td>
                                    <td>{a.action.replace('_', " ")}
                                        {a.target.clone().map(|t| view! { " " <code>{t}</code> })}
                                        {a.details.as_ref().map(details_text).filter(|t| !t.is_empty())
                                            .map(|t| view! { <br /> <small>{t}</small> })}</td>
                                    <td>{actor(&a)}</td>
                                    <td>{a.ip.clone().unwrap_or_default()}</td>
                                    {platform.then(|| view! {
                                        <td>{a.organization_name.clone().or(a.organization_id.clone()).unwrap_or_default()}</td>
                                    })}
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any(),
            }}
            {move || more.get().then(|| view! {
                <button class="secondary" on:click=move |_| load(true) data-testid="audit-older">"Older entries"</button>
            })}
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_action_list_is_the_servers() {
        let server: Vec<&str> = headroom_core::accounts::AuditAction::ALL
            .iter()
            .map(|a| a.as_str())
            .collect();
        assert_eq!(ACTIONS.to_vec(), server);
    }

    #[test]
    fn a_page_asks_only_for_the_filters_set_and_encodes_the_organisation() {
        assert_eq!(page_path("/audit", "", "  ", None), "/audit?limit=50");
        assert_eq!(
            page_path("/admin/audit", "role_changed", "org 1&x", Some(41)),
            "/admin/audit?limit=50&action=role_changed&organization_id=org%201%26x&before=41"
        );
    }

    fn entry() -> AuditEntry {
        AuditEntry {
            id: 1,
            organization_id: Some("o1".into()),
            actor_user_id: Some("u1".into()),
            actor_api_key_id: None,
            action: "logged_in".into(),
            target: None,
            ip: None,
            details: None,
            created_at: "2026-12-06T21:00:00Z".into(),
            actor_email: None,
            actor_api_key_name: None,
            organization_name: None,
        }
    }

    #[test]
    fn details_read_as_pairs() {
        let d = serde_json::json!({ "email": "ops@example.com", "reason": "unknown_account" });
        assert_eq!(
            details_text(&d),
            "email: ops@example.com · reason: unknown_account"
        );
        let d = serde_json::json!({ "tier": "premium", "priority": 70, "platform_admin": true });
        assert_eq!(details_text(&d), "priority: 70 · tier: premium");
        let d = serde_json::json!({ "new_role": "member", "scopes": ["ingest"] });
        assert_eq!(details_text(&d), r#"new role: member · scopes: ["ingest"]"#);
        assert_eq!(details_text(&serde_json::json!(["x"])), r#"["x"]"#);
        assert_eq!(
            details_text(&serde_json::json!({ "platform_admin": true })),
            ""
        );
    }

    #[test]
    fn the_actor_is_named_when_known_and_identified_otherwise() {
        let mut e = entry();
        assert_eq!(actor(&e), "u1");
        e.actor_email = Some("ada@example.com".into());
        assert_eq!(actor(&e), "ada@example.com");
        let mut k = entry();
        k.actor_user_id = None;
        k.actor_api_key_id = Some("k1".into());
        assert_eq!(actor(&k), "k1");
        k.actor_api_key_name = Some("deploy".into());
        assert_eq!(actor(&k), "API key “deploy”");
        k.actor_api_key_id = None;
        k.actor_api_key_name = None;
        assert_eq!(actor(&k), "—");
        let mut p = entry();
        p.details = Some(serde_json::json!({ "tier": "premium", "platform_admin": true }));
        assert_eq!(actor(&p), "a platform administrator");
        p.actor_email = Some("ops@example.com".into());
        assert_eq!(actor(&p), "ops@example.com");
    }
}
