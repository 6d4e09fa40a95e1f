//! The controller looks up decisions left `pending` once per tick across all
//! workloads; a partial index keeps that lookup to the few pending rows
//! instead of a scan of the whole (ever-growing) decision log.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Partial indexes have the same syntax on PostgreSQL and SQLite.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX idx_allocation_decisions_pending \
                 ON allocation_decisions (organization_id, workload) WHERE status = 'pending'",
            )
            .await
            .map(drop)
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP INDEX idx_allocation_decisions_pending")
            .await
            .map(drop)
    }
}
