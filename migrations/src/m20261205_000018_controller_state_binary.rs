//! The controller's per-workload state in a compact binary form (see
//! `ControllerState::encode`): a tick reads and writes it for every workload,
//! and its JSON was three times the size. Rows written before keep their JSON
//! in `state` until their next decision replaces it.

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
                    .add_column(blob_null(AllocationSettings::ControllerState))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(AllocationSettings::Table)
                    .drop_column(AllocationSettings::ControllerState)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum AllocationSettings {
    Table,
    ControllerState,
}
