//! Accounts, sessions, CSRF, API keys, roles, invitations and audit, over HTTP
//! against the real application, on SQLite and PostgreSQL.

mod common;

use std::time::Duration;

use common::{Backend, Browser, Options, TestApp, expect_error};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";

async fn signup_sets_a_safe_cookie_and_rejects_bad_input(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut ada = Browser::new(&app);
    let body =
        json!({ "organization_name": "Acme", "email": "Ada@Example.com", "password": PASSWORD });
    let res = ada.post("/api/v1/auth/signup", body).await;
    assert_eq!(res.status(), 201);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("headroom_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "plain-http test server: {cookie}"
    );
    let info: Value = res.json().await.unwrap();
    assert_eq!(info["user"]["email"], "ada@example.com");
    assert_eq!(info["user"]["role"], "owner");
    assert_eq!(info["organization"]["tier"], "standard");
    ada.csrf = Some(info["csrf_token"].as_str().unwrap().to_owned());
    assert_eq!(ada.get("/api/v1/auth/me").await.status(), 200);

    let anon = Browser::new(&app);
    let dup =
        json!({ "organization_name": "Other", "email": "ada@example.com", "password": PASSWORD });
    let msg = expect_error(anon.post("/api/v1/auth/signup", dup).await, 409).await;
    assert!(msg.contains("already exists"), "{msg}");
    let weak =
        json!({ "organization_name": "Weak", "email": "bob@example.com", "password": "short" });
    let msg = expect_error(anon.post("/api/v1/auth/signup", weak).await, 422).await;
    assert!(msg.contains("at least 12 characters"), "{msg}");
    let common = json!({ "organization_name": "Weak", "email": "bob@example.com", "password": "password1234" });
    let msg = expect_error(anon.post("/api/v1/auth/signup", common).await, 422).await;
    assert!(msg.contains("common"), "{msg}");
    let bad_email = json!({ "organization_name": "X", "email": "bob", "password": PASSWORD });
    expect_error(anon.post("/api/v1/auth/signup", bad_email).await, 422).await;
    let missing = json!({ "email": "bob@example.com" });
    expect_error(anon.post("/api/v1/auth/signup", missing).await, 422).await;
    let raw = anon
        .http
        .post(format!("{}/api/v1/auth/signup", app.base))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    expect_error(raw, 400).await;
    let form = anon
        .http
        .post(format!("{}/api/v1/auth/signup", app.base))
        .body("a=b")
        .send()
        .await
        .unwrap();
    expect_error(form, 415).await;
    app.stop().await;
}
both_backends!(signup, signup_sets_a_safe_cookie_and_rejects_bad_input);

async fn login_logout_and_session_rules(backend: Backend) {
    let options = Options {
        env: vec![("HEADROOM_SESSION_IDLE_SECS", "2".to_owned())],
        ..Options::default()
    };
    let Some(app) = TestApp::spawn_with(backend, options).await else {
        return;
    };
    let mut ada = Browser::new(&app);
    ada.signup("Acme", "ada@example.com", PASSWORD).await;

    let stranger = Browser::new(&app);
    let wrong = json!({ "email": "ada@example.com", "password": "not the password at all" });
    let msg_wrong = expect_error(stranger.post("/api/v1/auth/login", wrong).await, 401).await;
    let unknown = json!({ "email": "nobody@example.com", "password": PASSWORD });
    let msg_unknown = expect_error(stranger.post("/api/v1/auth/login", unknown).await, 401).await;
    assert_eq!(msg_wrong, msg_unknown, "no hint which accounts exist");

    // Logging in again issues a new session id (no fixation).
    let bob = Browser::new(&app);
    let first = bob
        .post(
            "/api/v1/auth/login",
            json!({ "email": "ada@example.com", "password": PASSWORD }),
        )
        .await;
    let first_cookie = first.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let second = bob
        .post(
            "/api/v1/auth/login",
            json!({ "email": "ada@example.com", "password": PASSWORD }),
        )
        .await;
    let second_cookie = second.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert_ne!(first_cookie, second_cookie);

    // A tampered cookie is simply not a session.
    let tampered = reqwest::Client::new()
        .get(format!("{}/api/v1/auth/me", app.base))
        .header("cookie", format!("{first_cookie}x"))
        .send()
        .await
        .unwrap();
    expect_error(tampered, 401).await;
    // The replaced session id no longer works either.
    let replaced = reqwest::Client::new()
        .get(format!("{}/api/v1/auth/me", app.base))
        .header("cookie", first_cookie)
        .send()
        .await
        .unwrap();
    expect_error(replaced, 401).await;

    // Log-out ends the session; without the CSRF token it is refused.
    let token = ada.csrf.take();
    let msg = expect_error(ada.post("/api/v1/auth/logout", json!({})).await, 403).await;
    assert!(msg.contains("CSRF"), "{msg}");
    ada.csrf = Some("wrong-token".to_owned());
    expect_error(ada.post("/api/v1/auth/logout", json!({})).await, 403).await;
    ada.csrf = token;
    assert_eq!(
        ada.post("/api/v1/auth/logout", json!({})).await.status(),
        204
    );
    expect_error(ada.get("/api/v1/auth/me").await, 401).await;

    // Idle expiry: two quiet seconds and the session is gone.
    assert_eq!(ada.login("ada@example.com", PASSWORD).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let msg = expect_error(ada.get("/api/v1/auth/me").await, 401).await;
    assert!(msg.contains("not logged in"), "{msg}");
    app.stop().await;
}
both_backends!(login, login_logout_and_session_rules);

#[tokio::test]
async fn sessions_have_an_absolute_lifetime() {
    let options = Options {
        env: vec![("HEADROOM_SESSION_MAX_SECS", "1".to_owned())],
        ..Options::default()
    };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await.unwrap();
    let mut ada = Browser::new(&app);
    ada.signup("Acme", "ada@example.com", PASSWORD).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let msg = expect_error(ada.get("/api/v1/auth/me").await, 401).await;
    assert!(msg.contains("expired"), "{msg}");
    app.stop().await;
}

#[tokio::test]
async fn login_attempts_are_throttled_with_retry_after() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let mut ada = Browser::new(&app);
    ada.signup("Acme", "ada@example.com", PASSWORD).await;
    let guesser = Browser::new(&app);
    let guess = json!({ "email": "ada@example.com", "password": "wrong wrong wrong" });
    for _ in 0..5 {
        expect_error(guesser.post("/api/v1/auth/login", guess.clone()).await, 401).await;
    }
    let res = guesser.post("/api/v1/auth/login", guess).await;
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let msg = expect_error(res, 429).await;
    assert!(msg.contains("too many"), "{msg}");
    // Even the right password waits: the budget is per account.
    let right = json!({ "email": "ada@example.com", "password": PASSWORD });
    expect_error(guesser.post("/api/v1/auth/login", right).await, 429).await;
    app.stop().await;
}

async fn password_change_ends_other_sessions(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut ada = Browser::new(&app);
    ada.signup("Acme", "ada@example.com", PASSWORD).await;
    let mut laptop = Browser::new(&app);
    assert_eq!(
        laptop.login("ada@example.com", PASSWORD).await.status(),
        200
    );

    let wrong =
        json!({ "current_password": "not it at all!!", "new_password": "a brand new passphrase" });
    expect_error(ada.post("/api/v1/auth/password", wrong).await, 401).await;
    let weak = json!({ "current_password": PASSWORD, "new_password": "tiny" });
    let msg = expect_error(ada.post("/api/v1/auth/password", weak).await, 422).await;
    assert!(msg.contains("12 characters"), "{msg}");
    // Let a second pass, so the change is strictly after the other session's log-in.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let good = json!({ "current_password": PASSWORD, "new_password": "a brand new passphrase" });
    assert_eq!(ada.post("/api/v1/auth/password", good).await.status(), 204);

    assert_eq!(
        ada.get("/api/v1/auth/me").await.status(),
        200,
        "this session continues"
    );
    let msg = expect_error(laptop.get("/api/v1/auth/me").await, 401).await;
    assert!(msg.contains("password changed"), "{msg}");
    let stranger = Browser::new(&app);
    let old = json!({ "email": "ada@example.com", "password": PASSWORD });
    expect_error(stranger.post("/api/v1/auth/login", old).await, 401).await;
    assert_eq!(
        laptop
            .login("ada@example.com", "a brand new passphrase")
            .await
            .status(),
        200
    );
    app.stop().await;
}
both_backends!(password_change, password_change_ends_other_sessions);

async fn signing_out_everywhere_else(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut ada = Browser::new(&app);
    ada.signup("Acme", "ada@example.com", PASSWORD).await;
    let mut laptop = Browser::new(&app);
    assert_eq!(
        laptop.login("ada@example.com", PASSWORD).await.status(),
        200
    );
    let path = "/api/v1/auth/sessions/end-others";
    // The password is asked again: a stolen session cannot shut its owner out.
    let wrong = json!({ "current_password": "not it at all!!" });
    expect_error(ada.post(path, wrong).await, 401).await;
    assert_eq!(laptop.get("/api/v1/auth/me").await.status(), 200);
    // No waiting: a session opened in the same second as the cut ends too.
    let right = json!({ "current_password": PASSWORD });
    assert_eq!(ada.post(path, right).await.status(), 204);
    assert_eq!(
        ada.get("/api/v1/auth/me").await.status(),
        200,
        "this session continues"
    );
    let msg = expect_error(laptop.get("/api/v1/auth/me").await, 401).await;
    assert!(msg.contains("signed out from another session"), "{msg}");
    // The password still works, for a new session that stays.
    assert_eq!(
        laptop.login("ada@example.com", PASSWORD).await.status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(laptop.get("/api/v1/auth/me").await.status(), 200);
    // Audited; and not for programs.
    let audit: Value = ada
        .get("/api/v1/audit?action=other_sessions_ended")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(audit.as_array().unwrap().len(), 1, "{audit}");
    assert_eq!(audit[0]["actor_email"], "ada@example.com");
    let key: Value = ada
        .post(
            "/api/v1/api-keys",
            json!({ "name": "k", "scopes": ["admin"] }),
        )
        .await
        .json()
        .await
        .unwrap();
    let res = bearer(
        &app,
        reqwest::Method::POST,
        path,
        key["secret"].as_str().unwrap(),
    )
    .json(&json!({ "current_password": PASSWORD }))
    .send()
    .await
    .unwrap();
    expect_error(res, 400).await;
    app.stop().await;
}
both_backends!(end_other_sessions, signing_out_everywhere_else);

fn bearer(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    key: &str,
) -> reqwest::RequestBuilder {
    app.http.request(method, app.url(path)).bearer_auth(key)
}

async fn api_keys_work_until_revoked(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut ada = Browser::new(&app);
    ada.signup("Acme", "ada@example.com", PASSWORD).await;

    let res = ada
        .post(
            "/api/v1/api-keys",
            json!({ "name": "reader", "scopes": ["read"] }),
        )
        .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    let secret = created["secret"].as_str().unwrap().to_owned();
    let key_id = created["key"]["id"].as_str().unwrap().to_owned();
    assert!(secret.starts_with(created["key"]["prefix"].as_str().unwrap()));

    // Listed by prefix only: the secret is never shown again.
    let list = ada.get("/api/v1/api-keys").await.text().await.unwrap();
    assert!(list.contains(created["key"]["prefix"].as_str().unwrap()));
    assert!(!list.contains(&secret[12..]), "{list}");

    let ok = bearer(&app, reqwest::Method::GET, "/api/v1/organization", &secret)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.json::<Value>().await.unwrap()["name"], "Acme");
    // No CSRF token needed for keys (no cookies involved), but scopes are enforced.
    let keys = bearer(&app, reqwest::Method::GET, "/api/v1/api-keys", &secret)
        .send()
        .await
        .unwrap();
    let msg = expect_error(keys, 403).await;
    assert!(msg.contains("owners"), "{msg}");
    let admin = bearer(
        &app,
        reqwest::Method::GET,
        "/api/v1/admin/organizations",
        &secret,
    )
    .send()
    .await
    .unwrap();
    expect_error(admin, 403).await;
    let used: Value = ada.get("/api/v1/api-keys").await.json().await.unwrap();
    assert!(used[0]["last_used_at"].is_string(), "{used}");

    let ingest: Value = ada
        .post(
            "/api/v1/api-keys",
            json!({ "name": "agent", "scopes": ["ingest"] }),
        )
        .await
        .json()
        .await
        .unwrap();
    let ingest_secret = ingest["secret"].as_str().unwrap();
    let denied = bearer(&app, reqwest::Method::GET, "/api/v1/members", ingest_secret)
        .send()
        .await
        .unwrap();
    let msg = expect_error(denied, 403).await;
    assert!(msg.contains("`read` scope"), "{msg}");

    expect_error(
        ada.post("/api/v1/api-keys", json!({ "name": "none", "scopes": [] }))
            .await,
        422,
    )
    .await;
    expect_error(
        ada.post(
            "/api/v1/api-keys",
            json!({ "name": " ", "scopes": ["read"] }),
        )
        .await,
        422,
    )
    .await;
    expect_error(
        ada.post(
            "/api/v1/api-keys",
            json!({ "name": "x", "scopes": ["root"] }),
        )
        .await,
        422,
    )
    .await;

    let revoked = ada.delete(&format!("/api/v1/api-keys/{key_id}")).await;
    assert_eq!(revoked.status(), 200);
    assert!(revoked.json::<Value>().await.unwrap()["revoked_at"].is_string());
    let gone = bearer(&app, reqwest::Method::GET, "/api/v1/organization", &secret)
        .send()
        .await
        .unwrap();
    let msg = expect_error(gone, 401).await;
    assert!(msg.contains("revoked"), "{msg}");

    for bad in [
        "hr_short",
        "sk_live_abc",
        "",
        "hr_AAAAAAAA_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB",
    ] {
        let res = bearer(&app, reqwest::Method::GET, "/api/v1/organization", bad)
            .send()
            .await
            .unwrap();
        expect_error(res, 401).await;
    }
    let basic = app
        .http
        .get(app.url("/api/v1/organization"))
        .header("authorization", "Basic YTpi")
        .send()
        .await
        .unwrap();
    expect_error(basic, 401).await;
    app.stop().await;
}
both_backends!(api_keys, api_keys_work_until_revoked);

async fn invitations_roles_and_the_last_owner(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut ada = Browser::new(&app);
    ada.signup("Acme", "ada@example.com", PASSWORD).await;

    let res = ada
        .post(
            "/api/v1/invitations",
            json!({ "email": "grace@example.com", "role": "member" }),
        )
        .await;
    assert_eq!(res.status(), 201);
    let invitation: Value = res.json().await.unwrap();
    let token = invitation["token"].as_str().unwrap().to_owned();
    expect_error(
        ada.post(
            "/api/v1/invitations",
            json!({ "email": "ada@example.com", "role": "member" }),
        )
        .await,
        409,
    )
    .await;
    expect_error(
        ada.post(
            "/api/v1/invitations",
            json!({ "email": "x@example.com", "role": "admin" }),
        )
        .await,
        422,
    )
    .await;

    let mut grace = Browser::new(&app);
    let weak = json!({ "token": token, "password": "short" });
    expect_error(grace.post("/api/v1/invitations/accept", weak).await, 422).await;
    let res = grace
        .post(
            "/api/v1/invitations/accept",
            json!({ "token": token, "password": PASSWORD }),
        )
        .await;
    assert_eq!(res.status(), 201);
    let info: Value = res.json().await.unwrap();
    assert_eq!(info["user"]["role"], "member");
    assert_eq!(info["organization"]["name"], "Acme");
    grace.csrf = Some(info["csrf_token"].as_str().unwrap().to_owned());
    let grace_id = info["user"]["id"].as_str().unwrap().to_owned();
    let again = Browser::new(&app);
    expect_error(
        again
            .post(
                "/api/v1/invitations/accept",
                json!({ "token": token, "password": PASSWORD }),
            )
            .await,
        404,
    )
    .await;

    // Members read; they do not manage.
    assert_eq!(grace.get("/api/v1/members").await.status(), 200);
    for res in [
        grace
            .post(
                "/api/v1/api-keys",
                json!({ "name": "k", "scopes": ["read"] }),
            )
            .await,
        grace.get("/api/v1/api-keys").await,
        grace.get("/api/v1/audit").await,
        grace
            .post(
                "/api/v1/invitations",
                json!({ "email": "z@example.com", "role": "member" }),
            )
            .await,
        grace.get("/api/v1/admin/organizations").await,
    ] {
        expect_error(res, 403).await;
    }

    // The last owner cannot step down or be removed...
    let ada_id = ada
        .get("/api/v1/auth/me")
        .await
        .json::<Value>()
        .await
        .unwrap()["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    expect_error(
        ada.patch(
            &format!("/api/v1/members/{ada_id}"),
            json!({ "role": "member" }),
        )
        .await,
        409,
    )
    .await;
    expect_error(ada.delete(&format!("/api/v1/members/{ada_id}")).await, 409).await;
    // ...but can promote someone first.
    let res = ada
        .patch(
            &format!("/api/v1/members/{grace_id}"),
            json!({ "role": "owner" }),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        grace.get("/api/v1/api-keys").await.status(),
        200,
        "grace is an owner now"
    );
    assert_eq!(
        ada.patch(
            &format!("/api/v1/members/{ada_id}"),
            json!({ "role": "member" })
        )
        .await
        .status(),
        200
    );
    expect_error(ada.get("/api/v1/audit").await, 403).await;

    // The audit log saw it all, newest first.
    let audit: Value = grace.get("/api/v1/audit").await.json().await.unwrap();
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for expected in [
        "signed_up",
        "member_invited",
        "invitation_accepted",
        "role_changed",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
    assert_eq!(actions[0], "role_changed");
    expect_error(grace.get("/api/v1/audit?limit=0").await, 422).await;
    app.stop().await;
}
both_backends!(invitations, invitations_roles_and_the_last_owner);

async fn audit_records_security_events(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut ada = Browser::new(&app);
    ada.signup("Acme", "ada@example.com", PASSWORD).await;
    let stranger = Browser::new(&app);
    let wrong = json!({ "email": "ada@example.com", "password": "definitely wrong" });
    expect_error(stranger.post("/api/v1/auth/login", wrong).await, 401).await;
    assert_eq!(ada.login("ada@example.com", PASSWORD).await.status(), 200);
    let key: Value = ada
        .post(
            "/api/v1/api-keys",
            json!({ "name": "k", "scopes": ["read"] }),
        )
        .await
        .json()
        .await
        .unwrap();
    ada.delete(&format!(
        "/api/v1/api-keys/{}",
        key["key"]["id"].as_str().unwrap()
    ))
    .await;

    let audit: Value = ada.get("/api/v1/audit").await.json().await.unwrap();
    let entries = audit.as_array().unwrap();
    let find = |action: &str| {
        entries
            .iter()
            .find(|e| e["action"] == action)
            .unwrap_or_else(|| panic!("{action}: {audit}"))
    };
    let failed = find("login_failed");
    assert_eq!(failed["details"]["reason"], "wrong password");
    assert_eq!(failed["ip"], "127.0.0.1");
    find("logged_in");
    let created = find("api_key_created");
    assert_eq!(created["target"], key["key"]["id"]);
    // Who and where are named, not only identified.
    assert_eq!(created["actor_email"], "ada@example.com");
    assert_eq!(created["organization_name"], "Acme");
    find("api_key_revoked");

    // A key's own actions name the key.
    let admin_key: Value = ada
        .post(
            "/api/v1/api-keys",
            json!({ "name": "deploy bot", "scopes": ["admin"] }),
        )
        .await
        .json()
        .await
        .unwrap();
    let res = bearer(
        &app,
        reqwest::Method::POST,
        "/api/v1/api-keys",
        admin_key["secret"].as_str().unwrap(),
    )
    .json(&json!({ "name": "made by the bot", "scopes": ["read"] }))
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), 201);
    let by_bot: Value = ada
        .get("/api/v1/audit?action=api_key_created&limit=1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_bot.as_array().unwrap().len(), 1, "{by_bot}");
    assert_eq!(by_bot[0]["actor_api_key_name"], "deploy bot");
    assert_eq!(by_bot[0]["details"]["name"], "made by the bot");

    // Paging: each page continues below the last id of the one before, and
    // together the pages are the whole log, newest first, each entry once.
    let whole: Value = ada.get("/api/v1/audit").await.json().await.unwrap();
    let whole_ids: Vec<i64> = whole
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert!(whole_ids.len() >= 6, "{whole}");
    assert!(whole_ids.windows(2).all(|w| w[0] > w[1]), "{whole_ids:?}");
    let mut paged = Vec::new();
    let mut path = "/api/v1/audit?limit=2".to_owned();
    loop {
        let page: Value = ada.get(&path).await.json().await.unwrap();
        let ids: Vec<i64> = page
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_i64().unwrap())
            .collect();
        assert!(ids.len() <= 2);
        let Some(last) = ids.last().copied() else {
            break;
        };
        paged.extend(ids);
        path = format!("/api/v1/audit?limit=2&before={last}");
    }
    assert_eq!(paged, whole_ids);

    // Only the asked action; an unknown one is refused with the known ones.
    let keys_only: Value = ada
        .get("/api/v1/audit?action=api_key_revoked")
        .await
        .json()
        .await
        .unwrap();
    let keys_only = keys_only.as_array().unwrap();
    assert_eq!(keys_only.len(), 1);
    assert_eq!(keys_only[0]["action"], "api_key_revoked");
    let err = expect_error(ada.get("/api/v1/audit?action=hacked").await, 422).await;
    assert!(err.contains("api_key_created"), "{err}");
    expect_error(ada.get("/api/v1/audit?before=soon").await, 400).await;
    // An organisation's log is its own: asking for another's is refused.
    expect_error(ada.get("/api/v1/audit?organization_id=other").await, 422).await;
    app.stop().await;
}
both_backends!(audit, audit_records_security_events);

async fn platform_admins_see_every_organization(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut ada = Browser::new(&app);
    let acme = ada.signup("Acme", "ada@example.com", PASSWORD).await;
    let acme_id = acme["organization"]["id"].as_str().unwrap().to_owned();
    let ops = common::operator(&app, PASSWORD).await;

    let orgs: Value = ops
        .get("/api/v1/admin/organizations")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(orgs.as_array().unwrap().len(), 2);
    // Found by part of the name in any case, or by id; a page at a time by name.
    let mut globex = Browser::new(&app);
    globex
        .signup("Globex 100%_Corp", "hank@globex.example", PASSWORD)
        .await;
    let names = |v: Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|o| o["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let get = |path: String| {
        let ops = &ops;
        async move { ops.get(&path).await.json::<Value>().await.unwrap() }
    };
    assert_eq!(
        names(get("/api/v1/admin/organizations?q=ACM".into()).await),
        ["Acme"]
    );
    assert_eq!(
        names(get(format!("/api/v1/admin/organizations?q={acme_id}")).await),
        ["Acme"]
    );
    // `%` and `_` are matched as themselves, not as wildcards.
    assert_eq!(
        names(get("/api/v1/admin/organizations?q=100%25_c".into()).await),
        ["Globex 100%_Corp"]
    );
    assert!(names(get("/api/v1/admin/organizations?q=a%25e".into()).await).is_empty());
    let first = get("/api/v1/admin/organizations?limit=2".into()).await;
    assert_eq!(names(first.clone()), ["Acme", "Globex 100%_Corp"]);
    let last_id = first[1]["id"].as_str().unwrap();
    assert_eq!(
        names(
            get(format!(
                "/api/v1/admin/organizations?limit=2&after={last_id}"
            ))
            .await
        ),
        ["Operator"]
    );
    expect_error(ops.get("/api/v1/admin/organizations?limit=501").await, 422).await;
    expect_error(ops.get("/api/v1/admin/organizations?after=nope").await, 422).await;
    let res = ops
        .patch(
            &format!("/api/v1/admin/organizations/{acme_id}"),
            json!({ "tier": "premium", "priority": 70 }),
        )
        .await;
    assert_eq!(res.status(), 200);
    let org: Value = ada.get("/api/v1/organization").await.json().await.unwrap();
    assert_eq!(
        (org["tier"].as_str(), org["priority"].as_i64()),
        (Some("premium"), Some(70))
    );
    // The organisation's owners see the change in their own log, as the
    // platform's, without the administrator's e-mail.
    let theirs: Value = ada
        .get("/api/v1/audit?action=organization_updated")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(theirs.as_array().unwrap().len(), 1, "{theirs}");
    assert_eq!(theirs[0]["details"]["platform_admin"], true);
    assert_eq!(theirs[0]["details"]["priority"], 70);
    assert!(theirs[0]["actor_email"].is_null(), "{theirs}");
    expect_error(
        ops.patch(
            &format!("/api/v1/admin/organizations/{acme_id}"),
            json!({ "priority": 101 }),
        )
        .await,
        422,
    )
    .await;
    expect_error(
        ops.patch("/api/v1/admin/organizations/nope", json!({ "priority": 1 }))
            .await,
        404,
    )
    .await;
    expect_error(
        ops.patch(
            &format!("/api/v1/admin/organizations/{acme_id}"),
            json!({ "tier": "gold" }),
        )
        .await,
        422,
    )
    .await;

    let all: Value = ops.get("/api/v1/admin/audit").await.json().await.unwrap();
    let orgs_seen: std::collections::HashSet<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["organization_id"].as_str())
        .collect();
    assert!(
        orgs_seen.contains(acme_id.as_str()) && orgs_seen.len() >= 2,
        "{all}"
    );
    // One organisation's entries, named.
    let acme_only: Value = ops
        .get(&format!("/api/v1/admin/audit?organization_id={acme_id}"))
        .await
        .json()
        .await
        .unwrap();
    let acme_only = acme_only.as_array().unwrap();
    assert!(!acme_only.is_empty());
    assert!(
        acme_only
            .iter()
            .all(|e| e["organization_id"] == acme_id.as_str() && e["organization_name"] == "Acme"),
        "{acme_only:?}"
    );
    let updated: Value = ops
        .get("/api/v1/admin/audit?action=organization_updated")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(updated[0]["target"], acme_id.as_str());
    assert_eq!(updated[0]["actor_email"], "ops@headroom.example");
    // Owners are not platform admins.
    expect_error(ada.get("/api/v1/admin/audit").await, 403).await;
    expect_error(
        ada.patch(
            &format!("/api/v1/admin/organizations/{acme_id}"),
            json!({ "priority": 99 }),
        )
        .await,
        403,
    )
    .await;
    app.stop().await;
}
both_backends!(admin, platform_admins_see_every_organization);

/// Organisation B's resources, for requests made as A.
struct Other {
    member_id: String,
    invitation_id: String,
    api_key_id: String,
    org_id: String,
    workload: String,
    event_id: String,
    endpoint_id: String,
    delivery_id: String,
    secrets: Vec<String>,
}

async fn tenants_never_see_each_other(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut a = Browser::new(&app);
    a.signup("Alpha", "alice@alpha.example", PASSWORD).await;
    let a_key: Value = a
        .post(
            "/api/v1/api-keys",
            json!({ "name": "a", "scopes": ["admin"] }),
        )
        .await
        .json()
        .await
        .unwrap();
    let a_secret = a_key["secret"].as_str().unwrap().to_owned();

    let mut b = Browser::new(&app);
    let b_info = b.signup("Beta", "bob@beta.example", PASSWORD).await;
    let b_key: Value = b
        .post(
            "/api/v1/api-keys",
            json!({ "name": "b-key", "scopes": ["read"] }),
        )
        .await
        .json()
        .await
        .unwrap();
    let b_inv: Value = b
        .post(
            "/api/v1/invitations",
            json!({ "email": "carol@beta.example", "role": "member" }),
        )
        .await
        .json()
        .await
        .unwrap();
    // B has a forecast for a workload whose name A must never learn.
    let b_org = b_info["organization"]["id"].as_str().unwrap().to_owned();
    app.db
        .insert_forecast(
            &headroom_store::Tenant::new(b_org.clone()),
            &headroom_store::forecasts::StoredForecast {
                workload: "beta-ledger".into(),
                metric: "cpu".into(),
                horizon: "allocation".into(),
                origin_ms: 1_700_000_000_000,
                step_secs: 300,
                made_at_ms: 1_700_000_300_000,
                model_version: "statistical-1".into(),
                steps: headroom_core::forecast::PackedSteps::from_json(
                    r#"[{"p10":1,"p50":2,"p90":3,"model":"naive"}]"#,
                )
                .unwrap(),
            },
        )
        .await
        .unwrap();
    let b_event: Value = b
        .post(
            "/api/v1/external-events",
            json!({ "name": "beta-launch", "start": 1_900_000_000, "end": 1_900_003_600,
                    "expected_multiplier": 2 }),
        )
        .await
        .json()
        .await
        .unwrap();
    // B controls that workload too.
    let res = b
        .put(
            "/api/v1/workloads/beta-ledger/allocation",
            json!({ "metric": "cpu", "units_per_instance": 100, "mode": "on",
                    "min_instances": 1, "max_instances": 9 }),
        )
        .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    // B sends webhooks to its billing system; one message is queued.
    let b_hook: Value = b
        .post(
            "/api/v1/webhook-endpoints",
            json!({ "url": "https://billing.beta.example/hooks", "description": "beta-ledger" }),
        )
        .await
        .json()
        .await
        .unwrap();
    let b_tenant = headroom_store::Tenant::new(b_org.clone());
    let endpoint_id = b_hook["endpoint"]["id"].as_str().unwrap().to_owned();
    app.db
        .notify(
            &b_tenant,
            &headroom_store::billing::NewNotification {
                kind: "price_change",
                title: "beta-ledger".into(),
                body: json!({}),
            },
            0,
        )
        .await
        .unwrap();
    let delivery_id = app
        .db
        .webhook_deliveries(&b_tenant, &endpoint_id, 1)
        .await
        .unwrap()[0]
        .id
        .clone();
    let other = Other {
        endpoint_id,
        delivery_id,
        event_id: b_event["id"].as_str().unwrap().to_owned(),
        workload: "beta-ledger".into(),
        member_id: b_info["user"]["id"].as_str().unwrap().to_owned(),
        invitation_id: b_inv["invitation"]["id"].as_str().unwrap().to_owned(),
        api_key_id: b_key["key"]["id"].as_str().unwrap().to_owned(),
        org_id: b_org,
        secrets: vec![
            "beta-ledger".into(),
            "beta-launch".into(),
            "bob@beta.example".into(),
            "carol@beta.example".into(),
            "b-key".into(),
            "Beta".into(),
        ],
    };

    // Every route with a path parameter, straight from the router's OpenAPI document.
    let doc: Value = app.get("/api/openapi.json").await.json().await.unwrap();
    let mut covered = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if !path.contains('{') {
                continue;
            }
            // (B's id to use, the status A must get). Admin routes are closed to
            // owners altogether; everything else must look like it does not exist.
            let (id, status) = match (method.as_str(), path.as_str()) {
                ("patch" | "delete", "/api/v1/members/{id}") => (&other.member_id, 404),
                ("delete", "/api/v1/invitations/{id}") => (&other.invitation_id, 404),
                ("delete", "/api/v1/api-keys/{id}") => (&other.api_key_id, 404),
                ("patch", "/api/v1/admin/organizations/{id}") => (&other.org_id, 403),
                ("get", "/api/v1/workloads/{workload}/forecast") => (&other.workload, 404),
                ("delete", "/api/v1/external-events/{id}") => (&other.event_id, 404),
                ("get", "/api/v1/workloads/{workload}/allocation") => (&other.workload, 404),
                ("post", "/api/v1/workloads/{workload}/suggestions") => (&other.workload, 404),
                // Settings are per organisation: A may name a workload like B's,
                // so the probe body is invalid and must be refused as such.
                ("put", "/api/v1/workloads/{workload}/allocation") => (&other.workload, 422),
                ("post", "/api/v1/admin/price-rules/{id}/end") => (&other.org_id, 403),
                ("delete", "/api/v1/webhook-endpoints/{id}")
                | ("post", "/api/v1/webhook-endpoints/{id}/rotate-secret")
                | ("post", "/api/v1/webhook-endpoints/{id}/enable")
                | ("get", "/api/v1/webhook-endpoints/{id}/deliveries") => (&other.endpoint_id, 404),
                ("post", "/api/v1/webhook-deliveries/{id}/replay") => (&other.delivery_id, 404),
                _ => panic!(
                    "no tenant-isolation case for {} {path}: add one here",
                    method.to_uppercase()
                ),
            };
            let url = path.replace("{id}", id).replace("{workload}", id);
            let body = match path.as_str() {
                "/api/v1/members/{id}" => json!({ "role": "member" }),
                "/api/v1/workloads/{workload}/suggestions" => json!({ "instances": 3 }),
                _ => json!({ "priority": 1 }),
            };
            for (who, res) in [
                (
                    "session",
                    request(&a, method, &url, body.clone(), None).await,
                ),
                (
                    "api key",
                    request(&a, method, &url, body.clone(), Some(&a_secret)).await,
                ),
            ] {
                let text = res_text(res, status, &format!("{method} {url} as A's {who}")).await;
                for secret in &other.secrets {
                    assert!(
                        !text.contains(secret.as_str()),
                        "{method} {path} leaked {secret}: {text}"
                    );
                }
            }
            covered += 1;
        }
    }
    assert_eq!(covered, 16, "all parameterised routes were exercised");

    // Lists only ever hold the caller's own rows.
    for path in [
        "/api/v1/external-events",
        "/api/v1/workload-profiles",
        "/api/v1/anomalies",
        "/api/v1/readiness",
        "/api/v1/members",
        "/api/v1/api-keys",
        "/api/v1/invitations",
        "/api/v1/audit",
        "/api/v1/organization",
        "/api/v1/webhook-endpoints",
        "/api/v1/notifications",
        "/api/v1/prices/history",
    ] {
        let text = a.get(path).await.text().await.unwrap();
        for secret in &other.secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{path} leaked {secret}: {text}"
            );
        }
        assert!(
            !text.contains(&other.org_id),
            "{path} leaked B's organisation id"
        );
    }
    // And B's rows are all still there.
    let b_members: Value = b.get("/api/v1/members").await.json().await.unwrap();
    assert_eq!(b_members.as_array().unwrap().len(), 1);
    let b_keys: Value = b.get("/api/v1/api-keys").await.json().await.unwrap();
    assert!(b_keys[0]["revoked_at"].is_null());
    app.stop().await;
}
both_backends!(tenant_isolation, tenants_never_see_each_other);

async fn request(
    browser: &Browser,
    method: &str,
    url: &str,
    body: Value,
    key: Option<&str>,
) -> reqwest::Response {
    let method: reqwest::Method = method.to_uppercase().parse().unwrap();
    match key {
        Some(key) => {
            let client = reqwest::Client::new();
            let req = client
                .request(method.clone(), format!("{}{url}", browser.base))
                .bearer_auth(key);
            let req = if method == reqwest::Method::DELETE {
                req
            } else {
                req.json(&body)
            };
            req.send().await.unwrap()
        }
        None => match method.as_str() {
            "PATCH" => browser.patch(url, body).await,
            "PUT" => browser.put(url, body).await,
            "DELETE" => browser.delete(url).await,
            "POST" => browser.post(url, body).await,
            _ => browser.get(url).await,
        },
    }
}

async fn res_text(res: reqwest::Response, status: u16, what: &str) -> String {
    assert_eq!(res.status(), status, "{what}");
    res.text().await.unwrap()
}

#[tokio::test]
async fn cookies_are_secure_behind_https() {
    let options = Options {
        env: vec![("HEADROOM_PUBLIC_URL", "https://headroom.example".to_owned())],
        ..Options::default()
    };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await.unwrap();
    let body =
        json!({ "organization_name": "Acme", "email": "ada@example.com", "password": PASSWORD });
    let res = Browser::new(&app).post("/api/v1/auth/signup", body).await;
    assert_eq!(res.status(), 201);
    let cookie = res.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.contains("Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_api_is_described_and_browsable() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let doc: Value = app.get("/api/openapi.json").await.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["api_key"]["scheme"], "bearer");
    assert_eq!(schemes["session"]["in"], "cookie");
    // Every operation documents its error answers with the common error body.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let codes: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
            assert!(
                codes.iter().any(|c| c.starts_with('2')),
                "{method} {path} has no success answer"
            );
        }
    }
    let docs = app.get("/api/docs/").await;
    assert_eq!(docs.status(), 200);
    assert!(
        docs.text().await.unwrap().contains("swagger"),
        "Swagger UI page"
    );
    app.stop().await;
}
