use leptos::prelude::*;
use serde_json::json;

use super::{ErrorNote, RequireLogin, field};
use crate::api::{ApiKeyCreated, ApiKeyInfo, Method, call};
use crate::auth::use_auth;

const SCOPES: [(&str, &str); 4] = [
    ("ingest", "send telemetry and usage"),
    ("read", "read the organisation's data"),
    ("write", "change settings"),
    ("admin", "manage keys and members"),
];

/// The agent's command line for this server and key (the key from the
/// environment: the agent takes it from nowhere else).
fn agent_command(origin: &str, secret: &str) -> String {
    format!("HEADROOM_AGENT_KEY={secret} ./target/release/headroom-agent --url {origin}")
}

/// One metric point sent with curl.
fn curl_command(origin: &str, secret: &str) -> String {
    format!(
        "curl -X POST {origin}/api/v1/metrics \\\n  -H 'Authorization: Bearer {secret}' \\\n  \
         -H 'Content-Type: application/json' \\\n  \
         -d '[{{\"workload\": \"web\", \"metric\": \"cpu\", \"timestamp\": '$(date +%s)', \"value\": 0.42}}]'"
    )
}

#[component]
pub fn ApiKeysPage() -> impl IntoView {
    view! {
        <RequireLogin>
            <ApiKeys />
        </RequireLogin>
    }
}

#[component]
fn ApiKeys() -> impl IntoView {
    let auth = use_auth();
    let keys = RwSignal::new(Vec::<ApiKeyInfo>::new());
    let error = RwSignal::new(None::<String>);
    let created = RwSignal::new(None::<ApiKeyCreated>);
    let reload = move || {
        leptos::task::spawn_local(async move {
            match call::<Vec<ApiKeyInfo>>(Method::Get, "/api-keys", None, None).await {
                Ok(list) => keys.set(list),
                Err(e) => error.set(Some(e)),
            }
        });
    };
    Effect::new(move |_| reload());

    let name = NodeRef::new();
    let scope_nodes: Vec<(&'static str, NodeRef<leptos::html::Input>)> =
        SCOPES.iter().map(|(s, _)| (*s, NodeRef::new())).collect();
    let scope_inputs = scope_nodes.clone();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let scopes: Vec<&str> = scope_inputs
            .iter()
            .filter(|(_, n)| n.get_untracked().is_some_and(|i| i.checked()))
            .map(|(s, _)| *s)
            .collect();
        let body = json!({ "name": field(name), "scopes": scopes });
        let csrf = auth.csrf();
        leptos::task::spawn_local(async move {
            match call::<ApiKeyCreated>(Method::Post, "/api-keys", Some(body), csrf.as_deref())
                .await
            {
                Ok(new) => {
                    error.set(None);
                    created.set(Some(new));
                    reload();
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };
    let revoke = move |id: String| {
        let csrf = auth.csrf();
        leptos::task::spawn_local(async move {
            match call::<ApiKeyInfo>(
                Method::Delete,
                &format!("/api-keys/{id}"),
                None,
                csrf.as_deref(),
            )
            .await
            {
                Ok(_) => reload(),
                Err(e) => error.set(Some(e)),
            }
        });
    };

    view! {
        <section class="card">
            <h2>"API keys"</h2>
            <p class="notice">"Programs authenticate with " <code>"Authorization: Bearer hr_…"</code> ". Keys are stored hashed: the whole key is shown once, when it is created."</p>
            {move || created.get().map(|c| {
                let ingest = c.key.scopes.iter().any(|s| s == "ingest");
                // Only ever shown after a click, so in the browser.
                let origin = window().location().origin().unwrap_or_default();
                let (agent, curl) = (agent_command(&origin, &c.secret), curl_command(&origin, &c.secret));
                view! {
                    <div class="secret" role="status">
                        <p>"Copy this key now; it will not be shown again:"</p>
                        <code data-testid="new-key-secret">{c.secret}</code>
                        {ingest.then(|| view! {
                            <p>"Send this host's telemetry with the agent (" <code>"cargo build --release -p headroom-agent"</code> "):"</p>
                            <pre data-testid="agent-command">{agent}</pre>
                            <p>"or a point from anywhere:"</p>
                            <pre data-testid="curl-command">{curl}</pre>
                        })}
                    </div>
                }
            })}
            <form method="post" on:submit=submit data-testid="new-key-form">
                <label>"Name" <input node_ref=name name="name" placeholder="telemetry agent, eu-west-1" required /></label>
                <fieldset>
                    <legend>"Scopes"</legend>
                    {scope_nodes
                        .into_iter()
                        .zip(SCOPES)
                        .map(|((scope, node), (_, what))| view! {
                            <label class="inline">
                                <input type="checkbox" node_ref=node value=scope checked=scope == "ingest" />
                                {scope} " — " {what}
                            </label>
                        })
                        .collect_view()}
                </fieldset>
                <ErrorNote error />
                <button type="submit">"Create key"</button>
            </form>
            <table data-testid="key-list">
                <thead><tr><th>"Name"</th><th>"Key"</th><th>"Scopes"</th><th>"Last used"</th><th></th></tr></thead>
                <tbody>
                    <For each=move || keys.get() key=|k| (k.id.clone(), k.revoked_at.clone()) let:k>
                        {
                            let id = k.id.clone();
                            let revoked = k.revoked_at.is_some();
                            view! {
                                <tr class:revoked=revoked>
                                    <td>{k.name.clone()}</td>
                                    <td><code>{k.prefix.clone()} "…"</code></td>
                                    <td>{k.scopes.join(", ")}</td>
                                    <td>{k.last_used_at.clone().unwrap_or_else(|| "never".into())}</td>
                                    <td>
                                        {if revoked {
                                            view! { <span>"revoked"</span> }.into_any()
                                        } else {
                                            view! { <button class="secondary" on:click=move |_| revoke(id.clone())>"Revoke"</button> }.into_any()
                                        }}
                                    </td>
                                </tr>
                            }
                        }
                    </For>
                </tbody>
            </table>
        </section>
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_commands_carry_the_server_and_key() {
        let agent = super::agent_command("http://127.0.0.1:3000", "hr_abc_def");
        assert_eq!(
            agent,
            "HEADROOM_AGENT_KEY=hr_abc_def ./target/release/headroom-agent --url http://127.0.0.1:3000"
        );
        let curl = super::curl_command("http://127.0.0.1:3000", "hr_abc_def");
        assert!(
            curl.starts_with("curl -X POST http://127.0.0.1:3000/api/v1/metrics \\\n"),
            "{curl}"
        );
        assert!(
            curl.contains("-H 'Authorization: Bearer hr_abc_def'"),
            "{curl}"
        );
        assert!(
            curl.contains(r#""timestamp": '$(date +%s)', "value": 0.42}]'"#),
            "{curl}"
        );
    }
}
