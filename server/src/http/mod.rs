//! The HTTP surface: probes, metrics, the web app and (later) the REST API.

mod health;
mod metrics;

use axum::extract::FromRef;
use axum::{Router, middleware, routing::get};
use headroom_store::Db;
use leptos::prelude::LeptosOptions;
use leptos_axum::{LeptosRoutes, generate_route_list};
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::services::ServeDir;
use tower_http::trace::TraceLayer;

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub leptos: LeptosOptions,
    pub metrics: PrometheusHandle,
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
    Router::new()
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
        .layer(middleware::from_fn(metrics::track))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
