use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{SsrMode, path};

use crate::auth::{Auth, use_auth};
use crate::pages::{
    AcceptInvitationPage, AccountPage, AdminPage, AllocationPage, ApiKeysPage, AuditPage,
    BillingPage, HomePage, LoginPage, MembersPage, PlanningPage, SignupPage, UsagePage,
    WebhooksPage,
};

/// An "H" in the accent colour on a rounded square.
const FAVICON: &str = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' \
    viewBox='0 0 32 32'%3E%3Crect width='32' height='32' rx='7' fill='%232457d6'/%3E\
    %3Cpath d='M9 7h4v7h6V7h4v18h-4v-7h-6v7H9z' fill='white'/%3E%3C/svg%3E";

/// The HTML document around the app, rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                // Inline, so browsers ask for no /favicon.ico.
                <link rel="icon" type="image/svg+xml" href=FAVICON />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    Auth::provide();
    view! {
        <Stylesheet id="headroom" href="/pkg/headroom.css" />
        <Title text="Headroom" />
        <Router>
            <Nav />
            <main class="page">
                <Routes fallback=|| view! { <p class="notice">"Page not found."</p> }>
                    // Async: the status is in the first HTML response, readable without JavaScript.
                    <Route path=path!("") view=HomePage ssr=SsrMode::Async />
                    <Route path=path!("signup") view=SignupPage />
                    <Route path=path!("login") view=LoginPage />
                    <Route path=path!("accept") view=AcceptInvitationPage />
                    <Route path=path!("account") view=AccountPage />
                    <Route path=path!("members") view=MembersPage />
                    <Route path=path!("api-keys") view=ApiKeysPage />
                    <Route path=path!("billing") view=BillingPage />
                    <Route path=path!("allocation") view=AllocationPage />
                    <Route path=path!("admin") view=AdminPage />
                    <Route path=path!("usage") view=UsagePage />
                    <Route path=path!("planning") view=PlanningPage />
                    <Route path=path!("webhooks") view=WebhooksPage />
                    <Route path=path!("audit") view=AuditPage />
                </Routes>
            </main>
        </Router>
    }
}

#[component]
fn Nav() -> impl IntoView {
    let auth = use_auth();
    view! {
        <nav class="top">
            <a href="/" class="brand">"Headroom"</a>
            {move || match auth.me.get() {
                Some(me) => view! {
                    {me.is_platform_admin().then(|| view! { <a href="/admin" data-testid="nav-admin">"Admin"</a> })}
                    <a href="/usage">"Usage"</a>
                    <a href="/planning">"Planning"</a>
                    <a href="/allocation">"Allocation"</a>
                    <a href="/billing">"Billing"</a>
                    <a href="/webhooks">"Webhooks"</a>
                    <a href="/members">"Members"</a>
                    <a href="/api-keys">"API keys"</a>
                    {me.is_manager().then(|| view! { <a href="/audit" data-testid="nav-audit">"Audit"</a> })}
                    <a href="/account" data-testid="nav-account">{me.user.email}</a>
                }
                .into_any(),
                None => view! {
                    <a href="/login" data-testid="nav-login">"Log in"</a>
                    <a href="/signup">"Sign up"</a>
                }
                .into_any(),
            }}
        </nav>
    }
}
