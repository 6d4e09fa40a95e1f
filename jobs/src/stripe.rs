//! Usage to Stripe as Billing Meter Events. When an hour has closed, an
//! organisation's period charges rated up to it (in minor currency units) are
//! compared with what was already pushed, and the difference is sent as one
//! meter event whose `identifier` names the organisation and hour. The push
//! is recorded as pending *before* it is sent, so a worker killed mid-push
//! re-sends the same identifier and value, and Stripe counts it once.

use std::collections::HashMap;
use std::time::Duration;

use apalis::prelude::{BoxDynError, Data};
use apalis_cron::Tick;
use backon::{ExponentialBuilder, Retryable};
use headroom_core::billing::{HOUR_MS, Period, RuleBook};
use headroom_store::stripe::MeterPush;
use headroom_store::{Db, Tenant};
use stripe::{Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeError, StripeRequest};
use stripe_billing::billing_meter_event::CreateBillingMeterEvent;
use stripe_core::customer::CreateCustomer;

use crate::billing;

/// How Headroom reaches Stripe.
#[derive(Clone)]
pub struct StripeSettings {
    pub secret_key: String,
    /// Another base URL (a test server); `None`: Stripe itself.
    pub api_base: Option<String>,
    /// The meter's `event_name`; its value is minor currency units.
    pub event_name: String,
}

impl std::fmt::Debug for StripeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeSettings")
            .field("secret_key", &"<redacted>")
            .field("api_base", &self.api_base)
            .field("event_name", &self.event_name)
            .finish()
    }
}

#[derive(Clone)]
pub struct StripeJob {
    pub db: Db,
    pub client: Client,
    pub settings: StripeSettings,
}

impl StripeJob {
    pub fn new(db: Db, settings: StripeSettings) -> Result<Self, StripeError> {
        Ok(Self {
            db,
            client: client(&settings)?,
            settings,
        })
    }
}

pub fn client(s: &StripeSettings) -> Result<Client, StripeError> {
    let mut b = ClientBuilder::new(s.secret_key.clone()).app_info(
        "headroom",
        Some(env!("CARGO_PKG_VERSION").to_owned()),
        None,
    );
    if let Some(base) = &s.api_base {
        b = b.url(base.clone());
    }
    b.build()
}

fn idempotent(key: &str) -> Result<RequestStrategy, BoxDynError> {
    Ok(RequestStrategy::Idempotent(IdempotencyKey::new(key)?))
}

/// Whether an error may heal by itself (network, rate limit, Stripe 5xx).
fn transient(e: &StripeError) -> bool {
    match e {
        StripeError::Stripe(_, status) => *status == 429 || *status >= 500,
        StripeError::ClientError(_) | StripeError::Timeout => true,
        _ => false,
    }
}

/// The scheduled push; does nothing where Stripe is not configured.
pub async fn run(tick: Tick, ctx: Data<Option<StripeJob>>) -> Result<(), BoxDynError> {
    let _ = tick;
    let Some(ctx) = ctx.as_ref() else {
        return Ok(());
    };
    let now_ms = chrono::Utc::now().timestamp_millis();
    let pushed = push_all(&ctx.db, &ctx.client, &ctx.settings, now_ms).await?;
    if pushed > 0 {
        tracing::info!(pushed, "meter events sent to Stripe");
    }
    Ok(())
}

/// The organisation's Stripe customer, created on first use (idempotent on
/// the organisation id, so two workers racing create one).
pub async fn ensure_customer(
    db: &Db,
    client: &Client,
    tenant: &Tenant,
) -> Result<String, BoxDynError> {
    let org = db
        .organization(tenant)
        .await?
        .ok_or("no such organisation")?;
    if let Some(id) = org.stripe_customer_id {
        return Ok(id);
    }
    let metadata = HashMap::from([("headroom_organization_id".to_owned(), org.id.clone())]);
    let created = CreateCustomer::new()
        .name(org.name.clone())
        .metadata(metadata)
        .customize()
        .request_strategy(idempotent(&format!("headroom-customer-{}", org.id))?)
        .send(client)
        .await?;
    Ok(db.set_stripe_customer(tenant, created.id.as_str()).await?)
}

/// Pushes every organisation's closed hours; returns the events sent.
pub async fn push_all(
    db: &Db,
    client: &Client,
    s: &StripeSettings,
    now_ms: i64,
) -> Result<usize, BoxDynError> {
    let book = RuleBook::new(db.price_rules().await?);
    let mut sent = 0;
    for who in billing::customers(db).await? {
        let tenant = Tenant::new(who.org_id.clone());
        match push_org(db, client, s, &book, &tenant, now_ms).await {
            Ok(n) => sent += n,
            // One organisation's trouble must not hold the others up.
            Err(e) => {
                tracing::warn!(organization = who.org_id, error = %e, "meter push incomplete")
            }
        }
    }
    Ok(sent)
}

async fn send(client: &Client, s: &StripeSettings, p: &MeterPush) -> Result<(), StripeError> {
    let payload = HashMap::from([
        ("stripe_customer_id".to_owned(), p.customer_id.clone()),
        ("value".to_owned(), p.value.to_string()),
    ]);
    let key =
        IdempotencyKey::new(&p.identifier).map_err(|e| StripeError::ClientError(e.to_string()))?;
    CreateBillingMeterEvent::new(s.event_name.clone(), payload)
        .identifier(p.identifier.clone())
        // The last second of the hour the usage belongs to.
        .timestamp((p.hour_ms + HOUR_MS) / 1000 - 1)
        .customize()
        .request_strategy(RequestStrategy::Idempotent(key))
        .timeout(Duration::from_secs(20))
        .send(client)
        .await?;
    Ok(())
}

async fn send_recorded(
    db: &Db,
    client: &Client,
    s: &StripeSettings,
    tenant: &Tenant,
    p: &MeterPush,
) -> Result<(), BoxDynError> {
    let result = (|| send(client, s, p))
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(200))
                .with_max_delay(Duration::from_secs(5))
                .with_max_times(3)
                .with_jitter(),
        )
        .when(transient)
        .await;
    match result {
        Ok(()) => {
            db.finish_meter_push(
                tenant,
                p.hour_ms,
                Some(chrono::Utc::now().timestamp_millis()),
                None,
            )
            .await?;
            Ok(())
        }
        Err(e) => {
            // Stays pending with the same identifier and value: the next tick re-sends it.
            db.finish_meter_push(tenant, p.hour_ms, None, Some(&e.to_string()))
                .await?;
            Err(e.into())
        }
    }
}

async fn push_org(
    db: &Db,
    client: &Client,
    s: &StripeSettings,
    book: &RuleBook,
    tenant: &Tenant,
    now_ms: i64,
) -> Result<usize, BoxDynError> {
    let closed = now_ms.div_euclid(HOUR_MS) * HOUR_MS;
    let current = Period::month_of(closed - 1);
    // The previous month too: its last hours may have closed while no worker ran.
    let previous = Period::month_of(current.start_ms - 1);
    let mut sent = 0;
    for period in [previous, current] {
        sent += push_period(db, client, s, book, tenant, period, closed, now_ms).await?;
    }
    Ok(sent)
}

#[allow(clippy::too_many_arguments)]
async fn push_period(
    db: &Db,
    client: &Client,
    s: &StripeSettings,
    book: &RuleBook,
    tenant: &Tenant,
    period: Period,
    closed: i64,
    now_ms: i64,
) -> Result<usize, BoxDynError> {
    let Some(who) = billing::customer(db, tenant).await? else {
        return Ok(0);
    };
    let label = period.label();
    let pushes = db.meter_pushes(tenant, &label).await?;
    let mut sent = 0;
    // First what an earlier run recorded but did not get through, unchanged.
    for p in pushes.iter().filter(|p| p.status == "pending") {
        send_recorded(db, client, s, tenant, p).await?;
        sent += 1;
    }
    let upto = closed.min(period.end_ms);
    // Stripe takes events of the last 35 days; each closed hour is pushed once.
    let last_hour = upto - HOUR_MS;
    if upto <= period.start_ms
        || last_hour < now_ms - 34 * 24 * HOUR_MS
        || pushes.iter().any(|p| p.hour_ms >= last_hour)
    {
        return Ok(sent);
    }
    let statement = billing::statement(db, tenant, &who, book, period, upto).await?;
    let to_date = who.currency.to_minor_units(statement.total).unwrap_or(0);
    let pushed: i64 = pushes.iter().map(|p| p.value).sum();
    // Credits are carried forward, never sent as negative usage.
    let value = (to_date - pushed).max(0);
    if value == 0 {
        return Ok(sent);
    }
    let p = MeterPush {
        hour_ms: last_hour,
        identifier: format!("headroom-{}-{last_hour}", tenant.id()),
        period: label,
        event_name: s.event_name.clone(),
        customer_id: ensure_customer(db, client, tenant).await?,
        value,
        currency: who.currency.to_string(),
        status: "pending".into(),
        attempts: 0,
        last_error: None,
        created_ms: now_ms,
        sent_ms: None,
    };
    // Recorded first: a worker killed after this re-sends exactly it. Another
    // worker that recorded the hour first sends it instead.
    if db.record_meter_push(tenant, &p).await? {
        send_recorded(db, client, s, tenant, &p).await?;
        sent += 1;
    }
    Ok(sent)
}
