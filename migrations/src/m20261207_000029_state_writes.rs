//! Controller checkpoints leave the settings' indexes alone: migration 028
//! gave each checkpointed row a state revision of its own, in an index, so
//! every checkpoint (a twelfth of all workloads each tick) moved an indexed
//! column, wrote a new row version with an entry in each of the table's
//! three indexes, and left the settings read to step over the worker's own
//! rows. Now a checkpoint changes no indexed column, so PostgreSQL can
//! write it in place again (a heap-only update, in the half of each page
//! migration 018 leaves free for it), and each transaction that stores
//! states notes once, in `allocation_state_writes`, which states it stored,
//! by whom and at which revision (the same clock as the settings'): a
//! worker keeping the settings reads the notes of other writers since its
//! mark.
//!
//! The checkpoint's UPDATE still sets `revision` to -1; the triggers keep
//! the row's revision for it (every other write moves it).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::m20261207_000026_settings_revision::{SQLITE_NOW, SQLITE_TICK};
use crate::m20261207_000028_settings_state_revision::{self as m028, PG_XACT};
use crate::run_statements as run;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Migration 028 undone, then the checkpoint's revision kept and the notes.
fn postgres_up() -> Vec<String> {
    let mut up = m028::postgres_down();
    up.extend([
        format!(
            "CREATE OR REPLACE FUNCTION allocation_settings_revise() RETURNS trigger \
             LANGUAGE plpgsql AS $$ BEGIN \
             IF TG_OP = 'UPDATE' AND NEW.revision = -1 THEN NEW.revision := OLD.revision; \
             ELSE NEW.revision := {PG_XACT}; END IF; \
             RETURN NEW; END $$"
        ),
        "CREATE TABLE allocation_state_writes (revision BIGINT NOT NULL, writer TEXT, \
         written_at BIGINT NOT NULL, keys BYTEA NOT NULL)"
            .into(),
        "CREATE INDEX allocation_state_writes_revision ON allocation_state_writes (revision)"
            .into(),
    ]);
    up
}

fn postgres_down() -> Vec<String> {
    let mut down = vec!["DROP TABLE allocation_state_writes".to_owned()];
    // Migration 028's columns, index and trigger function.
    down.extend(m028::postgres_up());
    down
}

/// Migration 028 undone, then the checkpoint's revision kept and the notes.
fn sqlite_up() -> Vec<String> {
    let mut up: Vec<String> = m028::SQLITE_DOWN.iter().map(|s| (*s).to_owned()).collect();
    up.extend([
        // Migration 026's update trigger fires only where the revision was
        // left as it was, so not for -1, nor for this trigger's own update.
        "CREATE TRIGGER allocation_settings_keep_revision AFTER UPDATE ON allocation_settings \
         WHEN NEW.revision = -1 \
         BEGIN UPDATE allocation_settings SET revision = OLD.revision WHERE rowid = NEW.rowid; END"
            .into(),
        "CREATE TABLE allocation_state_writes (revision INTEGER NOT NULL DEFAULT 0, writer TEXT, \
         written_at INTEGER NOT NULL, keys BLOB NOT NULL)"
            .into(),
        "CREATE INDEX allocation_state_writes_revision ON allocation_state_writes (revision)"
            .into(),
        format!(
            "CREATE TRIGGER allocation_state_writes_revise AFTER INSERT ON allocation_state_writes \
             BEGIN {SQLITE_TICK} UPDATE allocation_state_writes SET revision = {SQLITE_NOW} \
             WHERE rowid = NEW.rowid; END"
        ),
    ]);
    up
}

fn sqlite_down() -> Vec<String> {
    let mut down = vec![
        "DROP TABLE allocation_state_writes".to_owned(),
        "DROP TRIGGER allocation_settings_keep_revision".into(),
    ];
    // Migration 028's columns, index and trigger.
    down.extend(m028::sqlite_up());
    down
}

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
            _ => run(manager, &sqlite_down()).await,
        }
    }
}
