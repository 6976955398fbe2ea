//! `worker tune`: from the score tracks of a run over labelled recordings, settings whose frame
//! F1 is at least the defaults', written as a profile that local mode, the distributed worker
//! and `resegment` accept (`--profile`); labels as labels.json or as RTTM files; a profile for
//! another engine is refused, naming the file.

use std::path::Path;
use std::process::Command;
use vadflow_tests::audio::{SENTENCES, compose};
use vadflow_tests::bin;

fn worker(args: &[&str], paths: &[&Path]) -> std::process::Output {
    Command::new(bin("worker"))
        .args(args)
        .args(paths)
        .output()
        .expect("worker")
}

#[test]
fn tuned_profiles_improve_on_the_defaults_and_are_accepted_everywhere() {
    let root = std::env::temp_dir().join(format!("vadflow-tune-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let input = root.join("in");
    std::fs::create_dir_all(&input).expect("mkdir");
    // Labels that count the pauses inside a turn as speech, as people mark them: the defaults
    // split at those pauses, longer minimum silences join them.
    let mut labels = serde_json::Map::new();
    let mut rttm = String::new();
    for i in 0..4 {
        let speech = compose(
            &SENTENCES[i * 2..i * 2 + 2],
            &[0.6, 0.45 + 0.1 * i as f64, 0.7],
        );
        let name = format!("turn{i}.wav");
        std::fs::write(input.join(&name), speech.wav()).expect("write");
        let turn = (speech.truth[0].0, speech.truth[1].1);
        labels.insert(
            name,
            serde_json::json!({"set": "turns", "duration": speech.duration(), "speech": [turn]}),
        );
        rttm.push_str(&format!(
            "SPEAKER turn{i} 1 {:.3} {:.3} <NA> <NA> A <NA> <NA>\n",
            turn.0,
            turn.1 - turn.0
        ));
    }
    let labels_json = root.join("labels.json");
    std::fs::write(
        &labels_json,
        serde_json::to_vec(&serde_json::json!({"files": labels})).expect("json"),
    )
    .expect("write");
    let rttm_dir = root.join("rttm");
    std::fs::create_dir_all(&rttm_dir).expect("mkdir");
    std::fs::write(rttm_dir.join("all.rttm"), rttm).expect("write");

    let stored = root.join("stored");
    let out = worker(
        &[
            "vad",
            "--no-progress",
            "--outputs",
            "segments.json,scores.bin",
            "--out",
        ],
        &[&stored, &input],
    );
    assert!(out.status.success());
    let profile = root.join("profile.json");
    for labels in [&labels_json, &rttm_dir] {
        let out = worker(
            &["tune", "--labels"],
            &[labels, Path::new("--out"), &profile, &stored],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("tune: 4 files"), "{stdout}");
        let p: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&profile).expect("profile")).expect("json");
        let (before, after) = (
            p["tuned"]["defaults"]["f1"].as_f64().expect("f1"),
            p["tuned"]["tuned"]["f1"].as_f64().expect("f1"),
        );
        assert!(
            after > before,
            "tuning gains on these labels: {before} -> {after}"
        );
        assert!(after > 95.0, "{after}");
        assert_eq!(p["engine"], "webrtc");
    }

    // Local mode with the profile: the profile's settings, and its segments join each turn.
    let tuned = root.join("tuned");
    let out = worker(
        &["vad", "--no-progress", "--profile"],
        &[&profile, Path::new("--out"), &tuned, &input],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&profile).expect("profile")).expect("json");
    let doc: serde_json::Value = serde_json::from_slice(
        &std::fs::read(tuned.join("turn0.wav/segments.json")).expect("segments.json"),
    )
    .expect("json");
    for k in [
        "min_silence",
        "pad_start",
        "pad_end",
        "smoothing",
        "trigger",
    ] {
        assert_eq!(
            doc["parameters"][k].as_f64(),
            p["segmentation"][k].as_f64(),
            "{k}"
        );
    }
    assert_eq!(doc["segments"].as_array().map(Vec::len), Some(1), "{doc}");
    // resegment takes it too, and agrees with the full run.
    let reseg = root.join("reseg");
    let out = worker(
        &["resegment", "--profile"],
        &[&profile, Path::new("--out"), &reseg, &stored],
    );
    assert!(out.status.success());
    let resegmented: serde_json::Value = serde_json::from_slice(
        &std::fs::read(reseg.join("turn0.wav/segments.json")).expect("resegmented"),
    )
    .expect("json");
    assert_eq!(resegmented["parameters"], doc["parameters"]);
    let spans = |d: &serde_json::Value| vadflow_tests::segments_of(d);
    assert_eq!(spans(&resegmented), spans(&doc));
    // The distributed worker: `worker run --profile` resolves the same settings.
    let run = vadflow_worker::cli::parse([
        "worker",
        "run",
        "--amqp-url",
        "amqp://guest:guest@127.0.0.1:5672/%2f",
        "--results-bucket",
        "results",
        "--profile",
        profile.to_str().expect("utf8"),
    ]);
    let Ok(vadflow_worker::cli::Command::Run(args)) = run else {
        panic!("worker run --profile parses: {run:?}");
    };
    let (params, _) = args.analysis.resolve().expect("resolves");
    assert_eq!(
        params.segment.min_silence.as_secs_f64(),
        p["segmentation"]["min_silence"]
            .as_f64()
            .expect("min_silence")
    );
    // Another engine's profile is refused, naming the file.
    let out = worker(
        &["vad", "--no-progress", "--engine", "silero", "--profile"],
        &[&profile, Path::new("--out"), &root.join("x"), &input],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("profile.json") && err.contains("webrtc"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(root);
}
