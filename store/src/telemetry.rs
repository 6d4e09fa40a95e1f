//! Observed data: metric points with incrementally maintained rollups, usage events,
//! micro-operation events and behaviour events. Every insert is idempotent: a row
//! whose key exists is reported back as a duplicate and changes nothing.

use std::collections::{HashMap, HashSet};

use headroom_core::telemetry::{Bucket, Resolution, buckets_for};
use sea_orm::sqlx;
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait, Value};

use crate::sql::{CopyText, binder, delete_in_batches, values_clause};
use crate::{Db, StoreError, Tenant};

/// Rows per INSERT statement: keeps well under SQLite's bound-parameter limit.
const CHUNK: usize = 500;

#[derive(Debug, Clone, PartialEq)]
pub struct PointIn {
    pub workload: String,
    pub metric: String,
    pub ts_ms: i64,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UsageEventIn {
    pub id: String,
    pub event_type: String,
    pub quantity: f64,
    pub ts_ms: i64,
    pub workload: Option<String>,
    /// JSON object, as text.
    pub attributes: Option<String>,
    pub fingerprint: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MicroOperationIn {
    pub operation_id: String,
    pub micro_operation_type: String,
    pub ts_ms: i64,
    pub workload: Option<String>,
    pub cpu_cycles: i64,
    pub memory_bytes: i64,
    pub network_bytes: i64,
    pub disk_bytes: i64,
    pub execution_time_ms: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BehaviourEventIn {
    pub id: String,
    pub kind: String,
    pub name: Option<String>,
    pub ts_ms: i64,
    pub workload: Option<String>,
    pub user_hash: Option<String>,
    pub device: Option<String>,
    pub geo: Option<String>,
}

/// What happened to each row of a batch, by its position in the batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InsertOutcome {
    pub inserted: Vec<usize>,
    pub duplicates: Vec<usize>,
    /// Same idempotency key as a stored row, different content.
    pub conflicts: Vec<usize>,
}

/// Inserts rows, ignoring existing keys, and returns the keys that were new. `key`
/// is the primary key without `organization_id` (every row here is one tenant's).
async fn insert_returning<C: ConnectionTrait>(
    conn: &C,
    table: &str,
    columns: &[&str],
    key: &[&str],
    rows: Vec<Vec<Value>>,
) -> Result<Vec<Vec<String>>, StoreError> {
    let backend = conn.get_database_backend();
    let mut returned = Vec::new();
    for chunk in rows.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO {table} ({}) VALUES {} ON CONFLICT (organization_id, {}) DO NOTHING RETURNING {}",
            columns.join(", "),
            values_clause(backend, chunk.len(), columns.len()),
            key.join(", "),
            key.iter()
                .map(|k| format!("CAST({k} AS TEXT)"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        let values: Vec<Value> = chunk.iter().flatten().cloned().collect();
        for row in conn
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?
        {
            let mut k = Vec::with_capacity(key.len());
            for i in 0..key.len() {
                k.push(row.try_get_by_index::<String>(i)?);
            }
            returned.push(k);
        }
    }
    Ok(returned)
}

/// Splits a batch by whether each row's key came back from the insert. A key that
/// appears twice in one batch is inserted once; the later copy is a duplicate.
fn classify(keys: &[Vec<String>], inserted: Vec<Vec<String>>) -> (Vec<usize>, Vec<usize>) {
    let mut fresh: HashSet<Vec<String>> = inserted.into_iter().collect();
    let (mut new, mut dup) = (Vec::new(), Vec::new());
    for (i, k) in keys.iter().enumerate() {
        if fresh.remove(k) {
            new.push(i)
        } else {
            dup.push(i)
        }
    }
    (new, dup)
}

impl Db {
    /// Stores new points and merges them into the minute and hour rollups, in one
    /// transaction: a point is counted in the rollups exactly when it is stored.
    pub async fn insert_points(
        &self,
        tenant: &Tenant,
        points: &[PointIn],
    ) -> Result<InsertOutcome, StoreError> {
        let txn = self.conn().begin().await?;
        let org = tenant.id().to_owned();
        let rows = points
            .iter()
            .map(|p| {
                vec![
                    org.clone().into(),
                    p.workload.clone().into(),
                    p.metric.clone().into(),
                    p.ts_ms.into(),
                    p.value.into(),
                ]
            })
            .collect();
        let inserted = insert_returning(
            &txn,
            "metric_points",
            &["organization_id", "workload", "metric", "ts", "value"],
            &["workload", "metric", "ts"],
            rows,
        )
        .await?;
        let keys: Vec<Vec<String>> = points
            .iter()
            .map(|p| vec![p.workload.clone(), p.metric.clone(), p.ts_ms.to_string()])
            .collect();
        let (inserted, duplicates) = classify(&keys, inserted);

        let mut series: HashMap<(&str, &str), Vec<(i64, f64)>> = HashMap::new();
        for &i in &inserted {
            let p = &points[i];
            series
                .entry((&p.workload, &p.metric))
                .or_default()
                .push((p.ts_ms, p.value));
        }
        let mut rollups: Vec<Vec<Value>> = Vec::new();
        for ((workload, metric), pts) in &series {
            for res in Resolution::ALL {
                for b in buckets_for(res, pts.iter().copied()) {
                    rollups.push(rollup_row(&org, workload, metric, res, &b));
                }
            }
        }
        merge_rollups(&txn, rollups).await?;
        txn.commit().await?;
        Ok(InsertOutcome {
            inserted,
            duplicates,
            conflicts: Vec::new(),
        })
    }

    /// Buckets of one series at `res` with `from_ms <= start < to_ms`, by start.
    pub async fn rollups(
        &self,
        tenant: &Tenant,
        workload: &str,
        metric: &str,
        res: Resolution,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Bucket>, StoreError> {
        let backend = self.conn().get_database_backend();
        let p = binder(backend);
        let sql = format!(
            "SELECT bucket_start, count, sum, min, max, last, last_ts FROM metric_rollups \
             WHERE organization_id = {} AND workload = {} AND metric = {} AND resolution = {} \
             AND bucket_start >= {} AND bucket_start < {} ORDER BY bucket_start",
            p(1),
            p(2),
            p(3),
            p(4),
            p(5),
            p(6)
        );
        let values: Vec<Value> = vec![
            tenant.id().into(),
            workload.into(),
            metric.into(),
            res.seconds().into(),
            from_ms.into(),
            to_ms.into(),
        ];
        let rows = self
            .conn()
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Bucket {
                    start_ms: r.try_get_by_index(0)?,
                    count: r.try_get_by_index(1)?,
                    sum: r.try_get_by_index(2)?,
                    min: r.try_get_by_index(3)?,
                    max: r.try_get_by_index(4)?,
                    last: r.try_get_by_index(5)?,
                    last_ts_ms: r.try_get_by_index(6)?,
                })
            })
            .collect()
    }

    /// The organisation's series with hourly rollups since `since_ms`, by
    /// workload and metric, after `after` (the last of the previous page),
    /// with the start of each one's newest hour.
    pub async fn series_catalog(
        &self,
        tenant: &Tenant,
        since_ms: i64,
        after: Option<(&str, &str)>,
        limit: u64,
    ) -> Result<Vec<SeriesSummary>, StoreError> {
        let backend = self.conn().get_database_backend();
        let p = binder(backend);
        let mut values: Vec<Value> = vec![
            tenant.id().into(),
            Resolution::Hour.seconds().into(),
            since_ms.into(),
        ];
        let mut page = String::new();
        if let Some((workload, metric)) = after {
            page = format!(" AND (r.workload, r.metric) > ({}, {})", p(4), p(5));
            values.extend([workload.into(), metric.into()]);
        }
        // Whether each horizon has a forecast: one primary-key probe each
        // (the organisation is grouped on, one value, so the probes can name it).
        let has = |horizon: &str| {
            format!(
                "CASE WHEN EXISTS (SELECT 1 FROM forecasts f \
                 WHERE f.organization_id = r.organization_id AND f.workload = r.workload \
                 AND f.metric = r.metric AND f.horizon = '{horizon}') THEN 1 ELSE 0 END"
            )
        };
        let sql = format!(
            "SELECT r.workload, r.metric, MAX(r.bucket_start), {}, {} FROM metric_rollups r \
             WHERE r.organization_id = {} AND r.resolution = {} AND r.bucket_start >= {}{page} \
             GROUP BY r.organization_id, r.workload, r.metric \
             ORDER BY r.workload, r.metric LIMIT {}",
            has("allocation"),
            has("planning"),
            p(1),
            p(2),
            p(3),
            limit.min(10_000)
        );
        let found = crate::sql::rows(self.conn(), sql, values).await?;
        found
            .iter()
            .map(|r| {
                Ok(SeriesSummary {
                    workload: r.try_get_by_index(0)?,
                    metric: r.try_get_by_index(1)?,
                    last_hour_ms: r.try_get_by_index(2)?,
                    allocation_forecast: r.try_get_by_index::<i32>(3)? == 1,
                    planning_forecast: r.try_get_by_index::<i32>(4)? == 1,
                })
            })
            .collect()
    }

    pub async fn insert_usage_events(
        &self,
        tenant: &Tenant,
        events: &[UsageEventIn],
        now_ms: i64,
    ) -> Result<InsertOutcome, StoreError> {
        // The allocation in force at each event: attributes its cost.
        let at: Vec<(Option<&str>, i64)> = events
            .iter()
            .map(|e| (e.workload.as_deref(), e.ts_ms))
            .collect();
        let in_force = self.allocations_in_force(tenant, &at).await?;
        // Fingerprints of stored ids, where they were read before inserting.
        let mut known: HashMap<String, String> = HashMap::new();
        let inserted = match self.postgres_pool() {
            Some(pool) => {
                let rows: Vec<usize> =
                    match copy_new_usage_events_pg(pool, tenant, events, &in_force, now_ms).await {
                        Copy::Done => {
                            return Ok(InsertOutcome {
                                inserted: (0..events.len()).collect(),
                                duplicates: Vec::new(),
                                conflicts: Vec::new(),
                            });
                        }
                        Copy::NotTried => (0..events.len()).collect(),
                        // Most likely a replay: the stored ids are looked up
                        // once, and only the others are inserted.
                        Copy::Refused => {
                            let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
                            known = self.stored_fingerprints(tenant, &ids).await?;
                            (0..events.len())
                                .filter(|&i| !known.contains_key(&events[i].id))
                                .collect()
                        }
                    };
                insert_usage_events_pg(pool, tenant, events, &rows, &in_force, now_ms).await?
            }
            None => {
                let org = tenant.id().to_owned();
                let rows = events
                    .iter()
                    .zip(&in_force)
                    .map(|(e, a)| {
                        vec![
                            org.clone().into(),
                            e.id.clone().into(),
                            e.event_type.clone().into(),
                            e.quantity.into(),
                            e.ts_ms.into(),
                            e.workload.clone().into(),
                            e.attributes.clone().into(),
                            e.fingerprint.clone().into(),
                            now_ms.into(),
                            a.as_ref().map(|a| a.decision_id.clone()).into(),
                            a.as_ref().map(|a| a.instances).into(),
                        ]
                    })
                    .collect();
                insert_returning(
                    self.conn(),
                    "usage_events",
                    &[
                        "organization_id",
                        "id",
                        "event_type",
                        "quantity",
                        "ts",
                        "workload",
                        "attributes",
                        "fingerprint",
                        "received_at",
                        "allocation_decision_id",
                        "allocation_instances",
                    ],
                    &["id"],
                    rows,
                )
                .await?
            }
        };
        let keys: Vec<Vec<String>> = events.iter().map(|e| vec![e.id.clone()]).collect();
        let (inserted, not_inserted) = classify(&keys, inserted);
        if not_inserted.is_empty() {
            return Ok(InsertOutcome {
                inserted,
                duplicates: Vec::new(),
                conflicts: Vec::new(),
            });
        }
        // A replay carries the same content; the same id with other content is a conflict.
        // Ids stored since they were read (a concurrent batch) are read now.
        let ids: Vec<&str> = not_inserted
            .iter()
            .map(|&i| events[i].id.as_str())
            .filter(|id| !known.contains_key(*id))
            .collect();
        let mut stored = known;
        if !ids.is_empty() {
            stored.extend(self.stored_fingerprints(tenant, &ids).await?);
        }
        let mut first_in_batch: HashMap<&str, &str> = HashMap::new();
        for e in events {
            first_in_batch
                .entry(e.id.as_str())
                .or_insert(e.fingerprint.as_str());
        }
        let (mut duplicates, mut conflicts) = (Vec::new(), Vec::new());
        for i in not_inserted {
            let e = &events[i];
            let reference = stored
                .get(&e.id)
                .map(String::as_str)
                .or(first_in_batch.get(e.id.as_str()).copied());
            if reference == Some(e.fingerprint.as_str()) {
                duplicates.push(i)
            } else {
                conflicts.push(i)
            }
        }
        Ok(InsertOutcome {
            inserted,
            duplicates,
            conflicts,
        })
    }

    async fn stored_fingerprints(
        &self,
        tenant: &Tenant,
        ids: &[&str],
    ) -> Result<HashMap<String, String>, StoreError> {
        if let Some(pool) = self.postgres_pool() {
            let rows: Vec<(String, String)> =
                // Driven by the ids (a primary-key probe each): with `id = ANY`
                // the planner, on statistics older than a bulk load, took the
                // (organisation, ts) index and read every event of the
                // organisation (148 ms instead of 6 for 1,000 ids of 400,000).
                sqlx::query_as(
                    "SELECT u.id, u.fingerprint FROM UNNEST($2::text[]) AS k(id) \
                     JOIN usage_events u ON u.organization_id = $1 AND u.id = k.id",
                )
                    .bind(tenant.id())
                    .bind(ids)
                    .fetch_all(pool)
                    .await
                    .map_err(StoreError::Sqlx)?;
            return Ok(rows.into_iter().collect());
        }
        let backend = self.conn().get_database_backend();
        let mut out = HashMap::new();
        for chunk in ids.chunks(CHUNK) {
            let list = vec!["?"; chunk.len()].join(", ");
            let sql = format!(
                "SELECT id, fingerprint FROM usage_events WHERE organization_id = ? AND id IN ({list})"
            );
            let mut values: Vec<Value> = vec![tenant.id().into()];
            values.extend(chunk.iter().map(|id| Value::from(*id)));
            for row in self
                .conn()
                .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
                .await?
            {
                out.insert(
                    row.try_get_by_index::<String>(0)?,
                    row.try_get_by_index::<String>(1)?,
                );
            }
        }
        Ok(out)
    }

    pub async fn insert_micro_operations(
        &self,
        tenant: &Tenant,
        ops: &[MicroOperationIn],
    ) -> Result<InsertOutcome, StoreError> {
        let org = tenant.id().to_owned();
        let rows = ops
            .iter()
            .map(|o| {
                vec![
                    org.clone().into(),
                    o.operation_id.clone().into(),
                    o.micro_operation_type.clone().into(),
                    o.ts_ms.into(),
                    o.workload.clone().into(),
                    o.cpu_cycles.into(),
                    o.memory_bytes.into(),
                    o.network_bytes.into(),
                    o.disk_bytes.into(),
                    o.execution_time_ms.into(),
                ]
            })
            .collect();
        let inserted = insert_returning(
            self.conn(),
            "micro_operations",
            &[
                "organization_id",
                "operation_id",
                "micro_operation_type",
                "ts",
                "workload",
                "cpu_cycles",
                "memory_bytes",
                "network_bytes",
                "disk_bytes",
                "execution_time_ms",
            ],
            &["operation_id", "micro_operation_type", "ts"],
            rows,
        )
        .await?;
        let keys: Vec<Vec<String>> = ops
            .iter()
            .map(|o| {
                vec![
                    o.operation_id.clone(),
                    o.micro_operation_type.clone(),
                    o.ts_ms.to_string(),
                ]
            })
            .collect();
        let (inserted, duplicates) = classify(&keys, inserted);
        Ok(InsertOutcome {
            inserted,
            duplicates,
            conflicts: Vec::new(),
        })
    }

    pub async fn insert_behaviour_events(
        &self,
        tenant: &Tenant,
        events: &[BehaviourEventIn],
    ) -> Result<InsertOutcome, StoreError> {
        let org = tenant.id().to_owned();
        let rows = events
            .iter()
            .map(|e| {
                vec![
                    org.clone().into(),
                    e.id.clone().into(),
                    e.kind.clone().into(),
                    e.name.clone().into(),
                    e.ts_ms.into(),
                    e.workload.clone().into(),
                    e.user_hash.clone().into(),
                    e.device.clone().into(),
                    e.geo.clone().into(),
                ]
            })
            .collect();
        let inserted = insert_returning(
            self.conn(),
            "behaviour_events",
            &[
                "organization_id",
                "id",
                "kind",
                "name",
                "ts",
                "workload",
                "user_hash",
                "device",
                "geo",
            ],
            &["id"],
            rows,
        )
        .await?;
        let keys: Vec<Vec<String>> = events.iter().map(|e| vec![e.id.clone()]).collect();
        let (inserted, duplicates) = classify(&keys, inserted);
        Ok(InsertOutcome {
            inserted,
            duplicates,
            conflicts: Vec::new(),
        })
    }
}

/// How long each kind of observation is kept (milliseconds). Usage events are
/// billing records and are not pruned here.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub raw_ms: i64,
    pub minute_ms: i64,
    pub hour_ms: i64,
}

/// Rows deleted per statement when pruning: the first run over a backlog (a
/// retention shortened, or data kept by an earlier version that never pruned)
/// neither holds one huge transaction nor keeps SQLite's single writer (ingest)
/// waiting for long.
const PRUNE_BATCH: i64 = 10_000;

impl Db {
    /// Deletes observations past their retention, for every organisation
    /// (housekeeping), in batches of [`PRUNE_BATCH`] rows.
    pub async fn prune_telemetry(&self, now_ms: i64, keep: Retention) -> Result<u64, StoreError> {
        let backend = self.conn().get_database_backend();
        let p = binder(backend);
        let minute = Resolution::Minute.seconds();
        let hour = Resolution::Hour.seconds();
        // (table, which rows, their values).
        let prunes: [(&str, String, Vec<Value>); 7] = [
            (
                "anomalies",
                format!("ts < {}", p(1)),
                vec![(now_ms - keep.minute_ms).into()],
            ),
            // Forecasts are read back for accuracy reports over the minute
            // rollups' span; older ones have nothing left to be compared with.
            (
                "forecasts",
                format!("made_at < {}", p(1)),
                vec![(now_ms - keep.minute_ms).into()],
            ),
            (
                "metric_points",
                format!("ts < {}", p(1)),
                vec![(now_ms - keep.raw_ms).into()],
            ),
            (
                "micro_operations",
                format!("ts < {}", p(1)),
                vec![(now_ms - keep.raw_ms).into()],
            ),
            (
                "behaviour_events",
                format!("ts < {}", p(1)),
                vec![(now_ms - keep.raw_ms).into()],
            ),
            (
                "metric_rollups",
                format!("resolution = {} AND bucket_start < {}", p(1), p(2)),
                vec![minute.into(), (now_ms - keep.minute_ms).into()],
            ),
            (
                "metric_rollups",
                format!("resolution = {} AND bucket_start < {}", p(1), p(2)),
                vec![hour.into(), (now_ms - keep.hour_ms).into()],
            ),
        ];
        let mut deleted = 0;
        for (table, filter, values) in prunes {
            // Rows by their physical address: no key or index is needed to
            // delete what the filter found.
            let sql = match backend {
                DbBackend::Postgres => format!(
                    "DELETE FROM {table} WHERE ctid = ANY(ARRAY(\
                     SELECT ctid FROM {table} WHERE {filter} LIMIT {PRUNE_BATCH}))"
                ),
                _ => format!(
                    "DELETE FROM {table} WHERE rowid IN (\
                     SELECT rowid FROM {table} WHERE {filter} LIMIT {PRUNE_BATCH})"
                ),
            };
            deleted += delete_in_batches(self.conn(), &sql, values, PRUNE_BATCH).await?;
        }
        Ok(deleted)
    }
}

/// Batches smaller than this go straight to the statement: `COPY` costs a
/// second round trip, which only pays off over many rows.
const COPY_MIN_BATCH: usize = 64;

/// How [`copy_new_usage_events_pg`] went.
enum Copy {
    /// Every event was stored.
    Done,
    /// The batch is small or repeats an id: nothing was tried.
    NotTried,
    /// Nothing was stored (an id is already stored, most likely).
    Refused,
}

/// PostgreSQL fast path for a batch of new events: one `COPY` into the table,
/// which skips the per-row speculative insertion of `ON CONFLICT`. The primary
/// key still checks every id, and `COPY` is all or nothing, so a batch holding
/// any stored id fails as a whole and writes nothing: the caller then takes
/// the statement path, which sorts duplicates from conflicts. Any other
/// failure also falls back, so this path can only make ingest faster, never
/// change what it answers.
async fn copy_new_usage_events_pg(
    pool: &sqlx::PgPool,
    tenant: &Tenant,
    events: &[UsageEventIn],
    in_force: &[Option<crate::allocation::InForceSnapshot>],
    now_ms: i64,
) -> Copy {
    if events.len() < COPY_MIN_BATCH {
        return Copy::NotTried;
    }
    let distinct: HashSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
    if distinct.len() < events.len() {
        return Copy::NotTried;
    }
    // A replayed batch (an agent's spool, a client's retry) holds its first or
    // last id; a refused COPY would have written several hundred rows before
    // its index check failed, so two probes first are cheaper.
    let probe = [events[0].id.as_str(), events[events.len() - 1].id.as_str()];
    let stored: Result<i64, _> = sqlx::query_scalar(
        "SELECT COUNT(*) FROM UNNEST($2::text[]) AS k(id) \
         JOIN usage_events u ON u.organization_id = $1 AND u.id = k.id",
    )
    .bind(tenant.id())
    .bind(&probe[..])
    .fetch_one(pool)
    .await;
    if !matches!(stored, Ok(0)) {
        return Copy::Refused;
    }
    let data = usage_events_copy_text(tenant, events, in_force, now_ms);
    let copied = async {
        let mut conn = pool.acquire().await?;
        let mut copy = conn
            .copy_in_raw(
                "COPY usage_events (organization_id, id, event_type, quantity, ts, workload, \
                 attributes, fingerprint, received_at, allocation_decision_id, \
                 allocation_instances) FROM STDIN",
            )
            .await?;
        copy.send(data).await?;
        copy.finish().await
    }
    .await;
    match copied {
        // All or nothing: a row count short of the batch cannot happen.
        Ok(_) => Copy::Done,
        Err(e) => {
            // A stored id is the expected cause (a replayed batch).
            tracing::debug!(error = %e, "usage events: COPY fell back to INSERT");
            Copy::Refused
        }
    }
}

/// The rows of [`copy_new_usage_events_pg`] in `COPY`'s text format.
fn usage_events_copy_text(
    tenant: &Tenant,
    events: &[UsageEventIn],
    in_force: &[Option<crate::allocation::InForceSnapshot>],
    now_ms: i64,
) -> Vec<u8> {
    let mut out = CopyText::with_capacity(events.len() * 160);
    for (e, a) in events.iter().zip(in_force) {
        out.text(tenant.id())
            .text(&e.id)
            .text(&e.event_type)
            .float(e.quantity)
            .int(e.ts_ms)
            .opt_text(e.workload.as_deref())
            .opt_text(e.attributes.as_deref())
            .text(&e.fingerprint)
            .int(now_ms)
            .opt_text(a.as_ref().map(|a| a.decision_id.as_str()))
            .opt_int(a.as_ref().map(|a| i64::from(a.instances)));
        out.end_row();
    }
    out.into_bytes()
}

/// PostgreSQL: the whole batch as one statement over arrays (`UNNEST`), which parses
/// once instead of once per row; the hot path of usage ingest.
async fn insert_usage_events_pg(
    pool: &sqlx::PgPool,
    tenant: &Tenant,
    events: &[UsageEventIn],
    rows: &[usize],
    in_force: &[Option<crate::allocation::InForceSnapshot>],
    now_ms: i64,
) -> Result<Vec<Vec<String>>, StoreError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let pick = |i: &usize| &events[*i];
    let ids: Vec<&str> = rows.iter().map(|i| pick(i).id.as_str()).collect();
    let decisions: Vec<Option<&str>> = rows
        .iter()
        .map(|&i| in_force[i].as_ref().map(|a| a.decision_id.as_str()))
        .collect();
    let instances: Vec<Option<i32>> = rows
        .iter()
        .map(|&i| in_force[i].as_ref().map(|a| a.instances))
        .collect();
    let types: Vec<&str> = rows.iter().map(|i| pick(i).event_type.as_str()).collect();
    let quantities: Vec<f64> = rows.iter().map(|i| pick(i).quantity).collect();
    let ts: Vec<i64> = rows.iter().map(|i| pick(i).ts_ms).collect();
    let workloads: Vec<Option<&str>> = rows.iter().map(|i| pick(i).workload.as_deref()).collect();
    let attributes: Vec<Option<&str>> =
        rows.iter().map(|i| pick(i).attributes.as_deref()).collect();
    let fingerprints: Vec<&str> = rows.iter().map(|i| pick(i).fingerprint.as_str()).collect();
    let rows: Vec<(String,)> = sqlx::query_as(
        "INSERT INTO usage_events (organization_id, id, event_type, quantity, ts, workload, attributes, \
         fingerprint, received_at, allocation_decision_id, allocation_instances) \
         SELECT $1, u.id, u.event_type, u.quantity, u.ts, u.workload, u.attributes, u.fingerprint, $9, \
           u.decision, u.instances \
         FROM UNNEST($2::text[], $3::text[], $4::float8[], $5::int8[], $6::text[], $7::text[], $8::text[], \
           $10::text[], $11::int4[]) \
           AS u(id, event_type, quantity, ts, workload, attributes, fingerprint, decision, instances) \
         ON CONFLICT (organization_id, id) DO NOTHING RETURNING id",
    )
    .bind(tenant.id())
    .bind(&ids)
    .bind(&types)
    .bind(&quantities)
    .bind(&ts)
    .bind(&workloads)
    .bind(&attributes)
    .bind(&fingerprints)
    .bind(now_ms)
    .bind(&decisions)
    .bind(&instances)
    .fetch_all(pool)
    .await
    .map_err(StoreError::Sqlx)?;
    Ok(rows.into_iter().map(|(id,)| vec![id]).collect())
}

fn rollup_row(org: &str, workload: &str, metric: &str, res: Resolution, b: &Bucket) -> Vec<Value> {
    vec![
        org.into(),
        workload.into(),
        metric.into(),
        res.seconds().into(),
        b.start_ms.into(),
        b.count.into(),
        b.sum.into(),
        b.min.into(),
        b.max.into(),
        b.last.into(),
        b.last_ts_ms.into(),
    ]
}

/// Adds batch buckets into stored ones (the same merge as `Bucket::merge`, in SQL).
async fn merge_rollups<C: ConnectionTrait>(
    conn: &C,
    rows: Vec<Vec<Value>>,
) -> Result<(), StoreError> {
    let backend = conn.get_database_backend();
    for chunk in rows.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO metric_rollups (organization_id, workload, metric, resolution, bucket_start, \
             count, sum, min, max, last, last_ts) VALUES {} \
             ON CONFLICT (organization_id, workload, metric, resolution, bucket_start) DO UPDATE SET \
             count = metric_rollups.count + excluded.count, \
             sum = metric_rollups.sum + excluded.sum, \
             min = CASE WHEN excluded.min < metric_rollups.min THEN excluded.min ELSE metric_rollups.min END, \
             max = CASE WHEN excluded.max > metric_rollups.max THEN excluded.max ELSE metric_rollups.max END, \
             last = CASE WHEN excluded.last_ts >= metric_rollups.last_ts THEN excluded.last ELSE metric_rollups.last END, \
             last_ts = CASE WHEN excluded.last_ts >= metric_rollups.last_ts THEN excluded.last_ts ELSE metric_rollups.last_ts END",
            values_clause(backend, chunk.len(), 11)
        );
        let values: Vec<Value> = chunk.iter().flatten().cloned().collect();
        conn.execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
    }
    Ok(())
}

/// A stored usage event, as listed back to its organisation.
/// One series of an organisation ([`Db::series_catalog`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesSummary {
    pub workload: String,
    pub metric: String,
    /// Start of its newest hourly rollup (unix ms).
    pub last_hour_ms: i64,
    /// Whether a forecast of it is stored, per horizon.
    pub allocation_forecast: bool,
    pub planning_forecast: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredUsageEvent {
    pub id: String,
    pub event_type: String,
    pub quantity: f64,
    pub ts_ms: i64,
    pub workload: Option<String>,
    pub attributes: Option<String>,
    pub received_ms: i64,
    /// The allocation in force when the event happened, if any.
    pub allocation: Option<crate::allocation::InForceSnapshot>,
}

impl Db {
    /// The organisation's usage events in `[from_ms, to_ms)`, newest first,
    /// optionally of one type and workload.
    pub async fn usage_events_between(
        &self,
        tenant: &Tenant,
        from_ms: i64,
        to_ms: i64,
        event_type: Option<&str>,
        workload: Option<&str>,
        limit: u64,
    ) -> Result<Vec<StoredUsageEvent>, StoreError> {
        let p = crate::sql::binder(self.db_backend());
        let mut sql = format!(
            "SELECT id, event_type, quantity, ts, workload, attributes, received_at, \
             allocation_decision_id, allocation_instances FROM usage_events \
             WHERE organization_id = {} AND ts >= {} AND ts < {}",
            p(1),
            p(2),
            p(3)
        );
        let mut values: Vec<Value> = vec![tenant.id().into(), from_ms.into(), to_ms.into()];
        for (column, v) in [("event_type", event_type), ("workload", workload)] {
            if let Some(v) = v {
                values.push(v.into());
                sql.push_str(&format!(" AND {column} = {}", p(values.len())));
            }
        }
        values.push((limit as i64).into());
        sql.push_str(&format!(" ORDER BY ts DESC, id LIMIT {}", p(values.len())));
        crate::sql::rows(self.conn(), sql, values)
            .await?
            .iter()
            .map(|r| {
                let decision: Option<String> = r.try_get_by_index(7)?;
                let instances: Option<i32> = r.try_get_by_index(8)?;
                Ok(StoredUsageEvent {
                    id: r.try_get_by_index(0)?,
                    event_type: r.try_get_by_index(1)?,
                    quantity: r.try_get_by_index(2)?,
                    ts_ms: r.try_get_by_index(3)?,
                    workload: r.try_get_by_index(4)?,
                    attributes: r.try_get_by_index(5)?,
                    received_ms: r.try_get_by_index(6)?,
                    allocation: decision.zip(instances).map(|(decision_id, instances)| {
                        crate::allocation::InForceSnapshot {
                            decision_id,
                            instances,
                        }
                    }),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_events_copy_rows_in_column_order() {
        let events = [UsageEventIn {
            id: "\\N".into(),
            event_type: "api_call".into(),
            quantity: 0.1,
            ts_ms: 5,
            workload: None,
            attributes: Some("{\"a\":\"x\\ny\"}".into()),
            fingerprint: "f".into(),
        }];
        let text = usage_events_copy_text(&Tenant::new("o"), &events, &[None], 7);
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "o\t\\\\N\tapi_call\t0.1\t5\t\\N\t{\"a\":\"x\\\\ny\"}\tf\t7\t\\N\t\\N\n"
        );
    }
}
