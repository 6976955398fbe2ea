//! Validation of bucket names and object keys, and the one place where the results location of
//! a job is derived. Keys come from messages and databases that vadflow does not control, so they
//! are checked before any use, and a key only becomes a local path after it passed [`validate_key`].

use crate::failure::{Failure, Reason};

/// The longest object key S3 accepts, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// Checks an S3 bucket name (the DNS-compatible rules: 3–63 of `a-z0-9.-`, alphanumeric ends).
pub fn validate_bucket(bucket: &str) -> Result<(), Failure> {
    let bad = |why: &str| {
        Err(Failure::new(
            Reason::InvalidKey,
            format!("bucket {bucket:?}: {why}"),
        ))
    };
    if !(3..=63).contains(&bucket.len()) {
        return bad("must be 3 to 63 characters long");
    }
    if !bucket
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return bad("may only contain a-z, 0-9, '.' and '-'");
    }
    let first = bucket.as_bytes()[0];
    let last = bucket.as_bytes()[bucket.len() - 1];
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return bad("must start and end with a letter or digit");
    }
    if bucket.contains("..") {
        return bad("must not contain '..'");
    }
    Ok(())
}

/// Checks an object key: not empty, at most 1024 bytes, no leading `/`, no NUL or other control
/// character, and no `.` or `..` path segment.
pub fn validate_key(key: &str) -> Result<(), Failure> {
    let bad = |why: &str| {
        let shown: String = key.chars().take(120).collect();
        Err(Failure::new(
            Reason::InvalidKey,
            format!("object key {shown:?}: {why}"),
        ))
    };
    if key.is_empty() {
        return bad("is empty");
    }
    if key.len() > MAX_KEY_BYTES {
        return bad("is longer than 1024 bytes");
    }
    if key.starts_with('/') {
        return bad("starts with '/'");
    }
    if key.chars().any(char::is_control) {
        return bad("contains a NUL or control character");
    }
    if key.split('/').any(|seg| seg == ".." || seg == ".") {
        return bad("contains a '.' or '..' segment");
    }
    Ok(())
}

/// Checks a results prefix given in configuration: empty, or a valid key that ends in `/`.
pub fn validate_prefix(prefix: &str) -> Result<(), Failure> {
    if prefix.is_empty() {
        return Ok(());
    }
    validate_key(prefix)?;
    if !prefix.ends_with('/') {
        return Err(Failure::new(
            Reason::InvalidKey,
            format!("prefix {prefix:?} must end with '/'"),
        ));
    }
    Ok(())
}

/// The deterministic results location of a source object: `{prefix}{bucket}/{key}/`.
///
/// It depends only on the source, never on the job id or attempt, so a redelivered or re-enqueued
/// job overwrites the same objects with the same bytes.
pub fn results_prefix(prefix: &str, bucket: &str, key: &str) -> String {
    format!("{prefix}{bucket}/{key}/")
}

/// Splits `s3://bucket/key` into bucket and key (the key may be empty or a prefix).
pub fn parse_s3_uri(uri: &str) -> Result<(String, String), Failure> {
    let rest = uri
        .strip_prefix("s3://")
        .ok_or_else(|| Failure::new(Reason::InvalidKey, format!("{uri:?} is not an s3:// URI")))?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    validate_bucket(bucket)?;
    Ok((bucket.to_owned(), key.to_owned()))
}

/// Known audio file extensions (lowercase), for listing prefixes and walking directories: every
/// container the worker decodes natively, video containers included (their audio track is read),
/// and the voice-note and broadcast formats it decodes through ffmpeg (without ffmpeg they end
/// `failed` with `unsupported-codec`, which says so).
pub const AUDIO_EXTENSIONS: [&str; 25] = [
    "wav", "wave", "flac", "mp3", "mp2", "ogg", "oga", "opus", "m4a", "m4b", "mp4", "mov", "aac",
    "webm", "mkv", "mka", "aif", "aiff", "aifc", "caf", "amr", "awb", "3gp", "wma", "ac3",
];

/// Whether a key or path names a file with a known audio extension (case-insensitive).
pub fn has_audio_extension(name: &str) -> bool {
    name.rsplit_once('.').is_some_and(|(_, ext)| {
        AUDIO_EXTENSIONS
            .iter()
            .any(|known| ext.eq_ignore_ascii_case(known))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_uris_and_extensions() {
        assert_eq!(
            parse_s3_uri("s3://bucket/a/b.wav"),
            Ok(("bucket".into(), "a/b.wav".into()))
        );
        assert_eq!(
            parse_s3_uri("s3://bucket"),
            Ok(("bucket".into(), String::new()))
        );
        assert!(parse_s3_uri("http://bucket/a").is_err());
        assert!(parse_s3_uri("s3://B/a").is_err());
        assert!(has_audio_extension("x/y.FLAC"));
        assert!(has_audio_extension("v.opus"));
        assert!(has_audio_extension("memo.M4A"));
        assert!(has_audio_extension("call.webm"));
        assert!(has_audio_extension("voice.AMR"));
        assert!(!has_audio_extension("notes.txt"));
        assert!(!has_audio_extension("wav"));
    }

    #[test]
    fn accepts_ordinary_keys() {
        for key in [
            "a.wav",
            "dir/sub/file name (1).flac",
            "ünïcødé/ok.mp3",
            "a..b/c",
        ] {
            assert!(validate_key(key).is_ok(), "{key}");
        }
    }

    #[test]
    fn rejects_dangerous_keys() {
        let long = "a".repeat(1025);
        for key in [
            "",
            "/abs.wav",
            "a/../b.wav",
            "..",
            "./a",
            "a/./b",
            "nul\0.wav",
            "cr\r.wav",
            &long,
        ] {
            let err = validate_key(key).expect_err(key);
            assert_eq!(err.reason, Reason::InvalidKey);
        }
        assert!(validate_key(&"a".repeat(1024)).is_ok());
    }

    #[test]
    fn bucket_rules() {
        for ok in ["abc", "my-bucket.v2", "a1b"] {
            assert!(validate_bucket(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "Upper",
            "-dash",
            "dot.",
            "a..b",
            "under_score",
            &"a".repeat(64),
        ] {
            assert!(validate_bucket(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn results_prefix_is_deterministic() {
        assert_eq!(
            results_prefix("results/", "data", "x/y.wav"),
            "results/data/x/y.wav/"
        );
        assert!(validate_prefix("results/").is_ok());
        assert!(validate_prefix("").is_ok());
        assert!(validate_prefix("results").is_err());
        assert!(validate_prefix("/results/").is_err());
    }
}
