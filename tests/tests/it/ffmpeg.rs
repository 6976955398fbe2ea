//! What the native decoders do not read goes through ffmpeg (`--decoder auto`, the default),
//! through the real S3 path: a WAV with GSM 6.10 or G.722 (as call recorders write), WMA, an MP4
//! with a video track and Speex in Ogg. Without ffmpeg on the PATH, the GSM file is dead-lettered with `unsupported-codec`
//! and an error that names ffmpeg.

use vadflow_tests::audio::{SENTENCES, compose};
use vadflow_tests::eval::segment_match;
use vadflow_tests::{TestCtx, segments_of, transcode};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn formats_beyond_the_native_decoders_go_through_ffmpeg() {
    let ctx = TestCtx::new("ffmpeg").await;
    let speech = compose(&SENTENCES[1..4], &[0.9, 1.1, 0.8, 0.7]);
    let wav = speech.wav();
    let video = {
        let dir = std::env::temp_dir().join(format!("vadflow-video-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("a.wav"), &wav).expect("wav");
        let ok = std::process::Command::new("ffmpeg")
            .args(["-loglevel", "error", "-y", "-f", "lavfi", "-i"])
            .arg("testsrc=size=160x120:rate=10")
            .arg("-i")
            .arg(dir.join("a.wav"))
            .args(["-shortest", "-c:v", "libx264", "-c:a", "aac"])
            .arg(dir.join("v.mp4"))
            .status()
            .expect("ffmpeg");
        assert!(ok.success(), "ffmpeg video");
        let bytes = std::fs::read(dir.join("v.mp4")).expect("read");
        let _ = std::fs::remove_dir_all(&dir);
        bytes
    };
    let files = [
        ("a.wav", wav.clone()),
        (
            "gsm.wav",
            transcode(&wav, &["-ar", "8000", "-c:a", "gsm_ms"], "wav"),
        ),
        (
            "a.wma",
            transcode(&wav, &["-ar", "44100", "-ac", "2", "-c:a", "wmav2"], "wma"),
        ),
        ("video.mp4", video),
        // An Ogg stream of Speex: refused by the native Ogg reader, decoded by ffmpeg.
        (
            "voice.spx",
            transcode(
                &wav,
                &["-ar", "16000", "-c:a", "libspeex", "-f", "ogg"],
                "spx",
            ),
        ),
        (
            "g722.wav",
            transcode(&wav, &["-ar", "16000", "-c:a", "g722"], "wav"),
        ),
    ];
    let docs = ctx.process_files(&files).await;
    let found: Vec<_> = files
        .iter()
        .zip(&docs)
        .map(|((name, _), doc)| (name, doc["source"]["codec"].clone(), segments_of(doc)))
        .collect();
    assert_eq!(found[1].1, "ffmpeg:gsm_ms");
    assert_eq!(found[2].1, "ffmpeg:wmav2");
    assert_eq!(found[4].1, "ffmpeg:speex");
    assert_eq!(found[5].1, "ffmpeg:adpcm_g722");
    for (name, codec, segments) in &found[1..] {
        let (c, _) = segment_match(&found[0].2, segments);
        assert!(
            c.f1() >= 0.95,
            "{name} ({codec}): F1 {}: {segments:?} vs {:?}",
            c.f1(),
            found[0].2
        );
    }
    ctx.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_ffmpeg_a_gsm_wav_is_dead_lettered_naming_ffmpeg() {
    let ctx = TestCtx::new("noffmpeg").await;
    let wav = compose(&SENTENCES[0..1], &[0.5, 0.5]).wav();
    let key = format!("{}call.wav", ctx.prefix);
    ctx.put(
        &key,
        transcode(&wav, &["-ar", "8000", "-c:a", "gsm_ms"], "wav"),
    )
    .await;
    ctx.insert_file(&key, chrono::Utc::now() - chrono::Duration::hours(1))
        .await;
    assert_eq!(
        ctx.enqueue("yesterday", "now", None, false).await.published,
        1
    );
    // A worker process whose PATH holds no ffmpeg.
    let mut worker = ctx
        .command("worker")
        .env("PATH", "/nonexistent-vadflow-path")
        .spawn()
        .expect("spawn worker");
    let collector = ctx.spawn_collector();
    let rows = ctx
        .wait_files("the GSM file failed", |rows| {
            rows.iter().all(|r| r.status == "failed")
        })
        .await;
    assert_eq!(rows[0].last_reason.as_deref(), Some("unsupported-codec"));
    let error = rows[0].last_error.as_deref().unwrap_or_default();
    assert!(error.contains("ffmpeg"), "{error}");
    let (code, out, err) = ctx.producer(&["dlq", "list", "--json"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("unsupported-codec") && out.contains("call.wav"),
        "{out}"
    );
    vadflow_tests::signal(&worker, "-TERM");
    let _ = worker.wait().await;
    collector.stop().await.expect("collector stops cleanly");
    ctx.cleanup().await;
}

/// With ffmpeg as the fallback, every bad input keeps the reason it has without it: a codec the
/// native decoders do not support stays `unsupported-codec` when ffmpeg cannot decode it either.
#[test]
fn bad_inputs_keep_their_reasons_with_ffmpeg() {
    use vadflow_worker::audio::decoder::{DecoderChoice, DecoderMode};
    use vadflow_worker::audio::pipeline::{Params, Sinks, analyze};
    let program = vadflow_worker::audio::ffmpeg::locate(None)
        .expect("lookup")
        .expect("ffmpeg on the PATH (deploy/local/up.sh installs it)");
    let params = Params {
        decoder: DecoderChoice {
            mode: DecoderMode::Auto,
            ffmpeg: Some(Box::leak(program.into_boxed_path())),
            ..DecoderChoice::default()
        },
        ..Params::default()
    };
    for case in vadflow_tests::poison::cases() {
        let ext = case.file.rsplit_once('.').map(|(_, e)| e.to_owned());
        let got = analyze(
            Box::new(std::io::Cursor::new(case.bytes.clone())),
            ext.as_deref(),
            &params,
            None,
            Sinks::default(),
        );
        let reason = got.as_ref().err().map(|f| f.reason.as_str());
        assert_eq!(
            reason,
            Some(case.reason),
            "{} ({}): {got:?}",
            case.name,
            case.file
        );
    }
}
