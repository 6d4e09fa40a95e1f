//! Controller checkpoints get a revision of their own (`state_revision`), so
//! a worker keeping the settings between ticks no longer reads back, whole,
//! every row whose state it stored itself (a twelfth of all workloads each
//! tick): it reads the settings written since (`revision`, migration 026)
//! and only the slot of the states stored since.
//!
//! The checkpoint's UPDATE says it writes nothing but the state by setting
//! `revision` to -1 (no revision is negative); the triggers then keep the
//! row's revision and set `state_revision` instead. Every other write,
//! whatever columns it sets, still moves `revision`: only that one
//! statement opts out. The checkpoint also names its writer
//! (`state_writer`, the worker's kept settings), so a reader leaves out the
//! checkpoints it wrote itself: it knows their slots already.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::m20261207_000026_settings_revision::{SQLITE_NOW, SQLITE_TICK};
use crate::run_statements as run;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The transaction's id, as migration 026 uses it.
pub(crate) const PG_XACT: &str = "CAST(CAST(pg_current_xact_id() AS TEXT) AS BIGINT)";

pub(crate) fn postgres_up() -> Vec<String> {
    vec![
        "ALTER TABLE allocation_settings ADD COLUMN state_revision BIGINT NOT NULL DEFAULT 0"
            .into(),
        "CREATE INDEX allocation_settings_state_revision ON allocation_settings (state_revision)"
            .into(),
        "ALTER TABLE allocation_settings ADD COLUMN state_writer TEXT".into(),
        format!(
            "CREATE OR REPLACE FUNCTION allocation_settings_revise() RETURNS trigger \
             LANGUAGE plpgsql AS $$ BEGIN \
             IF TG_OP = 'UPDATE' AND NEW.revision = -1 THEN \
             NEW.revision := OLD.revision; NEW.state_revision := {PG_XACT}; \
             ELSE NEW.revision := {PG_XACT}; END IF; \
             RETURN NEW; END $$"
        ),
    ]
}

pub(crate) fn postgres_down() -> Vec<String> {
    vec![
        // Migration 026's function.
        format!(
            "CREATE OR REPLACE FUNCTION allocation_settings_revise() RETURNS trigger \
             LANGUAGE plpgsql AS $$ BEGIN NEW.revision := {PG_XACT}; RETURN NEW; END $$"
        ),
        "ALTER TABLE allocation_settings DROP COLUMN state_writer".into(),
        "DROP INDEX allocation_settings_state_revision".into(),
        "ALTER TABLE allocation_settings DROP COLUMN state_revision".into(),
    ]
}

pub(crate) fn sqlite_up() -> Vec<String> {
    vec![
        "ALTER TABLE allocation_settings ADD COLUMN state_revision INTEGER NOT NULL DEFAULT 0"
            .into(),
        "CREATE INDEX allocation_settings_state_revision ON allocation_settings (state_revision)"
            .into(),
        "ALTER TABLE allocation_settings ADD COLUMN state_writer TEXT".into(),
        // Migration 026's update trigger fires only where the revision was
        // left as it was, so not for -1, nor for this trigger's own update
        // (from -1 back to the row's revision).
        format!(
            "CREATE TRIGGER allocation_settings_revise_state AFTER UPDATE ON allocation_settings \
             WHEN NEW.revision = -1 \
             BEGIN {SQLITE_TICK} UPDATE allocation_settings SET revision = OLD.revision, \
             state_revision = {SQLITE_NOW} WHERE rowid = NEW.rowid; END"
        ),
    ]
}

pub(crate) const SQLITE_DOWN: &[&str] = &[
    "DROP TRIGGER allocation_settings_revise_state",
    "ALTER TABLE allocation_settings DROP COLUMN state_writer",
    "DROP INDEX allocation_settings_state_revision",
    "ALTER TABLE allocation_settings DROP COLUMN state_revision",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DbBackend::Postgres => run(manager, &postgres_up()).await,
            _ => run(manager, &sqlite_up()).await,
        }
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DbBackend::Postgres => run(manager, &postgres_down()).await,
            _ => run(manager, SQLITE_DOWN).await,
        }
    }
}
