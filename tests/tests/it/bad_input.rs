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

/// Replaces the first `kind` box/chunk/element id found after `from` with `with` (same length).
fn rename(bytes: &mut [u8], kind: &[u8], with: &[u8]) -> bool {
    match bytes.windows(kind.len()).position(|w| w == kind) {
        Some(at) => {
            bytes[at..at + with.len()].copy_from_slice(with);
            true
        }
        None => false,
    }
}

/// Sets the 32-bit big-endian size in front of the first `kind` (MP4 boxes; AIFF and CAF chunks
/// carry theirs after the id, `after` says which).
fn set_size(bytes: &mut [u8], kind: &[u8], size: &[u8], after: bool) {
    let at = bytes
        .windows(kind.len())
        .position(|w| w == kind)
        .expect("the box is there");
    let pos = if after {
        at + kind.len()
    } else {
        at - size.len()
    };
    bytes[pos..pos + size.len()].copy_from_slice(size);
}

/// Every new container, broken the ways real uploads break: truncated, empty, a size larger
/// than the file, a huge declared number of tracks, the codec configuration missing. Each ends
/// failed with a reason and an error naming the file, or (where the container has no length to
/// check a truncation against) done with the audio that is there. Never a panic or a hang.
#[test]
fn broken_containers_fail_cleanly_with_their_reason() {
    let d = dir("containers");
    let wav = d.join("src.wav");
    let speech = compose(&SENTENCES[0..3], &[0.5, 1.0, 1.0, 0.5]);
    std::fs::write(&wav, speech.wav()).expect("write");
    let make = |ext: &str, args: &[&str]| {
        let out = d.join(format!("good.{ext}"));
        encode(&wav, args, &out);
        std::fs::read(&out).expect("read")
    };
    let m4a = make("m4a", &["-c:a", "aac"]);
    let webm = make("webm", &["-c:a", "libopus"]);
    let mkv = make("mkv", &["-c:a", "flac"]);
    let aiff = make("aiff", &[]);
    let caf = make("caf", &[]);
    let adts = make("aac", &["-c:a", "aac"]);

    let mut cases: Vec<(&str, String, Vec<u8>, &[&str])> = Vec::new();
    let fail: &[&str] = &["invalid-audio"];
    for (ext, good) in [
        ("m4a", &m4a),
        ("webm", &webm),
        ("mkv", &mkv),
        ("aiff", &aiff),
        ("caf", &caf),
        ("aac", &adts),
    ] {
        cases.push(("zero-length", format!("empty.{ext}"), Vec::new(), fail));
        // ADTS has no header beyond each frame's: 100 bytes hold a few (silent) frames.
        let stub: &[&str] = if ext == "aac" { &["done"] } else { fail };
        cases.push((
            "first 100 bytes",
            format!("stub.{ext}"),
            good[..100].to_vec(),
            stub,
        ));
    }
    // Truncated where the container declares its length.
    for (ext, good) in [("m4a", &m4a), ("aiff", &aiff), ("caf", &caf)] {
        cases.push((
            "truncated",
            format!("cut.{ext}"),
            good[..good.len() / 2].to_vec(),
            fail,
        ));
    }
    // Sizes larger than the file.
    let mut b = m4a.clone();
    set_size(&mut b, b"moov", &u32::MAX.to_be_bytes(), false);
    cases.push(("moov larger than the file", "bigbox.m4a".into(), b, fail));
    let mut b = aiff.clone();
    set_size(&mut b, b"SSND", &0x7fff_fff0u32.to_be_bytes(), true);
    cases.push((
        "SSND chunk larger than the file",
        "bigchunk.aiff".into(),
        b,
        fail,
    ));
    let mut b = caf.clone();
    set_size(
        &mut b,
        b"data",
        &[0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0],
        true,
    );
    cases.push((
        "data chunk larger than the file",
        "bigchunk.caf".into(),
        b,
        fail,
    ));
    let mut b = mkv.clone();
    // The Segment element (0x18538067) declares an 8-byte size: make it absurd.
    set_size(
        &mut b,
        &[0x18, 0x53, 0x80, 0x67],
        &[0x01, 0x0f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0],
        true,
    );
    cases.push((
        "Segment larger than the file",
        "bigsegment.mkv".into(),
        b,
        &["invalid-audio", "done"],
    ));
    // A huge number of tracks: 5,000 empty `trak` boxes in the index.
    let mut b = m4a.clone();
    let moov = b.windows(4).position(|w| w == b"moov").expect("moov") - 4;
    let traks: Vec<u8> = (0..5000)
        .flat_map(|_| [0, 0, 0, 8, b't', b'r', b'a', b'k'])
        .collect();
    let size = u32::from_be_bytes(b[moov..moov + 4].try_into().expect("4")) + traks.len() as u32;
    b[moov..moov + 4].copy_from_slice(&size.to_be_bytes());
    b.splice(moov + 8..moov + 8, traks);
    cases.push(("5,000 tracks", "tracks.m4a".into(), b, fail));
    // The codec configuration missing: MP4's esds, Matroska's CodecPrivate (the OpusHead).
    let mut b = m4a.clone();
    assert!(rename(&mut b, b"esds", b"free"));
    cases.push((
        "no esds",
        "noconfig.m4a".into(),
        b,
        &["invalid-audio", "unsupported-codec"],
    ));
    let mut b = webm.clone();
    assert!(rename(&mut b, b"OpusHead", b"NotAHead"));
    cases.push(("no OpusHead", "noconfig.webm".into(), b, fail));

    for (name, file, bytes, reasons) in cases {
        let path = d.join(&file);
        std::fs::write(&path, &bytes).expect("write");
        let entry = analyse(&path, &d.join("out").join(&file), Params::default());
        println!(
            "{file:>18} {name:<32} {} {:?} {:?}",
            entry.status, entry.reason, entry.error
        );
        if entry.status == "done" {
            assert!(
                reasons.contains(&"done"),
                "{name} ({file}): done: {entry:?}"
            );
            continue;
        }
        let reason = entry.reason.as_deref().unwrap_or_default();
        assert!(reasons.contains(&reason), "{name} ({file}): {entry:?}");
        assert_failed(&entry, reason, &file, name);
    }
}
