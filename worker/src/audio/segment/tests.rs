//! The segmenter's rules, one by one, on hand-made score patterns.

use super::*;

const RATE: u32 = 1000; // 1 sample = 1 ms, frame = 10 ms: easy arithmetic
const FRAME: usize = 10;

fn params() -> SegmentParams {
    SegmentParams {
        threshold: 0.5,
        neg_threshold: 0.5,
        smoothing: Duration::ZERO,
        trigger: 0.9,
        pad_start: Duration::ZERO,
        pad_end: Duration::ZERO,
        min_speech: Duration::ZERO,
        min_silence: Duration::from_millis(100),
        max_segment: Duration::from_secs(100),
        silero_pauses: false,
        lookback: Duration::ZERO,
    }
}

/// Runs a pattern where each char is one frame: '#' speech, '.' silence.
fn run(p: &SegmentParams, pattern: &str) -> Vec<(u64, u64)> {
    let mut s = Segmenter::new(p, RATE, FRAME);
    let mut out = Vec::new();
    for c in pattern.chars() {
        s.push(if c == '#' { 1.0 } else { 0.0 });
        out.extend(s.take_ready().map(|g| (g.start, g.end)));
    }
    s.finish(pattern.len() as u64 * FRAME as u64);
    out.extend(s.take_ready().map(|g| (g.start, g.end)));
    out
}

#[test]
fn short_pauses_merge_and_long_ones_split() {
    let p = params();
    // pause of 50 ms merges, pause of 150 ms splits
    assert_eq!(
        run(&p, "###.....###...............##"),
        vec![(0, 110), (260, 280)]
    );
    assert_eq!(run(&p, "..##.....####"), vec![(20, 130)]);
}

#[test]
fn min_speech_drops_blips() {
    let p = SegmentParams {
        min_speech: Duration::from_millis(30),
        ..params()
    };
    assert_eq!(
        run(&p, "#..............####............."),
        vec![(150, 190)]
    );
}

#[test]
fn padding_is_clamped_to_neighbours_and_the_end() {
    let p = SegmentParams {
        pad_start: Duration::from_millis(30),
        pad_end: Duration::from_millis(30),
        ..params()
    };
    assert_eq!(run(&p, "..###..............###"), vec![(0, 80), (160, 220)]);
}

#[test]
fn long_segments_split_at_the_longest_pause() {
    let p = SegmentParams {
        max_segment: Duration::from_millis(100),
        ..params()
    };
    // 30 speech, 20 pause, 20 speech, 40 pause (the longest), 30 speech, ...
    let segs = run(&p, "###..##....#########..###");
    assert_eq!(segs[0], (0, 70));
    assert!(segs.iter().all(|(s, e)| e - s <= 100), "{segs:?}");
    assert_eq!(segs[1].0, 110);
}

#[test]
fn continuous_speech_is_cut_at_the_limit() {
    let p = SegmentParams {
        max_segment: Duration::from_millis(100),
        ..params()
    };
    let segs = run(&p, &"#".repeat(35));
    assert_eq!(segs, vec![(0, 100), (100, 200), (200, 300), (300, 350)]);
}

#[test]
fn hysteresis_keeps_speech_above_the_negative_threshold() {
    let p = SegmentParams {
        threshold: 0.5,
        neg_threshold: 0.3,
        ..params()
    };
    let mut s = Segmenter::new(&p, RATE, FRAME);
    for score in [
        0.4, 0.6, 0.4, 0.35, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2,
    ] {
        s.push(score);
    }
    s.finish(140);
    let segs: Vec<_> = s.take_ready().collect();
    assert_eq!(
        segs,
        vec![Segment {
            start: 10,
            end: 40,
            channel: None
        }]
    );
}

#[test]
fn the_trigger_window_ignores_noise_blips_and_trims_to_voiced_frames() {
    let p = SegmentParams {
        smoothing: Duration::from_millis(50),
        trigger: 0.5,
        ..params()
    };
    // Blips of one or two voiced frames in five never start speech; a dense run does, from
    // its first voiced frame, and ends at its last voiced frame.
    let segs = run(&p, "#....#....##.........###.####..............");
    assert_eq!(segs, vec![(210, 290)]);
}

#[test]
fn silero_pauses_end_speech_one_frame_later_and_only_below_the_negative_threshold() {
    let base = SegmentParams {
        min_silence: Duration::from_millis(30),
        neg_threshold: 0.35,
        ..params()
    };
    let silero = SegmentParams {
        silero_pauses: true,
        ..base
    };
    let segs = |p: &SegmentParams, scores: &[f32]| {
        let mut s = Segmenter::new(p, RATE, FRAME);
        for &x in scores {
            s.push(x);
        }
        s.finish(scores.len() as u64 * FRAME as u64);
        s.take_ready().map(|g| (g.start, g.end)).collect::<Vec<_>>()
    };
    // A pause of three frames (30 ms) ends speech by default, not by silero-vad's measure.
    let three = [1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0];
    assert_eq!(segs(&base, &three), vec![(0, 20), (50, 70)]);
    assert_eq!(segs(&silero, &three), vec![(0, 70)]);
    // Four silent frames end it for both...
    let four = [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0];
    assert_eq!(segs(&silero, &four), vec![(0, 20), (60, 70)]);
    // ...unless the fourth is between the thresholds: only a frame below neg_threshold ends
    // speech in silero-vad.
    let grey = [1.0, 1.0, 0.0, 0.0, 0.0, 0.4, 1.0];
    assert_eq!(segs(&silero, &grey), vec![(0, 70)]);
    assert_eq!(segs(&base, &grey), vec![(0, 20), (60, 70)]);
}

#[test]
fn state_stays_bounded_and_earliest_needed_advances() {
    let p = SegmentParams::default();
    let mut s = Segmenter::new(&p, 16_000, 480);
    for i in 0..100_000u64 {
        s.push(if (i / 50) % 2 == 0 { 1.0 } else { 0.0 });
        let _ = s.take_ready().count();
        assert!(
            s.pos - s.earliest_needed() <= 16_000 * 32,
            "needs too much history"
        );
    }
}

/// The segments of `scores` (one per 10 ms frame), the stream ending at `total` samples.
fn scored(p: &SegmentParams, scores: &[f32], total: u64) -> Vec<(u64, u64)> {
    let mut s = Segmenter::new(p, RATE, FRAME);
    let mut out = Vec::new();
    for &x in scores {
        s.push(x);
        out.extend(s.take_ready().map(|g| (g.start, g.end)));
    }
    s.finish(total);
    out.extend(s.take_ready().map(|g| (g.start, g.end)));
    out
}

#[test]
fn speech_open_at_the_end_of_the_audio_runs_to_its_end_under_silero_rules() {
    let webrtc = SegmentParams {
        pad_end: Duration::from_millis(30),
        ..params()
    };
    let silero = SegmentParams {
        silero_pauses: true,
        neg_threshold: 0.35,
        ..webrtc
    };
    // Speech to the last frame; the audio runs 67 ms past the last whole frame.
    let scores = [0.0, 1.0, 1.0, 1.0, 1.0];
    assert_eq!(scored(&webrtc, &scores, 117), vec![(10, 80)]);
    assert_eq!(scored(&silero, &scores, 117), vec![(10, 117)]);
    // So does speech in a pause shorter than the minimum silence when the audio ends.
    let pausing = [1.0, 1.0, 1.0, 0.0, 0.0];
    assert_eq!(scored(&silero, &pausing, 50), vec![(0, 50)]);
    assert_eq!(scored(&webrtc, &pausing, 50), vec![(0, 50)]);
    // A segment already closed by a long pause keeps its end.
    let closed = [
        1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    ];
    assert_eq!(scored(&silero, &closed, 150), vec![(0, 60)]);
}

#[test]
fn lookback_starts_a_segment_where_its_soft_onset_began() {
    let base = SegmentParams {
        neg_threshold: 0.35,
        ..params()
    };
    let scores = [0.0, 0.1, 0.4, 0.4, 0.4, 0.9, 0.9, 0.0];
    assert_eq!(scored(&base, &scores, 80), vec![(50, 70)]);
    let back = SegmentParams {
        lookback: Duration::from_millis(100),
        ..base
    };
    assert_eq!(scored(&back, &scores, 80), vec![(20, 70)]);
    // It reaches back no further than the lookback.
    let short = SegmentParams {
        lookback: Duration::from_millis(20),
        ..base
    };
    assert_eq!(scored(&short, &scores, 80), vec![(30, 70)]);
    // Frames above the negative threshold that never reach speech leave nothing.
    assert_eq!(scored(&back, &[0.4, 0.4, 0.4, 0.0], 40), vec![]);
}

#[test]
fn audio_kept_for_rendering_covers_every_start_a_lookback_finds() {
    // A smoothing window (the start is found inside it) with a lookback: whatever start the
    // segmenter emits, the audio from there on (less the padding) was still kept.
    let p = SegmentParams {
        neg_threshold: 0.35,
        smoothing: Duration::from_millis(50),
        trigger: 0.5,
        pad_start: Duration::from_millis(20),
        lookback: Duration::from_millis(80),
        ..params()
    };
    let mut s = Segmenter::new(&p, RATE, FRAME);
    let mut kept_from = 0;
    let mut starts = 0;
    // Soft frames running into speech: the start is found two frames into the window, and the
    // lookback takes it 80 ms further back.
    let mut pattern = vec![0.0; 5];
    pattern.extend([0.4; 12]);
    pattern.extend([0.9; 5]);
    pattern.extend([0.0; 20]);
    for round in 0..20 {
        for (i, &x) in pattern.iter().enumerate() {
            // Vary the soft run's length from round to round.
            let x = if i == 5 + round % 10 { 0.0 } else { x };
            s.push(x);
            for g in s.take_ready() {
                assert!(g.start >= kept_from, "{} < {kept_from}", g.start);
                starts += 1;
            }
            kept_from = kept_from.max(s.earliest_needed());
        }
    }
    assert!(starts >= 20, "{starts} segments");
}
