//! The PostgreSQL test server, for tests (features `postgres` and `testing`): where it is
//! ([`server_url`]) and a database of its own per test ([`TestDb`]), so that tests run in
//! parallel against one server; and what counts as one SQL round trip to it ([`RoundTrip`]),
//! for the tests and benches that count them.
//!
//! The server comes from [`URL_VAR`] (`LIBCHAT_TEST_POSTGRES_URL`), which `.ci/postgres` sets
//! when it starts a throw-away server (`bash .ci/postgres cargo test --features postgres …`).
//! Its role must be allowed to create databases. Without it a test says it skips — except under
//! `CI=true`, where [`server_url`] fails the test: CI never skips a PostgreSQL test silently.

use std::sync::atomic::{AtomicU32, Ordering};

use diesel::connection::{InstrumentationEvent, SimpleConnection};
use diesel::prelude::*;

use super::{PgPool, PostgresConfig, PostgresError};

/// The environment variable that holds the test server's URL.
pub const URL_VAR: &str = "LIBCHAT_TEST_POSTGRES_URL";

/// The test server's URL, or `None` (after saying so on stderr) when [`URL_VAR`] is unset or
/// empty.
///
/// # Panics
///
/// Under `CI=true` when [`URL_VAR`] is unset or empty: a test that needs the server fails
/// there instead of skipping.
#[allow(clippy::panic)] // a test helper: failing the calling test is its purpose
pub fn server_url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var("CI").as_deref() == Ok("true") => panic!(
            "CI=true and {URL_VAR} is not set: the PostgreSQL tests cannot run \
             (run them under `bash .ci/postgres cargo test ...`)"
        ),
        _ => {
            eprintln!("{URL_VAR} is not set: skipping this PostgreSQL test");
            None
        }
    }
}

/// `url` with its database name replaced by `name`: `scheme://authority/NAME?query` (the
/// query, e.g. a socket directory in `host=`, is kept).
pub fn with_database(url: &str, name: &str) -> String {
    let authority_start = url.find("://").map_or(0, |i| i + 3);
    let (head, rest) = url.split_at(authority_start);
    let path_start = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(path_start);
    let query = tail.find('?').map_or("", |i| &tail[i..]);
    format!("{head}{authority}/{name}{query}")
}

/// Why [`TestDb`] could not create a database.
#[derive(Debug, thiserror::Error)]
pub enum TestDbError {
    /// The test server did not accept the connection.
    #[error("cannot connect to the test server: {0}")]
    Connect(#[from] ConnectionError),
    /// `CREATE DATABASE` failed.
    #[error("cannot create the test database: {0}")]
    Create(#[from] diesel::result::Error),
}

/// How many times [`TestDb::copy`] tries to copy a database (over 5 s in all).
pub const COPY_ATTEMPTS: u32 = 250;

/// A database of its own for one test, created on the server and dropped (with any session
/// still connected to it) when this value is dropped.
#[derive(Debug)]
pub struct TestDb {
    server: String,
    name: String,
    url: String,
}

impl TestDb {
    /// Creates an empty database whose name starts with `tag` (a lower-case identifier),
    /// unique to this process and call.
    pub fn new(server: &str, tag: &str) -> Result<Self, TestDbError> {
        Self::create(server, tag, None)
    }

    /// A copy of this database (`CREATE DATABASE … TEMPLATE`), whose name starts with `tag`.
    ///
    /// PostgreSQL copies a database only while no other session is connected to it. Before
    /// each attempt this ends the role's own client sessions on it (a pool's may outlive the
    /// pool's drop by a moment); it leaves an autovacuum worker alone (it belongs to the
    /// superuser, and `CREATE DATABASE` stops it itself). It tries [`COPY_ATTEMPTS`] times, 20
    /// ms apart, and returns the last attempt's error.
    pub fn copy(&self, tag: &str) -> Result<Self, TestDbError> {
        let mut attempt = 1;
        loop {
            if let Ok(mut admin) = PgConnection::establish(&self.server) {
                // Best effort: a session left shows as a failed attempt, which is retried.
                let _ = admin.batch_execute(&format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = '{}' AND pid <> pg_backend_pid() \
                     AND usename = current_user AND backend_type = 'client backend'",
                    self.name
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
            match Self::create(&self.server, tag, Some(self)) {
                Err(_) if attempt < COPY_ATTEMPTS => attempt += 1,
                result => return result,
            }
        }
    }

    /// Creates a database whose name starts with `tag`, a copy of `template` when given (no
    /// session may be connected to the template).
    fn create(server: &str, tag: &str, template: Option<&TestDb>) -> Result<Self, TestDbError> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "t_{tag}_{}_{}_{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = PgConnection::establish(server)?;
        let sql = match template {
            None => format!("CREATE DATABASE {name}"),
            Some(template) => format!("CREATE DATABASE {name} TEMPLATE {}", template.name),
        };
        admin.batch_execute(&sql)?;
        Ok(Self {
            server: server.to_owned(),
            url: with_database(server, &name),
            name,
        })
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A configuration for the database (the defaults of [`PostgresConfig::from_url`]).
    pub fn config(&self) -> Result<PostgresConfig, PostgresError> {
        PostgresConfig::from_url(&self.url)
    }

    /// A pool of connections to the database.
    pub fn pool(&self) -> Result<PgPool, PostgresError> {
        PgPool::open(self.config()?)
    }

    /// One connection to the database, outside any pool.
    pub fn connect(&self) -> ConnectionResult<PgConnection> {
        PgConnection::establish(&self.url)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut admin) = PgConnection::establish(&self.server) {
            // Best effort: a database left behind only takes room on a throw-away server.
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// One SQL round trip to the server, as diesel's instrumentation reports it: the one
/// definition the round-trip tests and the relay bench count with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoundTrip {
    /// A statement (`StartQuery`).
    Query,
    /// A transaction statement (`BeginTransaction`, `CommitTransaction`,
    /// `RollbackTransaction`): `BEGIN`, `COMMIT`, `ROLLBACK`, and a savepoint's `SAVEPOINT`,
    /// `RELEASE` or `ROLLBACK TO` (diesel reports a nested transaction with the same events).
    Transaction,
}

impl RoundTrip {
    /// The round trip `event` reports, or `None` for an event that sends nothing (a finished
    /// query, a connection being established…).
    pub fn of(event: &InstrumentationEvent<'_>) -> Option<Self> {
        match event {
            InstrumentationEvent::StartQuery { .. } => Some(Self::Query),
            InstrumentationEvent::BeginTransaction { .. }
            | InstrumentationEvent::CommitTransaction { .. }
            | InstrumentationEvent::RollbackTransaction { .. } => Some(Self::Transaction),
            _ => None,
        }
    }
}
