//! The HTTP surface: probes, metrics, the web app and (later) the REST API.

mod health;
mod metrics;
mod stripe_webhook;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use axum::routing::{get, post};
use axum::{Router, middleware};
use headroom_store::Db;
use leptos::prelude::LeptosOptions;
use leptos_axum::{LeptosRoutes, generate_route_list};
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::services::ServeDir;
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::api::ingest::IngestSettings;
use crate::api::ingest::feed::Feed;
use crate::auth::rate_limit::LoginLimiter;
use crate::auth::session_store::DbSessionStore;

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub leptos: LeptosOptions,
    pub metrics: PrometheusHandle,
    pub auth: Arc<AuthSettings>,
    pub ingest: Arc<IngestSettings>,
    pub feed: Feed,
    /// Fans committed notifications out to open event streams.
    pub notifications: crate::notifications::Hub,
    /// Whether workloads may use the `cgroup` allocation provider.
    pub cgroup_provider: bool,
    /// Whether workloads may use the `aws` allocation provider.
    pub aws_provider: bool,
    /// Whether webhook endpoints may point at loopback or private addresses.
    pub webhooks_allow_private: bool,
    /// Signing secret of Stripe's webhooks to us; `None`: the receiver is off.
    pub stripe_webhook_secret: Option<String>,
    /// Whether platform load is measured (demand-multiplier rules need it).
    pub platform_load_measured: bool,
}

/// Authentication policy, from the config.
pub struct AuthSettings {
    pub session_idle: Duration,
    pub session_max_age: Duration,
    pub secure_cookies: bool,
    pub login_limiter: LoginLimiter,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}

pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(headroom_frontend::App);
    let db = state.db.clone();
    let pkg_dir = std::path::Path::new(&*state.leptos.site_root).join(&*state.leptos.site_pkg_dir);
    let sessions = SessionManagerLayer::new(DbSessionStore::new(state.db.clone()))
        .with_name("headroom_session")
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(state.auth.secure_cookies)
        .with_expiry(Expiry::OnInactivity(
            time::Duration::try_from(state.auth.session_idle).unwrap_or(time::Duration::days(1)),
        ));
    let (api, doc) = crate::api::router();
    Router::new()
        .merge(crate::api::with_docs(api, doc))
        .route("/webhooks/stripe", post(stripe_webhook::receive))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::render))
        .leptos_routes_with_context(
            &state,
            routes,
            move || leptos::prelude::provide_context(db.clone()),
            {
                let options = state.leptos.clone();
                move || headroom_frontend::shell(options.clone())
            },
        )
        .nest_service("/pkg", ServeDir::new(pkg_dir).precompressed_gzip())
        .fallback(health::not_found)
        .layer(sessions)
        .layer(middleware::from_fn(metrics::track))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
