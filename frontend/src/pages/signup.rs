use leptos::prelude::*;
use leptos_router::hooks::use_navigate;
use serde_json::json;

use super::{ErrorNote, field, open_session};
use crate::auth::use_auth;

#[component]
pub fn SignupPage() -> impl IntoView {
    let auth = use_auth();
    let navigate = use_navigate();
    let (org, email, password) = (NodeRef::new(), NodeRef::new(), NodeRef::new());
    let error = RwSignal::new(None::<String>);
    let pending = RwSignal::new(false);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let body = json!({ "organization_name": field(org), "email": field(email), "password": field(password) });
        open_session("/auth/signup", body, navigate.clone(), error, pending);
    };
    view! {
        <section class="card narrow">
            <h2>"Create your organisation"</h2>
            <form method="post" on:submit=submit data-testid="signup-form">
                <label>"Organisation name" <input node_ref=org name="organization_name" required /></label>
                <label>"E-mail" <input node_ref=email name="email" type="email" autocomplete="username" required /></label>
                <label>
                    "Password (12 characters or more)"
                    <input node_ref=password name="password" type="password" autocomplete="new-password" required />
                </label>
                <ErrorNote error />
                <button type="submit" disabled=move || pending.get() || !auth.known.get()>"Sign up"</button>
            </form>
            <p>"Already have an account? " <a href="/login">"Log in"</a></p>
        </section>
    }
}
