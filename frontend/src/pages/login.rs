use leptos::prelude::*;
use leptos_router::hooks::{use_navigate, use_query_map};
use serde_json::json;

use super::{ErrorNote, field, open_session};
use crate::auth::use_auth;

#[component]
pub fn LoginPage() -> impl IntoView {
    let auth = use_auth();
    let navigate = use_navigate();
    let (email, password) = (NodeRef::new(), NodeRef::new());
    let error = RwSignal::new(None::<String>);
    let pending = RwSignal::new(false);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let body = json!({ "email": field(email), "password": field(password) });
        open_session("/auth/login", body, navigate.clone(), error, pending);
    };
    view! {
        <section class="card narrow">
            <h2>"Log in"</h2>
            <form method="post" on:submit=submit data-testid="login-form">
                <label>"E-mail" <input node_ref=email name="email" type="email" autocomplete="username" required /></label>
                <label>
                    "Password"
                    <input node_ref=password name="password" type="password" autocomplete="current-password" required />
                </label>
                <ErrorNote error />
                <button type="submit" disabled=move || pending.get() || !auth.known.get()>"Log in"</button>
            </form>
            <p>"New here? " <a href="/signup">"Create an organisation"</a></p>
        </section>
    }
}

/// Where an invitation link leads: choose a password, join the organisation.
#[component]
pub fn AcceptInvitationPage() -> impl IntoView {
    let auth = use_auth();
    let navigate = use_navigate();
    let query = use_query_map();
    let password = NodeRef::new();
    let error = RwSignal::new(None::<String>);
    let pending = RwSignal::new(false);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let token = query.with_untracked(|q| q.get("token").unwrap_or_default());
        let body = json!({ "token": token, "password": field(password) });
        open_session(
            "/invitations/accept",
            body,
            navigate.clone(),
            error,
            pending,
        );
    };
    view! {
        <section class="card narrow">
            <h2>"Join your team"</h2>
            <form method="post" on:submit=submit>
                <label>
                    "Choose a password (12 characters or more)"
                    <input node_ref=password type="password" autocomplete="new-password" required />
                </label>
                <ErrorNote error />
                <button type="submit" disabled=move || pending.get() || !auth.known.get()>"Accept invitation"</button>
            </form>
        </section>
    }
}
