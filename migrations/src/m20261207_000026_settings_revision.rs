//! A revision on every row of `allocation_settings`, set by the database on
//! every write, and a note of every removed row: so the allocation worker can
//! keep the settings of every controlled workload between ticks and read
//! again only what changed since its last read (`Db::tick_settings_since`).
//!
//! Triggers set it, so no write path (the API, suggestions, a finished
//! command, a controller checkpoint, an operator's SQL) can forget to.
//!
//! - PostgreSQL: the revision is the id of the writing transaction
//!   (`pg_current_xact_id`, 64-bit, never wraps). A reader remembers the
//!   oldest transaction still running when it read
//!   (`pg_snapshot_xmin(pg_current_snapshot())`); every row version it did
//!   not see was written by that transaction or a later one, whatever the
//!   order transactions commit in. Needs PostgreSQL 13 or later.
//! - SQLite: writers take turns, so a counter (`allocation_settings_clock`)
//!   bumped by each written row orders rows as they commit.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::run_statements as run;

#[derive(DeriveMigrationName)]
pub struct Migration;

const POSTGRES_UP: &[&str] = &[
    "ALTER TABLE allocation_settings ADD COLUMN revision BIGINT NOT NULL DEFAULT 0",
    "CREATE INDEX allocation_settings_revision ON allocation_settings (revision)",
    "CREATE TABLE allocation_settings_removed (organization_id TEXT NOT NULL, \
     workload TEXT NOT NULL, revision BIGINT NOT NULL, removed_at BIGINT NOT NULL, \
     PRIMARY KEY (organization_id, workload))",
    "CREATE INDEX allocation_settings_removed_revision ON allocation_settings_removed (revision)",
    "CREATE FUNCTION allocation_settings_revise() RETURNS trigger LANGUAGE plpgsql AS $$ \
     BEGIN NEW.revision := CAST(CAST(pg_current_xact_id() AS TEXT) AS BIGINT); RETURN NEW; END $$",
    "CREATE TRIGGER allocation_settings_revise BEFORE INSERT OR UPDATE ON allocation_settings \
     FOR EACH ROW EXECUTE FUNCTION allocation_settings_revise()",
    "CREATE FUNCTION allocation_settings_note_removed() RETURNS trigger LANGUAGE plpgsql AS $$ \
     BEGIN \
     INSERT INTO allocation_settings_removed (organization_id, workload, revision, removed_at) \
     VALUES (OLD.organization_id, OLD.workload, \
       CAST(CAST(pg_current_xact_id() AS TEXT) AS BIGINT), \
       CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)) \
     ON CONFLICT (organization_id, workload) DO UPDATE \
       SET revision = excluded.revision, removed_at = excluded.removed_at; \
     RETURN OLD; END $$",
    "CREATE TRIGGER allocation_settings_note_removed AFTER DELETE ON allocation_settings \
     FOR EACH ROW EXECUTE FUNCTION allocation_settings_note_removed()",
];

const POSTGRES_DOWN: &[&str] = &[
    "DROP TRIGGER allocation_settings_note_removed ON allocation_settings",
    "DROP FUNCTION allocation_settings_note_removed()",
    "DROP TRIGGER allocation_settings_revise ON allocation_settings",
    "DROP FUNCTION allocation_settings_revise()",
    "DROP TABLE allocation_settings_removed",
    "DROP INDEX allocation_settings_revision",
    "ALTER TABLE allocation_settings DROP COLUMN revision",
];

/// The counter's next value, stored on the row `rowid` names (SQLite's
/// triggers run with recursive triggers off, and the update trigger skips
/// a row whose revision was just set, so neither fires itself).
pub(crate) const SQLITE_TICK: &str =
    "UPDATE allocation_settings_clock SET revision = revision + 1 WHERE id = 1;";
pub(crate) const SQLITE_NOW: &str = "(SELECT revision FROM allocation_settings_clock WHERE id = 1)";

fn sqlite_up() -> Vec<String> {
    vec![
        "ALTER TABLE allocation_settings ADD COLUMN revision INTEGER NOT NULL DEFAULT 0".into(),
        "CREATE INDEX allocation_settings_revision ON allocation_settings (revision)".into(),
        "CREATE TABLE allocation_settings_clock (id INTEGER PRIMARY KEY CHECK (id = 1), \
         revision INTEGER NOT NULL)"
            .into(),
        "INSERT INTO allocation_settings_clock (id, revision) VALUES (1, 0)".into(),
        "CREATE TABLE allocation_settings_removed (organization_id TEXT NOT NULL, \
         workload TEXT NOT NULL, revision INTEGER NOT NULL, removed_at INTEGER NOT NULL, \
         PRIMARY KEY (organization_id, workload))"
            .into(),
        "CREATE INDEX allocation_settings_removed_revision ON allocation_settings_removed (revision)"
            .into(),
        format!(
            "CREATE TRIGGER allocation_settings_revise_insert AFTER INSERT ON allocation_settings \
             BEGIN {SQLITE_TICK} UPDATE allocation_settings SET revision = {SQLITE_NOW} \
             WHERE rowid = NEW.rowid; END"
        ),
        format!(
            "CREATE TRIGGER allocation_settings_revise_update AFTER UPDATE ON allocation_settings \
             WHEN NEW.revision = OLD.revision \
             BEGIN {SQLITE_TICK} UPDATE allocation_settings SET revision = {SQLITE_NOW} \
             WHERE rowid = NEW.rowid; END"
        ),
        format!(
            "CREATE TRIGGER allocation_settings_note_removed AFTER DELETE ON allocation_settings \
             BEGIN {SQLITE_TICK} INSERT OR REPLACE INTO allocation_settings_removed \
             (organization_id, workload, revision, removed_at) \
             VALUES (OLD.organization_id, OLD.workload, {SQLITE_NOW}, \
             CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)); END"
        ),
    ]
}

const SQLITE_DOWN: &[&str] = &[
    "DROP TRIGGER allocation_settings_note_removed",
    "DROP TRIGGER allocation_settings_revise_update",
    "DROP TRIGGER allocation_settings_revise_insert",
    "DROP TABLE allocation_settings_removed",
    "DROP TABLE allocation_settings_clock",
    "DROP INDEX allocation_settings_revision",
    "ALTER TABLE allocation_settings DROP COLUMN revision",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DbBackend::Postgres => run(manager, POSTGRES_UP).await,
            _ => run(manager, &sqlite_up()).await,
        }
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DbBackend::Postgres => run(manager, POSTGRES_DOWN).await,
            _ => run(manager, SQLITE_DOWN).await,
        }
    }
}
