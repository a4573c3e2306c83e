//! Command-line definitions and glue: the only place that knows about terminals, output
//! streams and exit codes (0 success, 1 validation errors or a deploy that did not reach
//! the desired state, 2 usage or I/O failure).

mod deploy;

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::core::diag::Code;
use crate::core::render;
use crate::core::schema::FileKind;
use crate::daemon::config::{self, Auth, Config, Environment, LogFormat, Overrides, Source};

#[derive(Parser, Debug)]
#[command(
    name = "capstan",
    version,
    about = "GitOps reconciler for shared infrastructure"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate the repository: schemas, references, types, sharing grants, cycles.
    Validate {
        /// The repository root (the folder holding capstan.yaml); may be inside a larger git repository.
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// Read this git revision from the object database instead of the working tree.
        #[arg(long)]
        rev: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Plan: what changes between two revisions (or a revision and the deployed state),
    /// why, what is affected downstream, in what order.
    Plan {
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// The old state (e.g. the merge base of a pull request).
        #[arg(long, default_value = "HEAD")]
        base: String,
        /// Plan against the deployed state in this database instead of --base.
        #[arg(long, conflicts_with = "base")]
        state: Option<PathBuf>,
        /// The new state.
        #[arg(long, conflicts_with = "worktree")]
        head: Option<String>,
        /// Plan the working tree (uncommitted edits included) against --base.
        #[arg(long)]
        worktree: bool,
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
        /// Exit 0 with no changes, 1 on errors, 2 with changes; usage and I/O failures give 3.
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Deploy a revision: plan it against the deployed state, then run what changed,
    /// wave by wave, and record the result.
    Apply {
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        #[arg(long, default_value = "HEAD")]
        rev: String,
        /// The state database; logs and working directories go beside it.
        #[arg(long, default_value = ".capstan/state.db")]
        state: PathBuf,
        /// How many instances of a wave deploy at once.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
        parallel: u16,
        /// How long one instance's steps may take, e.g. 30m.
        #[arg(long, default_value = "30m")]
        timeout: String,
        /// Deploy without asking.
        #[arg(long)]
        yes: bool,
    },
    /// What is deployed: `state list`, `state show INSTANCE` (sensitive values hidden).
    State {
        #[command(subcommand)]
        command: StateCommand,
    },
    /// The instance graph with cross-project edges labelled by how they are made.
    Graph {
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        #[arg(long)]
        rev: Option<String>,
        #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
        format: GraphFormat,
        /// Only this project's instances and the edges that touch them.
        #[arg(long)]
        project: Option<String>,
    },
    /// Explain a diagnostic code, with an example; without a code, list them all.
    Explain { code: Option<String> },
    /// Print the JSON Schema of a file kind (for editors); without a kind, list the kinds.
    Schema { kind: Option<String> },
    /// Run the daemon: plan every pull request on GitHub as one living comment, or watch a
    /// local checkout and print the plan of each edit.
    Serve(Box<ServeArgs>),
}

#[derive(Subcommand, Debug)]
enum StateCommand {
    /// Every recorded instance with its status, bundle, commit and time.
    List {
        #[arg(long, default_value = ".capstan/state.db")]
        state: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// One instance: inputs, artifacts and recent steps with their logs.
    Show {
        instance: String,
        #[arg(long, default_value = ".capstan/state.db")]
        state: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// The configuration file (schema: `capstan schema serve`).
    #[arg(long, env = "CAPSTAN_CONFIG")]
    config: Option<PathBuf>,
    /// Validate the configuration (and read the secret files), print a summary, exit.
    #[arg(long)]
    check_config: bool,
    /// A local checkout to watch (overrides repository.path/url).
    #[arg(long, env = "CAPSTAN_REPO")]
    repo: Option<PathBuf>,
    /// A remote to mirror (overrides repository.url/path).
    #[arg(long, env = "CAPSTAN_REPO_URL", conflicts_with = "repo")]
    repo_url: Option<String>,
    #[arg(long, env = "CAPSTAN_BRANCH")]
    branch: Option<String>,
    #[arg(long, env = "CAPSTAN_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Address for webhooks, /healthz, /readyz and /metrics, e.g. 127.0.0.1:8080.
    #[arg(long, env = "CAPSTAN_LISTEN")]
    listen: Option<String>,
    #[arg(long, env = "CAPSTAN_GITHUB_API_URL")]
    github_api_url: Option<String>,
    /// owner/name on GitHub.
    #[arg(long, env = "CAPSTAN_GITHUB_REPOSITORY")]
    github_repository: Option<String>,
    #[arg(long, env = "CAPSTAN_GITHUB_TOKEN_FILE")]
    github_token_file: Option<PathBuf>,
    #[arg(long, env = "CAPSTAN_WEBHOOK_SECRET_FILE")]
    webhook_secret_file: Option<PathBuf>,
    /// e.g. 60s; 0s turns polling off.
    #[arg(long, env = "CAPSTAN_POLL_INTERVAL")]
    poll_interval: Option<String>,
    #[arg(long, env = "CAPSTAN_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
}

impl ServeArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            repo_path: self.repo.clone(),
            repo_url: self.repo_url.clone(),
            branch: self.branch.clone(),
            state_dir: self.state_dir.clone(),
            listen: self.listen.clone(),
            github_api_url: self.github_api_url.clone(),
            github_repository: self.github_repository.clone(),
            github_token_file: self.github_token_file.clone(),
            webhook_secret_file: self.webhook_secret_file.clone(),
            poll_interval: self.poll_interval.clone(),
            log_format: self.log_format,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum GraphFormat {
    Mermaid,
    Dot,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum PlanFormat {
    Text,
    Markdown,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Text,
    Json,
}

/// Exit code for usage and I/O failures.
const FAILURE: i32 = 2;

pub fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { FAILURE } else { 0 };
        }
    };
    if !matches!(cli.command, Command::Serve(_)) {
        init_logging(LogFormat::Text, "warn");
    }
    let detailed = matches!(
        cli.command,
        Command::Plan {
            detailed_exitcode: true,
            ..
        }
    );
    match execute(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("capstan: error: {}", chain(&e));
            if detailed { FAILURE + 1 } else { FAILURE }
        }
    }
}

/// Logs go to stderr, filtered by `CAPSTAN_LOG` (e.g. `CAPSTAN_LOG=debug`) or else by
/// `default`, so stdout stays the command's output.
fn init_logging(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CAPSTAN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialisation (tests calling run twice) keeps the first.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

fn serve(args: &ServeArgs) -> anyhow::Result<i32> {
    let overrides = args.overrides();
    let env = Environment::from_process();
    let file = args.config.clone();
    let cfg = config::load(file.as_deref(), &overrides, &env)?;
    if args.check_config {
        out(&describe(&cfg))?;
        return Ok(0);
    }
    init_logging(cfg.log_format, &cfg.log_level);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let shutdown = tokio_util::sync::CancellationToken::new();
        let (reload_tx, reload_rx) = tokio::sync::mpsc::unbounded_channel();
        let signals = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = forward_signals(signals, reload_tx).await {
                tracing::error!(error = %e, "installing signal handlers");
            }
        });
        let control = crate::daemon::Control {
            shutdown,
            reload: reload_rx,
            reloader: Box::new(move || config::load(file.as_deref(), &overrides, &env)),
        };
        crate::daemon::run(cfg, control).await
    })?;
    Ok(0)
}

/// SIGTERM and SIGINT start the drain (a second one exits at once); SIGHUP reloads.
async fn forward_signals(
    shutdown: tokio_util::sync::CancellationToken,
    reload: tokio::sync::mpsc::UnboundedSender<()>,
) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the configuration");
                let _ = reload.send(());
                continue;
            }
        }
        if shutdown.is_cancelled() {
            tracing::warn!("second signal: exiting without draining");
            std::process::exit(FAILURE);
        }
        tracing::info!("shutting down");
        shutdown.cancel();
    }
}

/// The configuration as `--check-config` shows it: every setting, no secret.
fn describe(cfg: &Config) -> String {
    let mut s = String::from("configuration ok\n");
    if let Some(file) = &cfg.file {
        s.push_str(&format!("  file:        {}\n", file.display()));
    }
    match &cfg.repository.source {
        Source::Remote { url, ssh_key } => {
            s.push_str(&format!(
                "  repository:  {} (mirrored)\n",
                crate::source::mirror::redact_url(url)
            ));
            if let Some(key) = ssh_key {
                s.push_str(&format!("  ssh key:     {}\n", key.display()));
            }
        }
        Source::Local { path } => s.push_str(&format!(
            "  repository:  {} (local, watched)\n",
            path.display()
        )),
    }
    if !cfg.repository.root.is_empty() {
        s.push_str(&format!("  root:        {}\n", cfg.repository.root));
    }
    s.push_str(&format!("  branch:      {}\n", cfg.repository.branch));
    s.push_str(&format!("  state dir:   {}\n", cfg.state_dir.display()));
    match &cfg.github {
        Some(gh) => {
            s.push_str(&format!("  listen:      {}\n", cfg.listen));
            s.push_str(&format!(
                "  github:      {}/{} at {}\n",
                gh.owner, gh.name, gh.api_url
            ));
            s.push_str(&format!(
                "  auth:        {}\n",
                match &gh.auth {
                    Auth::Token(_) => "token (read from its file)".to_string(),
                    Auth::App {
                        id,
                        installation_id,
                        ..
                    } => format!(
                        "GitHub App {id}, installation {installation_id} (key read from its file)"
                    ),
                }
            ));
            s.push_str(&format!(
                "  webhooks:    {}\n",
                if gh.webhook_secret.is_some() {
                    "on (secret read from its file)"
                } else {
                    "off (no webhook secret)"
                }
            ));
            s.push_str(&format!(
                "  polling:     {}\n",
                gh.poll_interval
                    .map_or("off".to_string(), |d| humantime::format_duration(d)
                        .to_string())
            ));
        }
        None => s.push_str(
            "  github:      not configured: the working tree's plan is printed on each edit\n",
        ),
    }
    s.push_str(&format!("  workers:     {}\n", cfg.workers));
    for sch in &cfg.schedules {
        s.push_str(&format!(
            "  schedule:    {} `{}` -> {:?}\n",
            sch.name, sch.cron.pattern, sch.job
        ));
    }
    s.push_str(&format!(
        "  shutdown:    {}\n",
        humantime::format_duration(cfg.shutdown_timeout)
    ));
    s
}

fn chain(e: &anyhow::Error) -> String {
    crate::error::chain(e.as_ref())
}

fn out(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        // A closed pipe (`capstan validate | head`) is the reader's choice, not a failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// A revision's diagnostics in a plan's format.
fn diagnostics(checked: &crate::core::Checked, format: PlanFormat) -> String {
    match format {
        PlanFormat::Text => render::diagnostics::text(checked),
        PlanFormat::Markdown => render::markdown::diagnostics(
            &checked.diagnostics,
            &render::markdown::Options::new(None),
        ),
        PlanFormat::Json => render::diagnostics::json(checked),
    }
}

fn render_plan(
    plan: &crate::core::plan::Plan,
    new: &crate::core::Checked,
    format: PlanFormat,
) -> String {
    let color = std::env::var_os("NO_COLOR").is_none()
        && std::io::IsTerminal::is_terminal(&std::io::stdout());
    match format {
        PlanFormat::Text => render::plan::text(plan, color),
        PlanFormat::Markdown => render::markdown::plan(
            plan,
            &new.diagnostics,
            &render::markdown::Options::new(None),
        ),
        PlanFormat::Json => render::plan::json(plan),
    }
}

fn execute(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Serve(args) => serve(&args),
        Command::Validate { repo, rev, format } => {
            let tree = crate::source::read(&repo, rev.as_deref())?;
            let checked = crate::core::check(&tree);
            tracing::debug!(
                files = tree.files().len(),
                diagnostics = checked.diagnostics.len(),
                "validated"
            );
            out(&match format {
                Format::Text => render::diagnostics::text(&checked),
                Format::Json => render::diagnostics::json(&checked),
            })?;
            Ok(i32::from(checked.has_errors()))
        }
        Command::Plan {
            repo,
            base,
            state,
            head,
            worktree,
            format,
            detailed_exitcode,
        } => {
            let head_rev = if worktree {
                None
            } else {
                Some(head.as_deref().unwrap_or("HEAD"))
            };
            if let Some(db) = state {
                return deploy::plan(&repo, head_rev, &db, format, detailed_exitcode);
            }
            let old = crate::core::check(&crate::source::read_base(&repo, &base)?);
            let new = crate::core::check(&crate::source::read(&repo, head_rev)?);
            if new.has_errors() {
                out(&diagnostics(&new, format))?;
                return Ok(1);
            }
            let plan = crate::core::plan::plan(&old, &new);
            out(&render_plan(&plan, &new, format))?;
            Ok(if detailed_exitcode && !plan.is_empty() {
                2
            } else {
                0
            })
        }
        Command::Apply {
            repo,
            rev,
            state,
            parallel,
            timeout,
            yes,
        } => deploy::apply(deploy::Apply {
            repo,
            rev,
            state,
            parallel: parallel.into(),
            timeout,
            yes,
        }),
        Command::State {
            command: StateCommand::List { state, format },
        } => deploy::state_list(&state, format),
        Command::State {
            command:
                StateCommand::Show {
                    instance,
                    state,
                    format,
                },
        } => deploy::state_show(&state, &instance, format),
        Command::Graph {
            repo,
            rev,
            format,
            project,
        } => {
            let checked = crate::core::check(&crate::source::read(&repo, rev.as_deref())?);
            if checked.has_errors() {
                out(&render::diagnostics::text(&checked))?;
                return Ok(1);
            }
            if let Some(p) = &project
                && !checked.repository.projects.contains_key(p.as_str())
            {
                anyhow::bail!("project {p:?} does not exist in {}", repo.display());
            }
            let p = project.as_deref();
            out(&match format {
                GraphFormat::Mermaid => render::graph::mermaid(&checked.resolved, p),
                GraphFormat::Dot => render::graph::dot(&checked.resolved, p),
                GraphFormat::Json => render::graph::json(&checked.resolved, p),
            })?;
            Ok(0)
        }
        Command::Explain { code: None } => {
            let mut text = String::new();
            for code in Code::ALL {
                text.push_str(&format!(
                    "{:<26} {:<8} {}\n",
                    code.as_str(),
                    code.severity().as_str(),
                    code.summary()
                ));
            }
            out(&text)?;
            Ok(0)
        }
        Command::Explain { code: Some(name) } => match Code::from_name(&name) {
            Some(code) => {
                out(&format!(
                    "{code} ({}): {}\n\n{}",
                    code.severity().as_str(),
                    code.summary(),
                    code.explanation()
                ))?;
                Ok(0)
            }
            None => anyhow::bail!("unknown diagnostic code {name:?}; `capstan explain` lists them"),
        },
        Command::Schema { kind: None } => {
            let names: Vec<&str> = FileKind::ALL.iter().map(|k| k.name()).collect();
            out(&format!("{}\n", names.join("\n")))?;
            Ok(0)
        }
        Command::Schema { kind: Some(name) } => {
            match FileKind::ALL.iter().find(|k| k.name() == name) {
                Some(kind) => {
                    out(kind.source())?;
                    Ok(0)
                }
                None => anyhow::bail!("unknown file kind {name:?}; `capstan schema` lists them"),
            }
        }
    }
}
