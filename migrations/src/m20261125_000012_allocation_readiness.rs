//! A workload may name the usage-event type whose readiness score (the
//! chance a billable event arrives within a minute) pre-allocates capacity,
//! and the memory each instance gets (a limit the provider applies).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(AllocationSettings::Table)
                    .add_column(string_null(AllocationSettings::ReadinessEvent))
                    .to_owned(),
            )
            .await?;
        // SQLite adds one column per ALTER TABLE.
        manager
            .alter_table(
                Table::alter()
                    .table(AllocationSettings::Table)
                    .add_column(big_integer_null(AllocationSettings::MemoryMibPerInstance))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(AllocationSettings::Table)
                    .drop_column(AllocationSettings::ReadinessEvent)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(AllocationSettings::Table)
                    .drop_column(AllocationSettings::MemoryMibPerInstance)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum AllocationSettings {
    Table,
    ReadinessEvent,
    MemoryMibPerInstance,
}
