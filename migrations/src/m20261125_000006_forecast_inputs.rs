//! What customers tell the forecaster: external events (a campaign expected to
//! multiply demand in a window) and workload profiles (the prior for series with
//! little history).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ExternalEvents::Table)
                    .col(string(ExternalEvents::OrganizationId))
                    .col(string(ExternalEvents::Id))
                    .col(string(ExternalEvents::Name))
                    // NULL: every workload of the organisation.
                    .col(string_null(ExternalEvents::Workload))
                    .col(big_integer(ExternalEvents::StartsAt))
                    .col(big_integer(ExternalEvents::EndsAt))
                    .col(double(ExternalEvents::Multiplier))
                    .col(big_integer(ExternalEvents::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(ExternalEvents::OrganizationId)
                            .col(ExternalEvents::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_external_events_window")
                    .table(ExternalEvents::Table)
                    .col(ExternalEvents::OrganizationId)
                    .col(ExternalEvents::EndsAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WorkloadProfiles::Table)
                    .col(string(WorkloadProfiles::OrganizationId))
                    .col(string(WorkloadProfiles::Workload))
                    .col(string(WorkloadProfiles::Category))
                    // JSON array of UTC hours 0..=23.
                    .col(text(WorkloadProfiles::PeakHours))
                    // Expected growth per 30 days, e.g. 0.1 for +10 %.
                    .col(double(WorkloadProfiles::ExpectedGrowth))
                    .col(big_integer(WorkloadProfiles::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(WorkloadProfiles::OrganizationId)
                            .col(WorkloadProfiles::Workload),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(WorkloadProfiles::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(ExternalEvents::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum ExternalEvents {
    Table,
    OrganizationId,
    Id,
    Name,
    Workload,
    StartsAt,
    EndsAt,
    Multiplier,
    CreatedAt,
}

#[derive(DeriveIden)]
enum WorkloadProfiles {
    Table,
    OrganizationId,
    Workload,
    Category,
    PeakHours,
    ExpectedGrowth,
    UpdatedAt,
}
