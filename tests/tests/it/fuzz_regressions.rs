//! Inputs kept from fuzzing (`fuzz/regressions/<target>/`), replayed through the same entry points
//! as the fuzz targets: message parsing and the decoder front end. Each must end in a value or a
//! typed error, without a panic. The seed inputs are the bad-input cases, so this test never runs
//! empty.

use std::path::Path;
use std::time::Duration;
use vadflow_common::{Job, ResultEvent};
use vadflow_worker::audio::Limits;
use vadflow_worker::audio::pipeline::{Params, Sinks, analyze};

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().is_file())
                .filter(|e| e.file_name() != "README.md")
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        std::fs::read(e.path()).expect("read regression input"),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn message_parsing_regressions() {
    let mut cases = inputs("wire");
    cases.push(("empty".into(), Vec::new()));
    cases.push((
        "huge array header".into(),
        vec![0xdd, 0xff, 0xff, 0xff, 0xff],
    ));
    cases.push(("huge map header".into(), vec![0xdf, 0xff, 0xff, 0xff, 0xff]));
    cases.push(("huge str".into(), vec![0xdb, 0xff, 0xff, 0xff, 0xff, b'a']));
    for (name, bytes) in &cases {
        let job = Job::decode(bytes);
        let event = ResultEvent::decode(bytes);
        assert!(
            job.is_err() || job.as_ref().is_ok_and(|j| j.validate().is_ok()),
            "{name}: a decoded job is valid"
        );
        let _ = event;
    }
}

#[test]
fn decoder_front_end_regressions() {
    let mut cases = inputs("decode");
    cases.extend(
        vadflow_tests::poison::cases()
            .into_iter()
            .map(|p| (p.file.to_owned(), p.bytes)),
    );
    assert!(!cases.is_empty());
    let params = Params {
        limits: Limits {
            max_input_bytes: 1 << 20,
            max_duration: Duration::from_secs(600),
            max_channels: 8,
        },
        ..Params::default()
    };
    for (name, bytes) in &cases {
        // As the fuzz target reads it: the first byte picks the hint and the source.
        if let Some(Err(f)) = vadflow_worker::audio::fuzzing::decode_input(bytes) {
            assert!(
                !f.message.is_empty(),
                "{name} (as fuzzed): the error says why"
            );
        }
    }
    for (name, bytes) in cases {
        for ext in [
            None,
            Some("wav"),
            Some("flac"),
            Some("mp3"),
            Some("ogg"),
            Some("opus"),
        ] {
            let source = Box::new(std::io::Cursor::new(bytes.clone()));
            let result = analyze(source, ext, &params, None, Sinks::default());
            if let Err(f) = &result {
                assert!(
                    !f.message.is_empty(),
                    "{name} ({ext:?}): the error says why"
                );
            }
        }
    }
}
