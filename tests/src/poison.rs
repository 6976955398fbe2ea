//! Bad inputs, each with the failure class vadflow must report for it. Used by the bad-input
//! tests and by the fault-injection suite.

use crate::audio::{SENTENCES, compose};
use crate::{BUCKET, TestCtx};
use vadflow_common::Job;

/// A hostile or broken input.
#[derive(Debug, Clone)]
pub struct Poison {
    pub name: &'static str,
    /// File name (the extension is a decoding hint).
    pub file: &'static str,
    pub bytes: Vec<u8>,
    /// Expected failure class.
    pub reason: &'static str,
}

/// A canonical 44-byte PCM WAV header with the given fields.
pub fn wav_header(format: u16, channels: u16, rate: u32, bits: u16, data_len: u32) -> Vec<u8> {
    let block = u32::from(channels) * u32::from(bits) / 8;
    let mut h = Vec::with_capacity(44);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&data_len.saturating_add(36).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&format.to_le_bytes());
    h.extend_from_slice(&channels.to_le_bytes());
    h.extend_from_slice(&rate.to_le_bytes());
    h.extend_from_slice(&rate.wrapping_mul(block).to_le_bytes());
    h.extend_from_slice(&(block as u16).to_le_bytes());
    h.extend_from_slice(&bits.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data_len.to_le_bytes());
    h
}

fn speech_wav() -> Vec<u8> {
    compose(&[SENTENCES[0]], &[0.3, 0.3]).wav()
}

/// Every bad-input case decodable without external tools.
pub fn cases() -> Vec<Poison> {
    let good = speech_wav();
    let samples = &good[44..];
    let mut v = vec![
        Poison {
            name: "zero-length",
            file: "empty.wav",
            bytes: Vec::new(),
            reason: "invalid-audio",
        },
        Poison {
            name: "non-audio bytes",
            file: "notes.wav",
            bytes: b"{\"this\": \"is json, not audio\"}\n".repeat(40),
            reason: "invalid-audio",
        },
        Poison {
            name: "random bytes",
            file: "noise.mp3",
            bytes: (0..20_000u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
            reason: "invalid-audio",
        },
        Poison {
            name: "truncated wav",
            file: "truncated.wav",
            bytes: good[..good.len() / 3].to_vec(),
            reason: "invalid-audio",
        },
        Poison {
            name: "header only",
            file: "header-only.wav",
            bytes: wav_header(1, 1, 16_000, 16, 0),
            reason: "invalid-audio",
        },
        Poison {
            name: "data size larger than the file",
            file: "liar.wav",
            bytes: [
                wav_header(1, 1, 22_050, 16, 100_000_000),
                samples[..4000].to_vec(),
            ]
            .concat(),
            reason: "invalid-audio",
        },
        Poison {
            name: "huge sample rate",
            file: "rate.wav",
            bytes: [
                wav_header(1, 1, 4_000_000_000, 16, 4000),
                samples[..4000].to_vec(),
            ]
            .concat(),
            reason: "limit-exceeded",
        },
        Poison {
            name: "huge channel count",
            file: "channels.wav",
            bytes: [
                wav_header(1, 65_535, 16_000, 16, 4000),
                samples[..4000].to_vec(),
            ]
            .concat(),
            reason: "limit-exceeded",
        },
        Poison {
            name: "zero channels",
            file: "nochannels.wav",
            bytes: [wav_header(1, 0, 16_000, 16, 4000), samples[..4000].to_vec()].concat(),
            reason: "invalid-audio",
        },
        Poison {
            name: "zero sample rate",
            file: "norate.wav",
            bytes: [wav_header(1, 1, 0, 16, 4000), samples[..4000].to_vec()].concat(),
            reason: "limit-exceeded",
        },
        Poison {
            name: "unsupported codec (MPEG in WAV)",
            file: "codec.wav",
            bytes: [
                wav_header(0x0055, 1, 16_000, 16, 4000),
                samples[..4000].to_vec(),
            ]
            .concat(),
            reason: "unsupported-codec",
        },
        Poison {
            name: "absurd fmt chunk length",
            file: "fmtlen.wav",
            bytes: {
                let mut b = wav_header(1, 1, 16_000, 16, 4000);
                b[16..20].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
                b.extend_from_slice(&samples[..4000]);
                b
            },
            reason: "invalid-audio",
        },
    ];
    v.sort_by_key(|p| p.name);
    v
}

/// A poison message: its id (the AMQP message id), raw body and expected reason.
#[derive(Debug, Clone)]
pub struct PoisonMsg {
    pub id: String,
    pub kind: String,
    pub body: Vec<u8>,
    pub reason: &'static str,
}

/// Poison messages for the work queue: bodies a worker cannot read or must refuse.
pub fn message_poisons(ctx: &TestCtx) -> Vec<PoisonMsg> {
    let p = &ctx.prefix;
    let job = |key: String| Job::new(BUCKET, key);
    let mut wrong_version = job(format!("{p}v.wav"));
    wrong_version.v = 99;
    let full = job(format!("{p}t.wav")).encode();
    let mut out = vec![
        (
            "not msgpack",
            b"{\"json\": true}".to_vec(),
            "malformed-message",
        ),
        ("empty body", Vec::new(), "malformed-message"),
        (
            "truncated msgpack",
            full[..full.len() / 2].to_vec(),
            "malformed-message",
        ),
        (
            "msgpack of the wrong shape",
            rmp_serde::to_vec(&(1, 2, 3)).expect("encode"),
            "malformed-message",
        ),
        (
            "wrong version",
            wrong_version.encode(),
            "unsupported-version",
        ),
        ("oversized message", vec![0x91; 200_000], "limit-exceeded"),
        (
            "dot-dot key",
            job(format!("{p}../../etc/passwd")).encode(),
            "invalid-key",
        ),
        (
            "leading slash key",
            job(format!("/{p}abs.wav")).encode(),
            "invalid-key",
        ),
        (
            "NUL in key",
            job(format!("{p}a\0b.wav")).encode(),
            "invalid-key",
        ),
        (
            "1100-byte key",
            job(format!("{p}{}", "k".repeat(1100))).encode(),
            "invalid-key",
        ),
        (
            "bad bucket",
            Job::new("No_Such..Bucket", format!("{p}x.wav")).encode(),
            "invalid-key",
        ),
        (
            "missing object",
            job(format!("{p}does-not-exist.wav")).encode(),
            "object-missing",
        ),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (kind, body, reason))| PoisonMsg {
        id: format!("poison-msg-{i}"),
        kind: kind.to_owned(),
        body,
        reason,
    })
    .collect::<Vec<_>>();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}
