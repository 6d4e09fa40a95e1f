//! Stored forecasts: one row per series, horizon and origin, so the latest
//! forecast is one indexed lookup and older ones remain for accuracy reports.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Forecasts::Table)
                    .col(string(Forecasts::OrganizationId))
                    .col(string(Forecasts::Workload))
                    .col(string(Forecasts::Metric))
                    // "allocation" (next hour, 5-minute steps) or "planning" (hourly).
                    .col(string(Forecasts::Horizon))
                    // Start of the last observed bucket (unix ms): step h is origin + h × step.
                    .col(big_integer(Forecasts::Origin))
                    .col(integer(Forecasts::StepSecs))
                    .col(big_integer(Forecasts::MadeAt))
                    .col(string(Forecasts::ModelVersion))
                    // JSON array of {p10, p50, p90, model}, one per step.
                    .col(text(Forecasts::Steps))
                    .primary_key(
                        Index::create()
                            .col(Forecasts::OrganizationId)
                            .col(Forecasts::Workload)
                            .col(Forecasts::Metric)
                            .col(Forecasts::Horizon)
                            .col(Forecasts::Origin),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_forecasts_made_at")
                    .table(Forecasts::Table)
                    .col(Forecasts::MadeAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Forecasts::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Forecasts {
    Table,
    OrganizationId,
    Workload,
    Metric,
    Horizon,
    Origin,
    StepSecs,
    MadeAt,
    ModelVersion,
    Steps,
}
