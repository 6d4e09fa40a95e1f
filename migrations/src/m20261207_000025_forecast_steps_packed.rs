//! Forecast steps stored packed (`headroom_core::forecast::PackedSteps`)
//! instead of as JSON: every allocation tick reads each workload's newest
//! forecast, and the JSON was a third of the tick's decoding and three times
//! the packed size of a table kept for weeks.
//!
//! Stored forecasts are converted in place, in key order and batches, then
//! the JSON column is dropped. A forecast whose JSON cannot be read is
//! deleted: it could not be served before either, and the forecast job makes
//! the series' next one within a step.

use headroom_core::forecast::PackedSteps;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement, Value};
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Forecasts converted per read.
const BATCH: u64 = 1_000;
const KEY: &str = "organization_id, workload, metric, horizon, origin";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Forecasts::Table)
                    .add_column(blob_null(Forecasts::StepsPacked))
                    .to_owned(),
            )
            .await?;
        convert(manager, "steps", |row| {
            let json: String = row.try_get_by_index(5)?;
            Ok(PackedSteps::from_json(&json)
                .ok()
                .map(|p| Value::from(p.as_bytes().to_vec())))
        })
        .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Forecasts::Table)
                    .drop_column(Forecasts::Steps)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Forecasts::Table)
                    .add_column(text_null(Forecasts::Steps))
                    .to_owned(),
            )
            .await?;
        convert(manager, "steps_packed", |row| {
            let bytes: Option<Vec<u8>> = row.try_get_by_index(5)?;
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
        })
        .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Forecasts::Table)
                    .drop_column(Forecasts::StepsPacked)
                    .to_owned(),
            )
            .await
    }
}

/// Rewrites every forecast's steps from column `from` into the other form
/// (`to_value` reads the row `KEY, from`; `None` deletes the forecast).
async fn convert(
    manager: &SchemaManager<'_>,
    from: &str,
    to_value: impl Fn(&sea_orm_migration::sea_orm::QueryResult) -> Result<Option<Value>, DbErr>,
) -> Result<(), DbErr> {
    let conn = manager.get_connection();
    let backend = manager.get_database_backend();
    let to = if from == "steps" {
        "steps_packed"
    } else {
        "steps"
    };
    let ph = |i: usize| match backend {
        DbBackend::Postgres => format!("${i}"),
        _ => "?".to_owned(),
    };
    // The key's placeholders from `first` on (SQLite's are positional, so
    // values are bound in the order the statement names them).
    let key_is = |first: usize| {
        format!(
            "organization_id = {} AND workload = {} AND metric = {} AND horizon = {} \
             AND origin = {}",
            ph(first),
            ph(first + 1),
            ph(first + 2),
            ph(first + 3),
            ph(first + 4)
        )
    };
    let mut after: Option<[Value; 5]> = None;
    loop {
        // Keyset pages: each read starts where the last ended, so a large
        // table is read once, not rescanned from its start per batch.
        let (filter, values) = match &after {
            Some(k) => (
                format!(
                    "WHERE ({KEY}) > ({}, {}, {}, {}, {})",
                    ph(1),
                    ph(2),
                    ph(3),
                    ph(4),
                    ph(5)
                ),
                k.to_vec(),
            ),
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
        for row in &rows {
            let key = key_of(row)?.to_vec();
            match to_value(row)? {
                Some(v) => {
                    let mut values = vec![v];
                    values.extend(key);
                    conn.execute_raw(Statement::from_sql_and_values(
                        backend,
                        format!("UPDATE forecasts SET {to} = {} WHERE {}", ph(1), key_is(2)),
                        values,
                    ))
                    .await?;
                }
                None => {
                    conn.execute_raw(Statement::from_sql_and_values(
                        backend,
                        format!("DELETE FROM forecasts WHERE {}", key_is(1)),
                        key,
                    ))
                    .await?;
                }
            }
        }
        if (rows.len() as u64) < BATCH {
            return Ok(());
        }
    }
}

fn key_of(row: &sea_orm_migration::sea_orm::QueryResult) -> Result<[Value; 5], DbErr> {
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
