//! The in-memory store, for tests: outputs kept in a map, in the order they were completed.

use super::{ResultStore, SpeechOutput};
use crate::audio::pipeline::SpeechWriter;
use crate::audio::wav;
use std::sync::{Arc, Mutex};
use vadflow_common::{Failure, Reason};

/// Completed outputs: (name, bytes), in completion order.
type Completed = Vec<(String, Vec<u8>)>;

/// Completed outputs, by name, in completion order; shared with the speech writer.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    outputs: Arc<Mutex<Completed>>,
}

impl MemoryStore {
    /// The names of the completed outputs, in the order they were completed.
    pub fn names(&self) -> Vec<String> {
        self.lock().iter().map(|(n, _)| n.clone()).collect()
    }

    /// The bytes of output `name`, if it was completed.
    pub fn get(&self, name: &str) -> Option<Vec<u8>> {
        self.lock()
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Completed> {
        // A panicking writer cannot leave the list half-updated: push is the only mutation.
        self.outputs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn complete(&self, name: &str, bytes: Vec<u8>) {
        let mut outputs = self.lock();
        outputs.retain(|(n, _)| n != name);
        outputs.push((name.to_owned(), bytes));
    }
}

impl ResultStore for MemoryStore {
    fn put(
        &mut self,
        name: &str,
        _content_type: &'static str,
        bytes: Vec<u8>,
    ) -> Result<(), Failure> {
        self.complete(name, bytes);
        Ok(())
    }

    fn speech(&mut self, rate: u32) -> Result<Box<dyn SpeechOutput>, Failure> {
        Ok(Box::new(MemorySpeech {
            store: self.clone(),
            rate,
            pcm: Vec::new(),
        }))
    }
}

struct MemorySpeech {
    store: MemoryStore,
    rate: u32,
    pcm: Vec<u8>,
}

impl SpeechWriter for MemorySpeech {
    fn write(&mut self, samples: &[i16]) -> Result<(), Failure> {
        wav::extend_pcm(&mut self.pcm, samples);
        Ok(())
    }
}

impl SpeechOutput for MemorySpeech {
    fn finish(self: Box<Self>) -> Result<(), Failure> {
        let samples = u64::try_from(self.pcm.len() / 2)
            .map_err(|_| Failure::new(Reason::Internal, "speech.wav too long"))?;
        let mut bytes = wav::header(self.rate, samples).to_vec();
        bytes.extend_from_slice(&self.pcm);
        self.store.complete(crate::audio::render::SPEECH_WAV, bytes);
        Ok(())
    }

    fn abort(self: Box<Self>) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::pipeline::Params;
    use crate::audio::render::{Outputs, SEGMENTS_JSON, SPEECH_WAV};
    use std::io::Cursor;

    /// A second of silence, then a second of a loud tone, then silence: one segment.
    fn wav() -> Vec<u8> {
        let mut pcm = Vec::new();
        let samples: Vec<i16> = (0..48_000)
            .map(|i| {
                if (16_000..32_000).contains(&i) {
                    ((i as f32 * 0.25).sin() * 12_000.0) as i16
                } else {
                    0
                }
            })
            .collect();
        wav::extend_pcm(&mut pcm, &samples);
        let mut bytes = wav::header(16_000, samples.len() as u64).to_vec();
        bytes.extend_from_slice(&pcm);
        bytes
    }

    #[test]
    fn outputs_reach_the_store_with_segments_json_last() {
        let mut store = MemoryStore::default();
        let outputs = Outputs::default();
        let analysis = crate::outputs::process(
            Box::new(Cursor::new(wav())),
            Some("wav"),
            "mem://tone.wav",
            &Params::default(),
            &outputs,
            None,
            &mut store,
        )
        .expect("processes");
        let names = store.names();
        assert_eq!(
            names.last().map(String::as_str),
            Some(SEGMENTS_JSON),
            "{names:?}"
        );
        assert!(names.iter().any(|n| n == SPEECH_WAV), "{names:?}");
        let speech = store.get(SPEECH_WAV).expect("speech.wav");
        assert_eq!(&speech[..4], b"RIFF");
        let doc: serde_json::Value =
            serde_json::from_slice(&store.get(SEGMENTS_JSON).expect("json")).expect("JSON");
        assert_eq!(
            doc["segments"].as_array().map(Vec::len),
            Some(analysis.segments.len())
        );
    }
}
