//! Training shards (`--outputs ...,shards`): the segments' clips and metadata as WebDataset
//! tar shards, from local mode and from the distributed worker, read back by the `webdataset`
//! Python package unchanged (PyPI, set up by bench/setup-venv.sh --wds in a venv of its own).

use std::path::{Path, PathBuf};
use std::process::Command;
use vadflow_tests::audio::{SENTENCES, compose};
use vadflow_tests::{BUCKET, TestCtx, bin};

fn webdataset_python() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/setup-venv.sh");
    let venv = std::env::var("HOME").map_or_else(
        |_| std::env::temp_dir().join("vadflow-wds-venv"),
        |h| PathBuf::from(h).join(".cache/vadflow/wds-venv"),
    );
    let out = Command::new("bash")
        .arg(&script)
        .arg("--wds")
        .env("VADFLOW_BENCH_VENV", &venv)
        .output()
        .expect("run bench/setup-venv.sh --wds");
    assert!(
        out.status.success(),
        "setting up webdataset failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// What `webdataset` reads from the shards: per sample its key, its JSON and the WAV's length.
const READ: &str = r#"
import io, json, sys, wave
import webdataset as wds
out = []
for s in wds.WebDataset(sys.argv[1:], shardshuffle=False).decode():
    with wave.open(io.BytesIO(s["wav"])) as w:
        frames, rate = w.getnframes(), w.getframerate()
    out.append({"key": s["__key__"], "meta": s["json"], "frames": frames, "rate": rate})
print(json.dumps(out))
"#;

fn read(python: &Path, shards: &[PathBuf]) -> Vec<serde_json::Value> {
    let out = Command::new(python)
        .args(["-c", READ])
        .args(shards)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "webdataset could not read the shards: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).expect("json")
}

/// The names in a tar archive, read from its headers.
fn tar_entries(tar: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let mut at = 0;
    while at + 512 <= tar.len() && tar[at] != 0 {
        let h = &tar[at..at + 512];
        let name = String::from_utf8_lossy(&h[..100])
            .trim_end_matches('\0')
            .to_owned();
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&h[124..135]).trim_matches(['\0', ' ']),
            8,
        )
        .expect("octal size");
        names.push(name);
        at += 512 + size.div_ceil(512) * 512;
    }
    names
}

fn shard_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("shards")
        .map(|e| e.expect("entry").path())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webdataset_reads_the_shards_of_both_modes() {
    let python = webdataset_python();
    let ctx = TestCtx::new("shards").await;
    let root = std::env::temp_dir().join(format!("vadflow-shards-{}", ctx.id));
    let (input, out) = (root.join("in"), root.join("out"));
    std::fs::create_dir_all(&input).expect("mkdir");
    let speech = compose(&SENTENCES[0..6], &[0.5, 0.6, 0.7, 0.6, 0.8, 0.6, 0.5]);
    std::fs::write(input.join("talk.wav"), speech.wav()).expect("write");

    // Local mode, small shards: several, every segment once, in order.
    let status = Command::new(bin("worker"))
        .args(["vad", "--no-progress", "--outputs", "segments.json,shards"])
        .args(["--shard-max-bytes", "200000", "--out"])
        .arg(&out)
        .arg(&input)
        .status()
        .expect("worker vad");
    assert!(status.success());
    let dir = out.join("talk.wav/shards");
    let files = shard_files(&dir);
    assert!(files.len() >= 2, "{files:?}");
    for f in &files {
        let len = std::fs::metadata(f).expect("shard").len();
        let entries = tar_entries(&std::fs::read(f).expect("shard"));
        assert!(
            entries.len().is_multiple_of(2),
            "a .json and a .wav per sample: {entries:?}"
        );
        assert!(
            len <= 200_000 || entries.len() == 2,
            "{f:?}: {len} bytes over the limit with {} samples",
            entries.len() / 2
        );
    }
    assert!(
        files
            .iter()
            .any(|f| tar_entries(&std::fs::read(f).expect("shard")).len() > 2),
        "some shard holds several samples"
    );
    let samples = read(&python, &files);
    let doc: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.join("talk.wav/segments.json")).expect("segments.json"),
    )
    .expect("json");
    let segments = doc["segments"].as_array().expect("segments");
    assert_eq!(samples.len(), segments.len());
    for (i, (s, seg)) in samples.iter().zip(segments).enumerate() {
        assert_eq!(s["key"], format!("talk_wav_{:06}", i + 1));
        let meta = &s["meta"];
        assert_eq!(meta["segment"], i + 1);
        assert_eq!(meta["start"], seg["start"]);
        assert_eq!(meta["end"], seg["end"]);
        assert_eq!(meta["rms_dbfs"], seg["rms_dbfs"], "the segment's scores");
        assert_eq!(meta["sample_rate"], 16_000);
        assert_eq!(s["rate"], 16_000);
        let secs = s["frames"].as_f64().expect("frames") / 16_000.0;
        let want = seg["end"].as_f64().expect("end") - seg["start"].as_f64().expect("start");
        assert!(
            (secs - want).abs() < 0.002,
            "clip {i}: {secs} s vs {want} s"
        );
    }

    // The distributed worker writes the same shards to S3.
    let key = format!("{}talk.wav", ctx.prefix);
    ctx.put(&key, speech.wav()).await;
    ctx.insert_file(&key, chrono::Utc::now() - chrono::Duration::hours(1))
        .await;
    ctx.enqueue("yesterday", "now", None, false).await;
    let mut args = ctx.worker_args();
    args.analysis.outputs = "segments.json,shards".into();
    args.analysis.shard_max_bytes = 200_000;
    let worker = ctx.spawn_worker(args).await;
    let collector = ctx.spawn_collector();
    ctx.wait_files("done", |rows| rows.iter().all(|r| r.status == "done"))
        .await;
    let prefix = format!("{}{BUCKET}/{key}/", ctx.results_prefix);
    let remote = root.join("remote");
    std::fs::create_dir_all(&remote).expect("mkdir");
    let mut remote_files = Vec::new();
    while let Some(bytes) = ctx
        .get(&format!("{prefix}shards/{:06}.tar", remote_files.len()))
        .await
    {
        let f = remote.join(format!("{:06}.tar", remote_files.len()));
        std::fs::write(&f, &bytes).expect("write");
        remote_files.push(f);
    }
    worker.stop().await.expect("worker stops");
    collector.stop().await.expect("collector stops");
    assert_eq!(remote_files.len(), files.len());
    // The same samples; each names its own source.
    let from_s3 = read(&python, &remote_files);
    assert_eq!(from_s3.len(), samples.len());
    for (r, l) in from_s3.iter().zip(&samples) {
        assert_eq!(r["meta"]["source"], format!("s3://{BUCKET}/{key}"));
        let strip = |v: &serde_json::Value| {
            let mut v = v.clone();
            v["meta"]["source"] = serde_json::Value::Null;
            v
        };
        assert_eq!(strip(r), strip(l));
    }
    let _ = std::fs::remove_dir_all(root);
    ctx.cleanup().await;
}
