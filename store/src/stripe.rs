//! Stripe bookkeeping: customers per organisation, meter pushes, and the
//! webhook events already processed.

use sea_orm::{ConnectionTrait, TransactionTrait, Value};

use crate::billing::{NewNotification, insert_notification};
use crate::sql::{binder, exec, placeholders, row, rows};
use crate::{Db, StoreError, Tenant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterPush {
    pub hour_ms: i64,
    pub identifier: String,
    pub period: String,
    pub event_name: String,
    pub customer_id: String,
    pub value: i64,
    pub currency: String,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_ms: i64,
    pub sent_ms: Option<i64>,
}

const PUSH_COLUMNS: &str = "hour, identifier, period, event_name, customer_id, value, currency, \
    status, attempts, last_error, created_at, sent_at";

fn push_from_row(r: &sea_orm::QueryResult) -> Result<MeterPush, StoreError> {
    Ok(MeterPush {
        hour_ms: r.try_get_by_index(0)?,
        identifier: r.try_get_by_index(1)?,
        period: r.try_get_by_index(2)?,
        event_name: r.try_get_by_index(3)?,
        customer_id: r.try_get_by_index(4)?,
        value: r.try_get_by_index(5)?,
        currency: r.try_get_by_index(6)?,
        status: r.try_get_by_index(7)?,
        attempts: r.try_get_by_index(8)?,
        last_error: r.try_get_by_index(9)?,
        created_ms: r.try_get_by_index(10)?,
        sent_ms: r.try_get_by_index(11)?,
    })
}

impl Db {
    /// Records the organisation's Stripe customer unless one is on record;
    /// returns the one on record afterwards.
    pub async fn set_stripe_customer(
        &self,
        tenant: &Tenant,
        customer_id: &str,
    ) -> Result<String, StoreError> {
        let backend = self.db_backend();
        let p = binder(backend);
        exec(self.conn(), format!(
                    "UPDATE organizations SET stripe_customer_id = {} WHERE id = {} AND stripe_customer_id IS NULL",
                    p(1),
                    p(2)
                ), vec![customer_id.into(), tenant.id().into()])
            .await?;
        let row = row(
            self.conn(),
            format!(
                "SELECT stripe_customer_id FROM organizations WHERE id = {}",
                p(1)
            ),
            vec![tenant.id().into()],
        )
        .await?;
        row.and_then(|r| r.try_get_by_index::<Option<String>>(0).ok().flatten())
            .ok_or_else(|| StoreError::Corrupt("organisation without the customer just set".into()))
    }

    /// The Stripe object on record under `key` (see the `stripe_objects` table).
    pub async fn stripe_object(&self, key: &str) -> Result<Option<String>, StoreError> {
        let backend = self.db_backend();
        let row = row(
            self.conn(),
            format!(
                "SELECT stripe_id FROM stripe_objects WHERE key = {}",
                binder(backend)(1)
            ),
            vec![key.into()],
        )
        .await?;
        Ok(row.map(|r| r.try_get_by_index::<String>(0)).transpose()?)
    }

    /// Records a Stripe object unless one is on record; returns the one on record.
    pub async fn set_stripe_object(
        &self,
        key: &str,
        id: &str,
        now_ms: i64,
    ) -> Result<String, StoreError> {
        let backend = self.db_backend();
        exec(self.conn(), format!(
                    "INSERT INTO stripe_objects (key, stripe_id, created_at) VALUES ({}) ON CONFLICT DO NOTHING",
                    placeholders(backend, 1, 3).join(", ")
                ), vec![key.into(), id.into(), now_ms.into()])
            .await?;
        self.stripe_object(key)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("stripe object {key} vanished")))
    }

    /// The organisation whose Stripe customer this is.
    pub async fn organization_by_stripe_customer(
        &self,
        customer_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let backend = self.db_backend();
        let row = row(
            self.conn(),
            format!(
                "SELECT id FROM organizations WHERE stripe_customer_id = {}",
                binder(backend)(1)
            ),
            vec![customer_id.into()],
        )
        .await?;
        Ok(row.map(|r| r.try_get_by_index::<String>(0)).transpose()?)
    }

    /// The organisation's pushes in a period, oldest first.
    pub async fn meter_pushes(
        &self,
        tenant: &Tenant,
        period: &str,
    ) -> Result<Vec<MeterPush>, StoreError> {
        let backend = self.db_backend();
        let p = binder(backend);
        let rows = rows(self.conn(), format!(
                    "SELECT {PUSH_COLUMNS} FROM meter_pushes WHERE organization_id = {} AND period = {} ORDER BY hour",
                    p(1),
                    p(2)
                ), vec![tenant.id().into(), period.into()])
            .await?;
        rows.iter().map(push_from_row).collect()
    }

    /// Records a push before it is sent. False if that hour was already recorded.
    pub async fn record_meter_push(
        &self,
        tenant: &Tenant,
        m: &MeterPush,
    ) -> Result<bool, StoreError> {
        let backend = self.db_backend();
        let sql = format!(
            "INSERT INTO meter_pushes (organization_id, {PUSH_COLUMNS}) VALUES ({}) ON CONFLICT DO NOTHING",
            placeholders(backend, 1, 13).join(", ")
        );
        let values: Vec<Value> = vec![
            tenant.id().into(),
            m.hour_ms.into(),
            m.identifier.clone().into(),
            m.period.clone().into(),
            m.event_name.clone().into(),
            m.customer_id.clone().into(),
            m.value.into(),
            m.currency.clone().into(),
            m.status.clone().into(),
            m.attempts.into(),
            m.last_error.clone().into(),
            m.created_ms.into(),
            m.sent_ms.into(),
        ];
        let res = exec(self.conn(), sql, values).await?;
        Ok(res.rows_affected() > 0)
    }

    /// After an attempt: sent, or still pending with why.
    pub async fn finish_meter_push(
        &self,
        tenant: &Tenant,
        hour_ms: i64,
        sent_ms: Option<i64>,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let backend = self.db_backend();
        let p = binder(backend);
        let status = if sent_ms.is_some() { "sent" } else { "pending" };
        exec(self.conn(), format!(
                    "UPDATE meter_pushes SET status = {}, attempts = attempts + 1, sent_at = {}, last_error = {} \
                     WHERE organization_id = {} AND hour = {}",
                    p(1),
                    p(2),
                    p(3),
                    p(4),
                    p(5)
                ), vec![
                    status.into(),
                    sent_ms.into(),
                    error.map(str::to_owned).into(),
                    tenant.id().into(),
                    hour_ms.into(),
                ])
            .await?;
        Ok(())
    }

    /// Remembers a Stripe webhook event and, in the same transaction, the
    /// notification it gives; false (and nothing stored) if it was seen before.
    pub async fn remember_stripe_event(
        &self,
        id: &str,
        kind: &str,
        created_secs: i64,
        note: Option<(&Tenant, &NewNotification)>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let txn = self.conn().begin().await?;
        let backend = txn.get_database_backend();
        let res = exec(&txn, format!(
                    "INSERT INTO stripe_events (id, kind, created, received_at) VALUES ({}) ON CONFLICT DO NOTHING",
                    placeholders(backend, 1, 4).join(", ")
                ), vec![id.into(), kind.into(), created_secs.into(), now_ms.into()])
            .await?;
        let new = res.rows_affected() > 0;
        if new && let Some((tenant, n)) = note {
            insert_notification(&txn, tenant, n, now_ms).await?;
        }
        txn.commit().await?;
        if new && note.is_some() {
            self.notification_committed();
        }
        Ok(new)
    }
}
