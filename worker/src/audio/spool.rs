//! **Spooling** a one-way stream to disk, for the containers a demuxer can only read with seeks:
//! an MP4 whose index (`moov`) follows its media data, as ffmpeg and most recorders write it, and
//! CAF. The copy goes to an unlinked temporary file: memory stays at one copy buffer however long
//! the file is, and the disk holds at most the input size limit, freed when the job ends however
//! it ends.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::atomic::{AtomicU64, Ordering};
use vadflow_common::{Failure, Reason};

/// Whether a file starting with `head` must be spooled when it cannot be seeked.
pub fn needed(head: &[u8]) -> bool {
    super::isomp4::is_isomp4(head) || head.starts_with(b"caff")
}

/// Copies `source` to an unlinked temporary file (under the system temporary directory) and
/// returns it rewound. More than `max_bytes` fails with `limit-exceeded`.
pub fn spool(mut source: impl Read, max_bytes: u64) -> Result<File, Failure> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "vadflow-spool-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let local = |what: &str, e: io::Error| {
        Failure::new(
            Reason::Internal,
            format!("spooling to {}: {what}: {e}", path.display()),
        )
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| local("create", e))?;
    // Unlinked at once: the space is freed when the file is closed, however the job ends.
    std::fs::remove_file(&path).map_err(|e| local("unlink", e))?;
    let copied = copy(&mut source, &mut file, max_bytes.saturating_add(1))
        .map_err(|e| Failure::new(Reason::InvalidAudio, format!("cannot read audio: {e}")))?;
    if copied > max_bytes {
        return Err(Failure::new(
            Reason::LimitExceeded,
            format!("input is larger than the limit of {max_bytes} bytes"),
        ));
    }
    file.seek(SeekFrom::Start(0))
        .map_err(|e| local("rewind", e))?;
    Ok(file)
}

/// `io::copy` with a cap, telling read errors (the source's) from write errors (the disk's).
fn copy(source: &mut impl Read, file: &mut File, cap: u64) -> io::Result<u64> {
    use std::io::Write;
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    while total < cap {
        let want = buf.len().min((cap - total) as usize);
        let n = match source.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        file.write_all(&buf[..n])
            .map_err(|e| io::Error::other(format!("writing the spool file: {e}")))?;
        total += n as u64;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn spools_within_the_limit_only() {
        let data = vec![7u8; 200_000];
        let mut f = spool(Cursor::new(data.clone()), 200_000).expect("fits");
        let mut back = Vec::new();
        f.read_to_end(&mut back).expect("read");
        assert_eq!(back, data);
        let err = spool(Cursor::new(data), 199_999).expect_err("too big");
        assert_eq!(err.reason, Reason::LimitExceeded);
    }
}
