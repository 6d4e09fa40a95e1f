//! Test harness: starts the real application on a random port against a fresh
//! database (a new SQLite file, or a new PostgreSQL database) and talks HTTP to it.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod stripe;

use std::time::Duration;

use headroom_server::config::Config;
use headroom_server::startup::Application;
use headroom_store::Db;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use headroom_store::Backend;

/// PostgreSQL to create per-test databases in. Required when `CI=true`; elsewhere the
/// PostgreSQL variants are skipped (loudly) when it is unreachable.
pub fn postgres_admin_url() -> Option<String> {
    let url = std::env::var("HEADROOM_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let reachable = std::net::TcpStream::connect_timeout(
        &host_port(&url)
            .parse()
            .expect("HEADROOM_TEST_POSTGRES_URL has host:port"),
        Duration::from_secs(2),
    )
    .is_ok();
    if reachable {
        return Some(url);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "CI=true but PostgreSQL is unreachable at {url}: PostgreSQL tests are required in CI"
        );
    }
    eprintln!(
        "WARNING: PostgreSQL unreachable at {url}; SKIPPING the PostgreSQL variant of this test"
    );
    None
}

fn host_port(url: &str) -> String {
    let rest = url.split("://").nth(1).unwrap_or_default();
    let rest = rest.rsplit('@').next().unwrap_or_default();
    rest.split('/').next().unwrap_or_default().to_owned()
}

/// A database that exists for one test only.
pub struct TestDatabase {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDatabase {
    /// `None` when the backend is PostgreSQL and it is unavailable (outside CI).
    pub async fn create(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("headroom.db").display());
                Some(Self {
                    url,
                    _dir: Some(dir),
                    pg: None,
                })
            }
            Backend::Postgres => {
                let admin = postgres_admin_url()?;
                let name = format!("hr_test_{}", unique_suffix());
                let db = Db::connect(&admin)
                    .await
                    .expect("connect to the PostgreSQL admin database");
                execute(&db, &format!("CREATE DATABASE \"{name}\"")).await;
                db.close().await.ok();
                let base = admin.rsplit_once('/').expect("admin URL has a database").0;
                Some(Self {
                    url: format!("{base}/{name}"),
                    _dir: None,
                    pg: Some((admin, name)),
                })
            }
        }
    }

    /// A connection of its own, with no migration run (tests of the
    /// migrations). SQLite creates the file only when asked to (the store's
    /// own connect does).
    pub async fn connect_unmigrated(&self) -> headroom_store::sea_orm::DatabaseConnection {
        let options = match self.pg {
            // One connection, so migrations' DDL sees every change before
            // it (see `Db::migrate`).
            None => {
                let mut o =
                    headroom_store::sea_orm::ConnectOptions::new(format!("{}?mode=rwc", self.url));
                o.max_connections(1);
                o
            }
            Some(_) => headroom_store::sea_orm::ConnectOptions::new(self.url.clone()),
        };
        headroom_store::sea_orm::Database::connect(options)
            .await
            .expect("connect to the test database")
    }

    pub async fn drop_now(&mut self) {
        if let Some((admin, name)) = self.pg.take()
            && let Ok(db) = Db::connect(&admin).await
        {
            execute(
                &db,
                &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
            )
            .await;
            db.close().await.ok();
        }
    }
}

pub async fn execute(db: &Db, sql: &str) -> u64 {
    use headroom_store::sea_orm::ConnectionTrait;
    db.conn()
        .execute_unprepared(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .rows_affected()
}

pub async fn query_i64(db: &Db, sql: &str) -> i64 {
    query_one(db, sql).await
}

pub async fn query_string(db: &Db, sql: &str) -> String {
    query_one(db, sql).await
}

/// The first column of the one row `sql` returns.
async fn query_one<T: headroom_store::sea_orm::TryGetable>(db: &Db, sql: &str) -> T {
    use headroom_store::sea_orm::{ConnectionTrait, Statement};
    let row = db
        .conn()
        .query_one_raw(Statement::from_string(
            db.conn().get_database_backend(),
            sql.to_owned(),
        ))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .expect("one row");
    row.try_get_by_index::<T>(0)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{}_{}_{}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The running application and what a test needs to talk to it.
pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub db: Db,
    pub backend: Backend,
    pub feed: headroom_server::api::ingest::feed::Feed,
    shutdown: CancellationToken,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
    database: TestDatabase,
}

#[derive(Default)]
pub struct Options {
    pub with_worker: bool,
    /// Extra `HEADROOM_*` settings.
    pub env: Vec<(&'static str, String)>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Option<Self> {
        Self::spawn_with(backend, Options::default()).await
    }

    /// A second replica on the same database (it does not drop the database).
    pub async fn sibling(&self) -> Self {
        let database = TestDatabase {
            url: self.database.url.clone(),
            _dir: None,
            pg: None,
        };
        Self::start(self.backend, database, Options::default()).await
    }

    pub async fn spawn_with(backend: Backend, options: Options) -> Option<Self> {
        let database = TestDatabase::create(backend).await?;
        Some(Self::start(backend, database, options).await)
    }

    async fn start(backend: Backend, database: TestDatabase, options: Options) -> Self {
        let data_dir = tempfile::tempdir().expect("temp dir").keep();
        let mut vars = vec![
            ("HEADROOM_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
            (
                "HEADROOM_DATA_DIR".to_owned(),
                data_dir.display().to_string(),
            ),
            ("HEADROOM_DATABASE_URL".to_owned(), database.url.clone()),
            ("HEADROOM_SHUTDOWN_TIMEOUT_SECS".to_owned(), "10".to_owned()),
            (
                "HEADROOM_MODELS_DIR".to_owned(),
                concat!(env!("CARGO_MANIFEST_DIR"), "/../models").to_owned(),
            ),
        ];
        vars.extend(options.env.into_iter().map(|(k, v)| (k.to_owned(), v)));
        let config = Config::from_vars(vars).expect("valid test config");
        if std::env::var_os("TEST_LOG").is_some() {
            headroom_server::telemetry::init_logging(&config);
        }
        let app = Application::build(config, options.with_worker)
            .await
            .expect("application starts");
        let base = format!("http://{}", app.local_addr());
        let db = app.db().clone();
        let feed = app.feed().clone();
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(app.run(shutdown.clone()));
        Self {
            base,
            http: reqwest::Client::new(),
            db,
            backend,
            feed,
            shutdown,
            handle: Some(handle),
            database,
        }
    }

    /// The database this app runs on (for a second process to share).
    pub fn database_url(&self) -> String {
        self.database.url.clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    /// Stops the app gracefully and removes its database.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            handle
                .await
                .expect("app task")
                .expect("app shut down cleanly");
        }
        self.database.drop_now().await;
    }
}

/// Runs `test` against SQLite, then against PostgreSQL when available.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$body($crate::common::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$body($crate::common::Backend::Postgres).await;
            }
        }
    };
}

/// A browser-like client: keeps cookies, and sends the CSRF token once it has one.
pub struct Browser {
    pub base: String,
    pub http: reqwest::Client,
    pub csrf: Option<String>,
}

impl Browser {
    pub fn new(app: &TestApp) -> Self {
        Self {
            base: app.base.clone(),
            http: reqwest::Client::builder()
                .cookie_store(true)
                .build()
                .unwrap(),
            csrf: None,
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match &self.csrf {
            Some(token) => req.header("x-csrf-token", token),
            None => req,
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.request(reqwest::Method::POST, path)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn put(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.request(reqwest::Method::PUT, path)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn patch(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.request(reqwest::Method::PATCH, path)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.request(reqwest::Method::DELETE, path)
            .send()
            .await
            .unwrap()
    }

    /// Signs up a new organisation; remembers the CSRF token. Returns the answer body.
    pub async fn signup(&mut self, org: &str, email: &str, password: &str) -> serde_json::Value {
        let body =
            serde_json::json!({ "organization_name": org, "email": email, "password": password });
        let res = self.post("/api/v1/auth/signup", body).await;
        assert_eq!(res.status(), 201, "sign-up of {email}");
        let info: serde_json::Value = res.json().await.unwrap();
        self.csrf = Some(info["csrf_token"].as_str().unwrap().to_owned());
        info
    }

    /// Creates an API key with `scopes` and returns its secret.
    pub async fn api_key(&self, scopes: &[&str]) -> String {
        let res = self
            .post(
                "/api/v1/api-keys",
                serde_json::json!({ "name": "ops", "scopes": scopes }),
            )
            .await;
        assert_eq!(res.status(), 201, "API key created");
        let key: serde_json::Value = res.json().await.unwrap();
        key["secret"].as_str().unwrap().to_owned()
    }

    pub async fn login(&mut self, email: &str, password: &str) -> reqwest::Response {
        let res = self
            .post(
                "/api/v1/auth/login",
                serde_json::json!({ "email": email, "password": password }),
            )
            .await;
        if res.status() == 200 {
            let info: serde_json::Value = res.json().await.unwrap();
            self.csrf = Some(info["csrf_token"].as_str().unwrap().to_owned());
            // Hand back an equivalent response for callers that want the body.
            return self.get("/api/v1/auth/me").await;
        }
        res
    }
}

/// Asserts a JSON error answer with this status, and returns its message.
/// A new organisation `org` whose owner (`owner@<org>.example`) is signed in,
/// with its sign-up answer and an API key of `scopes`.
pub async fn org_with_key(
    app: &TestApp,
    org: &str,
    password: &str,
    scopes: &[&str],
) -> (Browser, serde_json::Value, String) {
    let mut owner = Browser::new(app);
    let info = owner
        .signup(
            org,
            &format!("owner@{}.example", org.to_lowercase()),
            password,
        )
        .await;
    let key = owner.api_key(scopes).await;
    (owner, info, key)
}

/// A platform operator (an admin of a guaranteed-tier operator organisation),
/// logged in.
pub async fn operator(app: &TestApp, password: &str) -> Browser {
    use headroom_core::accounts::{Email, Role, Tier};
    let hash = headroom_server::auth::password::hash(password.to_owned())
        .await
        .unwrap();
    let email = Email::parse("ops@headroom.example").unwrap();
    app.db
        .create_organization_with_user("Operator", Tier::Guaranteed, &email, Role::Admin, hash)
        .await
        .unwrap();
    let mut ops = Browser::new(app);
    assert_eq!(
        ops.login("ops@headroom.example", password).await.status(),
        200
    );
    ops
}

/// GET `path` with the API key `key`.
pub async fn get(app: &TestApp, key: &str, path: &str) -> reqwest::Response {
    app.http
        .get(app.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

pub async fn expect_error(res: reqwest::Response, status: u16) -> String {
    assert_eq!(res.status(), status, "{:?}", res.url().path());
    let body: serde_json::Value = res.json().await.expect("JSON error body");
    assert!(body["error"].is_string(), "{body}");
    body["message"].as_str().expect("message").to_owned()
}
