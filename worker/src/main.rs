//! `worker`: consumes vadflow jobs (default), or analyses local files (`worker vad`).

use std::process::ExitCode;
use vadflow_worker::cli::{Command, parse};

#[tokio::main]
async fn main() -> ExitCode {
    let invocation = match parse(std::env::args_os()) {
        Ok(i) => i,
        Err(e) => e.exit(),
    };
    let telemetry = match vadflow_common::telemetry::init("vadflow-worker") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let shutdown = match vadflow_common::shutdown::install() {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "cannot install signal handlers");
            return ExitCode::FAILURE;
        }
    };
    let code = match invocation {
        Command::Run(args) => match vadflow_worker::run(*args, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "worker failed");
                ExitCode::FAILURE
            }
        },
        Command::Vad(args) => {
            let result =
                tokio::task::spawn_blocking(move || vadflow_worker::local::run(&args, &shutdown))
                    .await;
            match result {
                Ok(Ok(report)) => {
                    println!(
                        "vad: files={} done={} failed={} already_done={}{}",
                        report.total,
                        report.done,
                        report.failed,
                        report.skipped,
                        if report.interrupted {
                            " (interrupted)"
                        } else {
                            ""
                        }
                    );
                    if report.interrupted {
                        ExitCode::from(130)
                    } else if report.failed > 0 {
                        ExitCode::from(1)
                    } else {
                        ExitCode::SUCCESS
                    }
                }
                Ok(Err(e)) => {
                    tracing::error!(error = format!("{e:#}"), "local mode failed");
                    ExitCode::FAILURE
                }
                Err(e) => {
                    tracing::error!(error = %e, "local mode crashed");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Resegment(args) => match vadflow_worker::resegment::run(&args).await {
            Ok(report) => {
                println!(
                    "resegment: tracks={} done={} failed={}",
                    report.total, report.done, report.failed
                );
                if report.failed > 0 {
                    ExitCode::from(1)
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "resegment failed");
                ExitCode::FAILURE
            }
        },
        Command::Tune(args) => match vadflow_worker::tune::run(&args) {
            Ok(o) => {
                let row = |name: &str, c: &vadflow_worker::eval::Counts| {
                    println!(
                        "{name:<10} {:>8.1} {:>8.1} {:>9.1}",
                        100.0 * c.precision(),
                        100.0 * c.recall(),
                        100.0 * c.f1()
                    );
                };
                println!(
                    "tune: {} files, {} settings tried; pooled, 10 ms frames:",
                    o.files, o.settings_tried
                );
                println!(
                    "{:<10} {:>8} {:>8} {:>9}",
                    "", "frame P", "frame R", "frame F1"
                );
                row("defaults", &o.before);
                row("tuned", &o.after);
                let s = &o.profile.segmentation;
                println!(
                    "settings: threshold {} neg_threshold {} smoothing {}s trigger {} pad_start {}s \
                     pad_end {}s min_speech {}s min_silence {}s; profile written to {}",
                    s.threshold,
                    s.neg_threshold,
                    s.smoothing,
                    s.trigger,
                    s.pad_start,
                    s.pad_end,
                    s.min_speech,
                    s.min_silence,
                    args.out.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "tune failed");
                ExitCode::FAILURE
            }
        },
        Command::Report(args) => match vadflow_worker::report::run(&args) {
            Ok(s) => {
                println!(
                    "report: done={} failed={} timelines={} written to {}",
                    s.done,
                    s.failed,
                    s.timelines,
                    args.out.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "report failed");
                ExitCode::FAILURE
            }
        },
    };
    telemetry.shutdown();
    code
}
