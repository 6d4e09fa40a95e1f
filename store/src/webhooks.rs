//! Outgoing webhook endpoints, deliveries and attempts. A delivery is queued
//! in the same transaction as the notification it carries, so an event is
//! never lost between the two.

use sea_orm::{ConnectionTrait, TransactionTrait, Value};

use crate::sql::{binder, exec, placeholders, row, rows};
use crate::{Db, StoreError, Tenant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEndpoint {
    pub id: String,
    pub url: String,
    pub description: Option<String>,
    /// Empty: every event type.
    pub event_types: Vec<String>,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_until_ms: Option<i64>,
    pub status: String,
    pub disabled_reason: Option<String>,
    pub failing_since_ms: Option<i64>,
    pub created_ms: i64,
}

impl StoredEndpoint {
    /// The secrets that sign at `now_ms`: the current one, and the previous
    /// one while a rotation overlaps.
    pub fn signing_secrets(&self, now_ms: i64) -> Vec<&str> {
        let mut v = vec![self.secret.as_str()];
        if let (Some(p), Some(until)) = (&self.previous_secret, self.previous_until_ms)
            && now_ms < until
        {
            v.push(p);
        }
        v
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDelivery {
    pub id: String,
    pub endpoint_id: String,
    pub event_type: String,
    pub payload: String,
    pub created_ms: i64,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_ms: Option<i64>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAttempt {
    pub n: i32,
    pub at_ms: i64,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i32,
}

/// A delivery due now, with what it takes to send it.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub tenant: Tenant,
    pub delivery: StoredDelivery,
    pub endpoint: StoredEndpoint,
}

/// How an attempt ended, as the delivery job decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptResult {
    pub at_ms: i64,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i32,
    /// `delivered`, `pending` (retry at `next_attempt_ms`) or `failed`.
    pub status: &'static str,
    pub next_attempt_ms: Option<i64>,
    /// Disable the endpoint, with this reason.
    pub disable: Option<String>,
}

const ENDPOINT_COLUMNS: &str = "id, url, description, event_types, secret, previous_secret, \
    previous_until, status, disabled_reason, failing_since, created_at";

fn endpoint_from_row(r: &sea_orm::QueryResult, at: usize) -> Result<StoredEndpoint, StoreError> {
    let types: String = r.try_get_by_index(at + 3)?;
    Ok(StoredEndpoint {
        id: r.try_get_by_index(at)?,
        url: r.try_get_by_index(at + 1)?,
        description: r.try_get_by_index(at + 2)?,
        event_types: serde_json::from_str(&types)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        secret: r.try_get_by_index(at + 4)?,
        previous_secret: r.try_get_by_index(at + 5)?,
        previous_until_ms: r.try_get_by_index(at + 6)?,
        status: r.try_get_by_index(at + 7)?,
        disabled_reason: r.try_get_by_index(at + 8)?,
        failing_since_ms: r.try_get_by_index(at + 9)?,
        created_ms: r.try_get_by_index(at + 10)?,
    })
}

const DELIVERY_COLUMNS: &str = "id, endpoint_id, event_type, payload, created_at, status, attempts, \
    next_attempt_at, last_status_code, last_error, delivered_at";

fn delivery_from_row(r: &sea_orm::QueryResult, at: usize) -> Result<StoredDelivery, StoreError> {
    Ok(StoredDelivery {
        id: r.try_get_by_index(at)?,
        endpoint_id: r.try_get_by_index(at + 1)?,
        event_type: r.try_get_by_index(at + 2)?,
        payload: r.try_get_by_index(at + 3)?,
        created_ms: r.try_get_by_index(at + 4)?,
        status: r.try_get_by_index(at + 5)?,
        attempts: r.try_get_by_index(at + 6)?,
        next_attempt_ms: r.try_get_by_index(at + 7)?,
        last_status_code: r.try_get_by_index(at + 8)?,
        last_error: r.try_get_by_index(at + 9)?,
        delivered_ms: r.try_get_by_index(at + 10)?,
    })
}

/// Queues one delivery per active endpoint of the organisation that takes
/// `event_type`. Called inside the transaction that stores the event.
pub(crate) async fn enqueue<C: ConnectionTrait>(
    c: &C,
    tenant: &Tenant,
    event_type: &str,
    payload: &serde_json::Value,
    now_ms: i64,
) -> Result<usize, StoreError> {
    let backend = c.get_database_backend();
    let p = binder(backend);
    let rows = rows(c, format!(
                "SELECT id, event_types FROM webhook_endpoints WHERE organization_id = {} AND status = 'active'",
                p(1)
            ), vec![tenant.id().into()])
        .await?;
    let mut n = 0;
    for r in &rows {
        let id: String = r.try_get_by_index(0)?;
        let types: Vec<String> =
            serde_json::from_str(&r.try_get_by_index::<String>(1)?).unwrap_or_default();
        if !types.is_empty() && !types.iter().any(|t| t == event_type) {
            continue;
        }
        let sql = format!(
            "INSERT INTO webhook_deliveries (organization_id, {DELIVERY_COLUMNS}) VALUES ({})",
            placeholders(backend, 1, 12).join(", ")
        );
        let values: Vec<Value> = vec![
            tenant.id().into(),
            format!("msg_{}", uuid::Uuid::now_v7().simple()).into(),
            id.into(),
            event_type.into(),
            payload.to_string().into(),
            now_ms.into(),
            "pending".into(),
            0i32.into(),
            Some(now_ms).into(),
            None::<i32>.into(),
            None::<String>.into(),
            None::<i64>.into(),
        ];
        exec(c, sql, values).await?;
        n += 1;
    }
    Ok(n)
}

impl Db {
    pub async fn create_webhook_endpoint(
        &self,
        tenant: &Tenant,
        e: &StoredEndpoint,
    ) -> Result<(), StoreError> {
        let backend = self.db_backend();
        let sql = format!(
            "INSERT INTO webhook_endpoints (organization_id, {ENDPOINT_COLUMNS}) VALUES ({})",
            placeholders(backend, 1, 12).join(", ")
        );
        let values: Vec<Value> = vec![
            tenant.id().into(),
            e.id.clone().into(),
            e.url.clone().into(),
            e.description.clone().into(),
            serde_json::to_string(&e.event_types)
                .unwrap_or_else(|_| "[]".into())
                .into(),
            e.secret.clone().into(),
            e.previous_secret.clone().into(),
            e.previous_until_ms.into(),
            e.status.clone().into(),
            e.disabled_reason.clone().into(),
            e.failing_since_ms.into(),
            e.created_ms.into(),
        ];
        exec(self.conn(), sql, values).await?;
        Ok(())
    }

    pub async fn webhook_endpoints(
        &self,
        tenant: &Tenant,
    ) -> Result<Vec<StoredEndpoint>, StoreError> {
        let backend = self.db_backend();
        let rows = rows(self.conn(), format!(
                    "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE organization_id = {} ORDER BY created_at, id",
                    binder(backend)(1)
                ), vec![tenant.id().into()])
            .await?;
        rows.iter().map(|r| endpoint_from_row(r, 0)).collect()
    }

    pub async fn webhook_endpoint(
        &self,
        tenant: &Tenant,
        id: &str,
    ) -> Result<Option<StoredEndpoint>, StoreError> {
        let backend = self.db_backend();
        let p = binder(backend);
        let row = row(self.conn(), format!(
                    "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE organization_id = {} AND id = {}",
                    p(1),
                    p(2)
                ), vec![tenant.id().into(), id.into()])
            .await?;
        row.map(|r| endpoint_from_row(&r, 0)).transpose()
    }

    /// Deletes an endpoint; its undelivered messages are marked failed, the
    /// log is kept. Returns whether it existed.
    pub async fn delete_webhook_endpoint(
        &self,
        tenant: &Tenant,
        id: &str,
    ) -> Result<bool, StoreError> {
        let txn = self.conn().begin().await?;
        let backend = txn.get_database_backend();
        let p = binder(backend);
        let res = exec(
            &txn,
            format!(
                "DELETE FROM webhook_endpoints WHERE organization_id = {} AND id = {}",
                p(1),
                p(2)
            ),
            vec![tenant.id().into(), id.into()],
        )
        .await?;
        exec(
            &txn,
            format!(
                "UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL, \
                 last_error = 'endpoint deleted' WHERE organization_id = {} AND endpoint_id = {} \
                 AND status = 'pending'",
                p(1),
                p(2)
            ),
            vec![tenant.id().into(), id.into()],
        )
        .await?;
        txn.commit().await?;
        Ok(res.rows_affected() > 0)
    }

    /// Starts signing with `secret`; the old one keeps signing until `until_ms`.
    pub async fn rotate_webhook_secret(
        &self,
        tenant: &Tenant,
        id: &str,
        secret: &str,
        until_ms: i64,
    ) -> Result<bool, StoreError> {
        let backend = self.db_backend();
        let p = binder(backend);
        let res = exec(self.conn(), format!(
                    "UPDATE webhook_endpoints SET previous_secret = secret, previous_until = {}, secret = {} \
                     WHERE organization_id = {} AND id = {}",
                    p(1),
                    p(2),
                    p(3),
                    p(4)
                ), vec![until_ms.into(), secret.into(), tenant.id().into(), id.into()])
            .await?;
        Ok(res.rows_affected() > 0)
    }

    /// Re-enables a disabled endpoint; its queued deliveries go out again.
    pub async fn enable_webhook_endpoint(
        &self,
        tenant: &Tenant,
        id: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let txn = self.conn().begin().await?;
        let backend = txn.get_database_backend();
        let p = binder(backend);
        let res = exec(&txn, format!(
                    "UPDATE webhook_endpoints SET status = 'active', disabled_reason = NULL, failing_since = NULL \
                     WHERE organization_id = {} AND id = {}",
                    p(1),
                    p(2)
                ), vec![tenant.id().into(), id.into()])
            .await?;
        exec(
            &txn,
            format!(
                "UPDATE webhook_deliveries SET next_attempt_at = {} WHERE organization_id = {} \
                 AND endpoint_id = {} AND status = 'pending'",
                p(1),
                p(2),
                p(3)
            ),
            vec![now_ms.into(), tenant.id().into(), id.into()],
        )
        .await?;
        txn.commit().await?;
        Ok(res.rows_affected() > 0)
    }

    /// Deliveries due at `now_ms` to active endpoints, oldest first, each
    /// claimed for `lease_ms` so no other worker sends it meanwhile.
    pub async fn claim_due_deliveries(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u64,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let backend = self.db_backend();
        let p = binder(backend);
        let cols: Vec<String> = DELIVERY_COLUMNS
            .split(", ")
            .map(|c| format!("d.{c}"))
            .collect();
        let ecols: Vec<String> = ENDPOINT_COLUMNS
            .split(", ")
            .map(|c| format!("e.{c}"))
            .collect();
        let sql = format!(
            "SELECT d.organization_id, {}, {} FROM webhook_deliveries d JOIN webhook_endpoints e \
             ON e.organization_id = d.organization_id AND e.id = d.endpoint_id \
             WHERE d.status = 'pending' AND d.next_attempt_at <= {} AND e.status = 'active' \
             ORDER BY d.next_attempt_at, d.created_at LIMIT {}",
            cols.join(", "),
            ecols.join(", "),
            p(1),
            limit.min(1000)
        );
        let rows = rows(self.conn(), sql, vec![now_ms.into()]).await?;
        let mut out = Vec::new();
        for r in &rows {
            let tenant = Tenant::new(r.try_get_by_index::<String>(0)?);
            let delivery = delivery_from_row(r, 1)?;
            let endpoint = endpoint_from_row(r, 12)?;
            let claimed = exec(
                self.conn(),
                format!(
                    "UPDATE webhook_deliveries SET next_attempt_at = {} WHERE organization_id = {} \
                         AND id = {} AND status = 'pending' AND next_attempt_at = {}",
                    p(1),
                    p(2),
                    p(3),
                    p(4)
                ),
                vec![
                    (now_ms + lease_ms).into(),
                    tenant.id().into(),
                    delivery.id.clone().into(),
                    delivery.next_attempt_ms.into(),
                ],
            )
            .await?;
            if claimed.rows_affected() == 1 {
                out.push(DueDelivery {
                    tenant,
                    delivery,
                    endpoint,
                });
            }
        }
        Ok(out)
    }

    /// Logs an attempt and moves the delivery (and, on persistent failure or
    /// 410, the endpoint) on, in one transaction.
    pub async fn record_webhook_attempt(
        &self,
        tenant: &Tenant,
        delivery: &StoredDelivery,
        result: &AttemptResult,
    ) -> Result<(), StoreError> {
        let txn = self.conn().begin().await?;
        let backend = txn.get_database_backend();
        let p = binder(backend);
        let n_row = row(&txn, format!(
                    "SELECT COUNT(*) FROM webhook_attempts WHERE organization_id = {} AND delivery_id = {}",
                    p(1),
                    p(2)
                ), vec![tenant.id().into(), delivery.id.clone().into()])
            .await?;
        let n = n_row
            .map(|r| r.try_get_by_index::<i64>(0))
            .transpose()?
            .unwrap_or(0)
            + 1;
        exec(&txn, format!(
                "INSERT INTO webhook_attempts (organization_id, delivery_id, n, at, status_code, error, duration_ms) \
                 VALUES ({})",
                placeholders(backend, 1, 7).join(", ")
            ), vec![
                tenant.id().into(),
                delivery.id.clone().into(),
                (n as i32).into(),
                result.at_ms.into(),
                result.status_code.into(),
                result.error.clone().into(),
                result.duration_ms.into(),
            ])
        .await?;
        let delivered_at = (result.status == "delivered").then_some(result.at_ms);
        exec(&txn, format!(
                "UPDATE webhook_deliveries SET status = {}, attempts = attempts + 1, next_attempt_at = {}, \
                 last_status_code = {}, last_error = {}, delivered_at = {} WHERE organization_id = {} AND id = {}",
                p(1),
                p(2),
                p(3),
                p(4),
                p(5),
                p(6),
                p(7)
            ), vec![
                result.status.into(),
                result.next_attempt_ms.into(),
                result.status_code.into(),
                result.error.clone().into(),
                delivered_at.into(),
                tenant.id().into(),
                delivery.id.clone().into(),
            ])
        .await?;
        let endpoint_sql = if result.status == "delivered" {
            format!(
                "UPDATE webhook_endpoints SET failing_since = NULL WHERE organization_id = {} AND id = {}",
                p(1),
                p(2)
            )
        } else {
            format!(
                "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, {}) \
                 WHERE organization_id = {} AND id = {}",
                p(1),
                p(2),
                p(3)
            )
        };
        let mut values: Vec<Value> = Vec::new();
        if result.status != "delivered" {
            values.push(result.at_ms.into());
        }
        values.push(tenant.id().into());
        values.push(delivery.endpoint_id.clone().into());
        exec(&txn, endpoint_sql, values).await?;
        if let Some(reason) = &result.disable {
            exec(
                &txn,
                format!(
                    "UPDATE webhook_endpoints SET status = 'disabled', disabled_reason = {} \
                     WHERE organization_id = {} AND id = {}",
                    p(1),
                    p(2),
                    p(3)
                ),
                vec![
                    reason.clone().into(),
                    tenant.id().into(),
                    delivery.endpoint_id.clone().into(),
                ],
            )
            .await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// An endpoint's deliveries, newest first.
    pub async fn webhook_deliveries(
        &self,
        tenant: &Tenant,
        endpoint_id: &str,
        limit: u64,
    ) -> Result<Vec<StoredDelivery>, StoreError> {
        let backend = self.db_backend();
        let p = binder(backend);
        let rows = rows(
            self.conn(),
            format!(
                "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE organization_id = {} \
                     AND endpoint_id = {} ORDER BY created_at DESC, id DESC LIMIT {}",
                p(1),
                p(2),
                limit.min(500)
            ),
            vec![tenant.id().into(), endpoint_id.into()],
        )
        .await?;
        rows.iter().map(|r| delivery_from_row(r, 0)).collect()
    }

    pub async fn webhook_attempts(
        &self,
        tenant: &Tenant,
        delivery_id: &str,
    ) -> Result<Vec<StoredAttempt>, StoreError> {
        let backend = self.db_backend();
        let p = binder(backend);
        let rows = rows(
            self.conn(),
            format!(
                "SELECT n, at, status_code, error, duration_ms FROM webhook_attempts \
                     WHERE organization_id = {} AND delivery_id = {} ORDER BY n",
                p(1),
                p(2)
            ),
            vec![tenant.id().into(), delivery_id.into()],
        )
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredAttempt {
                    n: r.try_get_by_index(0)?,
                    at_ms: r.try_get_by_index(1)?,
                    status_code: r.try_get_by_index(2)?,
                    error: r.try_get_by_index(3)?,
                    duration_ms: r.try_get_by_index(4)?,
                })
            })
            .collect()
    }

    /// Sends a delivery again (same `webhook-id`, fresh retry schedule).
    /// Returns the delivery, or `None` if there is no such delivery.
    pub async fn replay_webhook_delivery(
        &self,
        tenant: &Tenant,
        id: &str,
        now_ms: i64,
    ) -> Result<Option<StoredDelivery>, StoreError> {
        let backend = self.db_backend();
        let p = binder(backend);
        let res = exec(self.conn(), format!(
                    "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = {} \
                     WHERE organization_id = {} AND id = {}",
                    p(1),
                    p(2),
                    p(3)
                ), vec![now_ms.into(), tenant.id().into(), id.into()])
            .await?;
        if res.rows_affected() == 0 {
            return Ok(None);
        }
        let row = row(self.conn(), format!(
                    "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE organization_id = {} AND id = {}",
                    p(1),
                    p(2)
                ), vec![tenant.id().into(), id.into()])
            .await?;
        row.map(|r| delivery_from_row(&r, 0)).transpose()
    }
}
