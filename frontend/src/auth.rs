//! Who is logged in, as the browser sees it: loaded once after hydration from
//! `/api/v1/auth/session`, updated by sign-up, log-in and log-out.

use leptos::prelude::*;

use crate::api::{Me, Method, call};

#[derive(Clone, Copy)]
pub struct Auth {
    pub me: RwSignal<Option<Me>>,
    /// `false` until the first answer from the server (avoid flashing "log in").
    pub known: RwSignal<bool>,
}

impl Auth {
    pub fn provide() -> Self {
        let auth = Self {
            me: RwSignal::new(None),
            known: RwSignal::new(false),
        };
        provide_context(auth);
        // Effects run only in the browser.
        Effect::new(move |_| {
            leptos::task::spawn_local(async move {
                let me = call::<Option<Me>>(Method::Get, "/auth/session", None, None).await;
                auth.me.set(me.ok().flatten());
                auth.known.set(true);
            });
        });
        auth
    }

    pub fn csrf(&self) -> Option<String> {
        self.me
            .with_untracked(|m| m.as_ref().map(|m| m.csrf_token.clone()))
    }
}

pub fn use_auth() -> Auth {
    expect_context::<Auth>()
}
