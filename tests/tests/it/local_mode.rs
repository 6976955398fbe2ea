//! Local mode (`worker vad`): the same outputs as the distributed worker, resumable after
//! `kill -9`, skipping what is done.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use vadflow_tests::audio::{SENTENCES, compose};
use vadflow_tests::bin;

fn make_inputs(dir: &std::path::Path, n: usize) {
    std::fs::create_dir_all(dir.join("nested/deeper")).expect("mkdir");
    for i in 0..n {
        let speech = compose(&[SENTENCES[i % SENTENCES.len()]], &[0.4, 0.4]);
        let sub = if i % 3 == 0 {
            "nested/deeper"
        } else if i % 3 == 1 {
            "nested"
        } else {
            ""
        };
        std::fs::write(dir.join(sub).join(format!("f{i:02}.wav")), speech.wav()).expect("write");
    }
    std::fs::write(dir.join("nested/readme.txt"), "not audio").expect("write");
}

fn manifest(out: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(out.join("vadflow-manifest.json")).expect("manifest exists"),
    )
    .expect("manifest is valid JSON")
}

#[test]
fn survives_kill_9_and_resumes_without_redoing_work() {
    let root = std::env::temp_dir().join(format!("vadflow-local-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (input, out) = (root.join("in"), root.join("out"));
    let n = 24;
    make_inputs(&input, n);

    // Start, wait until at least 4 files are recorded, then kill -9.
    let mut child = Command::new(bin("worker"))
        .args(["vad", "-j", "2", "--no-progress", "--out"])
        .arg(&out)
        .arg(&input)
        .env("RUST_LOG", "vadflow_worker=debug")
        .env("LOG_FORMAT", "json")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start worker vad");
    let stderr = BufReader::new(child.stderr.take().expect("stderr"));
    for line in stderr.lines() {
        let line = line.expect("log line");
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
            && v["recorded"].as_u64().is_some_and(|r| r >= 4)
        {
            break;
        }
    }
    child.kill().expect("kill -9");
    child.wait().expect("reaped");

    // The manifest is intact, and every file it records has complete outputs.
    let m = manifest(&out);
    let recorded: Vec<String> = m["files"]
        .as_object()
        .expect("files")
        .keys()
        .cloned()
        .collect();
    assert!(
        recorded.len() >= 4 && recorded.len() < n,
        "recorded {}",
        recorded.len()
    );
    for rel in &recorded {
        assert_eq!(m["files"][rel]["status"], "done");
        assert!(
            out.join(rel).join("segments.json").exists(),
            "{rel}: outputs missing"
        );
    }

    // A rerun processes only the rest.
    let rerun = Command::new(bin("worker"))
        .args(["vad", "-j", "2", "--no-progress", "--out"])
        .arg(&out)
        .arg(&input)
        .output()
        .expect("rerun");
    assert!(
        rerun.status.success(),
        "{}",
        String::from_utf8_lossy(&rerun.stderr)
    );
    let summary = String::from_utf8_lossy(&rerun.stdout);
    let expected = format!(
        "files={n} done={} failed=0 already_done={}",
        n - recorded.len(),
        recorded.len()
    );
    assert!(
        summary.contains(&expected),
        "{summary} (expected {expected})"
    );

    let m = manifest(&out);
    let files = m["files"].as_object().expect("files");
    assert_eq!(files.len(), n);
    assert!(
        files
            .values()
            .all(|e| e["status"] == "done" && e["segments"] == 1)
    );
    // Same layout and outputs as the distributed worker, under the relative path.
    for name in [
        "segments.json",
        "segments.rttm",
        "manifest.jsonl",
        "speech.wav",
    ] {
        assert!(
            out.join("nested/deeper/f00.wav").join(name).exists(),
            "{name}"
        );
    }
    // No temporary files are left behind.
    let leftovers: Vec<_> = walk(&out)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".part"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A third run has nothing to do.
    let again = Command::new(bin("worker"))
        .args(["vad", "--no-progress", "--out"])
        .arg(&out)
        .arg(&input)
        .output()
        .expect("third run");
    assert!(
        String::from_utf8_lossy(&again.stdout)
            .contains(&format!("done=0 failed=0 already_done={n}"))
    );
    let _ = std::fs::remove_dir_all(&root);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
