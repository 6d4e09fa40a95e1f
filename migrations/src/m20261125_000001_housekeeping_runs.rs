use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(HousekeepingRuns::Table)
                    .if_not_exists()
                    .col(pk_auto(HousekeepingRuns::Id))
                    // The schedule slot the run belongs to (unix seconds): unique, so a
                    // tick delivered twice (retry, two workers) is recorded once.
                    .col(big_integer_uniq(HousekeepingRuns::TickAt))
                    .col(timestamp_with_time_zone(HousekeepingRuns::StartedAt))
                    .col(timestamp_with_time_zone(HousekeepingRuns::FinishedAt))
                    .col(big_integer(HousekeepingRuns::PrunedJobs))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(HousekeepingRuns::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum HousekeepingRuns {
    Table,
    Id,
    TickAt,
    StartedAt,
    FinishedAt,
    PrunedJobs,
}
