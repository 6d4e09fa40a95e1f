//! Notifications (price changes, budget thresholds, allocation decisions):
//! listed, and streamed to browsers as server-sent events.

use crate::api::error::page_limit;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::{DateTime, Utc};
use futures::Stream;
use headroom_core::accounts::Scope;
use headroom_store::billing::StoredNotification;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiQuery, ApiResult, ErrorBody};
use super::forecasts::instant;
use crate::auth::Caller;
use crate::http::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationView {
    /// Increasing; the stream's event id (resume with `Last-Event-ID`).
    pub seq: i64,
    /// `price_change`, `budget_threshold` or `allocation_decision`.
    pub kind: String,
    pub title: String,
    #[schema(value_type = Object)]
    pub body: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

impl From<&StoredNotification> for NotificationView {
    fn from(n: &StoredNotification) -> Self {
        Self {
            seq: n.seq,
            kind: n.kind.clone(),
            title: n.title.clone(),
            body: serde_json::from_str(&n.body).unwrap_or_default(),
            created_at: instant(n.created_ms),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only notifications older than this `seq` (paging backwards).
    pub before: Option<i64>,
    /// Default 50, at most 500.
    pub limit: Option<u64>,
}

/// The organisation's notifications, newest first.
#[utoipa::path(get, path = "/api/v1/notifications", tag = "billing", params(ListQuery),
    security(("api_key" = ["read"]), ("session" = [])),
    responses((status = 200, body = Vec<NotificationView>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_notifications(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Vec<NotificationView>>> {
    caller.require_scope(Scope::Read)?;
    let limit = page_limit(q.limit, 50, 500)?;
    let rows = state
        .db
        .notifications(&caller.tenant, None, q.before, limit)
        .await?;
    Ok(Json(rows.iter().map(Into::into).collect()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Resume after this `seq` (as the `Last-Event-ID` header does); without
    /// either, only notifications from now on are sent.
    pub after: Option<i64>,
}

fn event(n: &StoredNotification) -> Event {
    let view = NotificationView::from(n);
    Event::default()
        .id(n.seq.to_string())
        .event(n.kind.clone())
        .json_data(&view)
        .unwrap_or_else(|_| Event::default().comment("unserialisable notification"))
}

/// Server-sent events: one event per notification (`id` = seq, `event` =
/// kind, `data` = the notification as JSON), keep-alive comments every 15 s.
#[utoipa::path(get, path = "/api/v1/notifications/stream", tag = "billing", params(StreamQuery),
    security(("api_key" = ["read"]), ("session" = [])),
    responses((status = 200, content_type = "text/event-stream", description = "event stream"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn notification_stream(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<StreamQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    caller.require_scope(Scope::Read)?;
    let resume = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .ok_or_else(|| ApiError::bad_request("Last-Event-ID must be a notification seq"))?,
        ),
        None => q.after,
    };
    // Subscribe before reading the backlog, so nothing falls in between.
    let rx = state.notifications.subscribe();
    let db = state.db.clone();
    let tenant = caller.tenant.clone();
    let mut last = match resume {
        Some(s) => s,
        None => db.last_notification_seq().await?,
    };
    // What the client missed, up to a bound.
    let mut backlog = Vec::new();
    if resume.is_some() {
        while backlog.len() < 5_000 {
            let page = db.notifications(&tenant, Some(last), None, 500).await?;
            let n = page.len();
            if let Some(x) = page.last() {
                last = x.seq;
            }
            backlog.extend(page);
            if n < 500 {
                break;
            }
        }
    }
    // The hub sends each notification once, but one committed late may carry
    // a lower number than others already sent: live ones are only checked
    // against what the backlog already carried.
    let sent: std::collections::HashSet<i64> = backlog.iter().map(|n| n.seq).collect();
    let closing = state.notifications.closing();
    let org = tenant.id().to_owned();
    let live = futures::stream::unfold(
        (rx, last, sent, db, tenant, org),
        |(mut rx, mut last, mut sent, db, tenant, org)| async move {
            loop {
                match rx.recv().await {
                    // Those the backlog carried are skipped (each at most once).
                    Ok(n) if n.organization_id == org && !sent.remove(&n.seq) => {
                        last = last.max(n.seq);
                        return Some((vec![n], (rx, last, sent, db, tenant, org)));
                    }
                    Ok(_) => continue,
                    // Fell behind: catch up from the database.
                    Err(RecvError::Lagged(_)) => {
                        let rows = db
                            .notifications(&tenant, Some(last), None, 500)
                            .await
                            .unwrap_or_default();
                        if let Some(n) = rows.last() {
                            last = n.seq;
                        }
                        let rows: Vec<Arc<StoredNotification>> =
                            rows.into_iter().map(Arc::new).collect();
                        if !rows.is_empty() {
                            return Some((rows, (rx, last, sent, db, tenant, org)));
                        }
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        },
    );
    use futures::StreamExt;
    let backlog = futures::stream::iter(backlog.into_iter().map(|n| Ok(event(&n))));
    let live = live
        .flat_map(|batch| futures::stream::iter(batch.into_iter().map(|n| Ok(event(&n)))))
        .take_until(closing.cancelled_owned());
    Ok(
        Sse::new(backlog.chain(live))
            .keep_alive(KeepAlive::new().interval(Duration::from_secs(15))),
    )
}
