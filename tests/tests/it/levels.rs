//! Scores on every segment (`segments.json`): on speech with white noise added at a known
//! level, the measured SNR follows the noise (10 dB more noise, about 10 dB less SNR); clipped
//! audio shows its clipping and clean audio none; the figures are the same on every run.

use vadflow_tests::audio::{SENTENCES, compose, wav_bytes};
use vadflow_worker::audio::pipeline::{Analysis, Params, Sinks, analyze};
use vadflow_worker::audio::render;
use vadflow_worker::audio::vad::EngineKind;

fn run(samples: &[i16], rate: u32, params: &Params) -> Analysis {
    analyze(
        Box::new(std::io::Cursor::new(wav_bytes(rate, 1, samples))),
        Some("wav"),
        params,
        None,
        Sinks {
            levels: true,
            ..Default::default()
        },
    )
    .expect("analysed")
}

/// `speech` with white noise whose RMS is `snr_db` below the speech's RMS over its sentences.
fn with_noise(speech: &[i16], truth: &[(f64, f64)], rate: u32, snr_db: f64) -> Vec<i16> {
    let mut power = 0.0;
    let mut n = 0usize;
    for &(s, e) in truth {
        for &x in &speech[(s * f64::from(rate)) as usize..(e * f64::from(rate)) as usize] {
            power += f64::from(x) * f64::from(x);
            n += 1;
        }
    }
    let noise_rms = (power / n as f64).sqrt() / 10f64.powf(snr_db / 20.0);
    let mut rng = vadflow_tests::corpus::Rng::new(7);
    speech
        .iter()
        .map(|&x| (f64::from(x) + rng.gauss() * noise_rms).clamp(-32768.0, 32767.0) as i16)
        .collect()
}

fn silero() -> Params {
    Params::for_engine(EngineKind::Silero)
}

#[test]
fn snr_follows_the_noise_and_clipping_shows() {
    let speech = compose(&SENTENCES[0..4], &[0.8, 0.7, 0.9, 0.6, 0.8]);
    let params = silero();
    let snr = |db: f64| {
        let a = run(
            &with_noise(&speech.samples, &speech.truth, speech.rate, db),
            speech.rate,
            &params,
        );
        assert!(!a.segments.is_empty());
        assert_eq!(a.segment_scores.len(), a.segments.len());
        let file = a.levels.expect("levels").snr_db.expect("file SNR");
        let segs: Vec<f64> = a
            .segment_scores
            .iter()
            .map(|s| s.snr_db.expect("noise around every segment"))
            .collect();
        (file, segs)
    };
    let (file20, segs20) = snr(20.0);
    let (file10, segs10) = snr(10.0);
    assert!((12.0..30.0).contains(&file20), "20 dB: {file20}");
    let drop = file20 - file10;
    assert!(
        (7.0..13.0).contains(&drop),
        "10 dB more noise: {drop} dB less SNR"
    );
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let seg_drop = mean(&segs20) - mean(&segs10);
    assert!((7.0..13.0).contains(&seg_drop), "per segment: {seg_drop}");

    // Clean: no clipping, high SNR against digital silence; 8x louder with saturation: clipped.
    let clean = run(&speech.samples, speech.rate, &params);
    assert!(clean.segment_scores.iter().all(|s| s.clipped == 0.0));
    let loud: Vec<i16> = speech
        .samples
        .iter()
        .map(|&x| (i32::from(x) * 8).clamp(-32768, 32767) as i16)
        .collect();
    let loud = run(&loud, speech.rate, &params);
    let clipped = loud.levels.expect("levels").clipped;
    assert!(clipped > 0.005, "saturated audio: {clipped}");
    assert!(loud.segment_scores.iter().any(|s| s.clipped > 0.01));
    assert!(loud.segment_scores.iter().all(|s| s.peak_dbfs > -1.0));
    for s in &clean.segment_scores {
        assert!(s.score_min <= s.score_mean && s.score_mean <= 1.0, "{s:?}");
        assert!(s.score_mean > 0.5, "Silero is sure of clean speech: {s:?}");
    }

    // The same bytes every run.
    let doc = |a: &Analysis| render::segments_json("x.wav", a, &params);
    let again = run(&speech.samples, speech.rate, &params);
    assert_eq!(doc(&clean), doc(&again));
    let v: serde_json::Value = serde_json::from_slice(&doc(&clean)).expect("json");
    for field in [
        "score_mean",
        "score_min",
        "rms_dbfs",
        "peak_dbfs",
        "clipped",
        "snr_db",
    ] {
        assert!(v["segments"][0].get(field).is_some(), "segments[].{field}");
    }
    for field in [
        "rms_dbfs",
        "peak_dbfs",
        "clipped",
        "score_mean",
        "speech_dbfs",
        "noise_dbfs",
        "snr_db",
    ] {
        assert!(v["levels"].get(field).is_some(), "levels.{field}");
    }
}
