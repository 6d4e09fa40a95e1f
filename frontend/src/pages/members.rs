use leptos::prelude::*;
use serde_json::json;

use super::{ErrorNote, RequireLogin, field};
use crate::api::{InvitationCreated, InvitationInfo, Method, UserInfo, call};
use crate::auth::use_auth;

#[component]
pub fn MembersPage() -> impl IntoView {
    view! {
        <RequireLogin>
            <Members />
        </RequireLogin>
    }
}

#[component]
fn Members() -> impl IntoView {
    let auth = use_auth();
    let manager = move || auth.me.with(|m| m.as_ref().is_some_and(|m| m.is_manager()));
    let members = RwSignal::new(Vec::<UserInfo>::new());
    let invitations = RwSignal::new(Vec::<InvitationInfo>::new());
    let error = RwSignal::new(None::<String>);
    let invite_link = RwSignal::new(None::<String>);
    let reload = move || {
        leptos::task::spawn_local(async move {
            match call::<Vec<UserInfo>>(Method::Get, "/members", None, None).await {
                Ok(list) => members.set(list),
                Err(e) => error.set(Some(e)),
            }
            let is_manager = auth
                .me
                .with_untracked(|m| m.as_ref().is_some_and(|m| m.is_manager()));
            if is_manager
                && let Ok(list) =
                    call::<Vec<InvitationInfo>>(Method::Get, "/invitations", None, None).await
            {
                invitations.set(list);
            }
        });
    };
    Effect::new(move |_| reload());

    let email = NodeRef::new();
    let role = NodeRef::<leptos::html::Select>::new();
    let invite = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let role = role
            .get_untracked()
            .map(|s| s.value())
            .unwrap_or_else(|| "member".into());
        let body = json!({ "email": field(email), "role": role });
        let csrf = auth.csrf();
        leptos::task::spawn_local(async move {
            match call::<InvitationCreated>(
                Method::Post,
                "/invitations",
                Some(body),
                csrf.as_deref(),
            )
            .await
            {
                Ok(created) => {
                    error.set(None);
                    let origin = leptos::prelude::window()
                        .location()
                        .origin()
                        .unwrap_or_default();
                    invite_link.set(Some(format!("{origin}/accept?token={}", created.token)));
                    reload();
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };
    let act = move |method: Method, path: String, body: Option<serde_json::Value>| {
        let csrf = auth.csrf();
        leptos::task::spawn_local(async move {
            match call::<serde_json::Value>(method, &path, body, csrf.as_deref()).await {
                Ok(_) => {
                    error.set(None);
                    reload();
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };

    view! {
        <section class="card">
            <h2>"Members"</h2>
            <ErrorNote error />
            <table data-testid="member-list">
                <thead><tr><th>"E-mail"</th><th>"Role"</th><th></th></tr></thead>
                <tbody>
                    <For each=move || members.get() key=|m| (m.id.clone(), m.role.clone()) let:m>
                        {
                            let (id, id2) = (m.id.clone(), m.id.clone());
                            let promote = if m.role == "owner" { "member" } else { "owner" };
                            view! {
                                <tr>
                                    <td>{m.email.clone()}</td>
                                    <td>{m.role.clone()}</td>
                                    <td>
                                        <Show when=manager>
                                            <button class="secondary" on:click={
                                                let id = id.clone();
                                                move |_| act(Method::Patch, format!("/members/{id}"), Some(json!({ "role": promote })))
                                            }>{format!("Make {promote}")}</button>
                                            <button class="secondary" on:click={
                                                let id = id2.clone();
                                                move |_| act(Method::Delete, format!("/members/{id}"), None)
                                            }>"Remove"</button>
                                        </Show>
                                    </td>
                                </tr>
                            }
                        }
                    </For>
                </tbody>
            </table>
        </section>
        <Show when=manager>
            <section class="card">
                <h2>"Invite someone"</h2>
                <form method="post" on:submit=invite>
                    <label>"E-mail" <input node_ref=email type="email" required /></label>
                    <label>
                        "Role"
                        <select node_ref=role>
                            <option value="member">"member"</option>
                            <option value="owner">"owner"</option>
                        </select>
                    </label>
                    <button type="submit">"Create invitation"</button>
                </form>
                {move || invite_link.get().map(|link| view! {
                    <div class="secret" role="status">
                        <p>"Send this link to the invitee (valid for 7 days, shown once):"</p>
                        <code data-testid="invite-link">{link}</code>
                    </div>
                })}
                <h3>"Pending invitations"</h3>
                <ul>
                    <For each=move || invitations.get() key=|i| i.id.clone() let:i>
                        {
                            let id = i.id.clone();
                            view! {
                                <li>
                                    {i.email.clone()} " (" {i.role.clone()} ") "
                                    {if i.expired { "expired" } else { "" }}
                                    <button class="secondary" on:click=move |_| act(Method::Delete, format!("/invitations/{id}"), None)>"Withdraw"</button>
                                </li>
                            }
                        }
                    </For>
                </ul>
            </section>
        </Show>
    }
}
