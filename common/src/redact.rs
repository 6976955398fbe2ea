//! Keeping secrets out of logs and error messages: [`SecretUrl`] and [`Secret`] hold URLs with
//! passwords and keys; their `Debug` and `Display` redact, and only `expose()` gives the value.
//! Every configuration type holds its secrets in them, so no `{:?}` can leak one.

use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;

/// A URL that may hold a password (`amqp://user:pass@host/`): shown with the password as `***`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(url: impl Into<String>) -> SecretUrl {
        SecretUrl(url.into())
    }
    /// The URL itself, password included: only for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", redact_url(&self.0))
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

impl FromStr for SecretUrl {
    type Err = Infallible;
    fn from_str(s: &str) -> Result<SecretUrl, Infallible> {
        Ok(SecretUrl::new(s))
    }
}

/// A secret value (a key, a token): shown as `***`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    /// The value itself: only for authenticating.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl FromStr for Secret {
    type Err = Infallible;
    fn from_str(s: &str) -> Result<Secret, Infallible> {
        Ok(Secret::new(s))
    }
}

/// Replaces the password of a URL's userinfo with `***`:
/// `amqp://user:secret@host/` becomes `amqp://user:***@host/`.
///
/// Works on any `scheme://user:password@host...` string without parsing it fully, so it also
/// redacts URLs that a strict parser would reject. Query parameters named like secrets
/// (`password`, `secret`, `token`, `sslpassword`) are redacted too.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..]
            .find(['/', '?', '#'])
            .map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = &out[rest_start..rest_start + at];
            if let Some(colon) = userinfo.find(':') {
                let start = rest_start + colon + 1;
                let end = rest_start + at;
                out.replace_range(start..end, "***");
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let redacted: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if is_secret_name(k) => format!("{k}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out = format!("{head}{}", redacted.join("&"));
    }
    out
}

fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["password", "passwd", "secret", "token", "key"]
        .iter()
        .any(|s| n.contains(s))
}

#[cfg(test)]
mod tests {
    use super::{Secret, SecretUrl, redact_url};

    #[test]
    fn secrets_never_print() {
        let url = SecretUrl::new("amqp://guest:hunter2@host/%2f");
        assert_eq!(format!("{url}"), "amqp://guest:***@host/%2f");
        assert!(!format!("{url:?}").contains("hunter2"));
        assert_eq!(url.expose(), "amqp://guest:hunter2@host/%2f");
        let key = Secret::new("hunter2");
        assert_eq!(format!("{key} {key:?}"), "*** \"***\"");
        assert_eq!(key.expose(), "hunter2");
    }

    #[test]
    fn hides_passwords() {
        assert_eq!(
            redact_url("amqp://guest:s3cr3t@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(
            redact_url("postgres://u:p%40ss@db/x?sslmode=require&password=z"),
            "postgres://u:***@db/x?sslmode=require&password=***"
        );
        assert_eq!(redact_url("amqp://host/"), "amqp://host/");
        assert_eq!(redact_url("amqp://user@host/"), "amqp://user@host/");
        assert_eq!(redact_url("not a url"), "not a url");
        // An '@' in the path is not userinfo.
        assert_eq!(redact_url("http://h/a@b"), "http://h/a@b");
    }
}
