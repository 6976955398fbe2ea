//! Where S3 credentials come from: static keys when given, otherwise the standard AWS sources
//! in the standard order. The source is chosen once, at start, by asking each in turn; the
//! first that answers is logged (its name, never the secret) and used from then on, so that
//! refreshes of temporary credentials (IRSA, Pod Identity) come from the same source.

use aws_config::provider_config::ProviderConfig;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_s3::config::Credentials;
use std::time::Duration;

/// One source of credentials, named as the log and the errors name it.
struct Source {
    name: &'static str,
    provider: SharedCredentialsProvider,
}

/// What the chain settled on.
#[derive(Debug)]
pub struct Chosen {
    pub name: &'static str,
    pub provider: SharedCredentialsProvider,
}

/// Static keys, when both parts are given.
pub fn static_keys(
    access_key_id: &str,
    secret: &str,
    session_token: Option<&str>,
) -> SharedCredentialsProvider {
    SharedCredentialsProvider::new(Credentials::new(
        access_key_id,
        secret,
        session_token.map(str::to_owned),
        None,
        "vadflow-config",
    ))
}

/// Whether the user turned instance metadata off (`AWS_EC2_METADATA_DISABLED=true`).
pub fn imds_disabled() -> bool {
    std::env::var("AWS_EC2_METADATA_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
}

/// The sources to try, in order. With a named profile, only that profile: a name the files do
/// not hold is an error, never a silent fall-through to another identity.
fn sources(conf: &ProviderConfig, profile: Option<&str>) -> Vec<Source> {
    use aws_config::{ecs, imds, profile as prof, web_identity_token};
    let profile_provider = |name: Option<&str>| {
        let mut b = prof::ProfileFileCredentialsProvider::builder().configure(conf);
        if let Some(name) = name {
            b = b.profile_name(name);
        }
        SharedCredentialsProvider::new(b.build())
    };
    if let Some(name) = profile {
        return vec![Source {
            name: "profile",
            provider: profile_provider(Some(name)),
        }];
    }
    let mut out = vec![
        Source {
            name: "environment",
            provider: SharedCredentialsProvider::new(
                aws_config::environment::credentials::EnvironmentVariableCredentialsProvider::new(),
            ),
        },
        Source {
            name: "profile",
            provider: profile_provider(None),
        },
        Source {
            name: "web identity token (IRSA)",
            provider: SharedCredentialsProvider::new(
                web_identity_token::WebIdentityTokenCredentialsProvider::builder()
                    .configure(conf)
                    .build(),
            ),
        },
        Source {
            name: "container credentials endpoint (EKS Pod Identity, ECS)",
            provider: SharedCredentialsProvider::new(
                ecs::EcsCredentialsProvider::builder()
                    .configure(conf)
                    .build(),
            ),
        },
    ];
    if !imds_disabled() {
        out.push(Source {
            name: "instance metadata",
            provider: SharedCredentialsProvider::new(
                imds::credentials::ImdsCredentialsProvider::builder()
                    .configure(conf)
                    .build(),
            ),
        });
    }
    out
}

/// Asks each source in turn (each for at most `timeout`) and returns the first that answers.
/// A source that is not configured is skipped; one that is configured but fails ends the search
/// with its error, so that a broken IRSA setup is reported as such.
pub async fn choose(
    conf: &ProviderConfig,
    profile: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<Chosen> {
    let sources = sources(conf, profile);
    let mut tried = Vec::new();
    for Source { name, provider } in sources {
        let answer = tokio::time::timeout(timeout, provider.provide_credentials()).await;
        match answer {
            Ok(Ok(_)) => return Ok(Chosen { name, provider }),
            Ok(Err(e @ CredentialsError::CredentialsNotLoaded(_))) => {
                if let Some(p) = profile {
                    anyhow::bail!(
                        "S3 credentials: profile {p:?} (--s3-profile / AWS_PROFILE) gives none: {}",
                        detail(&e)
                    );
                }
                tried.push(name);
            }
            Ok(Err(e)) => anyhow::bail!("S3 credentials from the {name}: {}", detail(&e)),
            Err(_) => anyhow::bail!(
                "S3 credentials from the {name}: no answer within {} s",
                timeout.as_secs_f64()
            ),
        }
    }
    anyhow::bail!(
        "no S3 credentials: give --s3-access-key-id and --s3-secret-access-key, or configure one \
         of the AWS sources (tried: {})",
        tried.join(", ")
    )
}

fn detail(e: &dyn std::error::Error) -> String {
    super::chain(e)
}
