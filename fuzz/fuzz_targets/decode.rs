//! The decoder front end: arbitrary bytes, under any extension hint, through the header guard,
//! the container probe, the decoder, the resampler, the VAD and the segmenter. Any outcome but a
//! panic, a hang or an allocation sized by a header is fine.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::Duration;
use vadflow_worker::audio::Limits;
use vadflow_worker::audio::pipeline::{Params, Sinks, analyze};

fuzz_target!(|data: &[u8]| {
    let Some((&hint, bytes)) = data.split_first() else {
        return;
    };
    let extension = ["wav", "flac", "mp3", "ogg", "opus", "oga"]
        .get(usize::from(hint % 8))
        .copied();
    let params = Params {
        limits: Limits {
            max_input_bytes: 1 << 20,
            max_duration: Duration::from_secs(600),
            max_channels: 8,
        },
        ..Params::default()
    };
    let source = Box::new(std::io::Cursor::new(bytes.to_vec()));
    let _ = analyze(source, extension, &params, None, Sinks::default());
});
