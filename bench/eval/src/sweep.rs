//! `sweep`: the segmenter settings ranked by overall segment F1, from scores computed once per
//! file (how the WebRTC defaults were chosen).

use super::*;

pub(crate) fn sweep(corpus: &Path, python: &Path, top: usize) -> anyhow::Result<()> {
    let truth = load_truth(corpus)?;
    let ids: Vec<&String> = truth.keys().collect();
    // (overall segment F1, overall frame F1, worst per-condition margin over the reference, settings)
    let mut results: Vec<(f64, f64, f64, String)> = Vec::new();
    let all_files: Vec<PathBuf> = CONDITIONS
        .iter()
        .flat_map(|c| {
            ids.iter()
                .map(move |id| corpus.join(c).join(format!("{id}.wav")))
        })
        .collect();
    let refs = reference(python, &all_files, "0,1,2,3")?;
    for mode in 0..=3u8 {
        // The reference's segment F1 per condition, at this mode.
        let ref_f1: Vec<f64> = CONDITIONS
            .iter()
            .map(|c| {
                let mut counts = Counts::default();
                for id in &ids {
                    let path = corpus
                        .join(c)
                        .join(format!("{id}.wav"))
                        .display()
                        .to_string();
                    let pred = refs.get(&(path, mode)).map_or(&[][..], |v| v);
                    counts.add(segment_match(&truth[*id], pred).0);
                }
                counts.f1()
            })
            .collect();
        let mut params = Params::default();
        params.vad.mode = Some(mode);
        // Scores depend only on the engine settings: compute them once per file and condition.
        let jobs: Vec<(String, PathBuf)> = CONDITIONS
            .iter()
            .flat_map(|c| {
                ids.iter()
                    .map(move |id| ((*id).clone(), corpus.join(c).join(format!("{id}.wav"))))
            })
            .collect();
        let runs = parallel(&jobs, |(_, p)| run_file(p, &params));
        let runs: Vec<(String, Run)> = jobs
            .into_iter()
            .zip(runs)
            .map(|((id, _), r)| r.map(|r| (id, r)))
            .collect::<anyhow::Result<_>>()?;
        let grid = itertools_product(
            &[150u64, 300, 450],
            &[0u64, 60, 120],
            &[60u64, 150, 250],
            &[30u64, 300, 450, 600, 750, 900],
            &[0.3f32, 0.4, 0.5, 0.7, 0.9],
        );
        for (min_silence, pad, min_speech, smoothing, trigger) in grid {
            {
                {
                    let seg = SegmentParams {
                        min_silence: Duration::from_millis(min_silence),
                        pad_start: Duration::from_millis(pad),
                        pad_end: Duration::from_millis(pad),
                        min_speech: Duration::from_millis(min_speech),
                        smoothing: Duration::from_millis(smoothing),
                        trigger,
                        ..SegmentParams::default()
                    };
                    let mut total = Score::default();
                    let mut per_condition = vec![Counts::default(); CONDITIONS.len()];
                    for (i, (id, run)) in runs.iter().enumerate() {
                        let segs = resegment(&run.scores, &seg, &params, run.duration);
                        let sc = score(&truth[id], &segs, run.duration);
                        per_condition[i / ids.len()].add(sc.seg);
                        total.add(sc);
                    }
                    let margin = per_condition
                        .iter()
                        .zip(&ref_f1)
                        .map(|(c, r)| c.f1() - r)
                        .fold(f64::INFINITY, f64::min);
                    results.push((
                        total.seg.f1(),
                        total.frame.f1(),
                        margin,
                        format!("mode {mode}, smoothing {smoothing} ms, trigger {trigger}, min_silence {min_silence} ms, padding {pad} ms, min_speech {min_speech} ms"),
                    ));
                }
            }
        }
    }
    // Settings that fall below the reference in some condition rank last.
    results.sort_by(|a, b| {
        (b.2 >= 0.0)
            .cmp(&(a.2 >= 0.0))
            .then(b.0.total_cmp(&a.0))
            .then(b.2.total_cmp(&a.2))
            .then(b.1.total_cmp(&a.1))
    });
    println!(
        "| rank | segment F1 | frame F1 | worst margin over example.py (same mode), points | settings |\n|---|---|---|---|---|"
    );
    for (i, (seg, frame, margin, what)) in results.iter().take(top).enumerate() {
        println!(
            "| {} | {} | {} | {:+.1} | {what} |",
            i + 1,
            pct(*seg),
            pct(*frame),
            100.0 * margin
        );
    }
    Ok(())
}

fn itertools_product(
    a: &[u64],
    b: &[u64],
    c: &[u64],
    d: &[u64],
    e: &[f32],
) -> Vec<(u64, u64, u64, u64, f32)> {
    let mut out = Vec::new();
    for &x in a {
        for &y in b {
            for &z in c {
                for &w in d {
                    for &v in e {
                        out.push((x, y, z, w, v));
                    }
                }
            }
        }
    }
    out
}

/// Runs the segmenter over stored frame scores.
fn resegment(
    scores: &[f32],
    seg: &SegmentParams,
    params: &Params,
    duration: f64,
) -> Vec<(f64, f64)> {
    let rate = params.vad.sample_rate;
    let mut s = Segmenter::new(seg, rate, params.vad.frame_len());
    let mut out = Vec::new();
    for &x in scores {
        s.push(x);
        out.extend(s.take_ready());
    }
    s.finish((duration * f64::from(rate)).round() as u64);
    out.extend(s.take_ready());
    out.iter()
        .map(|g| {
            (
                g.start as f64 / f64::from(rate),
                g.end as f64 / f64::from(rate),
            )
        })
        .collect()
}
