//! `producer register`: listing a prefix, explicit objects, uploads, and no duplicates.

use vadflow_common::s3::S3Args;
use vadflow_producer::cli::RegisterArgs;
use vadflow_tests::{BUCKET, TestCtx};

fn args(ctx: &TestCtx, targets: Vec<String>, from: Option<std::path::PathBuf>) -> RegisterArgs {
    RegisterArgs {
        db: ctx.db.clone(),
        s3: S3Args::clone(&ctx.stack.s3),
        targets,
        from,
        all_objects: false,
        sql: None,
        source_database_url: None,
        batch_size: 1000,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_prefixes_and_objects_once() {
    let ctx = TestCtx::new("register").await;
    let token = tokio_util::sync::CancellationToken::new();
    for key in ["a.wav", "sub/b.flac", "notes.txt", "c.mp3"] {
        ctx.put(&format!("{}{key}", ctx.prefix), vec![1, 2, 3])
            .await;
    }
    // A prefix: every audio object under it (not notes.txt).
    let r = vadflow_producer::register::run(
        &args(&ctx, vec![format!("s3://{BUCKET}/{}", ctx.prefix)], None),
        &token,
    )
    .await
    .expect("register prefix");
    assert_eq!((r.found, r.inserted, r.already), (3, 3, 0));
    // Again, plus one explicit object already known: nothing new.
    let explicit = format!("s3://{BUCKET}/{}a.wav", ctx.prefix);
    let r = vadflow_producer::register::run(
        &args(
            &ctx,
            vec![format!("s3://{BUCKET}/{}", ctx.prefix), explicit],
            None,
        ),
        &token,
    )
    .await
    .expect("register again");
    assert_eq!((r.inserted, r.already), (0, 4));
    let rows = ctx.files().await;
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r.status == "pending"));

    // Uploading a local directory first.
    let dir = std::env::temp_dir().join(format!("vadflow-register-{}", ctx.id));
    std::fs::create_dir_all(dir.join("day1")).expect("mkdir");
    std::fs::write(dir.join("day1/x.wav"), b"RIFF").expect("write");
    std::fs::write(dir.join("readme.md"), b"no").expect("write");
    let up = format!("s3://{BUCKET}/{}uploaded/", ctx.prefix);
    let r = vadflow_producer::register::run(&args(&ctx, vec![up], Some(dir.clone())), &token)
        .await
        .expect("upload and register");
    assert_eq!((r.uploaded, r.inserted), (1, 1));
    assert!(
        ctx.get(&format!("{}uploaded/day1/x.wav", ctx.prefix))
            .await
            .is_some()
    );

    // A target that is neither an object nor a prefix with audio is an error naming it.
    let err = vadflow_producer::register::run(
        &args(
            &ctx,
            vec![format!("s3://{BUCKET}/{}nothing-here", ctx.prefix)],
            None,
        ),
        &token,
    )
    .await
    .expect_err("nothing to register");
    assert!(format!("{err:#}").contains("nothing-here"), "{err:#}");
    let _ = std::fs::remove_dir_all(dir);
    ctx.cleanup().await;
}
