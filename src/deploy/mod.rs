//! Deploying a revision against the deployed state (docs/deploying.md).
//!
//! The [`Deployer`] walks the desired state's waves in order and carries out, for each
//! instance, what the core decides (`core::run::decide_deploy`): nothing when its record is
//! current, a skipped or waiting step when something it depends on is held back or a
//! deploy window is closed, else its bundle's steps (`provision.rs`), in parallel up to a
//! limit within a wave. Destroys come last, dependants first, each only when nothing
//! recorded still takes its artifacts (`core::run::decide_destroy`).
//!
//! Every state change is one transaction in the [`Store`]; the process may die at any
//! moment and [`Store::recover`] plus the next deploy bring the state back to the desired
//! one. One deploy at a time per state directory is enforced with a file lock (`lock.rs`).

pub mod deep;
mod deployer;
pub mod drift;
pub mod gate;
mod lock;
pub mod provision;
mod report;
mod step;
pub mod tf_states;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::core::commit::CommitId;
use crate::core::drift::Heal;
use crate::core::model::InstanceId;
use crate::core::run::{Scope, Trigger};
use crate::core::source::SourceTree;
use crate::core::{Checked, deployed};
use crate::state::{Recovered, StateError, Store};
pub use deployer::Deployer;
pub use lock::{DeployLock, Holder};
pub use provision::Timeouts;
pub use report::{Outcome, Report, differences, line, markdown, marker, text};

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(
        "another capstan is deploying with the state in {dir} (it holds {lock}); wait for it to finish"
    )]
    Locked { dir: PathBuf, lock: PathBuf },
    #[error(
        "capstan serve (pid {pid}) holds the state in {dir} for as long as it runs: commit to the branch it watches to deploy through it (on GitHub, merge or push to the branch), or stop the daemon before running {wanted}"
    )]
    HeldByDaemon {
        dir: PathBuf,
        pid: u32,
        /// The command that was refused.
        wanted: &'static str,
    },
    #[error("{holder} (pid {pid}) is working with the state in {dir}; wait for it to finish")]
    HeldByCommand {
        dir: PathBuf,
        pid: u32,
        holder: String,
    },
    #[error(
        "{holder} holds the deploy lock of the state {at}; {wanted} waits for nothing: try again when it is done"
    )]
    HeldElsewhere {
        at: String,
        holder: String,
        wanted: &'static str,
    },
    #[error("locking {path}")]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the state directory {path}")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the policies of {commit} deny this deploy; nothing ran\n{decisions}")]
    Denied {
        commit: CommitId,
        /// The decisions as `policy::text` shows them.
        decisions: String,
    },
    #[error("the policies of {commit} could not decide, so nothing ran: {error}")]
    Undecided { commit: CommitId, error: String },
    #[error("revision {commit} has validation errors; nothing is deployed")]
    Invalid { commit: CommitId },
    #[error("{0} is not deployed (`capstan state list` shows what is)")]
    NotDeployed(String),
    #[error("a drift check's task failed: {0}")]
    Task(String),
}

/// The bundles instances were last deployed with, read from their recorded commits (each
/// commit read and checked once): what a destroy or a drift check runs.
pub(crate) struct LastDeployed<'a> {
    revisions: &'a dyn crate::source::Revisions,
    read: std::collections::HashMap<CommitId, AtCommit>,
}

/// A commit read and checked, or why it could not be.
type AtCommit = Result<(Arc<SourceTree>, Arc<Checked>), String>;

impl<'a> LastDeployed<'a> {
    pub(crate) fn new(revisions: &'a dyn crate::source::Revisions) -> LastDeployed<'a> {
        LastDeployed {
            revisions,
            read: Default::default(),
        }
    }

    /// The tree at `record`'s commit and its bundle there, or why not.
    pub(crate) fn of(
        &mut self,
        record: &deployed::Deployed,
    ) -> Result<(Arc<SourceTree>, crate::core::model::Bundle), String> {
        let revisions = self.revisions;
        let at = self.read.entry(record.commit.clone()).or_insert_with(|| {
            revisions
                .read(&record.commit)
                .map(|tree| {
                    let checked = Arc::new(crate::core::check(&tree));
                    (Arc::new(tree), checked)
                })
                .map_err(|e| {
                    format!(
                        "reading commit {}: {}",
                        record.commit,
                        crate::error::chain(&e)
                    )
                })
        });
        let (tree, checked) = at.clone()?;
        match checked
            .repository
            .bundles
            .get(record.inputs.bundle.as_str())
        {
            Some(bundle) => Ok((tree, bundle.clone())),
            None => Err(format!(
                "bundle {} is not in commit {}",
                record.inputs.bundle, record.commit
            )),
        }
    }
}

/// The revision to deploy, already read and checked by the caller.
pub struct Target {
    pub commit: CommitId,
    pub tree: Arc<SourceTree>,
    pub checked: Arc<Checked>,
    /// Why this run happens, kept with the run.
    pub trigger: Trigger,
    /// Which recorded instances the run owns (deploys, and destroys when unwanted).
    pub scope: Scope,
    /// Which drifted instances it redeploys.
    pub heal: Heal,
    /// Only these instances (`apply --instance`: the named ones and what they need, see
    /// [`crate::core::plan::needs`]); `None`: every instance `scope` owns.
    pub only: Option<Arc<BTreeSet<InstanceId>>>,
}

impl Target {
    /// Whether the run may touch `id`.
    pub fn selects(&self, id: &InstanceId) -> bool {
        self.only.as_ref().is_none_or(|only| only.contains(id))
    }
}

/// A state directory taken over for deploying.
pub struct Takeover {
    /// The state directory, absolute (steps run in their own folders and get paths below it).
    pub dir: PathBuf,
    pub lock: DeployLock,
    /// What a crash left running, now marked interrupted.
    pub recovered: Recovered,
    /// Working directories of killed steps, scrubbed from the logs and removed.
    pub cleared: Vec<String>,
}

/// Takes over a state directory for deploying: makes its path absolute, takes its
/// [`DeployLock`], marks what a crash left running as interrupted ([`Store::recover`]),
/// and finishes what killed steps could not: their logs are scrubbed of every secret known
/// (the instance's record, and the artifacts they wrote) and their working directories,
/// which hold inputs and artifacts, removed. Both `capstan apply` and the daemon start here.
pub fn take_over(state_dir: &Path, store: &Store, holder: Holder) -> Result<Takeover, DeployError> {
    let dir = std::path::absolute(state_dir).map_err(|source| DeployError::StateDir {
        path: state_dir.to_path_buf(),
        source,
    })?;
    let mut lock = DeployLock::acquire(&dir, store, holder)?;
    // Whoever held the state before (a process that died, or one cut off from the
    // database that may still be running a step) can write no result from now on.
    lock.fence = store.advance_fence()?;
    let recovered = store.recover()?;
    let mut cleared = Vec::new();
    for leftover in provision::leftovers(&dir) {
        let record = store.instance(&leftover.instance)?;
        let known = record
            .as_ref()
            .map(|d| deployed::secrets(&d.inputs, &d.artifacts, &d.sensitive))
            .unwrap_or_default();
        let paths = record.as_ref().map(|d| d.sensitive.as_slice());
        provision::clear_leftover(&dir, &leftover, known, paths);
        cleared.push(match leftover.run {
            Some(run) => format!("run-{run}-{}", leftover.instance),
            None => format!("check-{}", leftover.instance),
        });
    }
    Ok(Takeover {
        dir,
        lock,
        recovered,
        cleared,
    })
}

/// A stop for tests of crash safety: `CAPSTAN_TEST_PAUSE=<point>:<instance>` makes the
/// process print a line and wait forever at that point, so a test can kill it with
/// SIGKILL exactly there. Points: `step-started` (recorded as running, before the
/// provisioner starts) and `step-finished` (the provisioner ended, nothing recorded yet).
async fn maybe_pause(point: &str, instance: &crate::core::model::InstanceId) {
    if std::env::var("CAPSTAN_TEST_PAUSE").is_ok_and(|v| v == format!("{point}:{instance}")) {
        eprintln!("capstan: paused at {point} of {instance} (CAPSTAN_TEST_PAUSE)");
        std::future::pending::<()>().await;
    }
}
