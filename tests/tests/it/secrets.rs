//! No secret reaches the logs: runs of both binaries whose configured URLs and keys carry
//! passwords, at debug level, through success and through authentication failures.

use chrono::Utc;
use tokio::io::{AsyncBufReadExt, BufReader};
use vadflow_tests::{BUCKET, DEADLINE, TestCtx};

const DB_SECRET: &str = "Pg-S3cret-7731";
const AMQP_SECRET: &str = "Amqp-S3cret-9913";
const S3_SECRET_MARK: &str = "vadflow-dev-secret";

fn assert_clean(what: &str, log: &str) {
    for secret in [DB_SECRET, AMQP_SECRET, S3_SECRET_MARK] {
        assert!(
            !log.contains(secret),
            "{what}: a secret appears in the log:\n{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn configured_passwords_never_appear_in_logs() {
    let ctx = TestCtx::new("secrets").await;
    assert_eq!(
        ctx.stack.s3.secret_access_key.as_ref().map(|s| s.expose()),
        Some(S3_SECRET_MARK),
        "this test checks the local stack's S3 secret"
    );
    // The local PostgreSQL trusts loopback, so a password in the URL is accepted and ignored:
    // a successful run with a secret in its configuration.
    let db_url =
        ctx.stack
            .database_url
            .replacen("vadflow:vadflow@", &format!("vadflow:{DB_SECRET}@"), 1);
    assert!(
        db_url.contains(DB_SECRET),
        "unexpected DATABASE_URL {db_url}"
    );
    let (user_amqp, _) = ctx
        .stack
        .amqp_url
        .split_once('@')
        .expect("AMQP URL with credentials");
    let (scheme_user, _) = user_amqp.rsplit_once(':').expect("user:password");
    let bad_amqp =
        ctx.stack
            .amqp_url
            .replacen(user_amqp, &format!("{scheme_user}:{AMQP_SECRET}"), 1);

    let key = format!("{}a.wav", ctx.prefix);
    ctx.put(
        &key,
        vadflow_tests::audio::compose(&[vadflow_tests::audio::SENTENCES[0]], &[0.2, 0.2]).wav(),
    )
    .await;

    // register (S3 and PostgreSQL, succeeds) and enqueue (fails on the broker's password).
    let out = ctx
        .command("producer")
        .args(["register", &format!("s3://{BUCKET}/{key}")])
        .env("DATABASE_URL", &db_url)
        .env("RUST_LOG", "debug")
        .output()
        .await
        .expect("register");
    let log =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "register failed:\n{log}");
    assert_clean("register", &log);
    assert!(ctx.files().await.len() == 1);
    sqlx::query("UPDATE audio_files SET created_at = $1")
        .bind(Utc::now() - chrono::Duration::minutes(5))
        .execute(&ctx.pool)
        .await
        .expect("backdate");

    let out = ctx
        .command("producer")
        .args(["enqueue", "--since", "1h"])
        .env("DATABASE_URL", &db_url)
        .env("AMQP_URL", &bad_amqp)
        .env("RUST_LOG", "debug")
        .output()
        .await
        .expect("enqueue");
    let log =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "enqueue must fail on a wrong password:\n{log}"
    );
    assert!(
        log.contains("127.0.0.1"),
        "the error names the broker:\n{log}"
    );
    assert_clean("enqueue", &log);

    // The worker, retrying a broker that refuses its password.
    let mut worker = ctx
        .command("worker")
        .env("AMQP_URL", &bad_amqp)
        .env("RUST_LOG", "debug")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn worker");
    let mut lines = BufReader::new(worker.stderr.take().expect("stderr")).lines();
    let mut log = String::new();
    let mut failures = 0;
    tokio::time::timeout(DEADLINE, async {
        while let Some(line) = lines.next_line().await.expect("read log") {
            if line.contains(vadflow_worker::events::msg::CANNOT_REACH_BROKER) {
                failures += 1;
            }
            log.push_str(&line);
            log.push('\n');
            if failures == 2 {
                break;
            }
        }
    })
    .await
    .expect("the worker reports the broker failure");
    assert_eq!(failures, 2, "{log}");
    vadflow_tests::signal(&worker, "-TERM");
    while let Ok(Some(line)) = lines.next_line().await {
        log.push_str(&line);
        log.push('\n');
    }
    let status = worker.wait().await.expect("wait");
    assert_eq!(status.code(), Some(0), "{log}");
    assert_clean("worker", &log);
    ctx.cleanup().await;
}

/// Every configuration type of both binaries, parsed from a command line full of passwords and
/// printed with `{:?}`: no password shows (secrets live in `Secret` and `SecretUrl`).
#[test]
fn no_config_prints_a_password() {
    const PW: &str = "Hunter2-Config";
    let amqp = format!("amqp://u:{PW}@127.0.0.1:5672/%2f");
    let db = format!("postgres://u:{PW}@127.0.0.1/db?password={PW}");
    let amqp_flags = ["--amqp-url", amqp.as_str()];
    let db_flags = ["--database-url", db.as_str()];
    let s3_flags = [
        "--s3-region",
        "r",
        "--s3-access-key-id",
        "id",
        "--s3-secret-access-key",
        PW,
        "--s3-session-token",
        PW,
    ];
    let producer_lines: Vec<Vec<&str>> = vec![
        [&["producer", "migrate"][..], &db_flags].concat(),
        [
            &["producer", "register", "s3://b/k"][..],
            &db_flags,
            &s3_flags,
        ]
        .concat(),
        [
            &["producer", "enqueue", "--since", "1h"][..],
            &db_flags,
            &amqp_flags,
        ]
        .concat(),
        [&["producer", "reconcile"][..], &db_flags, &amqp_flags].concat(),
        [&["producer", "collect"][..], &db_flags, &amqp_flags].concat(),
        [&["producer", "status"][..], &db_flags, &amqp_flags].concat(),
        [&["producer", "dlq", "list"][..], &amqp_flags].concat(),
        [
            &["producer", "dlq", "replay", "--all"][..],
            &amqp_flags,
            &db_flags,
        ]
        .concat(),
        [&["producer", "dlq", "purge"][..], &amqp_flags].concat(),
    ];
    let mut printed = Vec::new();
    for line in &producer_lines {
        let cli = <vadflow_producer::cli::Cli as clap::Parser>::try_parse_from(line)
            .unwrap_or_else(|e| panic!("{line:?}: {e}"));
        printed.push(format!("{cli:?}"));
    }
    let run = [
        &["worker", "--results-bucket", "out"][..],
        &amqp_flags,
        &s3_flags,
    ]
    .concat();
    let command = vadflow_worker::cli::parse(&run).expect("worker parses");
    printed.push(format!("{command:?}"));
    let vadflow_worker::cli::Command::Run(args) = command else {
        panic!("worker with flags runs")
    };
    let config = vadflow_worker::consumer::ConsumerConfig {
        amqp_url: args.amqp.amqp_url.clone(),
        amqp_ca_pem: None,
        topology: args.amqp.topology().expect("topology"),
        worker_id: "w".into(),
        concurrency: 1,
        prefetch: 1,
        max_attempts: 1,
        shutdown_timeout: std::time::Duration::from_secs(1),
    };
    printed.push(format!("{config:?}"));
    printed.push(format!("{:?}", args.s3));
    for p in &printed {
        assert!(!p.contains(PW), "a password is printed: {p}");
        assert!(
            p.contains("***"),
            "the secret's place is shown redacted: {p}"
        );
    }
}
