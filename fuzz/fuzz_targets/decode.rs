//! The decoder front end: arbitrary bytes, under any extension hint, read from memory (seekable)
//! or as a one-way stream (as from S3, which spools MP4 and CAF), through the header guard, the
//! container probe (WAV, FLAC, MP3, Ogg, MP4, ADTS, Matroska/WebM, AIFF, CAF), the decoder, the
//! resampler, the VAD and the segmenter (`vadflow_worker::audio::fuzzing` reads the input). Any
//! outcome but a panic that escapes, a hang or an allocation sized by a header is fine.
//!
//! A codec library's panic on a corrupt packet is caught by the decoder (an undecodable packet,
//! as in the worker); libfuzzer-sys's hook would abort on it all the same, so the default hook is
//! put back: a panic that escapes `decode_input` still aborts the run (libfuzzer-sys checks). The
//! decoders vadflow chose over symphonia's (its own ALAC, nanomp3-core for MPEG audio) must not
//! panic at all: a panic there aborts the run even though the decoder would catch it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::Once;

static HOOK: Once = Once::new();

fuzz_target!(|data: &[u8]| {
    HOOK.call_once(|| {
        // Drop libfuzzer-sys's hook (it aborts on any panic); the next take is std's default.
        let _ = std::panic::take_hook();
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            default(info);
            if info.location().is_some_and(|l| {
                let f = l.file();
                f.ends_with("alac.rs") || f.ends_with("mp3.rs") || f.contains("nanomp3")
            }) {
                std::process::abort();
            }
        }));
    });
    let _ = vadflow_worker::audio::fuzzing::decode_input(data);
});
