//! Message parsing: any bytes off the queue give a job, a result event or a typed error; never a
//! panic, and never an allocation sized by the message (the payload cap comes first).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vadflow_common::{Job, ResultEvent};

fuzz_target!(|data: &[u8]| {
    if let Ok(job) = Job::decode(data) {
        // A decoded job validated its fields; its results location is derivable.
        let _ = job.validate();
        let _ = job.encode();
    }
    let _ = ResultEvent::decode(data);
});
