//! One module per page.

mod account;
mod api_keys;
mod home;
mod login;
mod members;
mod signup;

pub use account::AccountPage;
pub use api_keys::ApiKeysPage;
pub use home::HomePage;
pub use login::{AcceptInvitationPage, LoginPage};
pub use members::MembersPage;
pub use signup::SignupPage;

use leptos::prelude::*;

use crate::auth::use_auth;

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

/// The value of a form field, read at submit time.
pub fn field(node: NodeRef<leptos::html::Input>) -> String {
    node.get_untracked().map(|i| i.value()).unwrap_or_default()
}
