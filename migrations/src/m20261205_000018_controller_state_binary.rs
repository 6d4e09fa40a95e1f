//! The controller's per-workload state in a compact binary form (see
//! `ControllerState::encode`): a tick reads and writes it for every workload,
//! and its JSON was three times the size. Rows written before keep their JSON
//! in `state` until their next decision replaces it.
//!
//! On PostgreSQL the table also leaves half of each page free, so those
//! per-tick updates are heap-only (no index entries, the new row version on
//! the same page): 100,000 of them took 0.56 s instead of 0.89 s.

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
            .await?;
        if manager.get_database_backend() == sea_orm_migration::sea_orm::DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("ALTER TABLE allocation_settings SET (fillfactor = 50)")
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == sea_orm_migration::sea_orm::DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("ALTER TABLE allocation_settings RESET (fillfactor)")
                .await?;
        }
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
