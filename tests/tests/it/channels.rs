//! Channels (`--channels`): a 2-channel call, one party per channel and silence on the other
//! while that party talks, is analysed channel by channel with `separate` and with `auto`, each
//! channel's segments where its speech was placed; a stereo copy of mono gives with `auto` the
//! segments of `mix`. The outputs name each segment's channel.

use vadflow_tests::audio::{SENTENCES, compose, wav_bytes};
use vadflow_tests::eval::segment_match;
use vadflow_worker::audio::channels::{ChannelChoice, ChannelMode};
use vadflow_worker::audio::pipeline::{Analysis, Params, Sinks, analyze};
use vadflow_worker::audio::render;

fn run(wav: &[u8], mode: ChannelMode) -> Analysis {
    let params = Params {
        channels: ChannelChoice {
            mode,
            ..ChannelChoice::default()
        },
        ..Params::default()
    };
    analyze(
        Box::new(std::io::Cursor::new(wav.to_vec())),
        Some("wav"),
        &params,
        None,
        Sinks::default(),
    )
    .expect("analysed")
}

fn seconds(a: &Analysis, channel: Option<u16>) -> Vec<(f64, f64)> {
    let r = f64::from(a.sample_rate);
    a.segments
        .iter()
        .filter(|s| s.channel == channel)
        .map(|s| (s.start as f64 / r, s.end as f64 / r))
        .collect()
}

fn interleave(left: &[i16], right: &[i16]) -> Vec<i16> {
    left.iter().zip(right).flat_map(|(&l, &r)| [l, r]).collect()
}

#[test]
fn a_call_is_analysed_channel_by_channel() {
    let a = compose(&SENTENCES[0..3], &[0.8, 1.0, 0.9, 0.6]);
    let b = compose(&SENTENCES[3..6], &[0.7, 0.8, 1.1, 0.9]);
    // Caller first, then the callee; each channel silent while the other party talks.
    let (na, nb) = (a.samples.len(), b.samples.len());
    let mut left = a.samples.clone();
    left.resize(na + nb, 0);
    let mut right = vec![0i16; na];
    right.extend_from_slice(&b.samples);
    let call = wav_bytes(a.rate, 2, &interleave(&left, &right));
    let shift = na as f64 / f64::from(a.rate);
    let truth_b: Vec<(f64, f64)> = b
        .truth
        .iter()
        .map(|(s, e)| (s + shift, e + shift))
        .collect();

    for mode in [ChannelMode::Separate, ChannelMode::Auto] {
        let got = run(&call, mode);
        assert!(got.separate_channels, "{mode:?}: analysed separately");
        assert!(
            seconds(&got, None).is_empty(),
            "{mode:?}: every segment has a channel"
        );
        for (channel, truth) in [(1, &a.truth), (2, &truth_b)] {
            let found = seconds(&got, Some(channel));
            let (c, _) = segment_match(truth, &found);
            assert!(
                c.f1() >= 0.95,
                "{mode:?}, channel {channel}: F1 {:.3}: {found:?} vs {truth:?}",
                c.f1()
            );
        }
        let rttm =
            String::from_utf8(render::segments_rttm("s3://b/call.wav", &got)).expect("utf-8");
        assert!(
            rttm.lines().any(|l| l.starts_with("SPEAKER call 2 ")),
            "{rttm}"
        );
        let manifest = String::from_utf8(render::manifest_jsonl("call.wav", &got)).expect("utf-8");
        assert!(manifest.contains("\"channel\":2"), "{manifest}");
        let doc: serde_json::Value =
            serde_json::from_slice(&render::segments_json("call.wav", &got, &Params::default()))
                .expect("json");
        assert_eq!(doc["channels"][1]["channel"], 2);
        assert_eq!(
            doc["channels"][1]["segment_count"].as_u64(),
            Some(seconds(&got, Some(2)).len() as u64)
        );
        assert_eq!(doc["segments"][0]["channel"], 1);
    }
    // Mixed, the call is one signal, as before: no channel anywhere.
    let mixed = run(&call, ChannelMode::Mix);
    assert!(!mixed.separate_channels && mixed.segments.iter().all(|s| s.channel.is_none()));
    let doc: serde_json::Value = serde_json::from_slice(&render::segments_json(
        "call.wav",
        &mixed,
        &Params::default(),
    ))
    .expect("json");
    assert!(doc.get("channels").is_none() && doc["segments"][0].get("channel").is_none());
}

#[test]
fn auto_mixes_a_stereo_copy_of_mono() {
    let a = compose(&SENTENCES[1..4], &[0.6, 1.2, 0.8, 0.5]);
    let copy = wav_bytes(a.rate, 2, &interleave(&a.samples, &a.samples));
    let auto = run(&copy, ChannelMode::Auto);
    let mix = run(&copy, ChannelMode::Mix);
    assert!(!auto.separate_channels);
    assert_eq!(auto.segments, mix.segments);
    assert!(!mix.segments.is_empty());
    // `separate` on the same file finds the same speech twice, once per channel.
    let separate = run(&copy, ChannelMode::Separate);
    assert_eq!(separate.segments.len(), 2 * mix.segments.len());
}
