//! The `incident-operator` binary (wiring): parses flags and hands over to the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use incident_operator::{
    api::Incident,
    config::{ClusterArgs, LogFormat, RunArgs},
    core::postmortem,
    operator, telemetry,
};
use kube::{Api, Client};

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
    Run(Box<RunArgs>),
    /// Print the CustomResourceDefinitions as YAML, or write one file per CRD into a directory
    /// (what `crds/` holds).
    Crds(CrdsArgs),
    /// Print a Markdown post-mortem draft built from an Incident.
    Postmortem(PostmortemArgs),
}

#[derive(clap::Args)]
struct CrdsArgs {
    /// Write `<group>_<plural>.yaml` files here instead of printing one stream.
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

/// Prints the CRDs, or writes them as files.
fn write_crds(dir: Option<&std::path::Path>) -> anyhow::Result<()> {
    match dir {
        None => print!("{}", incident_operator::api::crds_yaml()?),
        Some(dir) => {
            for (file, yaml) in incident_operator::api::crd_files()? {
                std::fs::write(dir.join(file), yaml)?;
            }
        }
    }
    Ok(())
}

#[derive(clap::Args)]
struct PostmortemArgs {
    /// The Incident, as NAMESPACE/NAME.
    #[arg(value_parser = parse_target)]
    incident: (String, String),

    #[command(flatten)]
    cluster: ClusterArgs,
}

/// Splits `namespace/name`.
fn parse_target(text: &str) -> Result<(String, String), String> {
    match text.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_owned(), name.to_owned()))
        }
        _ => Err(format!("`{text}` is not NAMESPACE/NAME")),
    }
}

/// Fetches the Incident and renders its post-mortem draft.
async fn postmortem_draft(args: PostmortemArgs) -> anyhow::Result<String> {
    let config = args.cluster.kube_config().await?;
    let client = Client::try_from(config)?;
    let (namespace, name) = &args.incident;
    let incidents: Api<Incident> = Api::namespaced(client, namespace);
    let incident = incidents
        .get_opt(name)
        .await?
        .ok_or_else(|| anyhow::anyhow!("incident {namespace}/{name} not found"))?;
    Ok(postmortem::render(&incident))
}

/// glibc gives threads their own malloc arenas (up to 8 per core) and keeps what is freed in each:
/// measured, a restart into 5,000 pods held 37 MiB RSS by default and 29 MiB with 2 arenas (10,000:
/// peak 46 against 41 MiB; docs/benchmarks.md). Set before any thread starts.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    // SAFETY: mallopt only sets a malloc parameter; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Other C libraries (musl in the container image) keep no per-thread arenas.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

fn main() -> ExitCode {
    limit_malloc_arenas();
    // clap prints usage errors and exits with code 2 itself.
    let cli = Cli::parse();
    if let Command::Crds(args) = &cli.command {
        return match write_crds(args.dir.as_deref()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: cannot write the CRDs: {error}");
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
        Command::Run(args) => runtime.block_on(operator::run(*args)),
        Command::Postmortem(args) => {
            let draft = runtime.block_on(postmortem_draft(args));
            runtime.shutdown_background();
            return match draft {
                Ok(markdown) => {
                    print!("{markdown}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("error: {error:#}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Crds(_) => Ok(()),
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
