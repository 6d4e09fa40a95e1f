//! Egress bandwidth per instance for cgroup workloads (shaped with `tc`).

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
                    .add_column(integer_null(AllocationSettings::NetworkMbitPerInstance))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(AllocationSettings::Table)
                    .drop_column(AllocationSettings::NetworkMbitPerInstance)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum AllocationSettings {
    Table,
    NetworkMbitPerInstance,
}
