//! The database: connection, schema selection and migrations.

use anyhow::Context;
use clap::Args;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use std::str::FromStr;
use std::time::Duration;
use vadflow_common::redact::SecretUrl;

/// The embedded migrations (`producer/migrations`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Database connection settings.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// PostgreSQL URL, e.g. postgres://user:pass@host:5432/db?sslmode=verify-full.
    #[arg(long = "database-url", env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: SecretUrl,

    /// Schema holding vadflow's tables; created by `migrate`.
    #[arg(long, env = "VADFLOW_DB_SCHEMA", default_value = "vadflow")]
    pub db_schema: String,

    /// Largest number of pooled connections.
    #[arg(long, env = "VADFLOW_DB_MAX_CONNECTIONS", default_value_t = 4)]
    pub db_max_connections: u32,

    /// How long a command keeps retrying, with backoff, while the database or the broker cannot
    /// be reached (a restart, a failover). A refused login fails at once.
    #[arg(long, env = "VADFLOW_CONNECT_TIMEOUT", default_value = "60s", value_parser = vadflow_common::config::parse_duration)]
    pub connect_timeout: Duration,
}

fn valid_schema(schema: &str) -> anyhow::Result<()> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !schema.as_bytes()[0].is_ascii_digit();
    anyhow::ensure!(
        ok,
        "schema {schema:?} must be 1 to 63 characters of a-z 0-9 _, not starting with a digit"
    );
    Ok(())
}

impl DbArgs {
    /// Connects with `search_path` set to the schema, retrying an unreachable database for
    /// `--connect-timeout`. Errors name the (redacted) URL.
    pub async fn connect(&self) -> anyhow::Result<PgPool> {
        valid_schema(&self.db_schema)?;
        let redacted = self.database_url.to_string();
        let opts = PgConnectOptions::from_str(self.database_url.expose())
            .map_err(|e| anyhow::anyhow!("DATABASE_URL {redacted} is not valid: {e}"))?
            .application_name("vadflow")
            .options([("search_path", self.db_schema.as_str())])
            .log_statements(tracing::log::LevelFilter::Debug);
        // One plain connection first: its error is the real one (refused, unknown database,
        // bad password), where the pool would retry on its own and report only a timeout.
        let what = format!("the database {redacted}");
        let probe =
            vadflow_common::retry::with_backoff(&what, self.connect_timeout, unreachable, || {
                PgConnection::connect_with(&opts)
            })
            .await
            .with_context(|| format!("connect to database {redacted}"))?;
        let _ = probe.close().await;
        PgPoolOptions::new()
            .max_connections(self.db_max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await
            .with_context(|| format!("connect to database {redacted}"))
    }

    /// Creates the schema if needed and applies pending migrations. Idempotent, and safe to run
    /// from several processes at once (the migrator takes an advisory lock).
    pub async fn migrate(&self, pool: &PgPool) -> anyhow::Result<()> {
        let create = format!("CREATE SCHEMA IF NOT EXISTS \"{}\"", self.db_schema);
        sqlx::raw_sql(sqlx::AssertSqlSafe(create))
            .execute(pool)
            .await
            .with_context(|| format!("create schema {}", self.db_schema))?;
        MIGRATOR
            .run(pool)
            .await
            .with_context(|| format!("migrate schema {}", self.db_schema))?;
        Ok(())
    }
}

/// Whether a connection error is the database being away (worth retrying): I/O errors, pool
/// timeouts, and SQLSTATE classes 08 (connection exception) and 57 (operator intervention: a
/// shutdown or a server still starting). A refused login (28) or a missing database is not.
pub fn unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57")),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::valid_schema;

    #[test]
    fn schema_names_are_checked() {
        assert!(valid_schema("vadflow").is_ok());
        assert!(valid_schema("t_123").is_ok());
        for bad in ["", "1abc", "has-dash", "Upper", "a\"b", &"a".repeat(64)] {
            assert!(valid_schema(bad).is_err(), "{bad}");
        }
    }
}
