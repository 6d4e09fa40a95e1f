use leptos::prelude::*;
use leptos_router::hooks::use_navigate;
use serde_json::json;

use super::{ErrorNote, RequireLogin, field};
use crate::api::{Method, call};
use crate::auth::use_auth;

#[component]
pub fn AccountPage() -> impl IntoView {
    view! {
        <RequireLogin>
            <AccountDetails />
            <ChangePassword />
            <OtherSessions />
        </RequireLogin>
    }
}

#[component]
fn AccountDetails() -> impl IntoView {
    let auth = use_auth();
    let navigate = use_navigate();
    let error = RwSignal::new(None::<String>);
    let logout = move |_| {
        let csrf = auth.csrf();
        let navigate = navigate.clone();
        leptos::task::spawn_local(async move {
            match call::<()>(
                Method::Post,
                "/auth/logout",
                Some(json!({})),
                csrf.as_deref(),
            )
            .await
            {
                Ok(()) => {
                    auth.me.set(None);
                    navigate("/login", Default::default());
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };
    move || {
        auth.me.get().map(|me| {
            let logout = logout.clone();
            view! {
                <section class="card">
                    <h2>"Account"</h2>
                    <dl class="status">
                        <dt>"E-mail"</dt>
                        <dd data-testid="account-email">{me.user.email}</dd>
                        <dt>"Role"</dt>
                        <dd data-testid="account-role">{me.user.role}</dd>
                        <dt>"Organisation"</dt>
                        <dd data-testid="account-org">{me.organization.name}</dd>
                        <dt>"Tier"</dt>
                        <dd>{me.organization.tier}</dd>
                        <dt>"Priority"</dt>
                        <dd>{me.organization.priority}</dd>
                    </dl>
                    <ErrorNote error />
                    <button data-testid="logout" on:click=logout>"Log out"</button>
                </section>
            }
        })
    }
}

#[component]
fn ChangePassword() -> impl IntoView {
    let auth = use_auth();
    let (current, new) = (NodeRef::new(), NodeRef::new());
    let error = RwSignal::new(None::<String>);
    let done = RwSignal::new(false);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let body = json!({ "current_password": field(current), "new_password": field(new) });
        let csrf = auth.csrf();
        leptos::task::spawn_local(async move {
            match call::<()>(Method::Post, "/auth/password", Some(body), csrf.as_deref()).await {
                Ok(()) => {
                    error.set(None);
                    done.set(true);
                }
                Err(e) => {
                    done.set(false);
                    error.set(Some(e));
                }
            }
        });
    };
    view! {
        <section class="card">
            <h2>"Change password"</h2>
            <form method="post" on:submit=submit>
                <label>"Current password" <input node_ref=current type="password" autocomplete="current-password" required /></label>
                <label>"New password" <input node_ref=new type="password" autocomplete="new-password" required /></label>
                <ErrorNote error />
                {move || done.get().then(|| view! { <p class="notice">"Password changed. Your other sessions have ended."</p> })}
                <button type="submit">"Change password"</button>
            </form>
        </section>
    }
}

/// Sign out everywhere else (a lost laptop, a shared computer): every other
/// session of this user ends; the password is asked again.
#[component]
fn OtherSessions() -> impl IntoView {
    let auth = use_auth();
    let password = NodeRef::new();
    let error = RwSignal::new(None::<String>);
    let done = RwSignal::new(false);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let body = json!({ "current_password": field(password) });
        let csrf = auth.csrf();
        leptos::task::spawn_local(async move {
            match call::<()>(
                Method::Post,
                "/auth/sessions/end-others",
                Some(body),
                csrf.as_deref(),
            )
            .await
            {
                Ok(()) => {
                    error.set(None);
                    done.set(true);
                    if let Some(input) = password.get_untracked() {
                        input.set_value("");
                    }
                }
                Err(e) => {
                    done.set(false);
                    error.set(Some(e));
                }
            }
        });
    };
    view! {
        <section class="card">
            <h2>"Other sessions"</h2>
            <p class="notice">"Signed in somewhere you no longer are? End every session but this one."</p>
            <form method="post" on:submit=submit data-testid="end-sessions-form">
                <label>"Password" <input node_ref=password type="password" autocomplete="current-password" required /></label>
                <ErrorNote error />
                {move || done.get().then(|| view! { <p class="notice" data-testid="sessions-ended">"Your other sessions have ended."</p> })}
                <button type="submit">"Sign out everywhere else"</button>
            </form>
        </section>
    }
}
