//! Merge-to-deploy (docs/daemon.md, docs/deploying.md): when the deploy branch moves (webhook,
//! poll, or a local commit), on a `reconcile` schedule, when a deploy window opens, and
//! at start-up, the branch's commit is planned against the deployed state and deployed.
//!
//! One deploy runs at a time: wake-ups while one runs fold into one more run afterwards,
//! which looks at the branch as it is then (level-triggered). With SQLite the daemon holds
//! the state directory's deploy lock for its whole life, so a `capstan apply` beside it is
//! refused rather than racing it. With PostgreSQL, replicas share the state, so each job
//! of the deploy lane takes the deploy lock for itself ([`Deploys::hold`]): it recovers what
//! a dead holder left, and moves the fencing token on so that a holder cut off from the
//! database can write nothing after it.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::Utc;
use tokio::time::Instant;

use super::config::DeployConfig;
use super::error::DaemonError;
use super::job::Job;
use super::queue::Queue;
use crate::core::commit::CommitId;
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
    /// The deploy lane: what changes what is deployed, one job at a time.
    lane: Queue<Job>,
    /// The branch's model as last read, for the web view.
    branch: tokio::sync::watch::Sender<Option<Arc<crate::web::Branch>>>,
    /// The deploy lock while held: for the daemon's life (SQLite), or a job's (PostgreSQL).
    held: std::sync::Mutex<Option<DeployLock>>,
    /// The fencing token of the lock held.
    fence: AtomicI64,
    /// Whether each job takes the lock (replicas on PostgreSQL), not the daemon for life.
    per_job: bool,
}

/// Holds the deploy lock for one job of the deploy lane (PostgreSQL); released on drop.
pub(super) struct Held<'a> {
    deploys: &'a Deploys,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        *self.deploys.held.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

impl Deploys {
    /// Takes the deploy lock for the daemon's life and marks whatever a crash interrupted;
    /// or, `per_job` (replicas sharing a PostgreSQL state), leaves both to each job
    /// ([`Deploys::hold`]).
    pub(super) fn open(
        store: Arc<Store>,
        state_dir: PathBuf,
        revisions: Arc<dyn Revisions>,
        per_job: bool,
    ) -> Result<Deploys, DaemonError> {
        let deploys = Deploys {
            state_dir: std::path::absolute(&state_dir).unwrap_or(state_dir),
            store,
            revisions,
            lane: Queue::new(false),
            branch: tokio::sync::watch::Sender::new(None),
            held: std::sync::Mutex::new(None),
            fence: AtomicI64::new(0),
            per_job,
        };
        if !per_job {
            deploys.take_over()?;
        }
        Ok(deploys)
    }

    /// Takes the deploy lock now, recovering what its last holder left.
    fn take_over(&self) -> Result<(), DaemonError> {
        let taken = crate::deploy::take_over(&self.state_dir, &self.store, Holder::Serve)?;
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
        self.fence.store(taken.lock.fence, Ordering::SeqCst);
        *self.held.lock().unwrap_or_else(|p| p.into_inner()) = Some(taken.lock);
        Ok(())
    }

    /// Takes the deploy lock for one job of the deploy lane, waiting while another
    /// replica holds it (a job recovered from a replica that lost its lease but lives on);
    /// a no-op with SQLite, whose lock is held for the daemon's life.
    pub(super) async fn hold(&self) -> Result<Option<Held<'_>>, DaemonError> {
        if !self.per_job {
            return Ok(None);
        }
        let mut wait = std::time::Duration::from_millis(250);
        loop {
            match self.take_over() {
                Ok(()) => return Ok(Some(Held { deploys: self })),
                Err(DaemonError::Deploy(crate::deploy::DeployError::HeldElsewhere {
                    holder,
                    ..
                })) => {
                    tracing::info!(%holder, "waiting for the deploy lock");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(std::time::Duration::from_secs(5));
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub(super) fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The deploy lane: the branch's deploys, drift checks, previews and sweeps. A push
    /// while a job runs folds into one more run of it afterwards.
    pub(super) fn lane(&self) -> &Queue<Job> {
        &self.lane
    }

    /// The branch's model each time a commit of it is read and validates.
    pub(super) fn branch_model(
        &self,
    ) -> tokio::sync::watch::Receiver<Option<Arc<crate::web::Branch>>> {
        self.branch.subscribe()
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

    /// Reads `commit` and plans it against the deployed state.
    pub(super) async fn prepare(
        &self,
        commit: &CommitId,
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
        let checked = Arc::new(checked);
        self.branch.send_replace(Some(Arc::new(crate::web::Branch {
            commit: commit.clone(),
            checked: checked.clone(),
        })));
        if plan.is_empty() {
            return Ok(Prepared::Nothing(plan));
        }
        Ok(Prepared::Ready(
            Target {
                commit: commit.clone(),
                tree: Arc::new(tree),
                checked,
                trigger,
                scope,
                heal,
                only: None,
            },
            plan,
        ))
    }

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
            fence: self.fence.load(Ordering::SeqCst),
        }
    }

    /// Deploys a prepared commit; when a deploy window holds something back, another
    /// pass is asked for at the moment it opens.
    pub(super) async fn deploy(
        &self,
        target: &Target,
        config: &DeployConfig,
        progress: Arc<dyn Fn(&Outcome) + Send + Sync>,
    ) -> Result<Report, DaemonError> {
        let report = self.deployer(config, progress).deploy(target).await?;
        if let Some(at) = report.next_window() {
            tracing::info!(%at, "a deploy window holds instances back; deploying again when it opens");
            let wait = (at - Utc::now()).to_std().unwrap_or_default();
            let job = Job::Deploy(Trigger::WindowOpened);
            if self.per_job {
                super::durable::Durable::new(self.store.clone()).job(&job, wait)?;
            } else {
                self.lane.push_at(Instant::now() + wait, job);
            }
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
