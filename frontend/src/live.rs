//! Live updates while a page is shown, stopped when the page goes away: the
//! organisation's notification stream and periodic refreshes. (A stream or
//! timer left running after the router navigated away would keep a
//! connection open, and a task writing to the gone page's signals, per visit.)
//!
//! Both start only in the browser; call them from an `Effect`, so they start
//! after hydration and stop with the component that owns the effect.

use leptos::prelude::*;

use crate::api::Notification;

/// Follows `/notifications/stream` while the calling component lives: `live`
/// says whether it is open; `on_note` gets each notification as it arrives.
pub fn follow_notifications(live: RwSignal<bool>, on_note: impl Fn(Notification) + 'static) {
    #[cfg(feature = "hydrate")]
    {
        use futures::StreamExt;
        use gloo_net::eventsource::futures::EventSource;
        let Ok(mut source) = EventSource::new("/api/v1/notifications/stream") else {
            return;
        };
        let streams: Vec<_> = crate::api::NOTIFICATION_KINDS
            .iter()
            .filter_map(|k| source.subscribe(*k).ok())
            .collect();
        let mut events = futures::stream::select_all(streams);
        // Dropping the source closes it, which also ends its streams and so
        // the task below.
        let held = StoredValue::new_local(Some(source));
        on_cleanup(move || {
            held.try_update_value(Option::take);
        });
        live.set(true);
        leptos::task::spawn_local(async move {
            while let Some(Ok((_, msg))) = events.next().await {
                let Some(text) = msg.data().as_string() else {
                    continue;
                };
                if let Ok(n) = serde_json::from_str::<Notification>(&text) {
                    on_note(n);
                }
            }
            live.try_set(false);
            held.try_update_value(Option::take);
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (live, on_note);
}

/// Calls `refresh` every `every` while the calling component lives.
pub fn refresh_every(every: std::time::Duration, refresh: impl Fn() + 'static) {
    #[cfg(feature = "hydrate")]
    if let Ok(handle) = set_interval_with_handle(refresh, every) {
        on_cleanup(move || handle.clear());
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (every, refresh);
}
