//! The daemon's configuration: one YAML file checked against `schemas/serve.schema.json`,
//! then flags and `CAPSTAN_*` environment variables on top, then defaults. Secrets are only
//! ever named by file (systemd credentials work as relative names) and held as [`Secret`],
//! which prints as `[redacted]`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::core::diag::{Diagnostic, Diagnostics};
use crate::core::load::parse_text;
use crate::core::schema::FileKind;
use crate::deploy::Timeouts;
use crate::github;
use crate::secret::Secret;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading the configuration file {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the configuration file is invalid:\n{}", list(.0))]
    Invalid(Vec<Diagnostic>),
    #[error("{0}")]
    Rule(String),
    #[error("the configuration has {} problem{}:\n{}", .0.len(), if .0.len() == 1 { "" } else { "s" }, bullets(.0))]
    Problems(Vec<String>),
}

fn bullets(problems: &[String]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn list(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(|d| format!("  {d}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Enough for a merge base and its pull requests' heads at 40,000 instances.
pub const DEFAULT_PLAN_CACHE_MIB: usize = 512;

/// Values given on the command line or as `CAPSTAN_*` variables; they win over the file.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub repo_path: Option<PathBuf>,
    pub repo_url: Option<String>,
    pub branch: Option<String>,
    pub state_dir: Option<PathBuf>,
    /// `--state`: the store, a `postgres://` address.
    pub state: Option<String>,
    /// `--role`: what this process does.
    pub role: Option<Role>,
    pub listen: Option<String>,
    pub github_api_url: Option<String>,
    pub github_repository: Option<String>,
    pub github_token_file: Option<PathBuf>,
    pub webhook_secret_file: Option<PathBuf>,
    pub poll_interval: Option<String>,
    pub log_format: Option<LogFormat>,
    /// `--ui ADDR`: the web view on this address.
    pub ui: Option<String>,
}

impl Overrides {
    /// The flags given that only GitHub mode reads, as typed.
    fn github_only(&self) -> Vec<&'static str> {
        [
            ("--github-api-url", self.github_api_url.is_some()),
            ("--webhook-secret-file", self.webhook_secret_file.is_some()),
            ("--poll-interval", self.poll_interval.is_some()),
        ]
        .into_iter()
        .filter_map(|(flag, given)| given.then_some(flag))
        .collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug)]
pub enum Source {
    /// A remote, mirrored into `<state_dir>/mirror.git` and fetched.
    Remote {
        url: String,
        ssh_key: Option<PathBuf>,
    },
    /// A local checkout, read in place and watched.
    Local { path: PathBuf },
}

#[derive(Clone, Debug)]
pub struct RepoConfig {
    pub source: Source,
    /// The folder inside the git repository holding `capstan.yaml`; empty: the top.
    pub root: String,
    pub branch: String,
    pub watch_debounce: Duration,
}

#[derive(Clone, Debug)]
pub struct GitHubConfig {
    /// Where GitHub is and how to authenticate and retry.
    pub api: github::Settings,
    pub webhook_secret: Option<Secret>,
    /// `None`: no polling.
    pub poll_interval: Option<Duration>,
}

#[derive(Clone, Debug)]
pub struct Schedule {
    pub name: String,
    pub cron: croner::Cron,
    pub job: Job,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Job {
    Replan,
    Reconcile,
    /// Check every deployed instance for drift.
    Drift,
}

impl Job {
    /// As the configuration file names it.
    pub fn name(self) -> &'static str {
        match self {
            Job::Replan => "replan",
            Job::Reconcile => "reconcile",
            Job::Drift => "drift",
        }
    }
}

/// Pull-request previews.
#[derive(Clone, Debug)]
pub struct PreviewConfig {
    pub enabled: bool,
    /// How often previews are swept (TTL, closed pull requests, free slots, shared
    /// producers that changed).
    pub sweep_interval: Duration,
}

/// Provisioner plans on pull requests.
#[derive(Clone, Debug)]
pub struct ProvisionerPlansConfig {
    pub enabled: bool,
    pub parallel: usize,
    pub timeout: Duration,
    /// The whole environment of a provisioner plan (besides `PATH` and `CAPSTAN_*`); values
    /// read from files are secrets, so all are kept as such.
    pub env: Vec<(String, Secret)>,
}

/// Merge-to-deploy settings.
#[derive(Clone, Debug)]
pub struct DeployConfig {
    pub enabled: bool,
    pub parallel: usize,
    pub timeouts: Timeouts,
}

/// The web view's listener and who may use it (docs/web.md).
#[derive(Clone, Debug)]
pub struct UiConfig {
    pub listen: SocketAddr,
    pub auth: crate::web::Auth,
}

/// What a `capstan serve` process does (docs/replicas.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Everything: webhooks, the web view, jobs, and (when leader) schedules and polling.
    All,
    /// Webhooks and the web view only: events are queued for the workers.
    Web,
    /// Jobs only, and (when leader) schedules and polling.
    Worker,
}

impl Role {
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "all" => Some(Role::All),
            "web" => Some(Role::Web),
            "worker" => Some(Role::Worker),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Web => "web",
            Role::Worker => "worker",
        }
    }

    /// Whether this process takes jobs (and may lead).
    pub fn works(self) -> bool {
        self != Role::Web
    }

    /// Whether this process takes webhooks.
    pub fn receives(self) -> bool {
        self != Role::Worker
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    /// The file it was read from, for SIGHUP; `None` when built from flags alone.
    pub file: Option<PathBuf>,
    pub repository: RepoConfig,
    /// Logs, working folders, the mirror; and the SQLite store unless `state` names another.
    pub state_dir: PathBuf,
    /// The store: `<state_dir>/state.db`, or a PostgreSQL database (`state:`).
    pub state: crate::state::Location,
    pub listen: SocketAddr,
    pub github: Option<GitHubConfig>,
    pub workers: usize,
    /// What this process does: everything, or (replicas on PostgreSQL) only webhooks and
    /// the web view, or only jobs.
    pub role: Role,
    /// How long a replica's jobs stay leased to it without a heartbeat (`lease`).
    pub lease: Duration,
    /// Bytes of checked revisions kept for the next plans (`plan_cache_mib`).
    pub plan_cache_bytes: usize,
    pub schedules: Vec<Schedule>,
    pub deploy: DeployConfig,
    pub previews: PreviewConfig,
    pub provisioner_plans: ProvisionerPlansConfig,
    /// The web view (`ui:`), off when `None`.
    pub ui: Option<UiConfig>,
    pub shutdown_timeout: Duration,
    pub log_format: LogFormat,
    pub log_level: String,
}

mod github_settings;
mod ui;

use github_settings::FileGitHub;
use ui::FileUi;

// ---- wire types: the file as written -------------------------------------------------

#[derive(Deserialize, Default)]
struct FileConfig {
    #[serde(default)]
    repository: FileRepository,
    state_dir: Option<String>,
    state: Option<String>,
    state_password_file: Option<String>,
    listen: Option<String>,
    github: Option<FileGitHub>,
    workers: Option<usize>,
    role: Option<String>,
    lease: Option<String>,
    plan_cache_mib: Option<usize>,
    #[serde(default)]
    schedules: Vec<FileSchedule>,
    #[serde(default)]
    deploy: FileDeploy,
    #[serde(default)]
    previews: FilePreviews,
    #[serde(default)]
    provisioner_plans: FileProvisionerPlans,
    ui: Option<FileUi>,
    shutdown_timeout: Option<String>,
    #[serde(default)]
    log: FileLog,
}

#[derive(Deserialize, Default)]
struct FileRepository {
    url: Option<String>,
    path: Option<String>,
    root: Option<String>,
    branch: Option<String>,
    ssh_key_file: Option<String>,
    watch_debounce: Option<String>,
}

#[derive(Deserialize)]
struct FileSchedule {
    name: Option<String>,
    cron: String,
    job: Job,
}

#[derive(Deserialize, Default)]
struct FileDeploy {
    enabled: Option<bool>,
    parallel: Option<usize>,
    step_timeout: Option<String>,
    lock_timeout: Option<String>,
}

#[derive(Deserialize, Default)]
struct FilePreviews {
    enabled: Option<bool>,
    sweep_interval: Option<String>,
}

#[derive(Deserialize, Default)]
struct FileProvisionerPlans {
    enabled: Option<bool>,
    parallel: Option<usize>,
    timeout: Option<String>,
    #[serde(default)]
    env: std::collections::BTreeMap<String, FileEnvValue>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum FileEnvValue {
    Text(String),
    File { file: String },
}

#[derive(Deserialize, Default)]
struct FileLog {
    format: Option<LogFormat>,
    level: Option<String>,
}

/// Where the process looks for things that are not given: the environment systemd sets up.
#[derive(Clone, Debug, Default)]
pub struct Environment {
    /// `$STATE_DIRECTORY` (systemd `StateDirectory=`).
    pub state_directory: Option<PathBuf>,
    /// `$CREDENTIALS_DIRECTORY` (systemd `LoadCredential=`).
    pub credentials_directory: Option<PathBuf>,
    pub cwd: PathBuf,
}

impl Environment {
    pub fn from_process() -> Environment {
        let dir = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Environment {
            // systemd may list several, separated by ':'; the first is ours.
            state_directory: dir("STATE_DIRECTORY").map(|p| {
                PathBuf::from(
                    p.to_string_lossy()
                        .split(':')
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                )
            }),
            credentials_directory: dir("CREDENTIALS_DIRECTORY"),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
        }
    }
}

/// Reads and checks the configuration: the file (if any), then the overrides, then the
/// secrets. Every problem of the file is reported at once, with `file:line:col`.
pub fn load(
    file: Option<&Path>,
    overrides: &Overrides,
    env: &Environment,
) -> Result<Config, ConfigError> {
    let (parsed, base_dir) = match file {
        Some(path) => {
            let text = std::fs::read(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let name: Arc<str> = path.display().to_string().into();
            let text = String::from_utf8(text).map_err(|_| {
                ConfigError::Rule(format!("{name}: the configuration file is not UTF-8 text"))
            })?;
            let mut diags = Diagnostics::default();
            let root = parse_text(&text, FileKind::Serve, &name, &mut diags);
            let diags = diags.finish();
            if !diags.is_empty() {
                return Err(ConfigError::Invalid(diags));
            }
            let root = root.expect("no diagnostics means the file parsed");
            let parsed: FileConfig = serde_json::from_value(root.to_json()).map_err(|e| {
                ConfigError::Rule(format!("{name}: {e} (the schema should have caught this)"))
            })?;
            let dir = path
                .parent()
                .map(|p| env.cwd.join(p))
                .unwrap_or_else(|| env.cwd.clone());
            (parsed, dir)
        }
        None => (FileConfig::default(), env.cwd.clone()),
    };
    build(parsed, &base_dir, overrides, env, file)
}

/// Every problem found while building the configuration: the build goes on after each, so
/// `--check-config` reports them all at once.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    /// The value, or `None` with the problem noted.
    fn take<T>(&mut self, result: Result<T, String>) -> Option<T> {
        result.map_err(|p| self.0.push(p)).ok()
    }

    /// The duration written at `what`, or `default` when absent (or broken, noted).
    fn duration(&mut self, what: &str, text: Option<&str>, default: Duration) -> Duration {
        let parsed = text.map_or(Ok(default), |t| {
            crate::core::duration::parse(t).map_err(|e| format!("{what}: {e}"))
        });
        self.take(parsed).unwrap_or(default)
    }

    /// Like [`Problems::duration`], for what must be longer than zero (an interval).
    fn interval(&mut self, what: &str, text: Option<&str>, default: Duration) -> Duration {
        let d = self.duration(what, text, default);
        if d.is_zero() {
            self.0.push(format!("{what}: must be longer than 0s"));
            return default;
        }
        d
    }
}

fn build(
    file: FileConfig,
    base_dir: &Path,
    o: &Overrides,
    env: &Environment,
    file_path: Option<&Path>,
) -> Result<Config, ConfigError> {
    let mut problems = Problems::default();
    let rel = |p: &str| base_dir.join(p);
    let source = match (&o.repo_url, &o.repo_path) {
        (Some(url), _) => Source::Remote {
            url: url.clone(),
            ssh_key: None,
        },
        (None, Some(path)) => Source::Local {
            path: env.cwd.join(path),
        },
        (None, None) => match (&file.repository.url, &file.repository.path) {
            (Some(url), _) => Source::Remote {
                url: url.clone(),
                ssh_key: None,
            },
            (None, Some(path)) => Source::Local { path: rel(path) },
            (None, None) => Source::Local {
                path: env.cwd.clone(),
            },
        },
    };
    let source = match source {
        Source::Remote { url, .. } => Source::Remote {
            url,
            ssh_key: file
                .repository
                .ssh_key_file
                .as_deref()
                .map(|f| Credential::new(f, env, base_dir).path()),
        },
        local => local,
    };
    let repository = RepoConfig {
        source,
        root: file.repository.root.clone().unwrap_or_default(),
        branch: o
            .branch
            .clone()
            .or(file.repository.branch.clone())
            .unwrap_or_else(|| "main".into()),
        watch_debounce: problems.duration(
            "repository.watch_debounce",
            file.repository.watch_debounce.as_deref(),
            Duration::from_millis(300),
        ),
    };
    let state_dir = match (&o.state_dir, &file.state_dir, &env.state_directory) {
        (Some(dir), _, _) => env.cwd.join(dir),
        (None, Some(dir), _) => rel(dir),
        (None, None, Some(dir)) => dir.clone(),
        // Beside what it deploys: a watched checkout keeps its state where `capstan apply`
        // and `capstan state` look by default, the mirror's beside the configuration.
        (None, None, None) => match &repository.source {
            Source::Local { path } => path.join(".capstan"),
            Source::Remote { .. } => base_dir.join(".capstan"),
        },
    };
    let mut state = match o.state.as_ref().or(file.state.as_ref()) {
        Some(text) => problems
            .take(crate::state::Location::parse(text).map_err(|e| format!("state: {e}")))
            .unwrap_or_else(|| crate::state::Location::File(state_dir.join("state.db"))),
        None => crate::state::Location::File(state_dir.join("state.db")),
    };
    if let Some(name) = &file.state_password_file {
        let password = problems.take(Credential::new(name, env, base_dir).read("state password"));
        match (&mut state, password) {
            (crate::state::Location::Postgres(target), Some(password)) => {
                target.set_password(password.expose().trim_end_matches('\n'));
            }
            (crate::state::Location::File(_), _) => problems
                .0
                .push("state_password_file: the state is not in PostgreSQL (`state:`)".into()),
            (_, None) => {}
        }
    }
    let role = match o.role.or(file.role.as_deref().and_then(|r| {
        problems
            .take(Role::parse(r).ok_or_else(|| format!("role: `{r}` is none of all, web, worker")))
    })) {
        Some(role) => role,
        None => Role::All,
    };
    if role != Role::All && !state.is_postgres() {
        problems.0.push(format!(
            "role: `{}` needs the state in PostgreSQL (`state: postgres://…`): replicas share their work through it",
            role.name()
        ));
    }
    let lease = problems.duration("lease", file.lease.as_deref(), Duration::from_secs(30));
    if lease < Duration::from_secs(6) {
        problems
            .0
            .push("lease: at least 6s (heartbeats come every sixth of it)".into());
    }
    let listen_text = o
        .listen
        .clone()
        .or(file.listen.clone())
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let listen = problems
        .take(listen_text.parse::<SocketAddr>().map_err(|_| {
            format!("listen: `{listen_text}` is not an address such as 127.0.0.1:8080")
        }))
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
    let github = match file.github {
        Some(gh) => github_settings::github(gh, o, env, base_dir, &mut problems),
        None => match (&o.github_repository, &o.github_token_file) {
            (Some(repo), Some(token)) => github_settings::github(
                FileGitHub::from_flags(repo.clone(), token.display().to_string()),
                o,
                env,
                &env.cwd,
                &mut problems,
            ),
            (None, None) => None,
            _ => {
                problems.0.push(
                    "GitHub needs both a repository (--github-repository) and a token file (--github-token-file)".into(),
                );
                None
            }
        },
    };
    if github.is_none() {
        for flag in o.github_only() {
            problems.0.push(format!(
                "{flag} is for GitHub mode, and github is not configured (give --github-repository and --github-token-file, or a github: block), so it would do nothing; leave it out to watch a local checkout"
            ));
        }
    }
    let wants_github = github_settings::file_has_github(o, &github);
    if wants_github && matches!(repository.source, Source::Local { .. }) {
        problems.0.push(
            "with github configured, repository.url is required: capstan mirrors the remote to fetch pull-request heads (refs/pull/N/head); a local path is for running without GitHub".into(),
        );
    }
    let mut schedules = Vec::new();
    for (i, s) in file.schedules.into_iter().enumerate() {
        let name = s.name.unwrap_or_else(|| format!("schedule {i}"));
        let cron = problems.take(
            s.cron
                .parse::<croner::Cron>()
                .map_err(|e| format!("schedules[{i}].cron: `{}` is not valid: {e}", s.cron)),
        );
        if let Some(cron) = cron {
            schedules.push(Schedule {
                name,
                cron,
                job: s.job,
            });
        }
    }
    let deploy = DeployConfig {
        enabled: file.deploy.enabled.unwrap_or(true),
        parallel: file.deploy.parallel.unwrap_or(4),
        timeouts: Timeouts {
            step: problems.duration(
                "deploy.step_timeout",
                file.deploy.step_timeout.as_deref(),
                Timeouts::default().step,
            ),
            state_lock: problems.duration(
                "deploy.lock_timeout",
                file.deploy.lock_timeout.as_deref(),
                Timeouts::default().state_lock,
            ),
        },
    };
    let previews = PreviewConfig {
        enabled: file.previews.enabled.unwrap_or(true),
        sweep_interval: problems.interval(
            "previews.sweep_interval",
            file.previews.sweep_interval.as_deref(),
            Duration::from_secs(60),
        ),
    };
    let provisioner_plans = provisioner_plans(file.provisioner_plans, env, base_dir, &mut problems);
    let ui = ui::ui(file.ui, o, github.as_ref(), env, base_dir, &mut problems);
    let shutdown_timeout = problems.duration(
        "shutdown_timeout",
        file.shutdown_timeout.as_deref(),
        Duration::from_secs(30),
    );
    if !problems.0.is_empty() {
        return Err(ConfigError::Problems(problems.0));
    }
    Ok(Config {
        file: file_path.map(|p| env.cwd.join(p)),
        repository,
        state_dir,
        state,
        listen,
        github,
        workers: file.workers.unwrap_or(2),
        role,
        lease,
        plan_cache_bytes: file.plan_cache_mib.unwrap_or(DEFAULT_PLAN_CACHE_MIB) << 20,
        schedules,
        deploy,
        previews,
        provisioner_plans,
        ui,
        shutdown_timeout,
        log_format: o.log_format.or(file.log.format).unwrap_or(LogFormat::Text),
        log_level: file.log.level.unwrap_or_else(|| "info".into()),
    })
}

fn provisioner_plans(
    file: FileProvisionerPlans,
    env: &Environment,
    base_dir: &Path,
    problems: &mut Problems,
) -> ProvisionerPlansConfig {
    let mut vars = Vec::new();
    for (name, value) in file.env {
        let value = match value {
            FileEnvValue::Text(text) => Some(Secret::new(text)),
            FileEnvValue::File { file } => problems.take(
                Credential::new(&file, env, base_dir)
                    .read(&format!("provisioner_plans.env.{name}")),
            ),
        };
        if let Some(value) = value {
            vars.push((name, value));
        }
    }
    ProvisionerPlansConfig {
        enabled: file.enabled.unwrap_or(true),
        parallel: file.parallel.unwrap_or(2),
        timeout: problems.duration(
            "provisioner_plans.timeout",
            file.timeout.as_deref(),
            Duration::from_secs(10 * 60),
        ),
        env: vars,
    }
}

/// A secret named by file. A relative name is looked up in `$CREDENTIALS_DIRECTORY` when
/// systemd set one (`LoadCredential=`), then next to the configuration file.
struct Credential {
    places: Vec<PathBuf>,
    name: String,
}

impl Credential {
    fn new(name: &str, env: &Environment, base_dir: &Path) -> Credential {
        let path = Path::new(name);
        let places = if path.is_absolute() {
            vec![path.to_path_buf()]
        } else {
            env.credentials_directory
                .iter()
                .map(|dir| dir.join(path))
                .chain(std::iter::once(base_dir.join(path)))
                .collect()
        };
        Credential {
            places,
            name: name.to_string(),
        }
    }

    /// The first place that exists (else the last looked at).
    fn path(&self) -> PathBuf {
        self.places
            .iter()
            .find(|p| p.exists())
            .or(self.places.last())
            .cloned()
            .unwrap_or_default()
    }

    /// Reads it; the problem names every place looked, never what a file holds.
    fn read(&self, what: &str) -> Result<Secret, String> {
        let Some(found) = self.places.iter().find(|p| p.exists()) else {
            let places: Vec<String> = self
                .places
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            return Err(format!(
                "the secret file {} ({what}) is in none of: {}",
                self.name,
                places.join(", ")
            ));
        };
        let text = std::fs::read_to_string(found).map_err(|e| {
            format!(
                "the secret file {} ({what}) cannot be read: {e}",
                found.display()
            )
        })?;
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(format!(
                "the secret file {} ({what}) is empty",
                found.display()
            ));
        }
        Ok(Secret::new(trimmed))
    }
}
