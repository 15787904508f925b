//! `kubectl incident` (plugin layer, the binary): the pager queue, who is on call, and the
//! responder's commands on Incidents. Put the binary on PATH and kubectl finds it. See
//! docs/plugin.md.

use std::{
    io::{IsTerminal, Write},
    path::PathBuf,
    process::ExitCode,
    time::Duration,
};

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum, error::ErrorKind};
use incident_operator::{
    api::{Incident, RollbackAction, Severity, WorkloadKind, duration},
    core::postmortem,
    plugin::{
        flags::{self, PublicImpact, UpdateStatus},
        ops::{self, Session, Target},
        patch::UpdateRequest,
        render,
        report::{self, Report},
    },
};
use serde::Serialize;

/// `--next`: a duration as the Incident's schema admits it (`30m`, `1h30m`), at most a day.
fn parse_next(text: &str) -> Result<String, String> {
    let written_as_the_schema_wants = text.starts_with(|c: char| c.is_ascii_digit())
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || "hms".contains(c));
    let parsed = duration::parse(text)?;
    if !written_as_the_schema_wants || parsed.is_zero() || parsed > Duration::from_secs(24 * 3600) {
        return Err(format!(
            "`{text}`: write a duration between 1s and 24h, e.g. 30m or 1h30m"
        ));
    }
    Ok(text.to_owned())
}

#[derive(Parser)]
#[command(
    name = "kubectl-incident",
    bin_name = "kubectl incident",
    version,
    about = "Respond to incidents: the pager queue, who is on call, acknowledge, who leads, notes, \
             approvals, resolution"
)]
struct Cli {
    /// Namespace of the incidents (default: the kubeconfig context's namespace, else default).
    #[arg(short = 'n', long, global = true)]
    namespace: Option<String>,

    /// Kubeconfig context to use instead of the current one.
    #[arg(long, global = true)]
    context: Option<String>,

    /// Kubeconfig file (default: KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Json,
    Yaml,
}

#[derive(Subcommand)]
enum Command {
    /// The pager queue: open incidents, most urgent first, with the time left to respond.
    List {
        /// List the incidents of every namespace (a NAMESPACE column comes first).
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        /// Include closed incidents (hidden by default: the queue is what still needs work).
        #[arg(long)]
        all: bool,
        /// Print the incidents as a JSON or YAML List instead of a table.
        #[arg(short, long, value_enum)]
        output: Option<Output>,
    },
    /// Open an incident someone reported (a user, a support ticket, a monitor outside the cluster).
    Create(CreateArgs),
    /// An incident for people: facts, timeline, actions, runbook steps, evidence and notes.
    Show {
        name: String,
        /// Print the Incident as JSON or YAML.
        #[arg(short, long, value_enum)]
        output: Option<Output>,
    },
    /// Claim the incident (sets spec.acknowledgment to you).
    Ack {
        name: String,
        /// What you are doing about it.
        #[arg(long)]
        note: Option<String>,
    },
    /// Lead the response yourself (sets spec.commander to you).
    Take { name: String },
    /// Resume the Flux or Argo CD owners paused for the incident's rollbacks (after the fix is in
    /// Git; sets spec.gitops.resume).
    ResumeGitops { name: String },
    /// Hand the lead of the response to someone else (sets spec.commander).
    Handover {
        name: String,
        /// Who leads from now on (as the timeline and the schedules name people).
        #[arg(long, value_name = "PERSON", value_parser = report::person)]
        to: String,
    },
    /// Who is on call, per OnCallSchedule and layer, and the next handoffs.
    ///
    /// For each schedule of the namespace and each of its layers: who answers at TIME (default
    /// now), since and until when, whether by an override, then the next handoffs. Times are shown
    /// in each schedule's own time zone, where its handoffs happen.
    Oncall {
        /// The schedules of every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        /// The time to answer for, RFC 3339 (e.g. 2026-12-24T20:00:00+01:00; default: now).
        #[arg(long, value_name = "TIME", value_parser = render::parse_at)]
        at: Option<jiff::Timestamp>,
        /// How many handoffs ahead to list per layer (0: none).
        #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u16).range(0..=100))]
        handoffs: u16,
    },
    /// Add a note to the responders' log.
    Note { name: String, text: String },
    /// Post an update for the people following the incident (what is known, what is being done);
    /// it goes to the timeline and the incident's channels, and restarts the P0/P1 update clock.
    ///
    /// With --public, the text after it goes to the public status page instead (or as well, when
    /// TEXT is given too); publish the incident first.
    Update {
        name: String,
        #[arg(required_unless_present = "public")]
        text: Option<String>,
        /// A public update for the status page (the incident must be published).
        #[arg(long, value_name = "TEXT")]
        public: Option<String>,
        /// How the response stands: investigating, identified, fixing or monitoring; for a public
        /// update investigating, identified, monitoring or resolved.
        #[arg(long, value_enum)]
        status: Option<UpdateStatus>,
        /// When the next update comes, e.g. 30m (default: the severity's update interval).
        #[arg(long, value_parser = parse_next)]
        next: Option<String>,
    },
    /// Publish the incident on the status page: a public title, the impact and the components it
    /// affects. Nothing else of the incident becomes public.
    Publish {
        name: String,
        /// The title users see (not the internal one).
        #[arg(long)]
        title: String,
        /// A StatusPage component the incident affects (repeatable).
        #[arg(long = "component", value_name = "NAME")]
        components: Vec<String>,
        /// How much users are affected: none, minor, major or critical.
        #[arg(long, value_enum)]
        impact: PublicImpact,
    },
    /// Approve a runbook step waiting for a person, or mark a checkpoint done.
    Approve { name: String, step: String },
    /// Resolve the incident.
    Resolve {
        name: String,
        /// Why it happened, if known.
        #[arg(long)]
        root_cause: Option<String>,
        /// What was done to resolve it.
        #[arg(long)]
        summary: String,
    },
    /// Change the severity (P0, P1, P2, P3).
    Severity {
        name: String,
        #[arg(value_parser = parse_severity)]
        severity: Severity,
    },
    /// Print a Markdown post-mortem draft.
    Postmortem { name: String },
    /// Roll a workload back through the operator and follow it to the end.
    Rollback {
        /// NAME (a Deployment) or KIND/NAME as `kubectl rollout undo` takes it: deployment/web,
        /// statefulset/db (sts), daemonset/agent (ds).
        #[arg(value_parser = flags::Workload::parse)]
        workload: flags::Workload,
        /// Revision to return to (default: the previous one).
        #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
        to_revision: Option<i64>,
        /// Add the rollback to this incident instead of opening a new one.
        #[arg(long)]
        incident: Option<String>,
        /// Severity of the incident opened when --incident is not given.
        #[arg(long, value_parser = parse_severity, default_value = "P2")]
        severity: Severity,
        /// Give up following after this many seconds (the rollback itself continues).
        #[arg(long, default_value_t = 720)]
        timeout: u64,
        /// For a workload Flux or Argo CD applies (its owner is paused first): resume the owner
        /// only on request (`resume-gitops`), or also once its source has a new revision.
        #[arg(long, value_enum)]
        gitops_resume: Option<flags::ResumeOwner>,
    },
}

/// `create`: each flag checked as the Incident's schema checks it (see `plugin::report`).
#[derive(Args)]
struct CreateArgs {
    /// The incident's name (default: report-xxxxx, chosen by the API server).
    #[arg(value_parser = report::object_name)]
    name: Option<String>,
    /// What is wrong, in a line a responder understands at a glance.
    #[arg(long, value_parser = report::title)]
    title: String,
    /// How bad it is: P0, P1, P2 or P3.
    #[arg(long, value_parser = parse_severity)]
    severity: Severity,
    /// How it came to us: user-report, support-ticket, monitoring, ... (lowercase, dashes).
    #[arg(long, default_value = report::DEFAULT_SOURCE, value_parser = report::source)]
    source: String,
    /// Who reported it (default: you).
    #[arg(long, value_parser = report::person)]
    reporter: Option<String>,
    /// Where the report lives: an http(s) URL.
    #[arg(long, value_name = "URL", value_parser = report::ticket)]
    ticket: Option<String>,
    /// An affected Deployment in the namespace (repeat for several).
    #[arg(long = "deployment", value_name = "NAME", value_parser = report::object_name)]
    deployments: Vec<String>,
    /// Symptoms and scope, as known.
    #[arg(long, value_parser = report::description)]
    description: Option<String>,
    /// Who leads the response.
    #[arg(long, value_parser = report::person)]
    commander: Option<String>,
}

impl From<&CreateArgs> for Report {
    fn from(args: &CreateArgs) -> Self {
        Report {
            name: args.name.clone(),
            title: args.title.clone(),
            severity: args.severity,
            source: args.source.clone(),
            reporter: args.reporter.clone(),
            ticket: args.ticket.clone(),
            deployments: args.deployments.clone(),
            description: args.description.clone(),
            commander: args.commander.clone(),
        }
    }
}

fn parse_severity(text: &str) -> Result<Severity, String> {
    Severity::ALL
        .into_iter()
        .find(|s| s.as_str().eq_ignore_ascii_case(text.trim()))
        .ok_or_else(|| format!("`{text}` is not a severity: use P0, P1, P2 or P3"))
}

fn encode<T: Serialize>(value: &T, output: Output) -> anyhow::Result<String> {
    Ok(match output {
        Output::Json => serde_json::to_string_pretty(value)? + "\n",
        Output::Yaml => serde_yaml_ng::to_string(value)?,
    })
}

/// kubectl's shape for `-o json` of many objects.
#[derive(Serialize)]
struct List<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    items: &'a [Incident],
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let target = Target {
        kubeconfig: cli.kubeconfig,
        context: cli.context,
        namespace: cli.namespace,
    };
    let session = Session::connect(&target).await?;
    let now = jiff::Timestamp::now();
    let mut stdout = std::io::stdout().lock();
    match cli.command {
        Command::List {
            all_namespaces,
            all,
            output,
        } => {
            let mut incidents = if all_namespaces {
                session.list_all().await?
            } else {
                session.list().await?
            };
            let listed = incidents.len();
            if !all {
                incidents.retain(render::in_queue);
            }
            let hidden = listed - incidents.len();
            render::sort_by_urgency(&mut incidents);
            match output {
                Some(output) => {
                    let list = List {
                        api_version: "v1",
                        kind: "List",
                        items: &incidents,
                    };
                    write!(stdout, "{}", encode(&list, output)?)?;
                }
                None if incidents.is_empty() && all_namespaces => {
                    eprintln!("No incidents found.");
                }
                None if incidents.is_empty() => {
                    eprintln!("No incidents found in {} namespace.", session.namespace);
                }
                None => {
                    let calendars = session.calendars(&incidents).await;
                    let table = render::list_table(&incidents, now, all_namespaces, &calendars);
                    write!(stdout, "{table}")?;
                }
            }
            if hidden > 0 && output.is_none() {
                eprintln!("{hidden} closed incident(s) not shown; --all lists them.");
            }
        }
        Command::Create(args) => {
            let (name, dropped) = session.create(&Report::from(&args)).await?;
            writeln!(stdout, "{} created", ops::reference(&name))?;
            if !dropped.is_empty() {
                eprintln!(
                    "Warning: the cluster's Incident CRD does not know {}; they were not kept. \
                     Install the CRDs of this version (crds/).",
                    dropped.join(", ")
                );
            }
        }
        Command::Show { name, output } => {
            let incident = session.get(&name).await?;
            match output {
                Some(output) => write!(stdout, "{}", encode(&incident, output)?)?,
                None => write!(stdout, "{}", render::show(&incident, now))?,
            }
        }
        Command::Ack { name, note } => {
            writeln!(
                stdout,
                "{}",
                session.acknowledge(&name, note.as_deref()).await?
            )?;
        }
        Command::Oncall {
            all_namespaces,
            at,
            handoffs,
        } => {
            let schedules = session.schedules(all_namespaces).await?;
            if schedules.is_empty() && all_namespaces {
                eprintln!("No on-call schedules found.");
            } else if schedules.is_empty() {
                eprintln!(
                    "No on-call schedules found in {} namespace.",
                    session.namespace
                );
            } else {
                let at = at.unwrap_or(now);
                let text = render::oncall(&schedules, at, usize::from(handoffs));
                write!(stdout, "{text}")?;
            }
        }
        Command::Take { name } => {
            writeln!(stdout, "{}", session.take(&name).await?)?;
        }
        Command::ResumeGitops { name } => {
            writeln!(stdout, "{}", session.resume_gitops(&name).await?)?;
        }
        Command::Handover { name, to } => {
            writeln!(stdout, "{}", session.handover(&name, &to).await?)?;
        }
        Command::Note { name, text } => {
            writeln!(stdout, "{}", session.note(&name, &text).await?)?;
        }
        Command::Update {
            name,
            text,
            public,
            status,
            next,
        } => {
            if let Some(text) = &text {
                let internal = match status {
                    Some(UpdateStatus::Resolved) => None,
                    other => other.map(UpdateStatus::into_api),
                };
                let update = UpdateRequest {
                    text,
                    status: internal,
                    next: next.as_deref(),
                };
                writeln!(stdout, "{}", session.update(&name, update).await?)?;
            }
            if let Some(body) = &public {
                let status = status.and_then(UpdateStatus::into_public);
                writeln!(
                    stdout,
                    "{}",
                    session.public_update(&name, body, status).await?
                )?;
            }
        }
        Command::Publish {
            name,
            title,
            components,
            impact,
        } => {
            let message = session
                .publish(&name, &title, impact.into_api(), &components)
                .await?;
            writeln!(stdout, "{message}")?;
        }
        Command::Approve { name, step } => {
            writeln!(stdout, "{}", session.approve(&name, &step).await?)?;
        }
        Command::Resolve {
            name,
            root_cause,
            summary,
        } => {
            let message = session
                .resolve(&name, root_cause.as_deref(), &summary)
                .await?;
            writeln!(stdout, "{message}")?;
        }
        Command::Severity { name, severity } => {
            writeln!(stdout, "{}", session.set_severity(&name, severity).await?)?;
        }
        Command::Postmortem { name } => {
            let incident = session.get(&name).await?;
            write!(stdout, "{}", postmortem::render(&incident))?;
        }
        Command::Rollback {
            workload,
            to_revision,
            incident,
            severity,
            timeout,
            gitops_resume,
        } => {
            let rollback = RollbackAction {
                deployment: workload.name.clone(),
                // Deployment stays implicit, as in every object written before kinds existed.
                kind: (workload.kind != WorkloadKind::Deployment).then_some(workload.kind),
                to_revision,
                gitops: None,
                pause_shared_owner: None,
                gitops_resume: gitops_resume.map(flags::ResumeOwner::into_api),
            };
            let (incident, action) = session
                .request_rollback(rollback, incident.as_deref(), severity)
                .await?;
            writeln!(
                stdout,
                "{} rollback {action} of {} {} requested",
                ops::reference(&incident),
                workload.kind.to_string().to_lowercase(),
                workload.name
            )?;
            stdout.flush()?;
            let live = std::io::stderr().is_terminal();
            let status = session
                .follow_action(&incident, &action, Duration::from_secs(timeout), |status| {
                    let line = ops::progress_line(status);
                    if live {
                        eprint!("\r\x1b[K{line}");
                    } else {
                        eprintln!("{line}");
                    }
                })
                .await;
            if live {
                eprintln!();
            }
            let status = status?;
            writeln!(stdout, "rollback {action} {:?}", status.phase)?;
            if !ops::succeeded(&status) {
                stdout.flush()?;
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The error and its causes, each said once (client errors often repeat their source).
fn message(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let cause = cause.to_string();
        if text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}

fn main() -> ExitCode {
    // clap prints usage errors and exits with code 2 itself.
    let cli = Cli::parse();
    // What the flags cannot check one by one (e.g. how many Deployments), before any request.
    if let Command::Create(args) = &cli.command
        && let Err(problem) = Report::from(args).check()
    {
        let mut command = Cli::command();
        command.build();
        let create = command.find_subcommand_mut("create");
        create
            .unwrap_or(&mut Cli::command())
            .error(ErrorKind::ValueValidation, problem)
            .exit();
    }
    if let Command::Update {
        text,
        public,
        status: Some(status),
        ..
    } = &cli.command
    {
        let problem = status.problem(text.is_some(), public.is_some());
        if let Some(problem) = problem {
            let mut command = Cli::command();
            command.build();
            command
                .find_subcommand_mut("update")
                .unwrap_or(&mut Cli::command())
                .error(ErrorKind::ValueValidation, problem)
                .exit();
        }
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("Error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(cli));
    runtime.shutdown_background();
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("Error: {}", message(&error));
            ExitCode::FAILURE
        }
    }
}
