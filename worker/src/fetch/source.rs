//! **fetch** side of the audio engine: byte sources for the decoder.
//!
//! [`channel`] connects an async producer of byte chunks (the S3 response body) to the blocking
//! decoder through a bounded channel, so a job holds at most `capacity` chunks in memory however
//! long the object is. Failures of the producer (network, limits) are recorded in a
//! [`SourceStatus`], so the pipeline reports the real cause rather than "invalid audio".

use bytes::Bytes;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::{Arc, Mutex};
use symphonia::core::io::MediaSource;
use tokio::sync::mpsc;
use vadflow_common::{Failure, Reason};

/// The first failure of the byte source, if any.
#[derive(Debug, Default)]
pub struct SourceStatus {
    failure: Mutex<Option<Failure>>,
    bytes: Mutex<u64>,
}

impl SourceStatus {
    pub fn fail(&self, f: Failure) {
        if let Ok(mut slot) = self.failure.lock()
            && slot.is_none()
        {
            *slot = Some(f);
        }
    }

    pub fn failure(&self) -> Option<Failure> {
        self.failure.lock().ok().and_then(|s| s.clone())
    }

    /// Bytes delivered to the decoder so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes.lock().map(|b| *b).unwrap_or_default()
    }

    fn add_bytes(&self, n: u64) -> u64 {
        match self.bytes.lock() {
            Ok(mut b) => {
                *b += n;
                *b
            }
            Err(_) => u64::MAX,
        }
    }
}

/// Sending half: the async fetcher pushes chunks (or a failure) here.
pub type ChunkSender = mpsc::Sender<Result<Bytes, Failure>>;

/// A bounded channel of byte chunks, read as a blocking, unseekable [`MediaSource`].
pub fn channel(capacity: usize, max_bytes: u64) -> (ChunkSender, ChannelSource, Arc<SourceStatus>) {
    let (tx, rx) = mpsc::channel(capacity);
    let status = Arc::new(SourceStatus::default());
    let source = ChannelSource {
        rx,
        current: Bytes::new(),
        status: status.clone(),
        max_bytes,
    };
    (tx, source, status)
}

/// The reading half of [`channel`].
#[derive(Debug)]
pub struct ChannelSource {
    rx: mpsc::Receiver<Result<Bytes, Failure>>,
    current: Bytes,
    status: Arc<SourceStatus>,
    max_bytes: u64,
}

impl Read for ChannelSource {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(f)) => {
                    let msg = f.to_string();
                    self.status.fail(f);
                    return Err(io::Error::other(msg));
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        if self.status.add_bytes(n as u64) > self.max_bytes {
            let f = Failure::new(
                Reason::LimitExceeded,
                format!("input is larger than the limit of {} bytes", self.max_bytes),
            );
            let msg = f.to_string();
            self.status.fail(f);
            return Err(io::Error::other(msg));
        }
        Ok(n)
    }
}

impl Seek for ChannelSource {
    fn seek(&mut self, _: SeekFrom) -> io::Result<u64> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "stream is not seekable",
        ))
    }
}

impl MediaSource for ChannelSource {
    fn is_seekable(&self) -> bool {
        false
    }
    fn byte_len(&self) -> Option<u64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_chunks_in_order_then_eof() {
        let (tx, mut src, status) = channel(4, 1 << 20);
        tx.try_send(Ok(Bytes::from_static(b"hello ")))
            .expect("room");
        tx.try_send(Ok(Bytes::from_static(b"world"))).expect("room");
        drop(tx);
        let mut s = String::new();
        src.read_to_string(&mut s).expect("read");
        assert_eq!(s, "hello world");
        assert_eq!(status.bytes_read(), 11);
        assert!(status.failure().is_none());
    }

    #[test]
    fn producer_failure_is_recorded_with_its_reason() {
        let (tx, mut src, status) = channel(4, 1 << 20);
        tx.try_send(Err(Failure::new(Reason::StorageUnavailable, "reset")))
            .expect("room");
        let mut buf = [0u8; 8];
        assert!(src.read(&mut buf).is_err());
        assert_eq!(
            status.failure().map(|f| f.reason),
            Some(Reason::StorageUnavailable)
        );
    }

    #[test]
    fn byte_limit_is_enforced() {
        let (tx, mut src, status) = channel(4, 10);
        tx.try_send(Ok(Bytes::from(vec![0u8; 64]))).expect("room");
        drop(tx);
        let mut out = Vec::new();
        assert!(src.read_to_end(&mut out).is_err());
        assert_eq!(
            status.failure().map(|f| f.reason),
            Some(Reason::LimitExceeded)
        );
    }
}
