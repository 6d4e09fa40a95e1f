//! Pricing rules, price changes, budget caps, notifications, and the stored
//! usage a period is rated from.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use headroom_core::accounts::Tier;
use headroom_core::allocate::CapAction;
use headroom_core::billing::{
    CapacityHour, Currency, Decimal, Dimension, HOUR_MS, PriceRule, Resource, RuleKind, Scope,
    UsageHour,
};
use sea_orm::{ConnectionTrait, Statement, TransactionTrait, Value};

use crate::sql::{binder, exec, placeholders, row, rows};
use crate::{Db, StoreError, Tenant, new_id};

/// The controller's tick: a missed tick counts this long against the SLA.
pub const TICK_MS: i64 = 300_000;

/// A decision (alias `d`) billing counts as an under-provisioned tick: a
/// controller decision, applied, pending or failed, made while demand
/// exceeded the fleet in force: as recorded with it, or for one logged before
/// that was recorded, judged on the workload's current instance size. One
/// definition for rating and for the log's retention (which must keep them).
pub(crate) const UNDER_PROVISIONED: &str = "d.source = 'controller' \
    AND d.status IN ('applied', 'pending', 'failed') \
    AND COALESCE(d.missed, d.observed > d.before_instances * (SELECT s.units_per_instance \
      FROM allocation_settings s \
      WHERE s.organization_id = d.organization_id AND s.workload = d.workload), FALSE)";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceChange {
    pub id: String,
    pub at_ms: i64,
    pub subject: String,
    pub old_price: Option<Decimal>,
    pub new_price: Option<Decimal>,
    pub currency: Currency,
    pub reason: String,
    pub cause: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCap {
    pub amount: Decimal,
    pub currency: Currency,
    pub action: CapAction,
    pub updated_ms: i64,
}

/// A cap from its columns: amount, currency, action, updated_at.
fn cap_from_row(r: &sea_orm::QueryResult) -> Result<StoredCap, StoreError> {
    let action: String = r.try_get_by_index(2)?;
    Ok(StoredCap {
        amount: dec(&r.try_get_by_index::<String>(0)?)?,
        currency: r
            .try_get_by_index::<String>(1)?
            .parse()
            .map_err(|e| corrupt("currency", e))?,
        action: serde_json::from_value(serde_json::Value::String(action))
            .map_err(|e| corrupt("cap action", e))?,
        updated_ms: r.try_get_by_index(3)?,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredNotification {
    pub seq: i64,
    pub organization_id: String,
    pub kind: String,
    pub title: String,
    /// JSON.
    pub body: String,
    pub created_ms: i64,
}

/// A notification to store with the change it announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotification {
    pub kind: &'static str,
    pub title: String,
    pub body: serde_json::Value,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn dec(s: &str) -> Result<Decimal, StoreError> {
    Decimal::from_str(s).map_err(|e| corrupt("decimal", e))
}

/// A float total read back as the decimal it prints as (its shortest round-trip form).
fn dec_of_f64(x: f64) -> Decimal {
    Decimal::from_str(&format!("{x}"))
        .or_else(|_| Decimal::try_from(x))
        .unwrap_or_default()
}

const RULE_COLUMNS: &str = "id, scope, scope_ref, kind, dimension, amount, min_load, currency, \
    effective_from, effective_to, created_at";

fn rule_from_row(r: &sea_orm::QueryResult) -> Result<PriceRule, StoreError> {
    let scope: String = r.try_get_by_index(1)?;
    let scope_ref: String = r.try_get_by_index(2)?;
    let kind: String = r.try_get_by_index(3)?;
    let dimension: Option<String> = r.try_get_by_index(4)?;
    let amount = dec(&r.try_get_by_index::<String>(5)?)?;
    let min_load: Option<String> = r.try_get_by_index(6)?;
    let currency: String = r.try_get_by_index(7)?;
    Ok(PriceRule {
        id: r.try_get_by_index(0)?,
        scope: match scope.as_str() {
            "default" => Scope::Default,
            "tier" => Scope::Tier(Tier::from_str(&scope_ref).map_err(|e| corrupt("tier", e))?),
            "organization" => Scope::Organization(scope_ref),
            other => return Err(corrupt("scope", other)),
        },
        kind: match kind.as_str() {
            "price" => RuleKind::Price {
                dimension: dimension
                    .ok_or_else(|| corrupt("price rule", "no dimension"))?
                    .parse::<Dimension>()
                    .map_err(|e| corrupt("dimension", e))?,
                unit_price: amount,
            },
            "tier_premium" => RuleKind::TierPremium { rate: amount },
            "demand_multiplier" => RuleKind::DemandMultiplier {
                min_load: dec(&min_load.unwrap_or_default())?,
                multiplier: amount,
            },
            "sla_credit" => RuleKind::SlaCredit { rate: amount },
            "profile_discount" => RuleKind::ProfileDiscount { rate: amount },
            other => return Err(corrupt("rule kind", other)),
        },
        currency: currency.parse().map_err(|e| corrupt("currency", e))?,
        effective_from_ms: r.try_get_by_index(8)?,
        effective_to_ms: r.try_get_by_index(9)?,
        created_ms: r.try_get_by_index(10)?,
    })
}

fn rule_values(rule: &PriceRule, created_by: Option<&str>) -> Vec<Value> {
    let (scope, scope_ref) = match &rule.scope {
        Scope::Default => ("default", String::new()),
        Scope::Tier(t) => ("tier", t.as_str().to_owned()),
        Scope::Organization(o) => ("organization", o.clone()),
    };
    let (dimension, amount, min_load) = match &rule.kind {
        RuleKind::Price {
            dimension,
            unit_price,
        } => (Some(dimension.to_string()), *unit_price, None),
        RuleKind::TierPremium { rate }
        | RuleKind::SlaCredit { rate }
        | RuleKind::ProfileDiscount { rate } => (None, *rate, None),
        RuleKind::DemandMultiplier {
            min_load,
            multiplier,
        } => (None, *multiplier, Some(min_load.to_string())),
    };
    vec![
        rule.id.clone().into(),
        scope.into(),
        scope_ref.into(),
        rule.kind.name().into(),
        dimension.into(),
        amount.to_string().into(),
        min_load.into(),
        rule.currency.to_string().into(),
        rule.effective_from_ms.into(),
        rule.effective_to_ms.into(),
        rule.created_ms.into(),
        created_by.map(str::to_owned).into(),
    ]
}

const CHANGE_COLUMNS: &str = "id, at, subject, old_price, new_price, currency, reason, cause";

fn change_from_row(r: &sea_orm::QueryResult) -> Result<PriceChange, StoreError> {
    let opt = |i: usize| -> Result<Option<Decimal>, StoreError> {
        r.try_get_by_index::<Option<String>>(i)?
            .as_deref()
            .map(dec)
            .transpose()
    };
    Ok(PriceChange {
        id: r.try_get_by_index(0)?,
        at_ms: r.try_get_by_index(1)?,
        subject: r.try_get_by_index(2)?,
        old_price: opt(3)?,
        new_price: opt(4)?,
        currency: r
            .try_get_by_index::<String>(5)?
            .parse()
            .map_err(|e| corrupt("currency", e))?,
        reason: r.try_get_by_index(6)?,
        cause: r.try_get_by_index(7)?,
    })
}

const NOTIFICATION_COLUMNS: &str = "seq, organization_id, kind, title, body, created_at";

fn notification_from_row(r: &sea_orm::QueryResult) -> Result<StoredNotification, StoreError> {
    Ok(StoredNotification {
        seq: r.try_get_by_index(0)?,
        organization_id: r.try_get_by_index(1)?,
        kind: r.try_get_by_index(2)?,
        title: r.try_get_by_index(3)?,
        body: r.try_get_by_index(4)?,
        created_ms: r.try_get_by_index(5)?,
    })
}

pub(crate) async fn insert_notification<C: ConnectionTrait>(
    c: &C,
    tenant: &Tenant,
    n: &NewNotification,
    now_ms: i64,
) -> Result<(), StoreError> {
    let backend = c.get_database_backend();
    let sql = format!(
        "INSERT INTO notifications (organization_id, kind, title, body, created_at) VALUES ({})",
        placeholders(backend, 1, 5).join(", ")
    );
    exec(
        c,
        sql,
        vec![
            tenant.id().into(),
            n.kind.into(),
            n.title.clone().into(),
            n.body.to_string().into(),
            now_ms.into(),
        ],
    )
    .await?;
    // Billing systems hear of it through the organisation's webhooks.
    let payload = serde_json::json!({
        "type": n.kind,
        "timestamp": chrono::DateTime::<chrono::Utc>::from_timestamp_millis(now_ms)
            .map(|t| t.to_rfc3339()),
        "data": { "title": n.title, "details": n.body },
    });
    crate::webhooks::enqueue(c, tenant, n.kind, &payload, now_ms).await?;
    if backend == sea_orm::DbBackend::Postgres {
        // Delivered on commit to every process's stream hub.
        c.execute_raw(Statement::from_string(
            backend,
            format!("SELECT pg_notify('{NOTIFY_CHANNEL}', '')"),
        ))
        .await?;
    }
    Ok(())
}

/// The PostgreSQL channel that announces committed notifications.
pub const NOTIFY_CHANNEL: &str = "headroom_notifications";

impl Db {
    /// Stores a rule and, in the same transaction, the price changes it
    /// causes (one per organisation whose effective price moves) with their
    /// notifications.
    pub async fn insert_price_rule(
        &self,
        rule: &PriceRule,
        created_by: Option<&str>,
        changes: &[(Tenant, PriceChange, NewNotification)],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let txn = self.conn().begin().await?;
        let backend = txn.get_database_backend();
        let sql = format!(
            "INSERT INTO price_rules ({RULE_COLUMNS}, created_by) VALUES ({})",
            placeholders(backend, 1, 12).join(", ")
        );
        exec(&txn, sql, rule_values(rule, created_by)).await?;
        for (tenant, change, note) in changes {
            insert_change(&txn, tenant, change, Some(note), now_ms).await?;
        }
        txn.commit().await?;
        self.notification_committed();
        Ok(())
    }

    /// Every rule ever made, oldest first: the history needed to re-rate any period.
    pub async fn price_rules(&self) -> Result<Vec<PriceRule>, StoreError> {
        let backend = self.conn().get_database_backend();
        let rows = self
            .conn()
            .query_all_raw(Statement::from_string(
                backend,
                format!("SELECT {RULE_COLUMNS} FROM price_rules ORDER BY created_at, id"),
            ))
            .await?;
        rows.iter().map(rule_from_row).collect()
    }

    /// Ends a rule at `at_ms` (kept for the hours it priced). `None` if no such rule.
    pub async fn end_price_rule(
        &self,
        id: &str,
        at_ms: i64,
        changes: &[(Tenant, PriceChange, NewNotification)],
        now_ms: i64,
    ) -> Result<Option<PriceRule>, StoreError> {
        let txn = self.conn().begin().await?;
        let backend = txn.get_database_backend();
        let p = binder(backend);
        let res = exec(
            &txn,
            format!(
                "UPDATE price_rules SET effective_to = {} WHERE id = {}",
                p(1),
                p(2)
            ),
            vec![at_ms.into(), id.into()],
        )
        .await?;
        if res.rows_affected() == 0 {
            return Ok(None);
        }
        for (tenant, change, note) in changes {
            insert_change(&txn, tenant, change, Some(note), now_ms).await?;
        }
        let row = row(
            &txn,
            format!("SELECT {RULE_COLUMNS} FROM price_rules WHERE id = {}", p(1)),
            vec![id.into()],
        )
        .await?;
        txn.commit().await?;
        self.notification_committed();
        row.as_ref().map(rule_from_row).transpose()
    }

    /// Records a change (and its notification) once per cause and subject;
    /// returns whether it was new.
    pub async fn record_price_change(
        &self,
        tenant: &Tenant,
        change: &PriceChange,
        note: Option<&NewNotification>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let txn = self.conn().begin().await?;
        let new = insert_change(&txn, tenant, change, note, now_ms).await?;
        txn.commit().await?;
        if new {
            self.notification_committed();
        }
        Ok(new)
    }

    /// Price changes from `from_ms` (inclusive) to `to_ms` (exclusive), newest first.
    pub async fn price_history(
        &self,
        tenant: &Tenant,
        from_ms: i64,
        to_ms: i64,
        limit: u64,
    ) -> Result<Vec<PriceChange>, StoreError> {
        let backend = self.conn().get_database_backend();
        let p = binder(backend);
        let sql = format!(
            "SELECT {CHANGE_COLUMNS} FROM price_changes WHERE organization_id = {} \
             AND at >= {} AND at < {} ORDER BY at DESC, id DESC LIMIT {}",
            p(1),
            p(2),
            p(3),
            limit.min(10_000)
        );
        let rows = rows(
            self.conn(),
            sql,
            vec![tenant.id().into(), from_ms.into(), to_ms.into()],
        )
        .await?;
        rows.iter().map(change_from_row).collect()
    }

    pub async fn set_budget_cap(&self, tenant: &Tenant, cap: &StoredCap) -> Result<(), StoreError> {
        let backend = self.conn().get_database_backend();
        let sql = format!(
            "INSERT INTO budget_caps (organization_id, amount, currency, action, updated_at) \
             VALUES ({}) ON CONFLICT (organization_id) DO UPDATE SET amount = excluded.amount, \
             currency = excluded.currency, action = excluded.action, updated_at = excluded.updated_at",
            placeholders(backend, 1, 5).join(", ")
        );
        let action = serde_json::to_value(cap.action)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        exec(
            self.conn(),
            sql,
            vec![
                tenant.id().into(),
                cap.amount.to_string().into(),
                cap.currency.to_string().into(),
                action.into(),
                cap.updated_ms.into(),
            ],
        )
        .await?;
        Ok(())
    }

    pub async fn budget_cap(&self, tenant: &Tenant) -> Result<Option<StoredCap>, StoreError> {
        let backend = self.conn().get_database_backend();
        let sql = format!(
            "SELECT amount, currency, action, updated_at FROM budget_caps WHERE organization_id = {}",
            binder(backend)(1)
        );
        let row = row(self.conn(), sql, vec![tenant.id().into()]).await?;
        row.as_ref().map(cap_from_row).transpose()
    }

    /// Every organisation's budget cap, by organisation id: the allocation
    /// tick weighs every organisation's, and reads them in one statement.
    pub async fn budget_caps(&self) -> Result<HashMap<String, StoredCap>, StoreError> {
        let sql = "SELECT amount, currency, action, updated_at, organization_id FROM budget_caps";
        rows(self.conn(), sql.to_owned(), vec![])
            .await?
            .iter()
            .map(|r| Ok((r.try_get_by_index::<String>(4)?, cap_from_row(r)?)))
            .collect()
    }

    pub async fn delete_budget_cap(&self, tenant: &Tenant) -> Result<bool, StoreError> {
        let backend = self.conn().get_database_backend();
        let res = exec(
            self.conn(),
            format!(
                "DELETE FROM budget_caps WHERE organization_id = {}",
                binder(backend)(1)
            ),
            vec![tenant.id().into()],
        )
        .await?;
        Ok(res.rows_affected() > 0)
    }

    /// Announces a crossed threshold once per period: stores the notice and its
    /// notification together, or nothing if it was already announced.
    pub async fn announce_threshold(
        &self,
        tenant: &Tenant,
        period: &str,
        threshold: u8,
        note: &NewNotification,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let txn = self.conn().begin().await?;
        let backend = txn.get_database_backend();
        let sql = format!(
            "INSERT INTO budget_notices (organization_id, period, threshold, at) VALUES ({}) \
             ON CONFLICT DO NOTHING",
            placeholders(backend, 1, 4).join(", ")
        );
        let res = exec(
            &txn,
            sql,
            vec![
                tenant.id().into(),
                period.into(),
                i32::from(threshold).into(),
                now_ms.into(),
            ],
        )
        .await?;
        let new = res.rows_affected() > 0;
        if new {
            insert_notification(&txn, tenant, note, now_ms).await?;
        }
        txn.commit().await?;
        if new {
            self.notification_committed();
        }
        Ok(new)
    }

    pub async fn announced_thresholds(
        &self,
        tenant: &Tenant,
        period: &str,
    ) -> Result<Vec<u8>, StoreError> {
        let backend = self.conn().get_database_backend();
        let p = binder(backend);
        let rows = rows(
            self.conn(),
            format!(
                "SELECT threshold FROM budget_notices WHERE organization_id = {} AND period = {}",
                p(1),
                p(2)
            ),
            vec![tenant.id().into(), period.into()],
        )
        .await?;
        rows.iter()
            .map(|r| Ok(u8::try_from(r.try_get_by_index::<i32>(0)?).unwrap_or(u8::MAX)))
            .collect()
    }

    pub async fn notify(
        &self,
        tenant: &Tenant,
        note: &NewNotification,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let txn = self.conn().begin().await?;
        insert_notification(&txn, tenant, note, now_ms).await?;
        txn.commit().await?;
        self.notification_committed();
        Ok(())
    }

    /// Every organisation's notifications after `seq`, in order: what the
    /// streaming hub fans out.
    pub async fn notifications_after(
        &self,
        seq: i64,
        limit: u64,
    ) -> Result<Vec<StoredNotification>, StoreError> {
        let backend = self.conn().get_database_backend();
        let sql = format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE seq > {} ORDER BY seq LIMIT {}",
            binder(backend)(1),
            limit.min(10_000)
        );
        let rows = rows(self.conn(), sql, vec![seq.into()]).await?;
        rows.iter().map(notification_from_row).collect()
    }

    /// The newest notification's sequence number (0 if none).
    pub async fn last_notification_seq(&self) -> Result<i64, StoreError> {
        let backend = self.conn().get_database_backend();
        let row = self
            .conn()
            .query_one_raw(Statement::from_string(
                backend,
                "SELECT COALESCE(MAX(seq), 0) FROM notifications".to_owned(),
            ))
            .await?;
        Ok(row
            .map(|r| r.try_get_by_index::<i64>(0))
            .transpose()?
            .unwrap_or(0))
    }

    /// One organisation's notifications: after `after_seq` ascending (resuming
    /// a stream), or before `before_seq` newest first (listing).
    pub async fn notifications(
        &self,
        tenant: &Tenant,
        after_seq: Option<i64>,
        before_seq: Option<i64>,
        limit: u64,
    ) -> Result<Vec<StoredNotification>, StoreError> {
        let backend = self.conn().get_database_backend();
        let p = binder(backend);
        let (cond, order, bound) = match (after_seq, before_seq) {
            (Some(a), _) => (format!("seq > {}", p(2)), "ASC", a),
            (None, Some(b)) => (format!("seq < {}", p(2)), "DESC", b),
            (None, None) => (format!("seq < {}", p(2)), "DESC", i64::MAX),
        };
        let sql = format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE organization_id = {} AND {cond} \
             ORDER BY seq {order} LIMIT {}",
            p(1),
            limit.min(1000)
        );
        let rows = rows(self.conn(), sql, vec![tenant.id().into(), bound.into()]).await?;
        rows.iter().map(notification_from_row).collect()
    }

    /// Usage-event quantities per type and hour in `[from_ms, to_ms)`.
    pub async fn usage_by_hour(
        &self,
        tenant: &Tenant,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<UsageHour>, StoreError> {
        let backend = self.conn().get_database_backend();
        let p = binder(backend);
        let sql = format!(
            "SELECT event_type, (ts / {HOUR_MS}) * {HOUR_MS} AS h, SUM(quantity) FROM usage_events \
             WHERE organization_id = {} AND ts >= {} AND ts < {} GROUP BY event_type, h ORDER BY h, event_type",
            p(1),
            p(2),
            p(3)
        );
        let rows = rows(
            self.conn(),
            sql,
            vec![tenant.id().into(), from_ms.into(), to_ms.into()],
        )
        .await?;
        rows.iter()
            .map(|r| {
                let t: String = r.try_get_by_index(0)?;
                Ok(UsageHour {
                    hour_ms: r.try_get_by_index(1)?,
                    dimension: Dimension::Unit(t),
                    quantity: dec_of_f64(r.try_get_by_index::<f64>(2)?),
                })
            })
            .collect()
    }

    /// Micro-operations per hour: a count per type, and the memory-time,
    /// network and disk bytes they used, as resource quantities.
    pub async fn micro_operations_by_hour(
        &self,
        tenant: &Tenant,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<UsageHour>, StoreError> {
        let backend = self.conn().get_database_backend();
        let p = binder(backend);
        let sql = format!(
            "SELECT micro_operation_type, (ts / {HOUR_MS}) * {HOUR_MS} AS h, COUNT(*), \
             CAST(SUM(network_bytes) AS BIGINT), CAST(SUM(disk_bytes) AS BIGINT), \
             SUM(memory_bytes * execution_time_ms) FROM micro_operations \
             WHERE organization_id = {} AND ts >= {} AND ts < {} \
             GROUP BY micro_operation_type, h ORDER BY h, micro_operation_type",
            p(1),
            p(2),
            p(3)
        );
        let rows = rows(
            self.conn(),
            sql,
            vec![tenant.id().into(), from_ms.into(), to_ms.into()],
        )
        .await?;
        let gb = Decimal::from(1_000_000_000i64);
        // Byte-milliseconds per GiB-hour.
        let gib_hour = Decimal::from(1i64 << 30) * Decimal::from(HOUR_MS);
        let mut resources: BTreeMap<(i64, Resource), Decimal> = BTreeMap::new();
        let mut out = Vec::new();
        for r in &rows {
            let t: String = r.try_get_by_index(0)?;
            let h: i64 = r.try_get_by_index(1)?;
            out.push(UsageHour {
                hour_ms: h,
                dimension: Dimension::MicroOp(t),
                quantity: Decimal::from(r.try_get_by_index::<i64>(2)?),
            });
            *resources.entry((h, Resource::NetworkGb)).or_default() +=
                Decimal::from(r.try_get_by_index::<i64>(3)?) / gb;
            *resources.entry((h, Resource::DiskIoGb)).or_default() +=
                Decimal::from(r.try_get_by_index::<i64>(4)?) / gb;
            *resources.entry((h, Resource::MemoryGib)).or_default() +=
                dec_of_f64(r.try_get_by_index::<f64>(5)?) / gib_hour;
        }
        out.extend(
            resources
                .into_iter()
                .filter(|(_, q)| !q.is_zero())
                .map(|((h, res), q)| UsageHour {
                    hour_ms: h,
                    dimension: Dimension::Resource(res),
                    quantity: q,
                }),
        );
        Ok(out)
    }

    /// Fleet changes confirmed by providers (applied decisions) per
    /// organisation and workload: the fleet in force at `from_ms`, then every
    /// change before `to_ms`. One organisation, or (`None`) all of them.
    pub(crate) async fn fleet_steps(
        &self,
        tenant: Option<&Tenant>,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<BTreeMap<(String, String), Vec<(i64, i64)>>, StoreError> {
        let backend = self.conn().get_database_backend();
        let p = binder(backend);
        let (scope, mut values): (String, Vec<Value>) = match tenant {
            Some(t) => (
                format!("d.organization_id = {} AND ", p(1)),
                vec![t.id().into()],
            ),
            None => (String::new(), Vec::new()),
        };
        let n = values.len();
        let sql = format!(
            "SELECT d.organization_id, d.workload, d.decided_at, d.after_instances FROM allocation_decisions d \
             WHERE {scope}d.status = 'applied' AND d.decided_at < {} AND \
             (d.decided_at >= {} OR d.decided_at = (SELECT MAX(e.decided_at) FROM allocation_decisions e \
              WHERE e.organization_id = d.organization_id AND e.workload = d.workload \
              AND e.status = 'applied' AND e.decided_at < {})) \
             ORDER BY d.organization_id, d.workload, d.decided_at, d.id",
            p(n + 1),
            p(n + 2),
            p(n + 3)
        );
        values.extend([to_ms.into(), from_ms.into(), from_ms.into()]);
        let rows = rows(self.conn(), sql, values).await?;
        let mut steps: BTreeMap<(String, String), Vec<(i64, i64)>> = BTreeMap::new();
        for r in &rows {
            steps
                .entry((r.try_get_by_index(0)?, r.try_get_by_index(1)?))
                .or_default()
                .push((
                    r.try_get_by_index(2)?,
                    i64::from(r.try_get_by_index::<i32>(3)?),
                ));
        }
        Ok(steps)
    }

    /// Capacity in force per workload and hour in `[from_ms, to_ms)`: the
    /// fleets providers confirmed (applied decisions), each lasting until the
    /// next, plus the time demand exceeded the capacity in force.
    pub async fn capacity_by_hour(
        &self,
        tenant: &Tenant,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<CapacityHour>, StoreError> {
        let backend = self.conn().get_database_backend();
        let p = binder(backend);
        let steps: BTreeMap<String, Vec<(i64, i64)>> = self
            .fleet_steps(Some(tenant), from_ms, to_ms)
            .await?
            .into_iter()
            .map(|((_, workload), s)| (workload, s))
            .collect();
        // Ticks where observed demand exceeded what the fleet in force could serve.
        let missed_sql = format!(
            "SELECT d.workload, d.decided_at FROM allocation_decisions d \
             WHERE d.organization_id = {} AND d.decided_at >= {} AND d.decided_at < {} \
             AND {UNDER_PROVISIONED}",
            p(1),
            p(2),
            p(3)
        );
        let missed_rows = rows(
            self.conn(),
            missed_sql,
            vec![tenant.id().into(), from_ms.into(), to_ms.into()],
        )
        .await?;
        let mut missed: BTreeMap<(String, i64), i64> = BTreeMap::new();
        for r in &missed_rows {
            let at: i64 = r.try_get_by_index(1)?;
            *missed
                .entry((r.try_get_by_index(0)?, at.div_euclid(HOUR_MS) * HOUR_MS))
                .or_default() += TICK_MS;
        }
        let mut out = Vec::new();
        for (workload, s) in steps {
            for (h, ms) in headroom_core::billing::rating::instance_ms_by_hour(&s, from_ms, to_ms) {
                out.push(CapacityHour {
                    missed_ms: missed.remove(&(workload.clone(), h)).unwrap_or(0),
                    hour_ms: h,
                    workload: workload.clone(),
                    instance_ms: Decimal::from(ms),
                });
            }
        }
        Ok(out)
    }
}

async fn insert_change<C: ConnectionTrait>(
    c: &C,
    tenant: &Tenant,
    change: &PriceChange,
    note: Option<&NewNotification>,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let backend = c.get_database_backend();
    let sql = format!(
        "INSERT INTO price_changes (organization_id, {CHANGE_COLUMNS}) VALUES ({}) ON CONFLICT DO NOTHING",
        placeholders(backend, 1, 9).join(", ")
    );
    let res = exec(
        c,
        sql,
        vec![
            tenant.id().into(),
            if change.id.is_empty() {
                new_id()
            } else {
                change.id.clone()
            }
            .into(),
            change.at_ms.into(),
            change.subject.clone().into(),
            change.old_price.map(|d| d.to_string()).into(),
            change.new_price.map(|d| d.to_string()).into(),
            change.currency.to_string().into(),
            change.reason.clone().into(),
            change.cause.clone().into(),
        ],
    )
    .await?;
    let new = res.rows_affected() > 0;
    if new && let Some(n) = note {
        insert_notification(c, tenant, n, now_ms).await?;
    }
    Ok(new)
}
