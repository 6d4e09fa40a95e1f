//! Each billable usage event records the allocation in force when it
//! happened (the applied decision and its instances), so its cost can be
//! attributed to the capacity that served it; and the index that finds the
//! decision in force at an instant.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        for mut column in [
            string_null(UsageEvents::AllocationDecisionId),
            integer_null(UsageEvents::AllocationInstances),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(UsageEvents::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("idx_allocation_decisions_in_force")
                    .table(AllocationDecisions::Table)
                    .col(AllocationDecisions::OrganizationId)
                    .col(AllocationDecisions::Workload)
                    .col(AllocationDecisions::DecidedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_allocation_decisions_in_force")
                    .table(AllocationDecisions::Table)
                    .to_owned(),
            )
            .await?;
        for column in [
            UsageEvents::AllocationDecisionId,
            UsageEvents::AllocationInstances,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(UsageEvents::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum UsageEvents {
    Table,
    AllocationDecisionId,
    AllocationInstances,
}

#[derive(DeriveIden)]
enum AllocationDecisions {
    Table,
    OrganizationId,
    Workload,
    DecidedAt,
}
