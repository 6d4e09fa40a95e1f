use leptos::prelude::*;

use crate::status::{SystemStatus, get_status};

#[component]
pub fn HomePage() -> impl IntoView {
    // Effects run only in the browser, so this flips once the page is hydrated.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));

    // Each click asks again; the count shown is that of the answer on screen, so it
    // only moves once the server has replied.
    let asked = RwSignal::new(0u32);
    let status = Resource::new(
        move || asked.get(),
        |n| async move { get_status().await.map(|s| (n, s)) },
    );

    view! {
        <div data-testid="app" data-hydrated=move || hydrated.get().to_string()>
            <header>
                <h1>"Headroom"</h1>
                <p class="tagline">"Capacity that arrives before demand, bills that match use."</p>
            </header>
            <section class="card" data-testid="status">
                <h2>"System status"</h2>
                <Transition fallback=|| view! { <p>"Loading…"</p> }>
                    {move || {
                        status
                            .get()
                            .map(|answer| match answer {
                                Ok((n, s)) => view! { <StatusTable status=s answered=n /> }.into_any(),
                                Err(e) => {
                                    view! { <p class="error" role="alert">{e.to_string()}</p> }
                                        .into_any()
                                }
                            })
                    }}
                </Transition>
                <button
                    data-testid="refresh"
                    disabled=move || !hydrated.get()
                    on:click=move |_| asked.update(|n| *n += 1)
                >
                    "Refresh"
                </button>
            </section>
        </div>
    }
}

#[component]
fn StatusTable(status: SystemStatus, answered: u32) -> impl IntoView {
    let last = status
        .last_housekeeping_at
        .unwrap_or_else(|| "not yet".to_owned());
    view! {
        <dl class="status">
            <dt>"Database"</dt>
            <dd data-testid="db-backend">{status.db_backend}</dd>
            <dt>"Pending migrations"</dt>
            <dd data-testid="pending-migrations">{status.pending_migrations}</dd>
            <dt>"Housekeeping runs"</dt>
            <dd data-testid="housekeeping-runs">{status.housekeeping_runs}</dd>
            <dt>"Last housekeeping"</dt>
            <dd data-testid="last-housekeeping">{last}</dd>
            <dt>"Checked at"</dt>
            <dd data-testid="checked-at">{status.checked_at}</dd>
            <dt>"Refreshes"</dt>
            <dd data-testid="refresh-count">{answered}</dd>
        </dl>
    }
}
