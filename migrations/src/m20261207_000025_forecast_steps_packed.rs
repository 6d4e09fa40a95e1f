//! Forecast steps stored packed (`headroom_core::forecast::PackedSteps`)
//! instead of as JSON: every allocation tick reads each workload's newest
//! forecast, and the JSON was a third of the tick's decoding and three times
//! the packed size of a table kept for weeks.
//!
//! Stored forecasts are converted in place, in batches (key order on
//! PostgreSQL, rowid order on SQLite), then the JSON column is dropped. A
//! forecast whose JSON cannot be read is deleted: it could not be served
//! before either, and the forecast job makes the series' next one within a
//! step.

use headroom_core::forecast::PackedSteps;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement, Value};
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Forecasts converted per read.
const BATCH: u64 = 1_000;
const KEY: &str = "organization_id, workload, metric, horizon, origin";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        replace_steps(
            manager,
            Forecasts::Steps,
            Forecasts::StepsPacked,
            |row, at| {
                let json: String = row.try_get_by_index(at)?;
                Ok(PackedSteps::from_json(&json)
                    .ok()
                    .map(|p| Value::from(p.as_bytes().to_vec())))
            },
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        replace_steps(
            manager,
            Forecasts::StepsPacked,
            Forecasts::Steps,
            |row, at| {
                let bytes: Option<Vec<u8>> = row.try_get_by_index(at)?;
                let Some(packed) = bytes.and_then(|b| PackedSteps::from_bytes(b).ok()) else {
                    return Ok(None);
                };
                let steps: Vec<_> = packed
                .with_models()
                .map(|(s, model)| {
                    serde_json::json!({"p10": s.p10, "p50": s.p50, "p90": s.p90, "model": model})
                })
                .collect();
                Ok(Some(Value::from(
                    serde_json::Value::from(steps).to_string(),
                )))
            },
        )
        .await
    }
}

/// Adds column `to` (packed steps a blob, JSON text), fills it from `from`
/// for every forecast ([`convert`]), then drops `from`.
async fn replace_steps(
    manager: &SchemaManager<'_>,
    from: Forecasts,
    to: Forecasts,
    to_value: impl Fn(&QueryResult, usize) -> Result<Option<Value>, DbErr>,
) -> Result<(), DbErr> {
    let column = match to {
        Forecasts::StepsPacked => blob_null(to),
        _ => text_null(to),
    };
    manager
        .alter_table(
            Table::alter()
                .table(Forecasts::Table)
                .add_column(column)
                .to_owned(),
        )
        .await?;
    convert(manager, &from.to_string(), &to.to_string(), to_value).await?;
    manager
        .alter_table(
            Table::alter()
                .table(Forecasts::Table)
                .drop_column(from)
                .to_owned(),
        )
        .await
}

/// Rewrites every forecast's steps from column `from` into column `to`
/// (`to_value` reads the column at the index it is given; `None` deletes the
/// forecast).
async fn convert(
    manager: &SchemaManager<'_>,
    from: &str,
    to: &str,
    to_value: impl Fn(&QueryResult, usize) -> Result<Option<Value>, DbErr>,
) -> Result<(), DbErr> {
    match manager.get_database_backend() {
        DbBackend::Postgres => convert_pg(manager, from, to, to_value).await,
        _ => convert_sqlite(manager, from, to, to_value).await,
    }
}

/// SQLite, in process: by rowid, a statement per row (18 s for 100,000
/// forecasts; the PostgreSQL path, keyset reads and a batch joined to the
/// table, ran over 5 minutes on SQLite: which of the two was slow there was
/// not pinned down).
async fn convert_sqlite(
    manager: &SchemaManager<'_>,
    from: &str,
    to: &str,
    to_value: impl Fn(&QueryResult, usize) -> Result<Option<Value>, DbErr>,
) -> Result<(), DbErr> {
    let conn = manager.get_connection();
    let backend = DbBackend::Sqlite;
    let mut after = i64::MIN;
    loop {
        let rows = conn
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "SELECT rowid, {from} FROM forecasts WHERE rowid > ? ORDER BY rowid \
                     LIMIT {BATCH}"
                ),
                [after.into()],
            ))
            .await?;
        for row in &rows {
            let rowid: i64 = row.try_get_by_index(0)?;
            after = rowid;
            let (sql, values) = match to_value(row, 1)? {
                Some(v) => (
                    format!("UPDATE forecasts SET {to} = ? WHERE rowid = ?"),
                    vec![v, rowid.into()],
                ),
                None => (
                    "DELETE FROM forecasts WHERE rowid = ?".to_owned(),
                    vec![rowid.into()],
                ),
            };
            conn.execute_raw(Statement::from_sql_and_values(backend, sql, values))
                .await?;
        }
        if (rows.len() as u64) < BATCH {
            return Ok(());
        }
    }
}

/// PostgreSQL: in key order, a batch's conversions in one statement (a row
/// at a time was 7,000 rows a second, each a round trip).
async fn convert_pg(
    manager: &SchemaManager<'_>,
    from: &str,
    to: &str,
    to_value: impl Fn(&QueryResult, usize) -> Result<Option<Value>, DbErr>,
) -> Result<(), DbErr> {
    let conn = manager.get_connection();
    let backend = DbBackend::Postgres;
    let mut after: Option<[Value; 5]> = None;
    loop {
        // Keyset pages: each read starts where the last ended, so a large
        // table is read once, not rescanned from its start per batch.
        let (filter, values) = match &after {
            Some(k) => (format!("WHERE ({KEY}) > ($1, $2, $3, $4, $5)"), k.to_vec()),
            None => (String::new(), Vec::new()),
        };
        let rows = conn
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "SELECT {KEY}, {from} FROM forecasts {filter} ORDER BY {KEY} LIMIT {BATCH}"
                ),
                values,
            ))
            .await?;
        let Some(last) = rows.last() else {
            return Ok(());
        };
        after = Some(key_of(last)?);
        let (mut converted, mut tuples) = (Vec::new(), Vec::new());
        for row in &rows {
            let key = key_of(row)?;
            match to_value(row, 5)? {
                Some(v) => {
                    let n = converted.len();
                    tuples.push(format!(
                        "(${}, ${}, ${}, ${}, ${}, ${})",
                        n + 1,
                        n + 2,
                        n + 3,
                        n + 4,
                        n + 5,
                        n + 6
                    ));
                    converted.extend(key);
                    converted.push(v);
                }
                None => {
                    conn.execute_raw(Statement::from_sql_and_values(
                        backend,
                        "DELETE FROM forecasts WHERE organization_id = $1 AND workload = $2 \
                         AND metric = $3 AND horizon = $4 AND origin = $5",
                        key.to_vec(),
                    ))
                    .await?;
                }
            }
        }
        if !tuples.is_empty() {
            conn.execute_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "UPDATE forecasts SET {to} = v.column6 FROM (VALUES {}) AS v \
                     WHERE forecasts.organization_id = v.column1 \
                     AND forecasts.workload = v.column2 AND forecasts.metric = v.column3 \
                     AND forecasts.horizon = v.column4 AND forecasts.origin = v.column5",
                    tuples.join(", ")
                ),
                converted,
            ))
            .await?;
        }
        if (rows.len() as u64) < BATCH {
            return Ok(());
        }
    }
}

fn key_of(row: &QueryResult) -> Result<[Value; 5], DbErr> {
    Ok([
        row.try_get_by_index::<String>(0)?.into(),
        row.try_get_by_index::<String>(1)?.into(),
        row.try_get_by_index::<String>(2)?.into(),
        row.try_get_by_index::<String>(3)?.into(),
        row.try_get_by_index::<i64>(4)?.into(),
    ])
}

#[derive(DeriveIden, Clone, Copy)]
enum Forecasts {
    Table,
    Steps,
    StepsPacked,
}
