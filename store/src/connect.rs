use std::time::Duration;

use headroom_migrations::{Migrator, MigratorTrait};
use sea_orm::sqlx::postgres::PgSslMode;
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbBackend};

use crate::StoreError;

/// Which engine is behind the pool; chosen by the URL's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl(redact(url)))
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// The application's database handle: cheap to clone, shared by HTTP handlers,
/// server functions and workers (one pool for all of them).
#[derive(Debug, Clone)]
pub struct Db {
    conn: DatabaseConnection,
    backend: Backend,
    /// Raised after a notification is committed, so this process's stream
    /// hub reads it at once instead of at its next poll.
    notified: std::sync::Arc<tokio::sync::Notify>,
}

impl Db {
    /// Connects (creating the SQLite file if needed). Does not migrate.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let backend = Backend::from_url(url)?;
        let mut opts = ConnectOptions::new(url.to_owned());
        opts.connect_timeout(Duration::from_secs(5))
            .acquire_timeout(Duration::from_secs(10))
            .sqlx_logging(false);
        match backend {
            Backend::Sqlite => {
                // WAL lets the web app read while a worker writes; the busy timeout
                // turns lock contention into a short wait instead of an error.
                opts.max_connections(8).map_sqlx_sqlite_opts(sqlite_options);
            }
            Backend::Postgres => {
                // No TLS on loopback (see `is_loopback`) unless a mode is
                // named, in the URL or in PGSSLMODE (which sqlx reads too).
                let tls_chosen = url.contains("sslmode=")
                    || url.contains("ssl-mode=")
                    || std::env::var_os("PGSSLMODE").is_some();
                opts.max_connections(16).map_sqlx_postgres_opts(move |o| {
                    // JIT compiles any plan whose estimated cost looks large,
                    // such as a tick's 100,000 index probes: 100+ ms spent to
                    // save less. Short statements like ours never gain from it.
                    let o = o.options([("jit", "off")]);
                    if tls_chosen || !is_loopback(o.get_host()) {
                        o
                    } else {
                        o.ssl_mode(PgSslMode::Disable)
                    }
                });
            }
        }
        let conn = Database::connect(opts).await.map_err(StoreError::Connect)?;
        // sea-orm connects lazily for some drivers; make unreachable databases fail here.
        conn.ping().await.map_err(StoreError::Connect)?;
        Ok(Self {
            conn,
            backend,
            notified: Default::default(),
        })
    }

    pub fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// Woken (one stored permit) whenever this handle commits a notification.
    pub fn notifications_written(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.notified.clone()
    }

    pub(crate) fn notification_committed(&self) {
        self.notified.notify_one();
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies every pending migration.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let Some(pool) = self.sqlite_pool() else {
            return Migrator::up(&self.conn, None)
                .await
                .map_err(StoreError::Migrate);
        };
        // On SQLite, through one connection of its own: a pooled connection
        // checks its copy of the schema only when a statement runs, so DDL
        // prepared on one that missed another's change (a column added by
        // the previous statement) fails, as migration 029's dropping a
        // column did now and then.
        let one = sea_orm::sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with((*pool.connect_options()).clone())
            .await
            .map_err(|e| {
                StoreError::Connect(sea_orm::DbErr::Conn(sea_orm::RuntimeErr::SqlxError(
                    e.into(),
                )))
            })?;
        let conn = sea_orm::SqlxSqliteConnector::from_sqlx_sqlite_pool(one);
        let migrated = Migrator::up(&conn, None).await.map_err(StoreError::Migrate);
        conn.close().await.ok();
        migrated
    }

    /// Number of migrations known to this binary but not applied to the database.
    /// Read-only: never creates the migrations table.
    pub async fn pending_migrations(&self) -> Result<usize, StoreError> {
        Ok(Migrator::get_pending_migrations_read_only(&self.conn)
            .await?
            .len())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        Ok(self.conn.ping().await?)
    }

    pub fn sqlite_pool(&self) -> Option<&sea_orm::sqlx::SqlitePool> {
        (self.backend == Backend::Sqlite).then(|| self.conn.get_sqlite_connection_pool())
    }

    pub fn postgres_pool(&self) -> Option<&sea_orm::sqlx::PgPool> {
        (self.backend == Backend::Postgres).then(|| self.conn.get_postgres_connection_pool())
    }

    pub(crate) fn db_backend(&self) -> DbBackend {
        self.conn.get_database_backend()
    }

    pub async fn close(self) -> Result<(), StoreError> {
        Ok(self.conn.close().await?)
    }
}

fn sqlite_options(opts: SqliteConnectOptions) -> SqliteConnectOptions {
    opts.create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true)
}

/// Whether `host` is this machine. TLS to a database on this machine
/// protects nothing (whoever can read loopback traffic is root here) and
/// costs both sides on every row, so a loopback URL that names no `sslmode`
/// (nor `PGSSLMODE`) connects without it; sqlx's default would be `prefer`,
/// which encrypts whenever the server offers TLS.
pub fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Keeps passwords out of error messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            match url[scheme_end + 3..at].split_once(':') {
                Some((user, _password)) => {
                    format!("{}://{}:***{}", &url[..scheme_end], user, &url[at..])
                }
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_follows_the_scheme() {
        assert_eq!(
            Backend::from_url("sqlite:///tmp/x.db").unwrap(),
            Backend::Sqlite
        );
        assert_eq!(
            Backend::from_url("postgres://h/db").unwrap(),
            Backend::Postgres
        );
        assert_eq!(
            Backend::from_url("postgresql://h/db").unwrap(),
            Backend::Postgres
        );
        assert!(matches!(
            Backend::from_url("mysql://u:secret@h/db"),
            Err(StoreError::UnsupportedUrl(u)) if !u.contains("secret")
        ));
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        for host in [
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "127.0.0.53",
            "::1",
            "[::1]",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "db.internal",
            "10.0.0.5",
            "::2",
            "postgres",
            "localhost.example.com",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn redact_hides_only_the_password() {
        assert_eq!(
            redact("postgres://u:pw@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact("sqlite:///data/headroom.db"),
            "sqlite:///data/headroom.db"
        );
    }
}
