//! `worker report`: the page of a local-mode run, rendered by headless Chromium (Debian's,
//! installed by tests/setup-chromium.sh when missing): its counts match the manifest, every
//! sampled file has its timeline with its segments, waveform and labels, the failure is listed
//! by reason, and it renders to a screenshot.

use std::path::{Path, PathBuf};
use std::process::Command;
use vadflow_tests::audio::{SENTENCES, compose};
use vadflow_tests::bin;

fn chromium() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("setup-chromium.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .expect("run tests/setup-chromium.sh");
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Headless Chromium with the flags a closed, root, GPU-less machine needs.
fn headless(chromium: &Path, profile: &Path) -> Command {
    let mut c = Command::new(chromium);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

/// The value of `attr="..."` in `tag`.
fn attr<'a>(tag: &'a str, attr: &str) -> &'a str {
    let at = tag.find(&format!("{attr}=\"")).expect("attribute") + attr.len() + 2;
    &tag[at..at + tag[at..].find('"').expect("closing quote")]
}

#[test]
fn the_report_renders_what_the_run_found() {
    let root = std::env::temp_dir().join(format!("vadflow-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (input, out) = (root.join("in"), root.join("out"));
    std::fs::create_dir_all(&input).expect("mkdir");
    let mut labels = serde_json::Map::new();
    for i in 0..3 {
        let speech = compose(&SENTENCES[i * 2..i * 2 + 2], &[0.6, 0.8, 0.5]);
        let name = format!("talk{i}.wav");
        std::fs::write(input.join(&name), speech.wav()).expect("write");
        labels.insert(
            name,
            serde_json::json!({"duration": speech.duration(), "speech": speech.truth}),
        );
    }
    std::fs::write(input.join("broken.wav"), b"RIFF\x10\x00\x00\x00WAVEjunk").expect("write");
    let labels_path = root.join("labels.json");
    std::fs::write(
        &labels_path,
        serde_json::to_vec(&serde_json::json!({"files": labels})).expect("json"),
    )
    .expect("write");
    let status = Command::new(bin("worker"))
        .args(["vad", "--no-progress", "--out"])
        .arg(&out)
        .arg(&input)
        .status()
        .expect("worker vad");
    assert_eq!(status.code(), Some(1), "one file fails");
    let page = root.join("report.html");
    let o = Command::new(bin("worker"))
        .args(["report", "--labels"])
        .arg(&labels_path)
        .arg("--out")
        .arg(&page)
        .arg(&out)
        .output()
        .expect("worker report");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let chromium = chromium();
    let dom = headless(&chromium, &root.join("profile"))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium --dump-dom");
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();

    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.join("vadflow-manifest.json")).expect("manifest"),
    )
    .expect("json");
    let files = manifest["files"].as_object().expect("files");
    let count = |id: &str| -> usize {
        let at = dom.find(&format!("id=\"{id}\">")).expect(id) + id.len() + 6;
        dom[at..at + dom[at..].find('<').expect("<")]
            .parse()
            .expect("number")
    };
    assert_eq!(count("n-files"), files.len());
    assert_eq!(count("n-done"), 3);
    assert_eq!(count("n-failed"), 1);
    let segments: u64 = files.values().filter_map(|f| f["segments"].as_u64()).sum();
    assert_eq!(count("n-segments") as u64, segments);
    assert!(dom.contains("invalid-audio"), "the failure by its reason");

    let sections: Vec<&str> = dom.split("<section ").skip(1).collect();
    assert_eq!(sections.len(), 3, "a timeline per done file");
    for s in &sections {
        let tag = &s[..s.find('>').expect(">")];
        let file = attr(tag, "data-file");
        let n: u64 = attr(tag, "data-segments").parse().expect("number");
        assert_eq!(Some(n), files[file]["segments"].as_u64(), "{file}");
        assert_eq!(
            s.matches("class=\"seg\"").count() as u64,
            n,
            "{file}: its segments"
        );
        assert_eq!(
            s.matches("class=\"label\"").count(),
            2,
            "{file}: its labels"
        );
        assert!(s.contains("class=\"wave\""), "{file}: its waveform");
    }
    for id in ["hist-ratio", "hist-duration", "hist-segments"] {
        assert!(dom.contains(&format!("id=\"{id}\"")), "{id}");
    }

    let png = root.join("report.png");
    let shot = headless(&chromium, &root.join("profile"))
        .arg("--window-size=1040,1200")
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium --screenshot");
    assert!(shot.status.success());
    let bytes = std::fs::read(&png).expect("screenshot");
    assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
    assert!(
        bytes.len() > 20_000,
        "more than a blank page: {} bytes",
        bytes.len()
    );
    let _ = std::fs::remove_dir_all(root);
}

/// A folder that is no `worker vad` output, or labels that are not a labels.json: a clear
/// error naming them, and no page.
#[test]
fn bad_inputs_are_named() {
    let root = std::env::temp_dir().join(format!("vadflow-report-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("empty")).expect("mkdir");
    let page = root.join("page.html");
    let o = Command::new(bin("worker"))
        .args(["report", "--out"])
        .arg(&page)
        .arg(root.join("empty"))
        .output()
        .expect("worker report");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("empty") && err.contains("vadflow-manifest.json"),
        "{err}"
    );
    assert!(!page.exists());

    std::fs::write(
        root.join("empty/vadflow-manifest.json"),
        br#"{"version":1,"files":{"a.wav":{"status":"failed","reason":"invalid-audio"}}}"#,
    )
    .expect("write");
    std::fs::write(root.join("labels.json"), b"[not labels]").expect("write");
    let o = Command::new(bin("worker"))
        .args(["report", "--labels"])
        .arg(root.join("labels.json"))
        .arg("--out")
        .arg(&page)
        .arg(root.join("empty"))
        .output()
        .expect("worker report");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("labels.json"), "{err}");
    assert!(!page.exists());
    let _ = std::fs::remove_dir_all(root);
}
