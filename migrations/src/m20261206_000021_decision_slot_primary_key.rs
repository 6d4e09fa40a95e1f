//! On PostgreSQL the decision log's primary key becomes its slot key
//! (organisation, source, slot, workload), and the key on (organisation, id)
//! goes: it was the log's largest index (ids are 36 characters) and nothing
//! looks a decision up by id alone any more (a command's outcome is recorded
//! through the slot key). Ids stay unique by construction (UUIDv7). Every
//! tick writes one row per workload, so one index fewer is a quarter of the
//! log's index work. SQLite keeps its table as it is: changing a primary key
//! there means copying the table, and the queries are the same either way.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared(
                "ALTER TABLE allocation_decisions DROP CONSTRAINT allocation_decisions_pkey, \
                 ADD CONSTRAINT allocation_decisions_pkey PRIMARY KEY \
                 USING INDEX idx_allocation_decisions_tick",
            )
            .await
            .map(drop)
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        // The slot key goes back to being a unique index of its own name.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX idx_allocation_decisions_tick ON allocation_decisions \
                 (organization_id, source, slot, workload); \
                 ALTER TABLE allocation_decisions DROP CONSTRAINT allocation_decisions_pkey, \
                 ADD CONSTRAINT allocation_decisions_pkey PRIMARY KEY (organization_id, id)",
            )
            .await
            .map(drop)
    }
}
