//! Anomalies found by the behavioural profiles: one row per series and step, so
//! re-scoring the same step (a retried or overlapping job run) stores it once.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Anomalies::Table)
                    .col(string(Anomalies::OrganizationId))
                    .col(string(Anomalies::Workload))
                    .col(string(Anomalies::Metric))
                    // Start of the step (unix ms) and its length.
                    .col(big_integer(Anomalies::Ts))
                    .col(integer(Anomalies::StepSecs))
                    .col(double(Anomalies::Value))
                    .col(double(Anomalies::Expected))
                    .col(double(Anomalies::Score))
                    .col(text(Anomalies::Reason))
                    .col(big_integer(Anomalies::DetectedAt))
                    .primary_key(
                        Index::create()
                            .col(Anomalies::OrganizationId)
                            .col(Anomalies::Workload)
                            .col(Anomalies::Metric)
                            .col(Anomalies::Ts),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_anomalies_org_ts")
                    .table(Anomalies::Table)
                    .col(Anomalies::OrganizationId)
                    .col(Anomalies::Ts)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Anomalies::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Anomalies {
    Table,
    OrganizationId,
    Workload,
    Metric,
    Ts,
    StepSecs,
    Value,
    Expected,
    Score,
    Reason,
    DetectedAt,
}
