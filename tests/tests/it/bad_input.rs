//! Bad input gets a clear error naming the file and the reason: never a panic that escapes,
//! never a hang, never an allocation sized by a header. Runs the same code path as both modes
//! (`local::analyse_file` → `outputs::process` → the pipeline).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;
use vadflow_tests::audio::{SENTENCES, compose};
use vadflow_tests::poison;
use vadflow_worker::audio::pipeline::Params;
use vadflow_worker::audio::render::Outputs;
use vadflow_worker::local::{Entry, analyse_file};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vadflow-bad-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("mkdir");
    d
}

/// Analyses `path` on its own thread and fails the test if it takes more than 30 s.
fn analyse(path: &Path, out: &Path, params: Params) -> Entry {
    let (tx, rx) = mpsc::channel();
    let (path, out) = (path.to_path_buf(), out.to_path_buf());
    std::thread::spawn(move || {
        let _ = tx.send(analyse_file(&path, &out, &params, &Outputs::default()));
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("no hang: finished within 30 s")
}

fn assert_failed(entry: &Entry, reason: &str, file: &str, case: &str) {
    assert_eq!(entry.status, "failed", "{case}: {entry:?}");
    assert_eq!(entry.reason.as_deref(), Some(reason), "{case}: {entry:?}");
    let err = entry.error.as_deref().unwrap_or_default();
    assert!(
        err.contains(file),
        "{case}: the error names the file: {err}"
    );
}

#[test]
fn each_bad_input_fails_cleanly_with_its_reason() {
    let d = dir("cases");
    for case in poison::cases() {
        let path = d.join(case.file);
        std::fs::write(&path, &case.bytes).expect("write");
        let entry = analyse(&path, &d.join("out").join(case.file), Params::default());
        assert_failed(&entry, case.reason, case.file, case.name);
    }
}

fn encode(wav: &Path, args: &[&str], out: &Path) {
    let ok = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-i"])
        .arg(wav)
        .args(args)
        .arg(out)
        .status()
        .expect("ffmpeg");
    assert!(ok.success());
}

#[test]
fn truncated_compressed_files_are_reported_as_truncated() {
    let d = dir("truncated");
    let wav = d.join("src.wav");
    std::fs::write(&wav, compose(&SENTENCES[0..3], &[0.5, 1.0, 1.0, 0.5]).wav()).expect("write");
    for (ext, args) in [
        ("flac", &["-c:a", "flac"][..]),
        ("mp3", &["-c:a", "libmp3lame", "-b:a", "64k"][..]),
    ] {
        let full = d.join(format!("full.{ext}"));
        encode(&wav, args, &full);
        let bytes = std::fs::read(&full).expect("read");
        let cut = d.join(format!("cut.{ext}"));
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
        let entry = analyse(&cut, &d.join(format!("out-{ext}")), Params::default());
        assert_failed(&entry, "invalid-audio", &format!("cut.{ext}"), ext);
        assert!(
            entry
                .error
                .as_deref()
                .unwrap_or_default()
                .contains("truncated"),
            "{entry:?}"
        );
    }
}

#[test]
fn unsupported_codecs_are_named() {
    let d = dir("codec");
    let wav = d.join("src.wav");
    std::fs::write(&wav, compose(&SENTENCES[0..1], &[0.2, 0.2]).wav()).expect("write");
    // Speex in Ogg: a real container with a codec vadflow does not decode.
    let spx = d.join("voice.spx");
    let ok = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-i"])
        .arg(&wav)
        .args(["-ar", "16000", "-c:a", "libspeex", "-f", "ogg"])
        .arg(&spx)
        .status()
        .expect("ffmpeg");
    assert!(ok.success(), "ffmpeg with libspeex");
    let entry = analyse(&spx, &d.join("out"), Params::default());
    assert_failed(&entry, "unsupported-codec", "voice.spx", "speex in ogg");
    // Multichannel Opus (mapping family 1) is refused with a clear message.
    let surround = d.join("surround.opus");
    encode(
        &wav,
        &[
            "-af",
            "pan=5.1|FL=c0|FR=c0|FC=c0|LFE=c0|BL=c0|BR=c0",
            "-c:a",
            "libopus",
            "-mapping_family",
            "1",
        ],
        &surround,
    );
    let entry = analyse(&surround, &d.join("out2"), Params::default());
    assert_failed(
        &entry,
        "unsupported-codec",
        "surround.opus",
        "6-channel opus",
    );
}

#[test]
fn configured_limits_are_enforced() {
    let d = dir("limits");
    let speech = compose(&SENTENCES[0..2], &[0.5, 0.5, 0.5]);
    let path = d.join("speech.wav");
    std::fs::write(&path, speech.wav()).expect("write");
    let stereo = d.join("stereo.wav");
    encode(&path, &["-ac", "2"], &stereo);

    let mut params = Params::default();
    params.limits.max_input_bytes = 1000;
    assert_failed(
        &analyse(&path, &d.join("o1"), params),
        "limit-exceeded",
        "speech.wav",
        "max bytes",
    );

    let mut params = Params::default();
    params.limits.max_duration = Duration::from_secs(2);
    let e = analyse(&path, &d.join("o2"), params);
    assert_failed(&e, "limit-exceeded", "speech.wav", "max duration");
    assert!(
        e.error
            .as_deref()
            .unwrap_or_default()
            .contains("longer than"),
        "{e:?}"
    );

    let mut params = Params::default();
    params.limits.max_channels = 1;
    let e = analyse(&stereo, &d.join("o3"), params);
    assert_failed(&e, "limit-exceeded", "stereo.wav", "max channels");

    // And within the limits the same files are fine.
    assert_eq!(
        analyse(&stereo, &d.join("o4"), Params::default()).status,
        "done"
    );
}
