//! The `incident-operator` binary: parses flags and hands over to the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use incident_operator::{
    config::{LogFormat, RunArgs},
    operator, telemetry,
};

#[derive(Parser)]
#[command(name = "incident-operator", version, about)]
struct Cli {
    /// Log line format.
    #[arg(
        long,
        global = true,
        env = "INCIDENT_LOG_FORMAT",
        value_enum,
        default_value_t
    )]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator against the cluster.
    Run(RunArgs),
    /// Print the CustomResourceDefinitions as YAML (what `crds/` holds).
    Crds,
}

fn main() -> ExitCode {
    // clap prints usage errors and exits with code 2 itself.
    let cli = Cli::parse();
    if let Command::Crds = cli.command {
        return match incident_operator::api::crds_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: cannot render the CRDs: {error}");
                ExitCode::FAILURE
            }
        };
    }
    telemetry::init(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match cli.command {
        Command::Run(args) => runtime.block_on(operator::run(args)),
        Command::Crds => Ok(()),
    };
    // Dropping the runtime would wait for blocking tasks; the operator is done, so don't.
    runtime.shutdown_background();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Configuration the operator cannot use is a usage error, like a bad flag.
            let code = if error.is_configuration() { 2 } else { 1 };
            let error = anyhow::Error::new(error);
            tracing::error!(error = format!("{error:#}"), "operator stopped");
            eprintln!("error: {error:#}");
            ExitCode::from(code)
        }
    }
}
