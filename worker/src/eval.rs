//! Quality metrics for VAD output against ground truth.
//!
//! - **Frame level**: on a 10 ms grid, a frame is speech if its centre lies in a segment;
//!   precision, recall and F1 of the speech class.
//! - **Segment level**: predicted and true segments are matched one to one, greedily by
//!   intersection over union, when IoU ≥ 0.5; precision = matched / predicted,
//!   recall = matched / true. Matched pairs also give boundary errors.

/// True positives, false positives, false negatives.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Counts {
    pub tp: f64,
    pub fp: f64,
    pub fn_: f64,
}

impl Counts {
    pub fn add(&mut self, o: Counts) {
        self.tp += o.tp;
        self.fp += o.fp;
        self.fn_ += o.fn_;
    }
    pub fn precision(&self) -> f64 {
        if self.tp + self.fp == 0.0 {
            1.0
        } else {
            self.tp / (self.tp + self.fp)
        }
    }
    pub fn recall(&self) -> f64 {
        if self.tp + self.fn_ == 0.0 {
            1.0
        } else {
            self.tp / (self.tp + self.fn_)
        }
    }
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

/// The 10 ms frames of `[0, duration)` whose centre lies in one of `segs` (in any order), as
/// flags: each segment visits only its own frames, so this is linear in the duration.
pub fn frame_grid(segs: &[(f64, f64)], duration: f64, grid: &mut Vec<bool>) {
    let n = (duration / 0.01).floor() as usize;
    grid.clear();
    grid.resize(n, false);
    let centre = |i: usize| (i as f64 + 0.5) * 0.01;
    for &(s, e) in segs {
        // A frame or two of slack on each side, then the exact test.
        let from = ((s / 0.01).floor() as usize).saturating_sub(1);
        let to = (((e / 0.01).ceil().max(0.0)) as usize + 1).min(n);
        for (i, g) in grid.iter_mut().enumerate().take(to).skip(from) {
            let t = centre(i);
            if t >= s && t < e {
                *g = true;
            }
        }
    }
}

/// Frame-level counts of two grids of the same file.
pub fn grid_counts(truth: &[bool], pred: &[bool]) -> Counts {
    let mut c = Counts::default();
    for (&t, &p) in truth.iter().zip(pred) {
        match (t, p) {
            (true, true) => c.tp += 1.0,
            (false, true) => c.fp += 1.0,
            (true, false) => c.fn_ += 1.0,
            (false, false) => {}
        }
    }
    c
}

/// Frame-level counts over `[0, duration)` with a 10 ms step.
pub fn frame_counts(truth: &[(f64, f64)], pred: &[(f64, f64)], duration: f64) -> Counts {
    let (mut t, mut p) = (Vec::new(), Vec::new());
    frame_grid(truth, duration, &mut t);
    frame_grid(pred, duration, &mut p);
    grid_counts(&t, &p)
}

fn iou(a: (f64, f64), b: (f64, f64)) -> f64 {
    let inter = (a.1.min(b.1) - a.0.max(b.0)).max(0.0);
    let union = (a.1.max(b.1) - a.0.min(b.0)).max(1e-9);
    inter / union
}

/// Segment-level counts, and for each matched pair the absolute start and end errors.
pub fn segment_match(truth: &[(f64, f64)], pred: &[(f64, f64)]) -> (Counts, Vec<f64>) {
    let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
    for (i, &t) in truth.iter().enumerate() {
        for (j, &p) in pred.iter().enumerate() {
            let v = iou(t, p);
            if v >= 0.5 {
                pairs.push((v, i, j));
            }
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut used_t, mut used_p) = (vec![false; truth.len()], vec![false; pred.len()]);
    let mut errors = Vec::new();
    let mut matched = 0.0;
    for (_, i, j) in pairs {
        if used_t[i] || used_p[j] {
            continue;
        }
        used_t[i] = true;
        used_p[j] = true;
        matched += 1.0;
        errors.push((truth[i].0 - pred[j].0).abs());
        errors.push((truth[i].1 - pred[j].1).abs());
    }
    let c = Counts {
        tp: matched,
        fp: pred.len() as f64 - matched,
        fn_: truth.len() as f64 - matched,
    };
    (c, errors)
}

/// The median of `v` (0 for an empty slice).
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The grid says what the definition says: a frame is speech if its centre is in a segment.
    #[test]
    fn grids_follow_the_definition() {
        let inside = |t: f64, segs: &[(f64, f64)]| segs.iter().any(|&(s, e)| t >= s && t < e);
        let segs = [
            (0.0, 0.015),
            (0.305, 1.0),
            (0.999, 1.234),
            (2.5, 9.0),
            (7.0, 7.001),
        ];
        let mut grid = Vec::new();
        frame_grid(&segs, 5.0, &mut grid);
        assert_eq!(grid.len(), 500);
        for (i, &g) in grid.iter().enumerate() {
            assert_eq!(g, inside((i as f64 + 0.5) * 0.01, &segs), "frame {i}");
        }
    }

    #[test]
    fn perfect_and_empty_predictions() {
        let truth = [(1.0, 2.0), (3.0, 4.5)];
        let (c, errs) = segment_match(&truth, &truth);
        assert_eq!((c.precision(), c.recall(), c.f1()), (1.0, 1.0, 1.0));
        assert!(errs.iter().all(|&e| e == 0.0));
        let (c, _) = segment_match(&truth, &[]);
        assert_eq!(c.recall(), 0.0);
        assert_eq!(c.f1(), 0.0);
        assert_eq!(frame_counts(&truth, &truth, 5.0).f1(), 1.0);
    }

    #[test]
    fn merged_segments_count_as_one_match_at_most() {
        let truth = [(1.0, 2.0), (2.2, 3.0)];
        // One prediction spanning both: IoU with the first is 1.0/2.0 = 0.5 -> one match.
        let (c, _) = segment_match(&truth, &[(1.0, 3.0)]);
        assert_eq!((c.tp, c.fp, c.fn_), (1.0, 0.0, 1.0));
        // "All speech" over a long file matches nothing.
        let (c, _) = segment_match(&truth, &[(0.0, 30.0)]);
        assert_eq!(c.tp, 0.0);
    }

    #[test]
    fn frame_counts_and_median() {
        let c = frame_counts(&[(0.0, 1.0)], &[(0.5, 1.5)], 2.0);
        assert_eq!((c.tp, c.fp, c.fn_), (50.0, 50.0, 50.0));
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
