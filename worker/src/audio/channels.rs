//! **Channels**: how a multichannel file is analysed (`--channels`).
//!
//! - `mix` averages the channels into one signal (the default, as before);
//! - `separate` runs one VAD per channel, for files of up to `--max-separate-channels`
//!   channels (more are mixed); every segment says which channel it belongs to;
//! - `auto` separates a 2-channel file whose channels differ (a call recording: one party per
//!   channel) and mixes one whose channels carry the same signal (a stereo copy of mono). It
//!   decides on the first [`AUTO_WINDOW_S`] seconds ([`same_signal`]).

/// How the channels of a file are analysed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ChannelMode {
    /// Average the channels into one signal.
    #[default]
    Mix,
    /// One VAD per channel.
    Separate,
    /// Separate a 2-channel file whose channels differ; mix one whose channels are the same.
    Auto,
}

/// The channel settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelChoice {
    pub mode: ChannelMode,
    /// Most channels analysed separately; a file with more is mixed.
    pub max_separate: usize,
}

impl Default for ChannelChoice {
    fn default() -> Self {
        ChannelChoice {
            mode: ChannelMode::Mix,
            max_separate: 8,
        }
    }
}

impl ChannelChoice {
    /// The most channels the decoder should keep apart.
    pub fn keep_channels(&self) -> usize {
        match self.mode {
            ChannelMode::Mix => 1,
            ChannelMode::Separate => self.max_separate,
            ChannelMode::Auto => 2,
        }
    }
}

/// Seconds of audio `auto` looks at before it decides.
pub const AUTO_WINDOW_S: u32 = 30;

/// Two channels are the same signal when their difference is this far (dB) below their sum:
/// a lossy stereo copy of mono stays below it, two parties of a call are far above it.
pub const SAME_SIGNAL_DB: f64 = -40.0;

/// Whether `left` and `right` carry the same signal (within [`SAME_SIGNAL_DB`]). Silence on
/// both counts as the same: there is nothing to separate.
pub fn same_signal(left: &[f32], right: &[f32]) -> bool {
    let (mut diff, mut sum) = (0.0f64, 0.0f64);
    for (&l, &r) in left.iter().zip(right) {
        let (l, r) = (f64::from(l), f64::from(r));
        diff += (l - r) * (l - r);
        sum += (l + r) * (l + r);
    }
    if !diff.is_finite() || !sum.is_finite() {
        return false;
    }
    // Below 16-bit dither over the whole window: digital silence.
    if sum < 1e-9 * left.len().max(1) as f64 {
        return true;
    }
    10.0 * (diff.max(f64::MIN_POSITIVE) / sum).log10() < SAME_SIGNAL_DB
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_is_the_same_signal_and_two_parties_are_not() {
        let a: Vec<f32> = (0..16_000).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
        let b: Vec<f32> = (0..16_000)
            .map(|i| (i as f32 * 0.011).sin() * 0.3)
            .collect();
        assert!(same_signal(&a, &a));
        // A lossy copy: 1 % noise on one side.
        let noisy: Vec<f32> = a
            .iter()
            .enumerate()
            .map(|(i, x)| x + 0.001 * ((i * 7919 % 13) as f32 / 13.0 - 0.5))
            .collect();
        assert!(same_signal(&a, &noisy));
        assert!(!same_signal(&a, &b));
        // One party talks, the other channel is silent.
        assert!(!same_signal(&a, &vec![0.0; a.len()]));
        assert!(same_signal(&[0.0; 100], &[0.0; 100]));
        assert!(!same_signal(&[f32::NAN; 4], &[0.0; 4]));
    }
}
