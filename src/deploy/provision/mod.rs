//! Running one instance's bundle steps (docs/deploying.md), one concept per module:
//! `workdir` (the working directory: the bundle's files and each step's inputs, and what a
//! killed run left behind), `log` (a step's log and the redaction of secrets), `process`
//! (spawning a command in its own process group with a timeout), and one module per
//! provisioner (`exec`, `terraform`, which runs OpenTofu and Terraform alike).
//!
//! Each deploy or destroy gets a fresh working directory under the state directory holding
//! the bundle's files as they are in git at the commit (never a working tree), plus
//! `params.json`, `connections.json` and `metadata.json` in each step's folder. Steps run
//! in their own process group with a timeout; stdout and stderr go line by line to the
//! step's log with every known secret replaced by `[redacted]`. The working directory
//! (which holds secrets in `connections.json`) is removed afterwards, whatever happened.

mod exec;
mod log;
mod process;
mod terraform;
mod workdir;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::core::deployed::Inputs;
use crate::core::model::{Bundle, Provisioner, Step};
use crate::core::resources::Applied;
use crate::core::run::Verb;
use crate::core::sensitive::{self, FieldPath};
use crate::core::source::SourceTree;

use exec::exec;
pub(super) use log::Log;
pub use log::{Redactor, scrub_log};
pub(super) use process::{command, failure, spawn_and_wait};
use terraform::terraform;
pub use terraform::{Program, pg_env, tf_schema};
pub(super) use terraform::{lock_timeout, tf_init, tf_state_file};
pub use workdir::{Leftover, clear_leftover, leftovers};
pub(super) use workdir::{Prepared, check_log, prepare, step_env};
use workdir::{remove_workdir, written_artifacts};

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
    /// The message never quotes the output: it may hold a secret.
    #[error("{what} did not print a plan capstan reads: {why}")]
    Plan { what: String, why: String },
    #[error("`{command}` was stopped: a newer head superseded it")]
    Cancelled { command: String },
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
    /// With the state in PostgreSQL, OpenTofu and Terraform modules without a backend keep
    /// their state in that database (`pg` backend); `None`: under `state_dir`.
    pub tf_pg: Option<&'a crate::state::PgTarget>,
    pub log: &'a Path,
    pub timeouts: Timeouts,
    /// Values never written to the log.
    pub secrets: Vec<String>,
    /// Where secrets are in the instance's artifacts, to scrub the log of new ones.
    pub sensitive: &'a [FieldPath],
    /// `None`: commands get capstan's own environment (a deploy's cloud credentials).
    /// `Some`: they get only these variables, `PATH` and capstan's `CAPSTAN_*` (a
    /// provisioner plan's read-only credentials).
    pub only_env: Option<&'a [(String, String)]>,
    /// Stops the commands (their whole process group) when cancelled.
    pub cancel: Option<&'a tokio_util::sync::CancellationToken>,
}

/// Runs the job; on success (deploy) returns the artifacts the steps wrote, unvalidated.
///
/// Whatever happens, the log is scrubbed of every secret the step may have printed (those
/// known before, and those in the artifacts it wrote, even if it failed afterwards) before
/// the working directory, the last place those artifacts are, is removed. A kill between
/// the two leaves the directory for recovery to finish the job ([`clear_leftover`]).
pub async fn run(job: &Job<'_>) -> Result<Ran, StepError> {
    let result = run_in_workdir(job).await;
    finish(job, result.as_ref().ok().map(|r| &r.artifacts));
    result
}

/// What a job's steps did.
#[derive(Debug, Default)]
pub struct Ran {
    /// The artifacts the steps wrote, unvalidated.
    pub artifacts: BTreeMap<String, Value>,
    /// How many resources the steps added, changed and destroyed, as OpenTofu and
    /// Terraform said when done, or an exec step's `plan:` said just before; `None` when
    /// a step could not say.
    pub resources: Option<Applied>,
}

/// What one step did.
pub(super) struct StepRan {
    pub artifacts: BTreeMap<String, Value>,
    pub resources: Option<Applied>,
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

async fn run_in_workdir(job: &Job<'_>) -> Result<Ran, StepError> {
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
    let mut resources = Some(Applied::default());
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
                terraform(Program::OpenTofu, version.as_deref(), job, i, &env, log).await?
            }
            Provisioner::Terraform { version } => {
                terraform(Program::Terraform, version.as_deref(), job, i, &env, log).await?
            }
            Provisioner::Unsupported(provisioner) => {
                return Err(StepError::Unsupported {
                    provisioner: provisioner.clone(),
                });
            }
        };
        artifacts.extend(written.artifacts);
        resources = match (resources, written.resources) {
            (Some(all), Some(these)) => Some(all + these),
            _ => None,
        };
    }
    log.line(&format!("## {} finished", job.verb.name()));
    Ok(Ran {
        artifacts,
        resources,
    })
}

/// Where and how a step's commands run.
pub(super) struct Env {
    vars: Vec<(String, String)>,
    /// Whether the commands start from an empty environment (plus `vars`).
    clear: bool,
    cancel: Option<tokio_util::sync::CancellationToken>,
    cwd: PathBuf,
    timeout: Duration,
    instance: String,
    /// `$CAPSTAN_ARTIFACTS`.
    artifacts_file: PathBuf,
}
