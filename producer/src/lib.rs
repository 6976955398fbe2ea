//! The producer: database access, registration, enqueueing and the collector.

pub mod cli;
pub mod collect;
pub mod db;
pub mod dlq;
pub mod enqueue;
pub mod register;
pub mod state;
pub mod status;
pub mod when;

use cli::{Cli, Command, DlqCommand};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// Runs one producer command until it finishes or `shutdown` is cancelled.
pub async fn run(cli: Cli, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Migrate { db } => {
            let pool = db.connect().await?;
            db.migrate(&pool).await?;
            tracing::info!(schema = %db.db_schema, "schema is up to date");
            Ok(ExitCode::SUCCESS)
        }
        Command::Register(args) => {
            let report = register::run(&args, &shutdown).await?;
            println!("{report}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Enqueue(args) => {
            let report = enqueue::run(&args, &shutdown).await?;
            println!("{report}");
            Ok(if report.failed > 0 {
                ExitCode::from(3)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Reconcile(args) => {
            let report = enqueue::reconcile(&args, &shutdown).await?;
            println!(
                "reconcile: stale={} republished={} failed={}{}",
                report.stale,
                report.republished,
                report.failed,
                if report.dry_run { " (dry run)" } else { "" }
            );
            Ok(if report.failed > 0 {
                ExitCode::from(3)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Collect(args) => {
            collect::run(args, shutdown).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status(args) => {
            let status = status::run(&args).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                status::print_table(&args.db.db_schema, &status);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Dlq(DlqCommand::List(args)) => {
            let (depth, letters) = dlq::list(&args).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&letters)?);
            } else {
                dlq::print_table(&args.amqp.topology()?.dead_letter_queue(), depth, &letters);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Dlq(DlqCommand::Replay(args)) => {
            let report = dlq::replay(&args, &shutdown).await?;
            println!(
                "dlq replay: replayed={} failed={} not_found={}",
                report.replayed,
                report.failed,
                report.not_found.len()
            );
            for id in &report.not_found {
                eprintln!("not in the dead-letter queue: {id}");
            }
            Ok(if report.failed > 0 || !report.not_found.is_empty() {
                ExitCode::from(3)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Dlq(DlqCommand::Purge(args)) => {
            let purged = dlq::purge(&args).await?;
            println!("dlq purge: purged={purged}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
