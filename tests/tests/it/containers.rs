//! Real containers through the real S3 path: an M4A with its index (`moov`) after the media data,
//! as ffmpeg writes it by default, and Opus in WebM, as browsers record it, streamed from the S3
//! server like every object. Each ends `done` with the segments of the WAV it was made from.

use vadflow_tests::audio::{SENTENCES, compose};
use vadflow_tests::eval::{median, segment_match};
use vadflow_tests::{TestCtx, segments_of, transcode};

/// Byte offsets of the top-level `moov` and `mdat` boxes.
fn top_level(mp4: &[u8]) -> (usize, usize) {
    let (mut at, mut moov, mut mdat) = (0, usize::MAX, usize::MAX);
    while at + 8 <= mp4.len() {
        let size = u32::from_be_bytes(mp4[at..at + 4].try_into().expect("4 bytes")) as usize;
        match &mp4[at + 4..at + 8] {
            b"moov" => moov = at,
            b"mdat" => mdat = at,
            _ => {}
        }
        if size < 8 {
            break;
        }
        at += size;
    }
    (moov, mdat)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mp4_with_index_at_the_end_and_webm_stream_from_s3() {
    let ctx = TestCtx::new("containers").await;
    let speech = compose(&SENTENCES[0..4], &[0.8, 1.2, 0.7, 1.0, 0.6]);
    let wav = speech.wav();
    let m4a = transcode(&wav, &["-ar", "44100", "-ac", "2", "-c:a", "aac"], "m4a");
    let (moov, mdat) = top_level(&m4a);
    assert!(mdat < moov && moov != usize::MAX, "moov after mdat");
    let webm = transcode(&wav, &["-ar", "48000", "-c:a", "libopus"], "webm");
    let files = [("a.wav", wav), ("a.m4a", m4a), ("a.webm", webm)];
    let docs = ctx.process_files(&files).await;
    let mut found = Vec::new();
    for ((name, _), doc) in files.iter().zip(&docs) {
        assert!(
            (doc["duration"].as_f64().expect("duration") - speech.duration()).abs() < 0.03,
            "{name}: duration {} vs {}",
            doc["duration"],
            speech.duration()
        );
        found.push(segments_of(doc));
    }
    for (i, (name, _)) in files.iter().enumerate().skip(1) {
        let (c, mut errors) = segment_match(&found[0], &found[i]);
        assert!(
            c.f1() >= 0.99,
            "{name}: F1 {} ({:?} vs {:?})",
            c.f1(),
            found[i],
            found[0]
        );
        // Within one 30 ms frame each, 10 ms at the median.
        assert!(
            errors.iter().all(|e| *e <= 0.0301),
            "{name}: boundaries {errors:?}"
        );
        assert!(
            median(&mut errors) <= 0.010,
            "{name}: boundaries {errors:?}"
        );
    }
    assert!(!found[0].is_empty());
    ctx.cleanup().await;
}
