//! Labelled speech for vadflow's tests, demo and benchmarks: espeak-ng sentences composed with
//! known silences (`audio`), the evaluation corpus in every condition and format (`corpus`), and
//! the quality measures (`eval`). Apart from the test crate, so that the demo and the evaluation
//! tool do not depend on it.

pub mod audio;
pub mod corpus;
/// The quality measures, from the worker (which tunes with them).
pub use vadflow_worker::eval;

/// Speech intervals of a `segments.json` document.
pub fn segments_of(doc: &serde_json::Value) -> Vec<(f64, f64)> {
    doc["segments"]
        .as_array()
        .expect("segments array")
        .iter()
        .map(|s| {
            (
                s["start"].as_f64().expect("start"),
                s["end"].as_f64().expect("end"),
            )
        })
        .collect()
}
