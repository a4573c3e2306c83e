//! Command-line definitions and glue: the only place that knows about terminals, output
//! streams and exit codes (0 success, 1 validation errors or a deploy that did not reach
//! the desired state, 2 usage or I/O failure).

mod deploy;
mod drift;
mod migrate;
mod policy;
mod preview;
mod serve;
mod state_at;

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::core::diag::Code;
use crate::core::incremental::Revision;
use crate::core::render;
use crate::core::render::comment::MAX_COMMENT;
use crate::core::schema::FileKind;
use crate::daemon::config::LogFormat;
use serve::ServeArgs;
use state_at::StateAt;

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
        /// Plan against the deployed state in this database instead of --base (it must
        /// exist; the default database is .capstan/state.db in --repo; or
        /// postgres://user@host/db).
        #[arg(long, conflicts_with = "base")]
        state: Option<String>,
        /// Plan against nothing deployed: every instance is created.
        #[arg(long, conflicts_with_all = ["base", "state"])]
        empty_state: bool,
        /// The new state as a commit; without it, the working tree (uncommitted edits included).
        #[arg(long, conflicts_with = "worktree")]
        head: Option<String>,
        /// Plan the working tree against --base (the default; kept for scripts that say so).
        #[arg(long)]
        worktree: bool,
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
        /// Exit 0 with no changes, 1 on errors, 2 with changes; usage and I/O failures give 3.
        #[arg(long)]
        detailed_exitcode: bool,
        /// Also run each changed instance's provisioner in plan mode (OpenTofu/Terraform
        /// `plan`, an exec step's `plan:`) against the deployed state, and show what each
        /// would do to its resources; nothing is applied. Plans against --state (by
        /// default .capstan/state.db in --repo), with this shell's environment.
        #[arg(long, conflicts_with = "base")]
        deep: bool,
    },
    /// Deploy a revision: plan it against the deployed state, then run what changed,
    /// wave by wave, and record the result.
    Apply {
        #[arg(long, default_value = "HEAD")]
        rev: String,
        /// Deploy only this instance and what it needs (repeatable); the plan says what
        /// each needed instance is for and which changes are left out.
        #[arg(long = "instance", value_name = "ID")]
        instances: Vec<String>,
        #[command(flatten)]
        deploy: DeployArgs,
    },
    /// Check what is deployed for drift (reality no longer matching the last deploy),
    /// changing nothing, and record what each check found.
    Drift {
        /// Only this instance (repeatable); default: every deployed instance.
        #[arg(long = "instance", value_name = "ID")]
        instances: Vec<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Exit 0 all in sync, 2 drift found, 1 a check failed; usage and I/O failures give 3.
        #[arg(long)]
        detailed_exitcode: bool,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Preview environments: a project's `preview:` block realised as one more environment
    /// of it, deployed on what the project is granted (`preview up|down|list`).
    Preview {
        #[command(subcommand)]
        command: PreviewCommand,
    },
    /// What is deployed: `state list`, `state show INSTANCE` (sensitive values hidden),
    /// `state forget INSTANCE`.
    State {
        #[command(subcommand)]
        command: StateCommand,
    },
    /// Policies in policies/*.rego: `policy test` runs their tests, `policy eval` judges a
    /// saved plan.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
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

/// The repository and its state database.
#[derive(clap::Args, Debug)]
struct StateArgs {
    /// The repository root (the folder holding capstan.yaml).
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// The state: an SQLite file (logs and working folders go beside it) or a
    /// PostgreSQL database, `postgres://user@host/db` (password in PGPASSWORD; logs and
    /// working folders in .capstan in --repo) [default: .capstan/state.db in --repo].
    #[arg(long)]
    state: Option<String>,
}

impl StateArgs {
    /// `--state`, else `.capstan/state.db` in the repository: the same database whichever
    /// folder capstan is run from.
    fn db(&self) -> anyhow::Result<StateAt> {
        StateAt::new(&self.repo, self.state.as_deref())
    }
}

/// Where and how `apply`, `preview` and `drift` run bundle steps.
#[derive(clap::Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    at: StateArgs,
    /// How many instances (of a wave) run at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    parallel: u16,
    /// How long one instance's steps may take, e.g. 30m.
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    timeout: std::time::Duration,
    /// How long an OpenTofu or Terraform step waits for a state lock another run
    /// holds (a killed apply's), e.g. 5m.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    lock_timeout: std::time::Duration,
}

/// How `apply` and `preview` deploy.
#[derive(clap::Args, Debug)]
struct DeployArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Go ahead without asking.
    #[arg(long)]
    yes: bool,
}

impl RunArgs {
    fn settings(self, yes: bool) -> anyhow::Result<deploy::Settings> {
        Ok(deploy::Settings {
            state: self.at.db()?,
            repo: self.at.repo,
            parallel: self.parallel.into(),
            timeouts: crate::deploy::Timeouts {
                step: self.timeout,
                state_lock: self.lock_timeout,
            },
            yes,
        })
    }
}

impl DeployArgs {
    fn settings(self) -> anyhow::Result<deploy::Settings> {
        self.run.settings(self.yes)
    }
}

#[derive(Subcommand, Debug)]
enum PolicyCommand {
    /// Run every `test_*` rule of policies/*_test.rego: a line each, exit 1 if one fails.
    Test {
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// The policies of this revision; without it, the working tree's.
        #[arg(long)]
        rev: Option<String>,
    },
    /// Judge a plan saved with `capstan plan --format json` (with `--deep`, its resources
    /// too) by the policies: every deny, warning and approval required, with its rule;
    /// exit 1 on a deny or an error.
    Eval {
        /// The plan's JSON.
        #[arg(long)]
        plan: PathBuf,
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// The policies and model of this revision; without it, the working tree's.
        #[arg(long)]
        rev: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

#[derive(Subcommand, Debug)]
enum PreviewCommand {
    /// Realise preview NAME of a project from a revision and deploy it: plan it against
    /// what that preview has deployed, then run what changed. Again later, it updates it.
    Up {
        /// The preview's name, e.g. pr1: its instances are <project>-<NAME>-<package>.
        name: String,
        #[arg(long)]
        project: String,
        #[arg(long, default_value = "HEAD")]
        rev: String,
        #[command(flatten)]
        deploy: DeployArgs,
    },
    /// Destroy preview NAME, dependants first, and forget it.
    Down {
        name: String,
        /// Needed only when several projects have a preview of that name.
        #[arg(long)]
        project: Option<String>,
        #[command(flatten)]
        deploy: DeployArgs,
    },
    /// Live previews with their instances, head, age and expiry.
    List {
        #[command(flatten)]
        at: StateArgs,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

#[derive(Subcommand, Debug)]
enum StateCommand {
    /// Every recorded instance with its status, bundle, commit and time.
    List {
        #[command(flatten)]
        at: StateArgs,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Remove an instance from the state without destroying anything (its resources were
    /// handed over to another tool); asks first, and records who did it as a run.
    Forget {
        instance: String,
        #[command(flatten)]
        at: StateArgs,
        /// Go ahead without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Copy every record of one state into another, empty one (e.g. SQLite into
    /// PostgreSQL) without deploying anything; the source stays as it was.
    Migrate {
        /// The state to copy [default: .capstan/state.db in --repo].
        #[arg(long)]
        from: Option<String>,
        /// The empty state to fill, e.g. postgres://capstan@db/capstan (password in
        /// PGPASSWORD).
        #[arg(long)]
        to: String,
        /// The repository root: the default --from, and the local folder of a PostgreSQL
        /// state's logs and working folders.
        #[arg(long, default_value = ".")]
        repo: PathBuf,
    },
    /// One instance: inputs, artifacts and recent steps with their logs.
    Show {
        instance: String,
        #[command(flatten)]
        at: StateArgs,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
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

/// Whether to colour what goes to stdout: only on a terminal, and never with `NO_COLOR`.
fn color_on_stdout() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout())
}

/// A duration flag (`30s`, `1h30m`), in the one grammar of capstan's files.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    crate::core::duration::parse(text).map_err(|e| e.to_string())
}

/// Whether `--detailed-exitcode` is on the command line, even one clap could not parse:
/// with it, every usage or I/O failure exits 3, never 2 ("there are changes").
fn detailed_exitcode_given() -> bool {
    std::env::args_os().any(|a| a == "--detailed-exitcode")
}

/// Explains a revision that cannot be read because the folder is not in git: which flag
/// named the revision, and what would work instead.
fn revision_error(e: crate::source::SourceError, flag: &str, hint: &str) -> anyhow::Error {
    match e {
        crate::source::SourceError::NotGit { path, rev } => anyhow::anyhow!(
            "{} is not inside a git repository, so revision {rev} ({flag}) cannot be read: {hint}",
            path.display()
        ),
        other => other.into(),
    }
}

pub fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match (e.use_stderr(), detailed_exitcode_given()) {
                (false, _) => 0,
                (true, true) => FAILURE + 1,
                (true, false) => FAILURE,
            };
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
        } | Command::Drift {
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
/// `default`, so stdout stays the command's output. A bare level is capstan's own
/// ([`scoped`]).
pub(super) fn init_logging(format: LogFormat, default: &str) {
    let spec = std::env::var("CAPSTAN_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| default.to_string());
    let filter = tracing_subscriber::EnvFilter::try_new(scoped(&spec))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(scoped(default)));
    // Colour only on a terminal, and never with NO_COLOR: a log file or journal gets text.
    let ansi = std::env::var_os("NO_COLOR").is_none()
        && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    // A second initialisation (tests calling run twice) keeps the first.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// A bare level (`debug`) applies to capstan's own messages; the libraries it uses stay at
/// `warn` (or quieter, for `error` and `off`), so `CAPSTAN_LOG=debug` is not thousands of
/// lines of file walking and inotify bookkeeping. A spec that names targets
/// (`debug,ignore=trace`) is taken as written.
fn scoped(spec: &str) -> String {
    let spec = spec.trim();
    if spec.contains(['=', ',', '[']) {
        return spec.to_string();
    }
    let others = match spec.to_ascii_lowercase().as_str() {
        "error" | "off" => spec.to_string(),
        _ => "warn".to_string(),
    };
    format!("{others},capstan={spec}")
}

fn chain(e: &anyhow::Error) -> String {
    crate::error::chain(e.as_ref())
}

pub(super) fn out(text: &str) -> anyhow::Result<()> {
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
        )
        .render(MAX_COMMENT),
        PlanFormat::Json => render::diagnostics::json(checked),
    }
}

fn render_plan(
    plan: &crate::core::plan::Plan,
    new: &crate::core::Checked,
    format: PlanFormat,
) -> String {
    match format {
        PlanFormat::Text => render::plan::text(plan, color_on_stdout()),
        PlanFormat::Markdown => render::markdown::plan(
            plan,
            &new.diagnostics,
            &render::markdown::Options::new(None),
        )
        .render(MAX_COMMENT),
        PlanFormat::Json => render::plan::json(plan),
    }
}

/// `plan`'s exit code: 1 when the plan may not be deployed (`params.immutable`), else with
/// `--detailed-exitcode` 2 for changes, else 0.
fn plan_exit(plan: &crate::core::plan::Plan, detailed_exitcode: bool) -> i32 {
    if plan.is_refused() {
        1
    } else if detailed_exitcode && !plan.is_empty() {
        2
    } else {
        0
    }
}

fn execute(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Serve(args) => serve::serve(&args),
        Command::Validate { repo, rev, format } => {
            let tree = crate::source::read(&repo, rev.as_deref()).map_err(|e| {
                revision_error(e, "--rev", "leave out --rev to check the folder as it is")
            })?;
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
            empty_state,
            head,
            worktree,
            format,
            detailed_exitcode,
            deep,
        } => {
            // The working tree unless a commit is named (`--worktree` says the same).
            let head_rev = head.as_deref().filter(|_| !worktree);
            if state.is_some() || empty_state || deep {
                let db = StateArgs {
                    repo: repo.clone(),
                    state,
                }
                .db()?;
                let against = (!empty_state).then_some(&db);
                let how = deploy::PlanHow {
                    format,
                    detailed_exitcode,
                    deep,
                };
                return deploy::plan(&repo, head_rev, against, how);
            }
            let old = crate::source::read_base(&repo, &base).map_err(|e| {
                revision_error(
                    e,
                    "--base",
                    "commit it to git, or pass --state to plan the folder against what is deployed",
                )
            })?;
            let new = crate::source::read(&repo, head_rev).map_err(|e| {
                revision_error(e, "--head", "leave out --head to plan the working tree")
            })?;
            // The head keeps what it shares with the base: unchanged projects are neither
            // parsed nor resolved twice.
            let (old, _) = Revision::check(old, None);
            let (new, _) = Revision::check(new, Some(&old));
            let (old, new) = (old.checked, new.checked);
            if new.has_errors() {
                out(&diagnostics(&new, format))?;
                return Ok(1);
            }
            let plan = crate::core::plan::plan(&old, &new);
            out(&render_plan(&plan, &new, format))?;
            Ok(plan_exit(&plan, detailed_exitcode))
        }
        Command::Apply {
            rev,
            instances,
            deploy,
        } => deploy::apply(&rev, &instances, &deploy.settings()?),
        Command::Drift {
            instances,
            format,
            detailed_exitcode,
            run,
        } => drift::run(&instances, format, detailed_exitcode, &run.settings(true)?),
        Command::Policy { command } => match command {
            PolicyCommand::Test { repo, rev } => policy::test(&repo, rev.as_deref()),
            PolicyCommand::Eval {
                plan,
                repo,
                rev,
                format,
            } => policy::eval(&plan, &repo, rev.as_deref(), format),
        },
        Command::Preview { command } => match command {
            PreviewCommand::Up {
                name,
                project,
                rev,
                deploy,
            } => preview::up(&name, &project, &rev, &deploy.settings()?),
            PreviewCommand::Down {
                name,
                project,
                deploy,
            } => preview::down(&name, project.as_deref(), &deploy.settings()?),
            PreviewCommand::List { at, format } => preview::list(&at.db()?, format),
        },
        Command::State {
            command: StateCommand::List { at, format },
        } => deploy::state_list(&at.db()?, format),
        Command::State {
            command:
                StateCommand::Show {
                    instance,
                    at,
                    format,
                },
        } => deploy::state_show(&at.db()?, &instance, format),
        Command::State {
            command: StateCommand::Migrate { from, to, repo },
        } => migrate::migrate(
            &StateAt::new(&repo, from.as_deref())?,
            &StateAt::new(&repo, Some(&to))?,
        ),
        Command::State {
            command: StateCommand::Forget { instance, at, yes },
        } => deploy::state_forget(&at.repo, &at.db()?, &instance, yes),
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
            let width = Code::ALL
                .iter()
                .map(|c| c.as_str().len())
                .max()
                .unwrap_or(0);
            for code in Code::ALL {
                text.push_str(&format!(
                    "{:<width$} {:<8} {}\n",
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
            None => {
                let codes: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
                anyhow::bail!(
                    "unknown diagnostic code {name:?}{}; `capstan explain` lists them",
                    crate::core::suggest::did_you_mean(&name, &codes)
                )
            }
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
                None => {
                    let names: Vec<&str> = FileKind::ALL.iter().map(|k| k.name()).collect();
                    anyhow::bail!(
                        "unknown file kind {name:?}{}; `capstan schema` lists them",
                        crate::core::suggest::did_you_mean(&name, &names)
                    )
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::scoped;

    #[test]
    fn a_bare_level_is_capstans_own() {
        assert_eq!(scoped("debug"), "warn,capstan=debug");
        assert_eq!(scoped(" info "), "warn,capstan=info");
        assert_eq!(scoped("error"), "error,capstan=error");
        assert_eq!(scoped("debug,ignore=trace"), "debug,ignore=trace");
        assert_eq!(scoped("capstan::daemon=trace"), "capstan::daemon=trace");
    }
}
