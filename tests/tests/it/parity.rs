//! On 16 kHz mono PCM, vadflow's per-frame WebRTC decisions are identical to the reference
//! py-webrtcvad's (PyPI `webrtcvad-wheels`, set up by bench/setup-venv.sh), for
//! every mode.

use std::path::{Path, PathBuf};
use std::process::Command;
use vadflow_tests::corpus;
use vadflow_worker::audio::pipeline::{Params, Sinks, analyze};

fn reference_python() -> PathBuf {
    if let Ok(p) = std::env::var("VADFLOW_REFERENCE_PYTHON") {
        return PathBuf::from(p);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/setup-venv.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .expect("run bench/setup-venv.sh");
    assert!(
        out.status.success(),
        "setting up the reference failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[test]
fn per_frame_decisions_match_py_webrtcvad_in_every_mode() {
    let dir = std::env::temp_dir().join(format!("vadflow-parity-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    corpus::generate(&dir, 3, 5, false).expect("corpus");
    let files: Vec<PathBuf> = ["clean", "white-10", "pink-5"]
        .iter()
        .flat_map(|c| (1..=3).map(move |i| format!("{c}/c{i:03}.wav")))
        .map(|f| dir.join(f))
        .collect();
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/reference/webrtcvad_example.py");
    let out = Command::new(reference_python())
        .arg(&script)
        .args(["--modes", "0,1,2,3"])
        .args(&files)
        .output()
        .expect("run the reference");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut compared = 0;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        let path = PathBuf::from(v["file"].as_str().expect("file"));
        let mode = v["mode"].as_u64().expect("mode") as u8;
        let theirs: Vec<f32> = v["decisions"]
            .as_array()
            .expect("decisions")
            .iter()
            .map(|d| d.as_f64().unwrap_or(-1.0) as f32)
            .collect();
        let mut params = Params::default();
        params.vad.mode = Some(mode);
        let mut ours = Vec::new();
        analyze(
            Box::new(std::fs::File::open(&path).expect("open")),
            Some("wav"),
            &params,
            None,
            Sinks {
                scores: Some(&mut ours),
                ..Default::default()
            },
        )
        .expect("analyze");
        // example.py drops a last frame that ends exactly at the end of the file.
        assert!(
            ours.len() == theirs.len() || ours.len() == theirs.len() + 1,
            "{}: frame counts",
            path.display()
        );
        let diff = ours.iter().zip(&theirs).position(|(a, b)| a != b);
        assert_eq!(
            diff,
            None,
            "{} mode {mode}: first differing frame",
            path.display()
        );
        if path.to_string_lossy().contains("clean") {
            // Real content: both speech and silence frames are compared.
            assert!(
                theirs.contains(&1.0) && theirs.contains(&0.0),
                "{}",
                path.display()
            );
        }
        compared += 1;
    }
    assert_eq!(compared, files.len() * 4, "every file in every mode");
    let _ = std::fs::remove_dir_all(&dir);
}
