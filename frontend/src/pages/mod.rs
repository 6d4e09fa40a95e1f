//! One module per page.

mod account;
mod admin;
mod allocation;
mod api_keys;
mod audit;
mod billing;
mod home;
mod login;
mod members;
mod planning;
mod signup;
mod statement;
mod usage;
mod webhooks;

pub use account::AccountPage;
pub use admin::AdminPage;
pub use allocation::AllocationPage;
pub use api_keys::ApiKeysPage;
pub use audit::AuditPage;
pub use billing::BillingPage;
pub use home::HomePage;
pub use login::{AcceptInvitationPage, LoginPage};
pub use members::MembersPage;
pub use planning::PlanningPage;
pub use signup::SignupPage;
pub use usage::UsagePage;
pub use webhooks::WebhooksPage;

use leptos::prelude::*;

use crate::auth::use_auth;

#[cfg(test)]
mod tests {
    #[test]
    fn times_read_in_utc_to_the_second() {
        assert_eq!(
            super::when("2026-12-06T21:00:49.577013907Z"),
            "2026-12-06 21:00:49 UTC"
        );
        assert_eq!(
            super::when("2026-12-06T22:00:00+01:00"),
            "2026-12-06 21:00:00 UTC"
        );
        assert_eq!(super::when("yesterday"), "yesterday");
    }

    #[test]
    fn numbers_go_as_typed_whole_ones_as_integers() {
        use serde_json::json;
        assert_eq!(super::number(" 12 "), json!(12));
        assert!(super::number("12").is_i64());
        assert_eq!(super::number("0.7"), json!(0.7));
        assert_eq!(super::number(" twelve "), json!("twelve"));
    }
}

/// Shows an error message from the last attempt, if any.
#[component]
pub fn ErrorNote(error: RwSignal<Option<String>>) -> impl IntoView {
    move || {
        error
            .get()
            .map(|e| view! { <p class="error" role="alert" data-testid="error">{e}</p> })
    }
}

/// Renders `children` for a logged-in user; a log-in link otherwise.
#[component]
pub fn RequireLogin(children: ChildrenFn) -> impl IntoView {
    let auth = use_auth();
    move || {
        if !auth.known.get() {
            view! { <p class="notice">"Loading…"</p> }.into_any()
        } else if auth.me.with(Option::is_some) {
            children().into_any()
        } else {
            view! {
                <p class="notice">
                    "You are not logged in. " <a href="/login">"Log in"</a> " or "
                    <a href="/signup">"create an organisation"</a> "."
                </p>
            }
            .into_any()
        }
    }
}

/// An RFC 3339 time from the API as people read it, in UTC to the second
/// (`2026-12-06T21:00:49.577013907Z` → `2026-12-06 21:00:49 UTC`); as sent
/// if it does not parse.
pub fn when(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339).map_or_else(
        |_| rfc3339.to_owned(),
        |t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string()
        },
    )
}

/// A list read from the API as a page shows it: "Loading…" until it has
/// come, `empty` when it holds nothing, else `full` of it.
pub fn listing<T, E, F>(list: RwSignal<Option<Vec<T>>>, empty: E, full: F) -> impl IntoView
where
    T: Clone + Send + Sync + 'static,
    E: Fn() -> AnyView + Send + Sync + 'static,
    F: Fn(Vec<T>) -> AnyView + Send + Sync + 'static,
{
    move || match list.get() {
        None => view! { <p class="notice">"Loading…"</p> }.into_any(),
        Some(l) if l.is_empty() => empty(),
        Some(l) => full(l),
    }
}

/// Reads a page of a list from the API at `path` into `list`: after what it
/// holds when `append` (the next page), else in its place. `more` tells
/// whether the page was full (`size`), so another may follow.
pub fn load_page<T>(
    list: RwSignal<Option<Vec<T>>>,
    more: RwSignal<bool>,
    error: RwSignal<Option<String>>,
    path: String,
    size: usize,
    append: bool,
) where
    T: serde::de::DeserializeOwned + Send + Sync + 'static,
{
    leptos::task::spawn_local(async move {
        match crate::api::call::<Vec<T>>(crate::api::Method::Get, &path, None, None).await {
            Ok(page) => {
                more.set(page.len() == size);
                if append {
                    list.update(|l| l.get_or_insert_default().extend(page));
                } else {
                    list.set(Some(page));
                }
            }
            Err(e) => error.set(Some(e)),
        }
    });
}

/// The value of a form field, read at submit time.
pub fn field(node: NodeRef<leptos::html::Input>) -> String {
    node.get_untracked().map(|i| i.value()).unwrap_or_default()
}

/// The option chosen in a select, read at submit time.
pub fn choice(node: NodeRef<leptos::html::Select>) -> String {
    node.get_untracked().map(|s| s.value()).unwrap_or_default()
}

/// A number as typed, whole ones as integers (counts are); what does not
/// parse goes as text, for the server to say why it cannot take it.
pub fn number(typed: &str) -> serde_json::Value {
    let t = typed.trim();
    if let Ok(i) = t.parse::<i64>() {
        serde_json::Value::from(i)
    } else if let Ok(f) = t.parse::<f64>() {
        serde_json::Value::from(f)
    } else {
        serde_json::Value::from(t)
    }
}

/// Sends credentials to `path` (sign-up, log-in, accepting an invitation); on success
/// the browser is logged in and sent to the account page, otherwise `error` says why.
pub fn open_session(
    path: &'static str,
    body: serde_json::Value,
    navigate: impl Fn(&str, leptos_router::NavigateOptions) + 'static,
    error: RwSignal<Option<String>>,
    pending: RwSignal<bool>,
) {
    let auth = use_auth();
    pending.set(true);
    leptos::task::spawn_local(async move {
        match crate::api::call::<crate::api::Me>(crate::api::Method::Post, path, Some(body), None)
            .await
        {
            Ok(me) => {
                auth.me.set(Some(me));
                error.set(None);
                navigate("/account", Default::default());
            }
            Err(e) => error.set(Some(e)),
        }
        pending.set(false);
    });
}
