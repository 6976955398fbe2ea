//! The S3 store: the worker's [`ResultStore`]. Its methods are called from the blocking pipeline thread
//! and block on the runtime for each request.
//!
//! `speech.wav` streams out as a multipart upload with 5 MiB parts. Its first part holds the WAV
//! header, whose length fields are only known at the end, so part 1 is kept in memory and
//! uploaded last (S3 assembles parts by number, not by arrival). Audio shorter than one part is a
//! single PUT. A job therefore holds at most about two parts of speech audio in memory.

use super::{Output, ResultStore, SpeechOutput};
use crate::audio::pipeline::SpeechWriter;
use crate::audio::wav;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::runtime::Handle;
use vadflow_common::Failure;
use vadflow_common::s3::classify;

/// Size of every multipart part but the last (the S3 minimum).
pub const PART_SIZE: usize = 5 * 1024 * 1024;

/// Writes a job's outputs under `s3://{bucket}/{prefix}`.
#[derive(Debug, Clone)]
pub struct S3Store {
    pub handle: Handle,
    pub client: Client,
    pub bucket: String,
    /// Ends in `/`.
    pub prefix: String,
    /// Bytes written, for metrics.
    pub bytes_out: Arc<AtomicU64>,
}

impl S3Store {
    async fn put_async(
        &self,
        key: &str,
        content_type: &'static str,
        bytes: Vec<u8>,
    ) -> Result<(), Failure> {
        let len = bytes.len() as u64;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| classify(&e, &format!("upload s3://{}/{key}", self.bucket)))?;
        self.bytes_out.fetch_add(len, Ordering::Relaxed);
        Ok(())
    }

    fn put_bytes(
        &self,
        key: &str,
        content_type: &'static str,
        bytes: Vec<u8>,
    ) -> Result<(), Failure> {
        self.handle
            .block_on(self.put_async(key, content_type, bytes))
    }
}

impl ResultStore for S3Store {
    fn put(
        &mut self,
        name: &str,
        content_type: &'static str,
        bytes: Vec<u8>,
    ) -> Result<(), Failure> {
        let key = format!("{}{name}", self.prefix);
        self.put_bytes(&key, content_type, bytes)
    }

    fn put_all(&mut self, outputs: Vec<Output>) -> Result<(), Failure> {
        let keys: Vec<String> = outputs
            .iter()
            .map(|(name, _, _)| format!("{}{name}", self.prefix))
            .collect();
        let puts = outputs
            .into_iter()
            .zip(&keys)
            .map(|((_, content_type, bytes), key)| self.put_async(key, content_type, bytes));
        self.handle
            .block_on(futures_util::future::try_join_all(puts))
            .map(|_| ())
    }

    fn speech(&mut self, rate: u32) -> Result<Box<dyn SpeechOutput>, Failure> {
        let mut first = Vec::with_capacity(PART_SIZE);
        first.extend_from_slice(&wav::header(rate, 0));
        Ok(Box::new(SpeechUpload {
            store: self.clone(),
            key: format!("{}{}", self.prefix, crate::audio::render::SPEECH_WAV),
            rate,
            first,
            current: Vec::new(),
            upload_id: None,
            parts: Vec::new(),
            samples: 0,
        }))
    }
}

struct SpeechUpload {
    store: S3Store,
    key: String,
    rate: u32,
    first: Vec<u8>,
    current: Vec<u8>,
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
    samples: u64,
}

impl SpeechUpload {
    fn what(&self) -> String {
        format!("upload s3://{}/{}", self.store.bucket, self.key)
    }

    fn upload_id(&mut self) -> Result<String, Failure> {
        if let Some(id) = &self.upload_id {
            return Ok(id.clone());
        }
        let out = self
            .store
            .handle
            .block_on(
                self.store
                    .client
                    .create_multipart_upload()
                    .bucket(&self.store.bucket)
                    .key(&self.key)
                    .content_type("audio/wav")
                    .send(),
            )
            .map_err(|e| classify(&e, &self.what()))?;
        let id = out
            .upload_id()
            .ok_or_else(|| {
                Failure::new(
                    vadflow_common::Reason::StorageUnavailable,
                    format!("{}: no upload id", self.what()),
                )
            })?
            .to_owned();
        self.upload_id = Some(id.clone());
        Ok(id)
    }

    fn upload_part(&mut self, number: i32, bytes: Vec<u8>) -> Result<(), Failure> {
        let id = self.upload_id()?;
        let len = bytes.len() as u64;
        let out = self
            .store
            .handle
            .block_on(
                self.store
                    .client
                    .upload_part()
                    .bucket(&self.store.bucket)
                    .key(&self.key)
                    .upload_id(id)
                    .part_number(number)
                    .body(ByteStream::from(bytes))
                    .send(),
            )
            .map_err(|e| classify(&e, &format!("{} part {number}", self.what())))?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag().map(str::to_owned))
                .build(),
        );
        self.store.bytes_out.fetch_add(len, Ordering::Relaxed);
        Ok(())
    }
}

impl SpeechWriter for SpeechUpload {
    fn write(&mut self, samples: &[i16]) -> Result<(), Failure> {
        self.samples += samples.len() as u64;
        let mut rest = samples;
        // Fill the first part (kept until the end), then stream the following parts.
        if self.first.len() < PART_SIZE {
            let room = (PART_SIZE - self.first.len()) / 2;
            let n = room.min(rest.len());
            wav::extend_pcm(&mut self.first, &rest[..n]);
            rest = &rest[n..];
        }
        while !rest.is_empty() {
            let room = (PART_SIZE - self.current.len()).div_ceil(2);
            let n = room.min(rest.len());
            wav::extend_pcm(&mut self.current, &rest[..n]);
            rest = &rest[n..];
            if self.current.len() >= PART_SIZE {
                let number = self.parts.len() as i32 + 2;
                let part = std::mem::replace(&mut self.current, Vec::with_capacity(PART_SIZE + 2));
                self.upload_part(number, part)?;
            }
        }
        Ok(())
    }
}

impl SpeechOutput for SpeechUpload {
    fn finish(mut self: Box<Self>) -> Result<(), Failure> {
        let header = wav::header(self.rate, self.samples);
        self.first[..wav::HEADER_LEN].copy_from_slice(&header);
        if self.upload_id.is_none() && self.current.is_empty() {
            let first = std::mem::take(&mut self.first);
            let key = self.key.clone();
            return self.store.put_bytes(&key, "audio/wav", first);
        }
        if !self.current.is_empty() {
            let number = self.parts.len() as i32 + 2;
            let last = std::mem::take(&mut self.current);
            self.upload_part(number, last)?;
        }
        let first = std::mem::take(&mut self.first);
        self.upload_part(1, first)?;
        let id = self.upload_id()?;
        let mut parts = std::mem::take(&mut self.parts);
        parts.sort_by_key(|p| p.part_number());
        let what = self.what();
        self.store
            .handle
            .block_on(
                self.store
                    .client
                    .complete_multipart_upload()
                    .bucket(&self.store.bucket)
                    .key(&self.key)
                    .upload_id(id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(parts))
                            .build(),
                    )
                    .send(),
            )
            .map_err(|e| classify(&e, &what))?;
        Ok(())
    }

    fn abort(self: Box<Self>) {
        if let Some(id) = &self.upload_id {
            let res = self.store.handle.block_on(
                self.store
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.store.bucket)
                    .key(&self.key)
                    .upload_id(id)
                    .send(),
            );
            if let Err(e) = res {
                tracing::debug!(key = %self.key, error = %e, "abort multipart upload");
            }
        }
    }
}
