//! Merge-to-deploy (docs/daemon.md, docs/deploying.md): when the deploy branch moves (webhook,
//! poll, or a local commit), on a `reconcile` schedule, when a deploy window opens, and
//! at start-up, the branch's commit is planned against the deployed state and deployed.
//!
//! One deploy runs at a time: wake-ups while one runs fold into one more run afterwards,
//! which looks at the branch as it is then (level-triggered). The daemon holds the state
//! directory's deploy lock for its whole life, so a `capstan apply` beside it is refused
//! rather than racing it.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use super::config::DeployConfig;
use super::error::DaemonError;
use super::retry::{self, Backoff, Later};
use crate::core::drift::Heal;
use crate::core::plan::{self, Plan};
use crate::core::run::{Scope, StepResult, Trigger};
use crate::deploy::{DeployLock, Deployer, Holder, Outcome, Report, Target};
use crate::source::Revisions;
use crate::state::Store;

/// A commit read and planned against the deployed state.
pub(super) enum Prepared {
    /// It does not validate: nothing is deployed.
    Invalid(crate::core::Checked),
    /// Everything is as it wants.
    Nothing(Plan),
    Ready(Target, Plan),
}

pub(super) struct Deploys {
    store: Arc<Store>,
    state_dir: PathBuf,
    revisions: Arc<dyn Revisions>,
    wake: Notify,
    /// Why the next pass runs (the first reason since the last pass).
    reason: Mutex<Option<Trigger>>,
    /// Pull requests whose previews are to be reconciled, and whether a sweep is due.
    previews: Mutex<(BTreeSet<u64>, bool)>,
    /// Whether a drift check of everything deployed is due.
    drift: std::sync::atomic::AtomicBool,
    /// What comes back by itself: previews retried after a failure, and deploy windows
    /// opening (the one retry policy, `retry.rs`).
    later: Mutex<(Later<Wake>, Backoff<u64>)>,
    stop: CancellationToken,
    _lock: DeployLock,
}

/// What a timer of the deploy worker brings back.
#[derive(Debug)]
enum Wake {
    Preview(u64),
    Window,
}

/// What the deploy worker does next. The branch always goes first.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Work {
    /// Deploy the branch.
    Branch(Trigger),
    /// Check everything deployed for drift.
    Drift,
    /// Make pull request N's previews what it asks for.
    Preview(u64),
    /// Check every preview: TTLs, closed pull requests, free slots, shared producers.
    Sweep,
}

impl Deploys {
    /// Takes the deploy lock and marks whatever a crash interrupted. Wake-ups for
    /// opening deploy windows end with `stop`.
    pub(super) fn open(
        store: Arc<Store>,
        state_dir: PathBuf,
        revisions: Arc<dyn Revisions>,
        stop: CancellationToken,
    ) -> Result<Deploys, DaemonError> {
        let taken = crate::deploy::take_over(&state_dir, &store, Holder::Serve)?;
        let recovered = &taken.recovered;
        if recovered.runs + recovered.steps > 0 {
            tracing::warn!(
                runs = recovered.runs,
                steps = recovered.steps,
                instances = ?recovered.instances,
                cleared = ?taken.cleared,
                "a deploy was interrupted; the next pass deploys what is not as desired"
            );
        }
        let (state_dir, lock) = (taken.dir, taken.lock);
        Ok(Deploys {
            store,
            state_dir,
            revisions,
            wake: Notify::new(),
            reason: Mutex::new(None),
            previews: Mutex::new((BTreeSet::new(), false)),
            drift: Default::default(),
            later: Mutex::default(),
            stop,
            _lock: lock,
        })
    }

    pub(super) fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Asks for a deploy pass (coalesced with any already asked for).
    pub(super) fn request(&self, why: Trigger) {
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(why);
        self.wake.notify_one();
    }

    /// Asks for pull request `pr`'s previews to be reconciled.
    pub(super) fn request_preview(&self, pr: u64) {
        self.previews
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .insert(pr);
        self.wake.notify_one();
    }

    /// Asks for a drift check of everything deployed.
    pub(super) fn request_drift(&self) {
        self.drift.store(true, std::sync::atomic::Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// A checker of what this daemon deployed.
    pub(super) fn checker(&self, config: &DeployConfig) -> crate::deploy::drift::Checker {
        crate::deploy::drift::Checker {
            store: self.store.clone(),
            state_dir: self.state_dir.clone(),
            revisions: self.revisions.clone(),
            parallel: config.parallel,
            timeouts: config.timeouts,
        }
    }

    /// Asks for a sweep of every preview.
    pub(super) fn request_sweep(&self) {
        self.previews.lock().unwrap_or_else(|p| p.into_inner()).1 = true;
        self.wake.notify_one();
    }

    /// What was asked for, the branch first; `None` when nothing is.
    fn take(&self) -> Option<Work> {
        if let Some(why) = self.reason.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Some(Work::Branch(why));
        }
        if self.drift.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Some(Work::Drift);
        }
        let mut previews = self.previews.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pr) = previews.0.pop_first() {
            return Some(Work::Preview(pr));
        }
        std::mem::take(&mut previews.1).then_some(Work::Sweep)
    }

    /// Waits for the next piece of work; `None` once the daemon stops.
    pub(super) async fn next(&self) -> Option<Work> {
        loop {
            // Registered before looking, so a request made in between is not missed.
            let woken = self.wake.notified();
            if self.stop.is_cancelled() {
                return None;
            }
            let due = self.later().0.take_due(Instant::now());
            for wake in due {
                match wake {
                    Wake::Preview(pr) => self.request_preview(pr),
                    Wake::Window => self.request(Trigger::WindowOpened),
                }
            }
            if let Some(work) = self.take() {
                return Some(work);
            }
            let next_due = self.later().0.next_due();
            tokio::select! {
                _ = retry::until(next_due) => {}
                _ = self.stop.cancelled() => return None,
                _ = woken => {}
            }
        }
    }

    /// Asks for a pass when a deploy window opens.
    fn wake_at(&self, at: DateTime<Utc>) {
        let wait = (at - Utc::now()).to_std().unwrap_or_default();
        tracing::info!(%at, "a deploy window holds instances back; deploying again when it opens");
        self.later().0.add(Instant::now() + wait, Wake::Window);
        self.wake.notify_one();
    }

    /// Reconciling pull request `pr`'s previews failed: it is asked for again after the
    /// retry policy's backoff (returned).
    pub(super) fn preview_failed(&self, pr: u64) -> Duration {
        let mut later = self.later();
        let wait = later.1.failed(pr);
        later.0.add(Instant::now() + wait, Wake::Preview(pr));
        drop(later);
        self.wake.notify_one();
        wait
    }

    /// Reconciling pull request `pr`'s previews worked: a later failure waits the
    /// shortest backoff.
    pub(super) fn preview_succeeded(&self, pr: u64) {
        self.later().1.succeeded(&pr);
    }

    fn later(&self) -> std::sync::MutexGuard<'_, (Later<Wake>, Backoff<u64>)> {
        self.later.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads `commit` and plans it against the deployed state.
    pub(super) async fn prepare(
        &self,
        commit: &str,
        trigger: Trigger,
    ) -> Result<Prepared, DaemonError> {
        let revisions = self.revisions.clone();
        let sha = commit.to_string();
        let tree = tokio::task::spawn_blocking(move || revisions.read(&sha)).await??;
        let checked = crate::core::check(&tree);
        if checked.has_errors() {
            return Ok(Prepared::Invalid(checked));
        }
        let scope = self.store.branch_scope()?;
        let heal = Heal::Environments(checked.repository.config.remediate.clone());
        let plan = plan::against_deployed(&self.store.deployed()?, &checked, &scope, &heal);
        if plan.is_refused() {
            // Reported as a commit that does not validate: its diagnostics say why.
            let mut checked = checked;
            checked
                .diagnostics
                .extend(plan.errors.into_iter().map(|(_, d)| d));
            return Ok(Prepared::Invalid(checked));
        }
        if plan.is_empty() {
            return Ok(Prepared::Nothing(plan));
        }
        Ok(Prepared::Ready(
            Target {
                commit: commit.to_string(),
                tree: Arc::new(tree),
                checked: Arc::new(checked),
                trigger,
                scope,
                heal,
                only: None,
            },
            plan,
        ))
    }

    /// Deploys a prepared commit; when a deploy window holds something back, another
    /// pass is asked for at the moment it opens.
    /// Tears down what `scope` owns (a preview), dependants first.
    pub(super) async fn teardown(
        &self,
        scope: &Scope,
        label: &str,
        config: &DeployConfig,
        progress: Arc<dyn Fn(&Outcome) + Send + Sync>,
    ) -> Result<Report, DaemonError> {
        Ok(self
            .deployer(config, progress)
            .teardown(scope, label)
            .await?)
    }

    fn deployer(
        &self,
        config: &DeployConfig,
        progress: Arc<dyn Fn(&Outcome) + Send + Sync>,
    ) -> Deployer {
        Deployer {
            store: self.store.clone(),
            state_dir: self.state_dir.clone(),
            revisions: self.revisions.clone(),
            parallel: config.parallel,
            timeouts: config.timeouts,
            progress,
        }
    }

    pub(super) async fn deploy(
        self: &Arc<Self>,
        target: &Target,
        config: &DeployConfig,
        progress: Arc<dyn Fn(&Outcome) + Send + Sync>,
    ) -> Result<Report, DaemonError> {
        let report = self.deployer(config, progress).deploy(target).await?;
        if let Some(at) = report.next_window() {
            self.wake_at(at);
        }
        Ok(report)
    }
}

/// The commit status of deploys.
pub const DEPLOY_CONTEXT: &str = "capstan/deploy";

/// Logs each outcome as it happens.
pub(super) fn log_progress() -> Arc<dyn Fn(&Outcome) + Send + Sync> {
    Arc::new(|o| {
        let line = crate::deploy::line(o);
        match o.result {
            StepResult::Succeeded => {
                tracing::info!(instance = %o.instance, action = o.verb.name(), "{line}")
            }
            _ => tracing::warn!(instance = %o.instance, action = o.verb.name(), "{line}"),
        }
    })
}
