//! `producer register`: add S3 objects to the table of audio files, never duplicating one:
//! from an S3 listing (and an upload of a local folder), or from the user's own catalog tables
//! (`--sql`, [`sql`]).

mod sql;

use crate::cli::RegisterArgs;
use anyhow::Context;
use aws_sdk_s3::primitives::ByteStream;
use std::fmt;
use std::path::Path;
use tokio_util::sync::CancellationToken;
use vadflow_common::Reason;
use vadflow_common::keys::{self, has_audio_extension, parse_s3_uri};
use vadflow_common::s3::classify;

/// What `register` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RegisterReport {
    pub uploaded: u64,
    pub found: u64,
    pub inserted: u64,
    pub already: u64,
    pub skipped_invalid: u64,
}

impl fmt::Display for RegisterReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "register: uploaded={} found={} inserted={} already_registered={} skipped_invalid_keys={}",
            self.uploaded, self.found, self.inserted, self.already, self.skipped_invalid
        )
    }
}

/// One file to register.
#[derive(Debug, Clone, Default)]
pub(crate) struct NewFile {
    pub bucket: String,
    pub key: String,
    pub size: Option<i64>,
    /// Creation time; `None` is now.
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
    pub external_id: Option<String>,
}

/// Inserts `files` in one statement, leaving rows already there alone. Returns how many were new.
pub(crate) async fn insert_files(pool: &sqlx::PgPool, files: &[NewFile]) -> anyhow::Result<u64> {
    let buckets: Vec<&str> = files.iter().map(|o| o.bucket.as_str()).collect();
    let keys: Vec<&str> = files.iter().map(|o| o.key.as_str()).collect();
    let sizes: Vec<Option<i64>> = files.iter().map(|o| o.size).collect();
    let created: Vec<Option<chrono::DateTime<chrono::Utc>>> =
        files.iter().map(|o| o.created_at).collect();
    let external: Vec<Option<&str>> = files.iter().map(|o| o.external_id.as_deref()).collect();
    let inserted = sqlx::query(
        "INSERT INTO audio_files (bucket, key, size_bytes, created_at, external_id)
         SELECT b, k, s, coalesce(c, now()), e
         FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::timestamptz[], $5::text[])
              AS t (b, k, s, c, e)
         ON CONFLICT (bucket, key) DO NOTHING",
    )
    .bind(&buckets)
    .bind(&keys)
    .bind(&sizes)
    .bind(&created)
    .bind(&external)
    .execute(pool)
    .await
    .context("insert audio file references")?
    .rows_affected();
    Ok(inserted)
}

pub async fn run(
    args: &RegisterArgs,
    shutdown: &CancellationToken,
) -> anyhow::Result<RegisterReport> {
    if let Some(query) = &args.sql {
        return sql::run(args, query, shutdown).await;
    }
    let client = args.s3.client().await?;
    let pool = args.db.connect().await?;
    let mut report = RegisterReport::default();
    let mut objects = Vec::new();

    if let Some(dir) = &args.from {
        anyhow::ensure!(
            args.targets.len() == 1,
            "--from uploads to exactly one s3://bucket/prefix/ target"
        );
        let (bucket, prefix) = parse_s3_uri(&args.targets[0])?;
        anyhow::ensure!(
            prefix.is_empty() || prefix.ends_with('/'),
            "with --from, the target must be a prefix ending in '/': {}",
            args.targets[0]
        );
        for (path, rel) in audio_files_under(dir)? {
            if shutdown.is_cancelled() {
                anyhow::bail!("interrupted while uploading");
            }
            let key = format!("{prefix}{rel}");
            keys::validate_key(&key)?;
            let body = ByteStream::from_path(&path)
                .await
                .with_context(|| format!("read {}", path.display()))?;
            client
                .put_object()
                .bucket(&bucket)
                .key(&key)
                .body(body)
                .send()
                .await
                .map_err(|e| classify(&e, &format!("upload s3://{bucket}/{key}")))?;
            report.uploaded += 1;
            tracing::debug!(bucket = %bucket, key = %key, "uploaded");
        }
    }

    for target in &args.targets {
        let (bucket, key) = parse_s3_uri(target)?;
        let mut single = None;
        if !key.is_empty() && !key.ends_with('/') {
            match client.head_object().bucket(&bucket).key(&key).send().await {
                Ok(head) => single = Some(head.content_length()),
                Err(e) => {
                    let f = classify(&e, &format!("head {target}"));
                    if f.reason != Reason::ObjectMissing {
                        return Err(f.into());
                    }
                }
            }
        }
        if let Some(size) = single {
            objects.push(NewFile {
                bucket,
                key,
                size,
                ..NewFile::default()
            });
            continue;
        }
        let before = objects.len();
        let mut pages = client
            .list_objects_v2()
            .bucket(&bucket)
            .prefix(&key)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(&e, &format!("list {target}")))?;
            for obj in page.contents() {
                let Some(k) = obj.key() else { continue };
                if k.ends_with('/') || !(args.all_objects || has_audio_extension(k)) {
                    continue;
                }
                objects.push(NewFile {
                    bucket: bucket.clone(),
                    key: k.to_owned(),
                    size: obj.size(),
                    ..NewFile::default()
                });
            }
        }
        anyhow::ensure!(
            objects.len() > before,
            "{target}: no such object, and no audio objects under that prefix"
        );
    }

    objects.retain(|o| match keys::validate_key(&o.key) {
        Ok(()) => true,
        Err(f) => {
            tracing::warn!(bucket = %o.bucket, error = %f, "skipping object with an unusable key");
            report.skipped_invalid += 1;
            false
        }
    });
    report.found = objects.len() as u64;
    for chunk in objects.chunks(1000) {
        report.inserted += insert_files(&pool, chunk).await?;
    }
    report.already = report.found - report.inserted;
    tracing::info!(
        found = report.found,
        inserted = report.inserted,
        uploaded = report.uploaded,
        "registered audio files"
    );
    Ok(report)
}

/// Audio files under `dir`, with their paths relative to it (always `/`-separated), sorted.
fn audio_files_under(dir: &Path) -> anyhow::Result<Vec<(std::path::PathBuf, String)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in
            std::fs::read_dir(&d).with_context(|| format!("read directory {}", d.display()))?
        {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(path);
            } else if let Some(name) = path.to_str().filter(|p| has_audio_extension(p)) {
                let rel = Path::new(name)
                    .strip_prefix(dir)
                    .map(|p| {
                        p.components()
                            .map(|c| c.as_os_str().to_string_lossy())
                            .collect::<Vec<_>>()
                            .join("/")
                    })
                    .unwrap_or_default();
                out.push((path, rel));
            }
        }
    }
    out.sort();
    anyhow::ensure!(!out.is_empty(), "no audio files under {}", dir.display());
    Ok(out)
}
