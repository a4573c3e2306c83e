//! Running one instance's bundle steps (docs/deploying.md).
//!
//! Each deploy or destroy gets a fresh working directory under the state directory holding
//! the bundle's files as they are in git at the commit (never a working tree), plus
//! `params.json`, `connections.json` and `metadata.json` in each step's folder. Steps run
//! in their own process group with a timeout; stdout and stderr go line by line to the
//! step's log with every known secret replaced by `[redacted]`. The working directory
//! (which holds secrets in `connections.json`) is removed afterwards, whatever happened.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

use std::sync::atomic::{AtomicBool, Ordering};

use crate::core::app::Evaluated;
use crate::core::deployed::Inputs;
use crate::core::model::{Bundle, Provisioner, Step};
use crate::core::run::Verb;
use crate::core::sensitive::{self, FieldPath};
use crate::core::source::{Content, SourceTree};
use crate::state::{private_dir, private_file};

/// Why a step failed; its text is the step's message in the state and the report.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("creating the log {path}")]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("preparing the working directory {path}")]
    Prepare {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("step path {0:?} leaves the bundle's folder")]
    PathOutside(String),
    #[error("starting `{program}`")]
    Start {
        program: String,
        source: std::io::Error,
    },
    #[error("waiting for `{command}`")]
    Wait {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` exited with status {code}")]
    Exit { command: String, code: i32 },
    #[error("`{command}` was killed by a signal")]
    Killed { command: String },
    #[error("`{command}` timed out after {after}")]
    Timeout { command: String, after: String },
    #[error(
        "`{command}` could not take the state lock of {instance}: another {program} holds it (one a killed capstan left running finishes on its own, then the lock is free); deploy again once it has ended"
    )]
    StateLocked {
        command: String,
        instance: String,
        program: String,
    },
    /// The message never quotes the text: it may hold a secret.
    #[error("{what} is not a JSON object of artifacts (line {line} column {column})")]
    Artifacts {
        what: String,
        line: usize,
        column: usize,
    },
    #[error("reading $CAPSTAN_ARTIFACTS")]
    ReadArtifacts(#[source] std::io::Error),
    #[error(
        "the step wants {program} {wanted}, but `{program} version` says {found}: install a matching {program} on capstan's PATH, or change the version in the bundle"
    )]
    Version {
        program: String,
        wanted: String,
        found: String,
    },
    #[error("`{program} version -json` did not say which version it is")]
    UnknownVersion { program: String },
    /// The message names the expression, never a value.
    #[error("{0}")]
    App(String),
    #[error(
        "capstan cannot run `{provisioner}` steps (it runs exec, opentofu and terraform): this instance is left as it is; deploy it with {provisioner} outside capstan, or port the step"
    )]
    Unsupported { provisioner: String },
}

/// How long things may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// One instance's steps, all together; the process group is killed after it.
    pub step: Duration,
    /// How long OpenTofu or Terraform wait for a state lock another run holds
    /// (`-lock-timeout`): a killed apply's lock is waited for, not failed on.
    pub state_lock: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            step: Duration::from_secs(30 * 60),
            state_lock: Duration::from_secs(5 * 60),
        }
    }
}

/// Everything one instance's steps need.
pub struct Job<'a> {
    pub verb: Verb,
    pub instance: &'a str,
    pub bundle: &'a Bundle,
    /// The repository at the commit being deployed (for a destroy: last deployed).
    pub tree: &'a SourceTree,
    pub inputs: &'a Inputs,
    pub metadata: Value,
    pub workdir: PathBuf,
    pub state_dir: &'a Path,
    pub log: &'a Path,
    pub timeouts: Timeouts,
    /// Values never written to the log.
    pub secrets: Vec<String>,
    /// Where secrets are in the instance's artifacts, to scrub the log of new ones.
    pub sensitive: &'a [FieldPath],
}

/// Scrubs secrets from text written to logs.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    /// Secrets shorter than four characters are not scrubbed: replacing every `1` or `on`
    /// in a log would hide everything and protect nothing.
    pub fn new(mut secrets: Vec<String>) -> Redactor {
        secrets.retain(|s| s.len() >= 4);
        // Longest first, so a secret containing another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    pub fn apply(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "[redacted]");
            }
        }
        out
    }
}

/// Appends lines to a step's log; shared by the stdout and stderr readers.
#[derive(Clone)]
pub(super) struct Log {
    file: Arc<Mutex<std::fs::File>>,
    redactor: Redactor,
    /// Set when OpenTofu or Terraform says another process holds the state lock.
    lock_held: Arc<AtomicBool>,
    /// The latest lines, redacted (what a drift check printed becomes its summary).
    recent: Arc<Mutex<Vec<String>>>,
}

/// What OpenTofu and Terraform print when another process holds the state lock.
const LOCK_HELD: &str = "Error acquiring the state lock";

impl Log {
    pub(super) fn line(&self, text: &str) {
        use std::io::Write;
        if text.contains(LOCK_HELD) {
            self.lock_held.store(true, Ordering::SeqCst);
        }
        let line = self.redactor.apply(text);
        {
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            if recent.len() >= 64 {
                recent.remove(0);
            }
            recent.push(line.clone());
        }
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        // A log that cannot be written must not fail the deploy; the step's result is
        // still recorded in the database.
        let _ = writeln!(f, "{line}");
    }

    /// The lines written since the last call, redacted; forgets them.
    pub(super) fn take_recent(&self) -> Vec<String> {
        std::mem::take(&mut *self.recent.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Opens (creating, owner-only) the log at `path`.
    pub(super) fn open(path: &Path, secrets: &[String]) -> Result<Log, StepError> {
        let log_error = |source| StepError::Log {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent() {
            private_dir(parent).map_err(log_error)?;
        }
        let file = private_file(path).map_err(log_error)?;
        Ok(Log {
            file: Arc::new(Mutex::new(file)),
            redactor: Redactor::new(secrets.to_vec()),
            lock_held: Arc::default(),
            recent: Arc::default(),
        })
    }
}

/// Runs the job; on success (deploy) returns the artifacts the steps wrote, unvalidated.
///
/// Whatever happens, the log is scrubbed of every secret the step may have printed (those
/// known before, and those in the artifacts it wrote, even if it failed afterwards) before
/// the working directory, the last place those artifacts are, is removed. A kill between
/// the two leaves the directory for recovery to finish the job ([`clear_leftover`]).
pub async fn run(job: &Job<'_>) -> Result<BTreeMap<String, Value>, StepError> {
    let result = run_in_workdir(job).await;
    finish(job, result.as_ref().ok());
    result
}

/// After a job, however it ended: the log scrubbed of every secret known, those in the
/// artifacts the steps wrote (and `outputs`) included, then the working directory removed.
pub(super) fn finish(job: &Job<'_>, outputs: Option<&BTreeMap<String, Value>>) {
    let mut secrets = job.secrets.clone();
    let mut written = written_artifacts(&job.workdir);
    if let Some(outputs) = outputs {
        written.extend(outputs.clone());
    }
    let written = serde_json::to_value(written).unwrap_or_default();
    sensitive::secrets_in("artifacts", &written, job.sensitive, &mut secrets);
    if let Err(e) = scrub_log(job.log, &Redactor::new(secrets)) {
        tracing::warn!(log = %job.log.display(), error = %e, "scrubbing a log");
    }
    remove_workdir(&job.workdir);
}

fn remove_workdir(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %dir.display(), error = %e, "removing a working directory");
    }
}

/// The artifacts files (`artifacts-<step>.json`) a step wrote into `workdir`, merged;
/// what does not parse is left out (the step reports it).
fn written_artifacts(workdir: &Path) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(workdir) else {
        return out;
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("artifacts-") && n.ends_with(".json"))
        })
        .collect();
    files.sort();
    for file in files {
        if let Ok(parsed) = std::fs::read(&file)
            .map_err(|_| ())
            .and_then(|b| serde_json::from_slice::<BTreeMap<String, Value>>(&b).map_err(|_| ()))
        {
            out.extend(parsed);
        }
    }
    out
}

/// A working directory a killed run left behind under `<state>/work/`: the instance it
/// was for, and its run (from its name, `run-<N>-<instance>`).
pub struct Leftover {
    pub dir: PathBuf,
    /// The run it was for; `None` for a drift check (`check-<instance>`).
    pub run: Option<i64>,
    pub instance: String,
}

/// Every working directory under `<state_dir>/work/`: after a crash, what killed runs left.
pub fn leftovers(state_dir: &Path) -> Vec<Leftover> {
    let Ok(entries) = std::fs::read_dir(state_dir.join("work")) else {
        return Vec::new();
    };
    let mut out: Vec<Leftover> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            if let Some(instance) = name.strip_prefix("check-") {
                return Some(Leftover {
                    dir: e.path(),
                    run: None,
                    instance: instance.to_string(),
                });
            }
            let (run, instance) = name.strip_prefix("run-")?.split_once('-')?;
            Some(Leftover {
                dir: e.path(),
                run: Some(run.parse().ok()?),
                instance: instance.to_string(),
            })
        })
        .collect();
    out.sort_by(|a, b| (a.run, &a.instance).cmp(&(b.run, &b.instance)));
    out
}

/// Finishes what a killed step could not: scrubs its logs with `known` secrets and those in
/// the artifacts it wrote (found at `sensitive`, or every value when the paths are not
/// known), then removes its working directory.
pub fn clear_leftover(
    state_dir: &Path,
    leftover: &Leftover,
    mut known: Vec<String>,
    sensitive: Option<&[FieldPath]>,
) {
    let written = serde_json::to_value(written_artifacts(&leftover.dir)).unwrap_or_default();
    match sensitive {
        Some(paths) => sensitive::secrets_in("artifacts", &written, paths, &mut known),
        None => {
            let everything = vec![vec!["artifacts".to_string()]];
            sensitive::secrets_in("artifacts", &written, &everything, &mut known);
        }
    }
    let redactor = Redactor::new(known);
    let logs: Vec<PathBuf> = match leftover.run {
        Some(run) => Verb::ALL
            .iter()
            .map(|verb| {
                state_dir
                    .join("logs")
                    .join(format!("run-{run}"))
                    .join(format!("{}.{}.log", leftover.instance, verb.name()))
            })
            .collect(),
        None => vec![super::drift::check_log(state_dir, &leftover.instance)],
    };
    for log in logs {
        if let Err(e) = scrub_log(&log, &redactor) {
            tracing::warn!(log = %log.display(), error = %e, "scrubbing a log");
        }
    }
    remove_workdir(&leftover.dir);
}

/// What one instance's steps get: the log, the bundle folder in the working directory,
/// and what its `app:` block gives them.
pub(super) struct Prepared {
    pub log: Log,
    pub bundle_dir: PathBuf,
    pub app: Evaluated,
}

/// The log and the working directory with the bundle's files, and the bundle's `app:`
/// evaluated (its values from sensitive fields kept out of the log too).
pub(super) fn prepare(job: &Job<'_>) -> Result<Prepared, StepError> {
    let app = match &job.bundle.app {
        Some(app) => crate::core::app::evaluate(app, job.inputs, &job.bundle.sensitive)
            .map_err(StepError::App)?,
        None => Evaluated::default(),
    };
    let secrets: Vec<String> = job.secrets.iter().chain(&app.secrets).cloned().collect();
    let log = Log::open(job.log, &secrets)?;
    let bundle_dir = job.workdir.join("bundle");
    let prepare = |source| StepError::Prepare {
        path: job.workdir.clone(),
        source,
    };
    private_dir(&job.workdir).map_err(prepare)?;
    write_bundle(job.tree, job.bundle, &bundle_dir).map_err(prepare)?;
    Ok(Prepared {
        log,
        bundle_dir,
        app,
    })
}

/// Step `index`'s folder made and given the inputs files, and its environment.
pub(super) fn step_env(
    job: &Job<'_>,
    action: &str,
    prepared: &Prepared,
    index: usize,
    step: &Step,
) -> Result<Env, StepError> {
    let bundle_dir = &prepared.bundle_dir;
    let prepare = |source| StepError::Prepare {
        path: job.workdir.clone(),
        source,
    };
    let cwd = step_dir(bundle_dir, &step.path)?;
    std::fs::create_dir_all(&cwd).map_err(prepare)?;
    let artifacts_file = job.workdir.join(format!("artifacts-{}.json", index + 1));
    write_inputs(job, &cwd, &prepared.app).map_err(prepare)?;
    let mut vars: Vec<(String, String)> = prepared.app.envs.clone();
    vars.extend(
        [
            ("CAPSTAN_ACTION", action.to_string()),
            ("CAPSTAN_INSTANCE", job.instance.to_string()),
            ("CAPSTAN_INPUTS", cwd.display().to_string()),
            ("CAPSTAN_ARTIFACTS", artifacts_file.display().to_string()),
            ("CAPSTAN_STATE_DIR", job.state_dir.display().to_string()),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );
    Ok(Env {
        vars,
        cwd,
        timeout: job.timeouts.step,
        instance: job.instance.to_string(),
        artifacts_file,
    })
}

async fn run_in_workdir(job: &Job<'_>) -> Result<BTreeMap<String, Value>, StepError> {
    let prepared = prepare(job)?;
    let log = &prepared.log;
    let steps: Vec<(usize, &Step)> = match job.verb {
        Verb::Deploy => job.bundle.steps.iter().enumerate().collect(),
        Verb::Destroy => job.bundle.steps.iter().enumerate().rev().collect(),
    };
    let skipped = |step: &Step| job.verb == Verb::Destroy && step.skip_on_destroy;
    // A step capstan cannot run fails the instance before any step has changed anything.
    for (_, step) in &steps {
        if let Provisioner::Unsupported(name) = &step.provisioner
            && !skipped(step)
        {
            let e = StepError::Unsupported {
                provisioner: name.clone(),
            };
            log.line(&e.to_string());
            return Err(e);
        }
    }
    let mut artifacts = BTreeMap::new();
    for (i, step) in steps {
        let header = format!(
            "## {} step {} ({}, {})",
            job.verb.name(),
            i + 1,
            step.path,
            step.provisioner.name()
        );
        if skipped(step) {
            log.line(&format!("{header}: skipped (skip_on_delete)"));
            continue;
        }
        log.line(&header);
        let env = step_env(job, job.verb.name(), &prepared, i, step)?;
        let written = match &step.provisioner {
            Provisioner::Exec => exec(job, step, &env, log, &env.artifacts_file).await?,
            Provisioner::OpenTofu { version } => {
                terraform("tofu", version.as_deref(), job, i, &env, log).await?
            }
            Provisioner::Terraform { version } => {
                terraform("terraform", version.as_deref(), job, i, &env, log).await?
            }
            Provisioner::Unsupported(provisioner) => {
                return Err(StepError::Unsupported {
                    provisioner: provisioner.clone(),
                });
            }
        };
        artifacts.extend(written);
    }
    log.line(&format!("## {} finished", job.verb.name()));
    Ok(artifacts)
}

/// The step's folder inside the bundle; a path leaving the bundle is refused.
fn step_dir(bundle_dir: &Path, path: &str) -> Result<PathBuf, StepError> {
    let rel = Path::new(path);
    if rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(StepError::PathOutside(path.to_string()));
    }
    Ok(bundle_dir.join(rel))
}

/// Writes `bundles/<name>/**` of the tree into `dir`, keeping the executable bit.
/// Keeps forks away from open, writable script files. A fork copies every open
/// descriptor into the child until it execs; if another step writes `deploy.sh` in that
/// moment and then runs it, the kernel refuses with ETXTBSY ("Text file busy"), because
/// the child still holds it open for writing. Writing bundle files takes this shared,
/// spawning a process takes it exclusively (`spawn` returns only after the exec).
static FORK_GUARD: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn write_bundle(tree: &SourceTree, bundle: &Bundle, dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let _writing = FORK_GUARD.read().unwrap_or_else(|p| p.into_inner());
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    let prefix = format!("bundles/{}/", bundle.name);
    for file in tree.files() {
        let Some(rel) = file.path.strip_prefix(&prefix) else {
            continue;
        };
        let Content::Bytes(bytes) = &file.content else {
            // Links, submodules and oversized files are diagnosed by validation; a deploy
            // only runs on a revision without errors, so only warnings reach here.
            continue;
        };
        let target = dir.join(rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, bytes)?;
        let mode = if file.executable { 0o755 } else { 0o644 };
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

fn write_inputs(job: &Job<'_>, cwd: &Path, app: &Evaluated) -> std::io::Result<()> {
    std::fs::write(cwd.join("params.json"), pretty(&job.inputs.params))?;
    if job.bundle.app.is_some() {
        std::fs::write(cwd.join("app.json"), pretty(&app.document()))?;
    }
    std::fs::write(
        cwd.join("connections.json"),
        pretty(&job.inputs.connection_data()),
    )?;
    std::fs::write(cwd.join("metadata.json"), pretty(&job.metadata))?;
    Ok(())
}

fn pretty<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into()) + "\n"
}

/// Where and how a step's commands run.
pub(super) struct Env {
    vars: Vec<(String, String)>,
    cwd: PathBuf,
    timeout: Duration,
    instance: String,
    /// `$CAPSTAN_ARTIFACTS`.
    artifacts_file: PathBuf,
}

async fn exec(
    job: &Job<'_>,
    step: &Step,
    env: &Env,
    log: &Log,
    artifacts_file: &Path,
) -> Result<BTreeMap<String, Value>, StepError> {
    let script = match job.verb {
        Verb::Deploy => step.deploy.as_deref(),
        Verb::Destroy => step.destroy.as_deref(),
    };
    let Some(script) = script else {
        log.line(&format!("no {} command: nothing to run", job.verb.name()));
        return Ok(BTreeMap::new());
    };
    command(log, env, "sh", &["-c", script], false).await?;
    if job.verb == Verb::Destroy {
        return Ok(BTreeMap::new());
    }
    match std::fs::read(artifacts_file) {
        Ok(bytes) => parse_artifacts(&bytes, "$CAPSTAN_ARTIFACTS"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(StepError::ReadArtifacts(e)),
    }
}

/// `{field: data}`; the error names where, never what (it may be a secret).
fn parse_artifacts(bytes: &[u8], what: &str) -> Result<BTreeMap<String, Value>, StepError> {
    serde_json::from_slice::<BTreeMap<String, Value>>(bytes).map_err(|e| StepError::Artifacts {
        what: what.to_string(),
        line: e.line(),
        column: e.column(),
    })
}

/// OpenTofu and Terraform: `init`, then `apply` or `destroy`, with the inputs as
/// `_params.auto.tfvars.json` and `_connections.auto.tfvars.json`; artifacts are the
/// outputs (`output -json`) named like the bundle's artifact fields.
async fn terraform(
    program: &str,
    version: Option<&str>,
    job: &Job<'_>,
    index: usize,
    env: &Env,
    log: &Log,
) -> Result<BTreeMap<String, Value>, StepError> {
    tf_init(program, version, job, index, env, log).await?;
    let lock_timeout = lock_timeout(job);
    match job.verb {
        Verb::Deploy => {
            command(
                log,
                env,
                program,
                &[
                    "apply",
                    "-auto-approve",
                    "-input=false",
                    "-no-color",
                    &lock_timeout,
                ],
                false,
            )
            .await?;
            let out = command(log, env, program, &["output", "-json"], true).await?;
            let outputs = parse_artifacts(&out, &format!("`{program} output -json`"))?;
            Ok(outputs
                .into_iter()
                .filter(|(name, _)| job.bundle.artifacts.contains_key(name))
                .map(|(name, o)| (name, o.get("value").cloned().unwrap_or(Value::Null)))
                .collect())
        }
        Verb::Destroy => {
            command(
                log,
                env,
                program,
                &[
                    "destroy",
                    "-auto-approve",
                    "-input=false",
                    "-no-color",
                    &lock_timeout,
                ],
                false,
            )
            .await?;
            Ok(BTreeMap::new())
        }
    }
}

/// The inputs of an OpenTofu or Terraform step as `_params.auto.tfvars.json` and
/// `_connections.auto.tfvars.json`, and a local backend under the state directory when the
/// module declares none (one state file per instance and step, so the next fresh working
/// directory, a deploy's or a drift check's, finds it).
fn tf_inputs(job: &Job<'_>, index: usize, env: &Env) -> Result<(), StepError> {
    let write = |name: &str, text: String| {
        std::fs::write(env.cwd.join(name), text).map_err(|source| StepError::Prepare {
            path: env.cwd.join(name),
            source,
        })
    };
    write("_params.auto.tfvars.json", pretty(&job.inputs.params))?;
    write(
        "_connections.auto.tfvars.json",
        pretty(&job.inputs.connection_data()),
    )?;
    if !declares_backend(&env.cwd) {
        let state = job
            .state_dir
            .join("tfstate")
            .join(job.instance)
            .join(format!("step-{}.tfstate", index + 1));
        if let Some(parent) = state.parent() {
            private_dir(parent).map_err(|source| StepError::Prepare {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        write(
            "_capstan_backend.tf",
            format!(
                "terraform {{\n  backend \"local\" {{\n    path = {}\n  }}\n}}\n",
                serde_json::to_string(&state.display().to_string()).unwrap_or_default()
            ),
        )?;
    }
    Ok(())
}

/// What every OpenTofu or Terraform command of a step needs first: the version checked,
/// the inputs and backend written, `init`.
pub(super) async fn tf_init(
    program: &str,
    version: Option<&str>,
    job: &Job<'_>,
    index: usize,
    env: &Env,
    log: &Log,
) -> Result<(), StepError> {
    if let Some(wanted) = version {
        check_version(program, wanted, env, log).await?;
    }
    tf_inputs(job, index, env)?;
    command(
        log,
        env,
        program,
        &["init", "-input=false", "-no-color"],
        false,
    )
    .await?;
    Ok(())
}

/// `-lock-timeout=<seconds>s` for OpenTofu and Terraform.
pub(super) fn lock_timeout(job: &Job<'_>) -> String {
    format!("-lock-timeout={}s", job.timeouts.state_lock.as_secs())
}

/// Checks the installed `program` against the step's version (`1.10` takes any `1.10.x`).
pub(super) async fn check_version(
    program: &str,
    wanted: &str,
    env: &Env,
    log: &Log,
) -> Result<(), StepError> {
    let out = command(log, env, program, &["version", "-json"], true).await?;
    let found = serde_json::from_slice::<Value>(&out)
        .ok()
        .and_then(|v| v.get("terraform_version")?.as_str().map(str::to_string))
        .ok_or_else(|| StepError::UnknownVersion {
            program: program.to_string(),
        })?;
    log.line(&format!("{program} {found} (the step wants {wanted})"));
    if version_matches(wanted, &found) {
        Ok(())
    } else {
        let e = StepError::Version {
            program: program.to_string(),
            wanted: wanted.to_string(),
            found,
        };
        log.line(&e.to_string());
        Err(e)
    }
}

/// Whether `found` (`1.10.3`, `1.11.0-beta1`) is the version `wanted` names: every dotted
/// part `wanted` gives is equal (`1` takes any 1.x, `1.10` any 1.10.x).
fn version_matches(wanted: &str, found: &str) -> bool {
    let release = found.split(['-', '+']).next().unwrap_or(found);
    let mut have = release.split('.');
    wanted.split('.').all(|w| have.next() == Some(w))
}

/// Whether any `.tf` file of the folder configures a backend.
fn declares_backend(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            e.path().extension().is_some_and(|x| x == "tf")
                && std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains("backend \""))
        })
    })
}

/// Runs one command in the step's folder, its output into the log (or, with `capture`,
/// its stdout returned and kept out of the log: `output -json` holds secrets). Fails on a
/// non-zero exit, a signal or the timeout, which kills the whole process group.
/// How a command ended: its exit status, and its stdout when captured.
pub(super) struct Ended {
    pub status: std::process::ExitStatus,
    pub stdout: Vec<u8>,
    /// The command as shown in the log and in messages.
    pub shown: String,
}

/// Runs one command in the step's folder, its output into the log (or, with `capture`,
/// its stdout returned and kept out of the log: `output -json` holds secrets), and says
/// how it ended. Fails only when it cannot start or times out (which kills the whole
/// process group); a non-zero exit is the caller's to judge.
pub(super) async fn spawn_and_wait(
    log: &Log,
    env: &Env,
    program: &str,
    args: &[&str],
    capture: bool,
) -> Result<Ended, StepError> {
    let shown = if program == "sh" {
        args.last().copied().unwrap_or_default().to_string()
    } else {
        format!("{program} {}", args.join(" "))
    };
    log.line(&format!("$ {shown}"));
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(&env.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for (k, v) in &env.vars {
        cmd.env(k, v);
    }
    let spawned = {
        let _forking = FORK_GUARD.write().unwrap_or_else(|p| p.into_inner());
        cmd.spawn()
    };
    let mut child = spawned.map_err(|source| StepError::Start {
        program: program.to_string(),
        source,
    })?;
    let pid = child.id();
    let stderr = child
        .stderr
        .take()
        .map(|s| tokio::spawn(pump(s, log.clone())));
    let stdout = child.stdout.take();
    let captured = if capture {
        let mut buf = Vec::new();
        if let Some(mut s) = stdout {
            let reader = async {
                use tokio::io::AsyncReadExt;
                s.read_to_end(&mut buf).await
            };
            tokio::time::timeout(env.timeout, reader)
                .await
                .ok()
                .transpose()
                .map_err(|source| StepError::Wait {
                    command: shown.clone(),
                    source,
                })?;
        }
        buf
    } else {
        stdout.map(|s| tokio::spawn(pump(s, log.clone())));
        Vec::new()
    };
    let status = match tokio::time::timeout(env.timeout, child.wait()).await {
        Ok(status) => status.map_err(|source| StepError::Wait {
            command: shown.clone(),
            source,
        })?,
        Err(_) => {
            if let Some(pid) = pid {
                // SAFETY: killpg only sends a signal; the group is the child's own.
                unsafe {
                    libc::killpg(pid as libc::pid_t, libc::SIGKILL);
                }
            }
            let _ = child.wait().await;
            let e = StepError::Timeout {
                command: shown,
                after: crate::core::duration::format(env.timeout),
            };
            log.line(&e.to_string());
            return Err(e);
        }
    };
    if let Some(stderr) = stderr {
        // The pipes close when the process (group) ends; a grandchild holding them open
        // must not hold up the deploy.
        let _ = tokio::time::timeout(Duration::from_secs(5), stderr).await;
    }
    Ok(Ended {
        status,
        stdout: captured,
        shown,
    })
}

/// Like [`spawn_and_wait`], failing on a non-zero exit or a signal.
pub(super) async fn command(
    log: &Log,
    env: &Env,
    program: &str,
    args: &[&str],
    capture: bool,
) -> Result<Vec<u8>, StepError> {
    let ended = spawn_and_wait(log, env, program, args, capture).await?;
    if ended.status.success() {
        return Ok(ended.stdout);
    }
    let e = failure(log, env, program, &ended);
    log.line(&e.to_string());
    Err(e)
}

/// Why a command that ended badly failed.
pub(super) fn failure(log: &Log, env: &Env, program: &str, ended: &Ended) -> StepError {
    let shown = ended.shown.clone();
    match ended.status.code() {
        Some(_) if program != "sh" && log.lock_held.load(Ordering::SeqCst) => {
            StepError::StateLocked {
                command: shown,
                instance: env.instance.clone(),
                program: program.to_string(),
            }
        }
        Some(code) => StepError::Exit {
            command: shown,
            code,
        },
        None => StepError::Killed { command: shown },
    }
}

async fn pump(stream: impl AsyncRead + Unpin, log: Log) {
    let mut lines = BufReader::new(stream).split(b'\n');
    while let Ok(Some(line)) = lines.next_segment().await {
        log.line(String::from_utf8_lossy(&line).trim_end_matches('\r'));
    }
}

/// Re-scrubs a finished log with secrets learnt during the step (new artifacts).
pub fn scrub_log(path: &Path, redactor: &Redactor) -> std::io::Result<()> {
    let text = match std::fs::read(path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let clean = redactor.apply(&text);
    if clean != text {
        use std::io::Write;
        let tmp = path.with_extension("log.tmp");
        let _ = std::fs::remove_file(&tmp);
        private_file(&tmp)?.write_all(clean.as_bytes())?;
        std::fs::rename(tmp, path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_replaces_longest_first_and_ignores_tiny_values() {
        let r = Redactor::new(vec!["hunter2".into(), "hunter2-extra".into(), "1".into()]);
        assert_eq!(
            r.apply("pw=hunter2-extra old=hunter2 n=1"),
            "pw=[redacted] old=[redacted] n=1"
        );
    }

    #[test]
    fn versions_match_on_every_part_the_step_names() {
        assert!(version_matches("1.10", "1.10.3"));
        assert!(version_matches("1", "1.11.4"));
        assert!(version_matches("1.5.7", "1.5.7"));
        assert!(version_matches("1.11", "1.11.0-beta1"));
        assert!(!version_matches("1.10", "1.11.4"));
        assert!(!version_matches("1.1", "1.10.0"));
        assert!(!version_matches("1.5.7", "1.5"));
    }

    #[test]
    fn step_paths_stay_inside_the_bundle() {
        let base = Path::new("/w/bundle");
        assert_eq!(step_dir(base, "src").unwrap(), base.join("src"));
        assert_eq!(step_dir(base, "./src/tf").unwrap(), base.join("./src/tf"));
        assert!(step_dir(base, "../other").is_err());
        assert!(step_dir(base, "/etc").is_err());
    }

    #[test]
    fn artifacts_must_be_an_object_and_errors_never_quote_them() {
        assert!(parse_artifacts(br#"{"network": {"id": "x"}}"#, "x").is_ok());
        let err = parse_artifacts(br#"["secret-value"]"#, "$CAPSTAN_ARTIFACTS").unwrap_err();
        assert!(!err.to_string().contains("secret-value"), "{err}");
    }
}
