//! The REST API under `/api/v1`, described by the OpenAPI document at
//! `/api/openapi.json` (viewer at `/api/docs`). Every route is registered through
//! `routes!`, so the document is the router's own list of routes.

mod admin;
mod allocation;
mod api_keys;
mod audit;
mod auth;
mod billing;
pub mod error;
mod forecast_inputs;
mod forecasts;
pub mod ingest;
mod notifications;
mod organization;
pub mod types;
mod webhooks;

use axum::Router;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use crate::http::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Headroom API",
        description = "Predictive capacity and billing. Authenticate programs with \
            `Authorization: Bearer hr_...` API keys; browsers use the session cookie plus \
            the `X-CSRF-Token` header on state-changing requests.",
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "auth", description = "Sign-up, log-in, sessions, passwords"),
        (name = "organization", description = "The caller's organisation, members, invitations"),
        (name = "api-keys", description = "Keys for programs"),
        (name = "ingest", description = "Telemetry, usage and behaviour intake; metric queries"),
        (name = "forecasts", description = "Forecasts with p10/p50/p90 intervals; anomalies; readiness"),
        (name = "allocation", description = "Controller settings per workload, decision log, suggestions"),
        (name = "billing", description = "Prices, price history, statements, projected invoice, budget cap, notifications"),
        (name = "webhooks", description = "Signed outgoing webhooks to billing systems: endpoints, secrets, delivery log, replay"),
        (name = "audit", description = "Security-relevant actions"),
        (name = "admin", description = "Platform administration (operator staff only)"),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("hr_...")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("headroom_session"))),
        );
    }
}

/// The API routes and their OpenAPI description, from one list.
pub fn router() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(auth::signup))
        .routes(routes!(auth::login))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(auth::current_session))
        .routes(routes!(auth::change_password))
        .routes(routes!(auth::end_other_sessions))
        .routes(routes!(organization::accept_invitation))
        .routes(routes!(organization::get_organization))
        .routes(routes!(organization::update_privacy))
        .routes(routes!(ingest::ingest_metrics))
        .routes(routes!(ingest::ingest_events, ingest::list_events))
        .routes(routes!(ingest::ingest_micro_operations))
        .routes(routes!(ingest::ingest_behaviour))
        .routes(routes!(ingest::query_metrics))
        .routes(routes!(ingest::list_series))
        .routes(routes!(forecasts::workload_forecast))
        .routes(routes!(forecasts::list_anomalies))
        .routes(routes!(forecasts::readiness))
        .routes(routes!(
            forecast_inputs::create_external_event,
            forecast_inputs::list_external_events
        ))
        .routes(routes!(forecast_inputs::delete_external_event))
        .routes(routes!(
            forecast_inputs::put_workload_profile,
            forecast_inputs::list_workload_profiles
        ))
        .routes(routes!(
            allocation::put_allocation,
            allocation::get_allocation
        ))
        .routes(routes!(allocation::list_allocations))
        .routes(routes!(allocation::list_decisions))
        .routes(routes!(allocation::suggest))
        .routes(routes!(organization::list_members))
        .routes(routes!(
            organization::update_member,
            organization::remove_member
        ))
        .routes(routes!(
            organization::list_invitations,
            organization::create_invitation
        ))
        .routes(routes!(organization::revoke_invitation))
        .routes(routes!(api_keys::list_api_keys, api_keys::create_api_key))
        .routes(routes!(api_keys::revoke_api_key))
        .routes(routes!(billing::current_prices))
        .routes(routes!(billing::price_history))
        .routes(routes!(billing::statement))
        .routes(routes!(billing::billing_estimate))
        .routes(routes!(
            billing::get_budget_cap,
            billing::put_budget_cap,
            billing::delete_budget_cap
        ))
        .routes(routes!(notifications::list_notifications))
        .routes(routes!(notifications::notification_stream))
        .routes(routes!(webhooks::create_endpoint, webhooks::list_endpoints))
        .routes(routes!(webhooks::delete_endpoint))
        .routes(routes!(webhooks::rotate_secret))
        .routes(routes!(webhooks::enable_endpoint))
        .routes(routes!(webhooks::list_deliveries))
        .routes(routes!(webhooks::replay_delivery))
        .routes(routes!(audit::organization_audit))
        .routes(routes!(admin::list_organizations))
        .routes(routes!(admin::update_organization))
        .routes(routes!(admin::platform_audit))
        .routes(routes!(admin::list_models))
        .routes(routes!(
            billing::list_price_rules,
            billing::create_price_rule
        ))
        .routes(routes!(billing::end_price_rule))
        .split_for_parts()
}

/// The API plus its document and viewer.
pub fn with_docs(api: Router<AppState>, doc: utoipa::openapi::OpenApi) -> Router<AppState> {
    api.merge(SwaggerUi::new("/api/docs").url("/api/openapi.json", doc))
}
