//! Headroom's schema, versioned. Every migration must run on SQLite and PostgreSQL.

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_housekeeping_runs;
mod m20261125_000002_accounts;
mod m20261125_000003_telemetry;
mod m20261125_000004_forecasts;
mod m20261125_000005_anomalies;
mod m20261125_000006_forecast_inputs;
mod m20261125_000007_allocation;
mod m20261125_000008_billing;
mod m20261125_000009_webhooks;
mod m20261125_000010_stripe;
mod m20261125_000011_billing_hours;
mod m20261125_000012_allocation_readiness;
mod m20261125_000013_allocation_aws;
mod m20261125_000014_model_versions;
mod m20261125_000015_usage_allocation;
mod m20261125_000016_allocation_network;
mod m20261125_000017_pending_decisions;
mod m20261205_000018_controller_state_binary;
mod m20261206_000019_controller_state_slot;
mod m20261206_000020_decision_tick_key;
mod m20261206_000021_decision_slot_primary_key;
mod m20261206_000022_decision_missed;
mod m20261206_000023_decision_groups;
mod m20261207_000024_user_sessions_ended;
mod m20261207_000025_forecast_steps_packed;
mod m20261207_000026_settings_revision;
mod m20261207_000027_decision_groups_lz4;
mod m20261207_000028_settings_state_revision;
mod m20261207_000029_state_writes;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_housekeeping_runs::Migration),
            Box::new(m20261125_000002_accounts::Migration),
            Box::new(m20261125_000003_telemetry::Migration),
            Box::new(m20261125_000004_forecasts::Migration),
            Box::new(m20261125_000005_anomalies::Migration),
            Box::new(m20261125_000006_forecast_inputs::Migration),
            Box::new(m20261125_000007_allocation::Migration),
            Box::new(m20261125_000008_billing::Migration),
            Box::new(m20261125_000009_webhooks::Migration),
            Box::new(m20261125_000010_stripe::Migration),
            Box::new(m20261125_000011_billing_hours::Migration),
            Box::new(m20261125_000012_allocation_readiness::Migration),
            Box::new(m20261125_000013_allocation_aws::Migration),
            Box::new(m20261125_000014_model_versions::Migration),
            Box::new(m20261125_000015_usage_allocation::Migration),
            Box::new(m20261125_000016_allocation_network::Migration),
            Box::new(m20261125_000017_pending_decisions::Migration),
            Box::new(m20261205_000018_controller_state_binary::Migration),
            Box::new(m20261206_000019_controller_state_slot::Migration),
            Box::new(m20261206_000020_decision_tick_key::Migration),
            Box::new(m20261206_000021_decision_slot_primary_key::Migration),
            Box::new(m20261206_000022_decision_missed::Migration),
            Box::new(m20261206_000023_decision_groups::Migration),
            Box::new(m20261207_000024_user_sessions_ended::Migration),
            Box::new(m20261207_000025_forecast_steps_packed::Migration),
            Box::new(m20261207_000026_settings_revision::Migration),
            Box::new(m20261207_000027_decision_groups_lz4::Migration),
            Box::new(m20261207_000028_settings_state_revision::Migration),
            Box::new(m20261207_000029_state_writes::Migration),
        ]
    }
}

/// Runs `statements` in order (raw SQL, one backend's).
pub(crate) async fn run_statements<S: AsRef<str>>(
    manager: &SchemaManager<'_>,
    statements: &[S],
) -> Result<(), DbErr> {
    for sql in statements {
        manager
            .get_connection()
            .execute_unprepared(sql.as_ref())
            .await?;
    }
    Ok(())
}
