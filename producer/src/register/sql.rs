//! `producer register --sql`: the files listed by a query on the user's own catalog tables.
//!
//! The query runs in a read-only transaction, on `--source-database-url` or on `DATABASE_URL`
//! with the database's own `search_path` (so `FROM calls` means the user's table). Its rows are
//! streamed from the server and inserted in batches of `--batch-size`, so memory stays flat in
//! the number of rows.

use super::{NewFile, RegisterReport, insert_files};
use crate::cli::RegisterArgs;
use anyhow::Context;
use chrono::{DateTime, NaiveDateTime, Utc};
use futures_util::TryStreamExt;
use sqlx::postgres::{PgConnectOptions, PgRow};
use sqlx::{Column, ConnectOptions, Connection, Row};
use std::str::FromStr;
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use vadflow_common::keys::{self, parse_s3_uri};
use vadflow_common::wire::validate_external_id;

/// Where a query's columns are, found from its first row.
#[derive(Debug, Clone, Copy)]
struct Columns {
    location: Location,
    created_at: Option<usize>,
    external_id: Option<usize>,
}

#[derive(Debug, Clone, Copy)]
enum Location {
    Uri(usize),
    BucketKey(usize, usize),
}

impl Columns {
    fn find(row: &PgRow) -> anyhow::Result<Columns> {
        let names: Vec<&str> = row.columns().iter().map(|c| c.name()).collect();
        let at = |name: &str| names.iter().position(|n| *n == name);
        let location = match (at("uri"), at("bucket"), at("key")) {
            (Some(u), None, None) => Location::Uri(u),
            (None, Some(b), Some(k)) => Location::BucketKey(b, k),
            (Some(_), _, _) => anyhow::bail!(
                "--sql: the query returns `uri` and also `bucket` or `key`; return one or the other"
            ),
            _ => anyhow::bail!(
                "--sql: the query must return a column `uri` (s3://bucket/key), or `bucket` and \
                 `key`; it returns {names:?} (rename with AS)"
            ),
        };
        Ok(Columns {
            location,
            created_at: at("created_at"),
            external_id: at("external_id"),
        })
    }

    /// The file a row names, or why it names none (a reason the row is skipped).
    fn file(&self, row: &PgRow) -> Result<NewFile, String> {
        let (bucket, key) = match self.location {
            Location::Uri(i) => {
                let uri = text(row, i, "uri")?.ok_or("uri is NULL")?;
                parse_s3_uri(&uri).map_err(|e| format!("uri {uri:?}: {e:#}"))?
            }
            Location::BucketKey(b, k) => (
                text(row, b, "bucket")?.ok_or("bucket is NULL")?,
                text(row, k, "key")?.ok_or("key is NULL")?,
            ),
        };
        keys::validate_bucket(&bucket).map_err(|f| f.to_string())?;
        keys::validate_key(&key).map_err(|f| format!("s3://{bucket}/{key}: {f}"))?;
        let created_at = match self.created_at {
            Some(i) => timestamp(row, i)?,
            None => None,
        };
        let external_id = match self.external_id {
            Some(i) => id(row, i)?,
            None => None,
        };
        if let Some(id) = &external_id {
            validate_external_id(id).map_err(|e| format!("external_id {id:?}: {e}"))?;
        }
        Ok(NewFile {
            bucket,
            key,
            size: None,
            created_at,
            external_id,
        })
    }
}

fn text(row: &PgRow, i: usize, name: &str) -> Result<Option<String>, String> {
    row.try_get::<Option<String>, _>(i)
        .map_err(|e| format!("column {name} must be text: {e}"))
}

/// `created_at` as `timestamptz`, `timestamp` (taken as UTC) or `date` (its midnight, UTC).
fn timestamp(row: &PgRow, i: usize) -> Result<Option<DateTime<Utc>>, String> {
    if let Ok(t) = row.try_get::<Option<DateTime<Utc>>, _>(i) {
        return Ok(t);
    }
    if let Ok(t) = row.try_get::<Option<NaiveDateTime>, _>(i) {
        return Ok(t.map(|t| t.and_utc()));
    }
    if let Ok(d) = row.try_get::<Option<chrono::NaiveDate>, _>(i) {
        return Ok(d.and_then(|d| d.and_hms_opt(0, 0, 0)).map(|t| t.and_utc()));
    }
    Err("column created_at must be timestamptz, timestamp or date".into())
}

/// `external_id` as text or an integer.
fn id(row: &PgRow, i: usize) -> Result<Option<String>, String> {
    if let Ok(s) = row.try_get::<Option<String>, _>(i) {
        return Ok(s);
    }
    if let Ok(n) = row.try_get::<Option<i64>, _>(i) {
        return Ok(n.map(|n| n.to_string()));
    }
    if let Ok(n) = row.try_get::<Option<i32>, _>(i) {
        return Ok(n.map(|n| n.to_string()));
    }
    Err("column external_id must be text or an integer (cast others with ::text)".into())
}

pub(super) async fn run(
    args: &RegisterArgs,
    query: &str,
    shutdown: &CancellationToken,
) -> anyhow::Result<RegisterReport> {
    let pool = args.db.connect().await?;
    let source_url = args
        .source_database_url
        .as_ref()
        .unwrap_or(&args.db.database_url);
    let redacted = source_url.to_string();
    let opts = PgConnectOptions::from_str(source_url.expose())
        .map_err(|e| anyhow::anyhow!("source database URL {redacted} is not valid: {e}"))?
        .application_name("vadflow-register")
        .log_statements(tracing::log::LevelFilter::Debug);
    let mut source = opts
        .connect()
        .await
        .with_context(|| format!("connect to source database {redacted}"))?;
    let mut tx = source
        .begin()
        .await
        .context("begin read-only transaction")?;
    sqlx::query("SET TRANSACTION READ ONLY")
        .execute(&mut *tx)
        .await
        .context("make the --sql transaction read-only")?;

    let started = Instant::now();
    let batch_size = args.batch_size as usize;
    let mut report = RegisterReport::default();
    let mut columns = None;
    let mut batch = Vec::with_capacity(batch_size);
    let mut rows = sqlx::query(sqlx::AssertSqlSafe(query.to_owned())).fetch(&mut *tx);
    while let Some(row) = rows
        .try_next()
        .await
        .with_context(|| format!("--sql query on {redacted}"))?
    {
        let cols = match columns {
            Some(c) => c,
            None => *columns.insert(Columns::find(&row)?),
        };
        match cols.file(&row) {
            Ok(file) => batch.push(file),
            Err(why) => {
                report.skipped_invalid += 1;
                tracing::warn!(row = report.found + report.skipped_invalid, error = %why, "skipping a row that names no usable object");
                continue;
            }
        }
        report.found += 1;
        if batch.len() == batch_size {
            anyhow::ensure!(
                !shutdown.is_cancelled(),
                "interrupted after registering {} of the query's rows",
                report.found - batch.len() as u64
            );
            report.inserted += insert_files(&pool, &batch).await?;
            batch.clear();
        }
    }
    drop(rows);
    if !batch.is_empty() {
        report.inserted += insert_files(&pool, &batch).await?;
    }
    tx.commit().await.context("end the --sql transaction")?;
    let _ = source.close().await;
    report.already = report.found - report.inserted;
    let secs = started.elapsed().as_secs_f64();
    tracing::info!(
        rows = report.found,
        inserted = report.inserted,
        skipped = report.skipped_invalid,
        rows_per_s = (report.found as f64 / secs.max(1e-9)).round(),
        "registered the files of the --sql query"
    );
    Ok(report)
}
