//! Usage to Stripe as Billing Meter Events. When an hour has closed, an
//! organisation's period charges rated up to it (in minor currency units) are
//! compared with what was already pushed, and the difference is sent as one
//! meter event whose `identifier` names the organisation and hour. The push
//! is recorded as pending *before* it is sent, so a worker killed mid-push
//! re-sends the same identifier and value, and Stripe counts it once.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use apalis::prelude::{BoxDynError, Data};
use apalis_cron::Tick;
use backon::{ExponentialBuilder, Retryable};
use headroom_core::billing::{Customer, HOUR_MS, Period, RuleBook};
use headroom_store::stripe::MeterPush;
use headroom_store::{Db, Tenant};
use stripe::{Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeError, StripeRequest};
use stripe_billing::billing_meter_event::CreateBillingMeterEvent;
use stripe_client_core::{RequestBuilder, StripeMethod};
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

/// A form request sent through the Stripe client (authentication, API
/// version, idempotency key) whose answer is read untyped; returns its `id`.
async fn call(
    client: &Client,
    method: StripeMethod,
    path: &str,
    params: &[(&str, String)],
    key: Option<&str>,
) -> Result<miniserde::json::Value, BoxDynError> {
    let form: BTreeMap<&str, &str> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut req = RequestBuilder::new(method, path);
    req = match method {
        StripeMethod::Get => req.query(&form),
        _ => req.form(&form),
    };
    let mut req = req.customize::<miniserde::json::Value>();
    if let Some(k) = key {
        req = req.request_strategy(idempotent(k)?);
    }
    Ok(req.send(client).await?)
}

fn field<'a>(v: &'a miniserde::json::Value, name: &str) -> Option<&'a miniserde::json::Value> {
    match v {
        miniserde::json::Value::Object(o) => o.get(name),
        _ => None,
    }
}

fn string_field(v: &miniserde::json::Value, name: &str) -> Result<String, BoxDynError> {
    match field(v, name) {
        Some(miniserde::json::Value::String(s)) => Ok(s.clone()),
        _ => Err(format!("Stripe's answer has no {name}").into()),
    }
}

/// The object on record under `key`, or the one `make` creates (then recorded).
async fn ensure<F, Fut>(db: &Db, key: &str, make: F) -> Result<String, BoxDynError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<String, BoxDynError>>,
{
    if let Some(id) = db.stripe_object(key).await? {
        return Ok(id);
    }
    let id = make().await?;
    Ok(db
        .set_stripe_object(key, &id, chrono::Utc::now().timestamp_millis())
        .await?)
}

/// The Billing Meter that sums the pushed values per customer: found by its
/// event name among the active meters, or created.
async fn ensure_meter(db: &Db, client: &Client, s: &StripeSettings) -> Result<String, BoxDynError> {
    ensure(db, &format!("meter:{}", s.event_name), || async {
        let list = call(client, StripeMethod::Get, "/billing/meters", &[("status", "active".into()), ("limit", "100".into())], None).await?;
        if let Some(miniserde::json::Value::Array(meters)) = field(&list, "data") {
            for m in meters {
                if matches!(field(m, "event_name"), Some(miniserde::json::Value::String(n)) if *n == s.event_name) {
                    return string_field(m, "id");
                }
            }
        }
        let created = call(
            client,
            StripeMethod::Post,
            "/billing/meters",
            &[
                ("display_name", "Headroom usage (minor currency units)".into()),
                ("event_name", s.event_name.clone()),
                ("default_aggregation[formula]", "sum".into()),
                ("customer_mapping[type]", "by_id".into()),
                ("customer_mapping[event_payload_key]", "stripe_customer_id".into()),
                ("value_settings[event_payload_key]", "value".into()),
            ],
            Some(&format!("headroom-meter-{}", s.event_name)),
        )
        .await?;
        string_field(&created, "id")
    })
    .await
}

/// The metered price (one minor unit per unit of the meter) in `currency`,
/// with its product, created once.
async fn ensure_price(
    db: &Db,
    client: &Client,
    s: &StripeSettings,
    currency: &str,
) -> Result<String, BoxDynError> {
    let meter = ensure_meter(db, client, s).await?;
    let product = ensure(db, "product", || async {
        let p = call(
            client,
            StripeMethod::Post,
            "/products",
            &[("name", "Headroom usage".into())],
            Some("headroom-product"),
        )
        .await?;
        string_field(&p, "id")
    })
    .await?;
    ensure(db, &format!("price:{currency}:{meter}"), || async {
        let p = call(
            client,
            StripeMethod::Post,
            "/prices",
            &[
                ("currency", currency.to_owned()),
                ("unit_amount", "1".into()),
                ("product", product.clone()),
                ("recurring[interval]", "month".into()),
                ("recurring[usage_type]", "metered".into()),
                ("recurring[meter]", meter.clone()),
                ("nickname", "Headroom usage, per minor currency unit".into()),
            ],
            Some(&format!("headroom-price-{currency}-{meter}")),
        )
        .await?;
        string_field(&p, "id")
    })
    .await
}

/// The organisation's monthly subscription to the metered price, invoiced
/// (no card needed up front), created once.
async fn ensure_subscription(
    db: &Db,
    client: &Client,
    s: &StripeSettings,
    tenant: &Tenant,
    customer: &str,
    currency: &str,
) -> Result<String, BoxDynError> {
    let price = ensure_price(db, client, s, currency).await?;
    ensure(db, &format!("subscription:{}", tenant.id()), || async {
        let sub = call(
            client,
            StripeMethod::Post,
            "/subscriptions",
            &[
                ("customer", customer.to_owned()),
                ("items[0][price]", price.clone()),
                ("collection_method", "send_invoice".into()),
                ("days_until_due", "30".into()),
                ("metadata[headroom_organization_id]", tenant.id().to_owned()),
            ],
            Some(&format!("headroom-subscription-{}", tenant.id())),
        )
        .await?;
        string_field(&sub, "id")
    })
    .await
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
        match push_org(db, client, s, &book, &who, now_ms).await {
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
    who: &Customer,
    now_ms: i64,
) -> Result<usize, BoxDynError> {
    let closed = now_ms.div_euclid(HOUR_MS) * HOUR_MS;
    let current = Period::month_of(closed - 1);
    // The previous month too: its last hours may have closed while no worker ran.
    let previous = Period::month_of(current.start_ms - 1);
    let mut sent = 0;
    for period in [previous, current] {
        sent += push_period(db, client, s, book, who, period, closed, now_ms).await?;
    }
    Ok(sent)
}

#[allow(clippy::too_many_arguments)]
async fn push_period(
    db: &Db,
    client: &Client,
    s: &StripeSettings,
    book: &RuleBook,
    who: &Customer,
    period: Period,
    closed: i64,
    now_ms: i64,
) -> Result<usize, BoxDynError> {
    let tenant = &Tenant::new(who.org_id.clone());
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
    let statement = billing::statement(db, tenant, who, book, period, upto).await?;
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
        customer_id: {
            let c = ensure_customer(db, client, tenant).await?;
            ensure_subscription(db, client, s, tenant, &c, who.currency.as_str()).await?;
            c
        },
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
