//! `producer`: reads audio file references from PostgreSQL and publishes jobs to RabbitMQ; also
//! migrates the schema, registers objects, writes results back (`collect`) and manages dead
//! letters.

use clap::Parser;
use vadflow_producer::cli::Cli;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let telemetry = match vadflow_common::telemetry::init("vadflow-producer") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    let code = match vadflow_common::shutdown::install() {
        Ok(shutdown) => match vadflow_producer::run(cli, shutdown).await {
            Ok(code) => code,
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "producer failed");
                std::process::ExitCode::FAILURE
            }
        },
        Err(e) => {
            tracing::error!(error = %e, "cannot install signal handlers");
            std::process::ExitCode::FAILURE
        }
    };
    telemetry.shutdown();
    code
}
