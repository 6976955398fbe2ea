//! **store**: where a file's outputs go, behind one trait, with its implementations side by side:
//! S3 objects for the worker ([`s3`]), files in a directory for local mode ([`local`]), memory
//! for tests ([`memory`]). A new backend is a new file here.
//!
//! The contract, for every implementation: each `put` stores a whole output under `name`
//! atomically (a reader sees all of it or none of it); writing the same name again replaces it
//! with identical bytes (outputs are deterministic, so a redelivered job rewrites them
//! harmlessly); an error is a classified [`Failure`] naming the output. `speech.wav` streams: it
//! becomes visible only when [`SpeechOutput::finish`] succeeds, and [`SpeechOutput::abort`]
//! leaves nothing behind. The caller writes `segments.json` last, so its presence marks a
//! complete result set.

use crate::audio::pipeline::SpeechWriter;
use vadflow_common::Failure;

pub mod local;
pub mod memory;
pub mod s3;

pub use local::DirStore;
pub use memory::MemoryStore;
pub use s3::S3Store;

/// Where the outputs of one file go (blocking interface).
pub trait ResultStore {
    /// Stores a whole output, e.g. `segments.json` or `clips/000001.wav`.
    fn put(
        &mut self,
        name: &str,
        content_type: &'static str,
        bytes: Vec<u8>,
    ) -> Result<(), Failure>;
    /// Stores several whole outputs; a store may write them concurrently.
    fn put_all(&mut self, outputs: Vec<Output>) -> Result<(), Failure> {
        for (name, content_type, bytes) in outputs {
            self.put(name, content_type, bytes)?;
        }
        Ok(())
    }
    /// Starts `speech.wav`, streamed as 16-bit mono PCM at `rate`.
    fn speech(&mut self, rate: u32) -> Result<Box<dyn SpeechOutput>, Failure>;
}

/// A whole output: name, content type, bytes.
pub type Output = (&'static str, &'static str, Vec<u8>);

/// A speech-only WAV being written; the header is completed by [`SpeechOutput::finish`].
pub trait SpeechOutput: SpeechWriter + Send {
    fn finish(self: Box<Self>) -> Result<(), Failure>;
    fn abort(self: Box<Self>);
}
