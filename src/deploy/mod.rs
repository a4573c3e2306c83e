//! Deploying a revision against the deployed state (DESIGN section 10).
//!
//! [`Deployer::deploy`] walks the desired state's waves in order. For each instance it
//! computes the concrete inputs from what is recorded *now* (so a consumer sees the
//! artifacts its producer wrote a moment ago), runs it only if they differ from its last
//! deploy or that deploy did not succeed, and records the result. Instances of a wave run
//! in parallel up to a limit. A failure (or a skip, or a closed deploy window) keeps every
//! instance depending on it from running; everything else goes on. Destroys come last,
//! dependants first, and only once nothing recorded still takes the instance's artifacts.
//!
//! Every state change is one transaction in the [`Store`]; the process may die at any
//! moment and [`Store::recover`] plus the next deploy bring the state back to the desired
//! one. One deploy at a time per state directory is enforced with a file lock.

pub mod provision;
mod report;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::core::Checked;
use crate::core::deployed::{self, Deployed, Inputs, Status};
use crate::core::model::{Bundle, InstanceId};
use crate::core::source::SourceTree;
use crate::core::windows::{self, Gate};
use crate::state::{NewStep, Recovered, StateError, Store};
use provision::{Redactor, Verb};
pub use report::{line, markdown, marker, text};

/// Reads the repository at a commit (from git, never a working tree).
pub type Trees = Arc<dyn Fn(&str) -> Result<SourceTree, String> + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(
        "another capstan is deploying with the state in {dir} (it holds {lock}); wait for it to finish"
    )]
    Locked { dir: PathBuf, lock: PathBuf },
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
    #[error("revision {commit} has validation errors; nothing is deployed")]
    Invalid { commit: String },
}

/// Holds the deploy lock of a state directory while alive (`flock`, released by the
/// kernel when the process dies, so a crash never leaves it stuck).
pub struct DeployLock {
    _file: File,
}

impl DeployLock {
    pub fn acquire(state_dir: &Path) -> Result<DeployLock, DeployError> {
        use std::os::fd::AsRawFd;
        let path = state_dir.join("deploy.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| DeployError::Lock {
                path: path.clone(),
                source,
            })?;
        // SAFETY: flock on a descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            return Err(DeployError::Locked {
                dir: state_dir.to_path_buf(),
                lock: path,
            });
        }
        Ok(DeployLock { _file: file })
    }
}

/// Takes over a state directory for deploying: makes its path absolute (steps run in
/// their own folders and get paths below it), takes its [`DeployLock`], and marks what a
/// crash left running as interrupted ([`Store::recover`]). Both `capstan apply` and the
/// daemon start here.
pub fn take_over(
    state_dir: &Path,
    store: &Store,
) -> Result<(PathBuf, DeployLock, Recovered), DeployError> {
    let dir = std::path::absolute(state_dir).map_err(|source| DeployError::StateDir {
        path: state_dir.to_path_buf(),
        source,
    })?;
    let lock = DeployLock::acquire(&dir)?;
    let recovered = store.recover()?;
    Ok((dir, lock, recovered))
}

/// What happened to one instance in a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub instance: InstanceId,
    pub verb: Verb,
    pub result: Result_,
    pub log: Option<PathBuf>,
    pub seconds: f64,
    /// After a successful deploy: its artifacts with sensitive fields shown as `(sensitive)`.
    pub artifacts: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Result_ {
    Succeeded,
    Failed(String),
    /// Not run because something it depends on (or that still uses it) did not succeed.
    Skipped(String),
    /// Not run because a deploy window is closed; `opens` is when it opens.
    Waiting {
        reason: String,
        opens: Option<DateTime<Utc>>,
    },
}

impl Result_ {
    /// Why it did not succeed, in words (empty when it did): the step's message.
    pub fn detail(&self) -> String {
        match self {
            Result_::Succeeded => String::new(),
            Result_::Failed(m) | Result_::Skipped(m) => m.clone(),
            Result_::Waiting { reason, opens } => match opens {
                Some(at) => format!("{reason}; waits until {at}"),
                None => reason.clone(),
            },
        }
    }

    /// As in the state database's `steps.status`, and in sentences (`which failed`).
    pub fn word(&self) -> &'static str {
        match self {
            Result_::Succeeded => "succeeded",
            Result_::Failed(_) => "failed",
            Result_::Skipped(_) => "skipped",
            Result_::Waiting { .. } => "waiting",
        }
    }
}

/// The result of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub run: i64,
    pub commit: String,
    pub outcomes: Vec<Outcome>,
    pub unchanged: usize,
}

impl Report {
    pub fn count(&self, word: &str) -> usize {
        self.outcomes
            .iter()
            .filter(|o| o.result.word() == word)
            .count()
    }

    /// `succeeded` (everything is as desired), `waiting` (only deploy windows hold
    /// something back) or `failed`.
    pub fn status(&self) -> &'static str {
        if self.count("failed") + self.count("skipped") > 0 {
            "failed"
        } else if self.count("waiting") > 0 {
            "waiting"
        } else {
            "succeeded"
        }
    }

    /// The earliest moment a closed window opens.
    pub fn next_window(&self) -> Option<DateTime<Utc>> {
        self.outcomes
            .iter()
            .filter_map(|o| match &o.result {
                Result_::Waiting { opens, .. } => *opens,
                _ => None,
            })
            .min()
    }

    /// One line: `3 deployed, 1 destroyed, 1 failed, 2 skipped; 9 unchanged`.
    pub fn summary(&self) -> String {
        let ok = |verb| {
            self.outcomes
                .iter()
                .filter(|o| o.verb == verb && o.result == Result_::Succeeded)
                .count()
        };
        let mut parts = vec![
            format!("{} deployed", ok(Verb::Deploy)),
            format!("{} destroyed", ok(Verb::Destroy)),
        ];
        for word in ["failed", "skipped", "waiting"] {
            let n = self.count(word);
            if n > 0 {
                parts.push(format!("{n} {word}"));
            }
        }
        format!("{}; {} unchanged", parts.join(", "), self.unchanged)
    }
}

/// The revision to deploy, already read and checked by the caller.
pub struct Target {
    pub commit: String,
    pub tree: Arc<SourceTree>,
    pub checked: Arc<Checked>,
    /// Why this run happens (`apply`, `push`, `schedule`...), kept with the run.
    pub trigger: String,
}

/// A stop for tests of crash safety: `CAPSTAN_TEST_PAUSE=<point>:<instance>` makes the
/// process print a line and wait forever at that point, so a test can kill it with
/// SIGKILL exactly there. Points: `step-started` (recorded as running, before the
/// provisioner starts) and `step-finished` (the provisioner ended, nothing recorded yet).
fn pause_point(point: &str, instance: &InstanceId) -> bool {
    std::env::var("CAPSTAN_TEST_PAUSE").is_ok_and(|v| v == format!("{point}:{instance}"))
}

async fn maybe_pause(point: &str, instance: &InstanceId) {
    if pause_point(point, instance) {
        eprintln!("capstan: paused at {point} of {instance} (CAPSTAN_TEST_PAUSE)");
        std::future::pending::<()>().await;
    }
}

pub struct Deployer {
    pub store: Arc<Store>,
    pub state_dir: PathBuf,
    pub trees: Trees,
    pub parallel: usize,
    pub step_timeout: Duration,
    /// Told about each outcome as it happens (the CLI prints it, the daemon logs it).
    pub progress: Arc<dyn Fn(&Outcome) + Send + Sync>,
}

/// One instance to run, owning what its task needs.
struct Work {
    instance: InstanceId,
    verb: Verb,
    project: String,
    environment: String,
    package: String,
    bundle: Bundle,
    tree: Arc<SourceTree>,
    /// The revision whose types validate the artifacts (deploys only).
    checked: Option<Arc<Checked>>,
    inputs: Inputs,
    commit: String,
    attributes: BTreeMap<String, String>,
    sensitive: Vec<Vec<String>>,
    /// The artifacts recorded before, for scrubbing the log.
    previous: BTreeMap<String, Value>,
}

impl Deployer {
    /// Deploys `target` against the recorded state. The caller holds the [`DeployLock`]
    /// and has run [`Store::recover`].
    pub async fn deploy(&self, target: &Target) -> Result<Report, DeployError> {
        if target.checked.has_errors() {
            return Err(DeployError::Invalid {
                commit: target.commit.clone(),
            });
        }
        let mut state = self.store.deployed()?;
        let run = self.store.begin_run(&target.commit, &target.trigger)?;
        let mut report = Report {
            run,
            commit: target.commit.clone(),
            outcomes: Vec::new(),
            unchanged: 0,
        };
        // Instances that did not reach their desired state in this run, and why.
        let mut held: HashMap<InstanceId, Result_> = HashMap::new();
        let windows = &target.checked.repository.config.deploy_windows;
        let now = Utc::now();
        let instances = &target.checked.resolved.instances;
        for wave in &target.checked.resolved.waves {
            let mut work = Vec::new();
            for id in wave {
                let Some(inst) = instances.get(id) else {
                    continue;
                };
                let inputs = deployed::desired_inputs(inst, &state);
                if state.get(id).is_some_and(|d| d.is_current(&inputs)) {
                    report.unchanged += 1;
                    continue;
                }
                if let Some(p) = inputs
                    .producers()
                    .into_iter()
                    .find(|p| held.contains_key(p))
                {
                    let why = format!("it takes artifacts from {p}, which {}", held[&p].word());
                    let result = match &held[&p] {
                        Result_::Waiting { opens, .. } => Result_::Waiting {
                            reason: why,
                            opens: *opens,
                        },
                        _ => Result_::Skipped(why),
                    };
                    self.note(&mut report, &mut held, id, Verb::Deploy, result)?;
                    continue;
                }
                let repo = &target.checked.repository;
                let attributes = repo
                    .projects
                    .get(inst.project.as_str())
                    .and_then(|p| {
                        p.environments
                            .get(inst.environment.as_str())
                            .map(|e| crate::core::resolve::environment_attributes(p, e))
                    })
                    .unwrap_or_default();
                if let Gate::Closed { reason, opens } = windows::gate(windows, &attributes, now) {
                    self.note(
                        &mut report,
                        &mut held,
                        id,
                        Verb::Deploy,
                        Result_::Waiting { reason, opens },
                    )?;
                    continue;
                }
                let Some(bundle) = repo.bundles.get(inst.bundle.as_str()) else {
                    continue;
                };
                work.push(Work {
                    instance: id.clone(),
                    verb: Verb::Deploy,
                    project: inst.project.to_string(),
                    environment: inst.environment.to_string(),
                    package: inst.package.to_string(),
                    bundle: bundle.clone(),
                    tree: target.tree.clone(),
                    checked: Some(target.checked.clone()),
                    inputs,
                    commit: target.commit.clone(),
                    attributes,
                    sensitive: deployed::sensitive_paths(repo, inst),
                    previous: state
                        .get(id)
                        .map(|d| d.artifacts.clone())
                        .unwrap_or_default(),
                });
            }
            for (outcome, recorded) in self.run_all(run, work).await? {
                self.finish(&mut report, &mut held, &mut state, outcome, recorded);
            }
        }
        self.destroy_unwanted(target, run, now, &mut state, &mut held, &mut report)
            .await?;
        self.store
            .finish_run(run, report.status(), &report.summary())?;
        Ok(report)
    }

    /// Destroys what is recorded but not desired: dependants first, each only when no
    /// recorded instance still takes its artifacts.
    async fn destroy_unwanted(
        &self,
        target: &Target,
        run: i64,
        now: DateTime<Utc>,
        state: &mut BTreeMap<InstanceId, Deployed>,
        held: &mut HashMap<InstanceId, Result_>,
        report: &mut Report,
    ) -> Result<(), DeployError> {
        let order = deployed::destroy_order(state, &target.checked.resolved.instances);
        let windows = &target.checked.repository.config.deploy_windows;
        // Each commit destroys are read from, read and checked once (or why it could not be).
        type AtCommit = Result<(Arc<SourceTree>, Arc<Checked>), String>;
        let mut at_commit: HashMap<String, AtCommit> = HashMap::new();
        for id in order {
            let Some(record) = state.get(&id).cloned() else {
                continue;
            };
            let users: Vec<String> = state
                .values()
                .filter(|d| d.instance != id && d.inputs.producers().contains(&id))
                .map(|d| d.instance.to_string())
                .collect();
            if !users.is_empty() {
                let why = format!(
                    "{} still use{} its artifacts",
                    users.join(", "),
                    if users.len() == 1 { "s" } else { "" }
                );
                self.note(report, held, &id, Verb::Destroy, Result_::Skipped(why))?;
                continue;
            }
            if let Gate::Closed { reason, opens } = windows::gate(windows, &record.attributes, now)
            {
                self.note(
                    report,
                    held,
                    &id,
                    Verb::Destroy,
                    Result_::Waiting { reason, opens },
                )?;
                continue;
            }
            // The bundle as it was when the instance was last deployed.
            let at = at_commit.entry(record.commit.clone()).or_insert_with(|| {
                (self.trees)(&record.commit)
                    .map(|tree| {
                        let checked = Arc::new(crate::core::check(&tree));
                        (Arc::new(tree), checked)
                    })
                    .map_err(|e| format!("reading commit {}: {e}", record.commit))
            });
            let found = at.clone().and_then(|(tree, checked)| {
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
            });
            let (tree, bundle) = match found {
                Ok(found) => found,
                Err(why) => {
                    self.note(report, held, &id, Verb::Destroy, Result_::Failed(why))?;
                    continue;
                }
            };
            let work = Work {
                instance: id.clone(),
                verb: Verb::Destroy,
                project: record.project.clone(),
                environment: record.environment.clone(),
                package: record.package.clone(),
                bundle,
                tree,
                checked: None,
                inputs: record.inputs.clone(),
                commit: record.commit.clone(),
                attributes: record.attributes.clone(),
                sensitive: record.sensitive.clone(),
                previous: record.artifacts.clone(),
            };
            for (outcome, recorded) in self.run_all(run, vec![work]).await? {
                self.finish(report, held, state, outcome, recorded);
            }
        }
        Ok(())
    }

    /// Records a step that does not run, and holds back what depends on it.
    fn note(
        &self,
        report: &mut Report,
        held: &mut HashMap<InstanceId, Result_>,
        id: &InstanceId,
        verb: Verb,
        result: Result_,
    ) -> Result<(), DeployError> {
        self.store
            .note_step(report.run, id, verb.name(), result.word(), &result.detail())?;
        let outcome = Outcome {
            instance: id.clone(),
            verb,
            result,
            log: None,
            seconds: 0.0,
            artifacts: BTreeMap::new(),
        };
        held.insert(id.clone(), outcome.result.clone());
        (self.progress)(&outcome);
        report.outcomes.push(outcome);
        Ok(())
    }

    fn finish(
        &self,
        report: &mut Report,
        held: &mut HashMap<InstanceId, Result_>,
        state: &mut BTreeMap<InstanceId, Deployed>,
        outcome: Outcome,
        recorded: Option<Deployed>,
    ) {
        match (&outcome.result, outcome.verb) {
            (Result_::Succeeded, Verb::Deploy) => {
                if let Some(d) = recorded {
                    state.insert(outcome.instance.clone(), d);
                }
            }
            (Result_::Succeeded, Verb::Destroy) => {
                state.remove(&outcome.instance);
            }
            (result, _) => {
                held.insert(outcome.instance.clone(), result.clone());
            }
        }
        (self.progress)(&outcome);
        report.outcomes.push(outcome);
    }

    /// Runs `work` with at most `parallel` at once; outcomes in the order given.
    async fn run_all(
        &self,
        run: i64,
        work: Vec<Work>,
    ) -> Result<Vec<(Outcome, Option<Deployed>)>, DeployError> {
        let limit = Arc::new(Semaphore::new(self.parallel.max(1)));
        let mut tasks = JoinSet::new();
        let errors: Arc<Mutex<Option<StateError>>> = Arc::default();
        for (i, w) in work.into_iter().enumerate() {
            let ctx = StepCtx {
                store: self.store.clone(),
                state_dir: self.state_dir.clone(),
                timeout: self.step_timeout,
                run,
            };
            let limit = limit.clone();
            let errors = errors.clone();
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await;
                match ctx.run(w).await {
                    Ok(o) => Some((i, o)),
                    Err(e) => {
                        errors
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_or_insert(e);
                        None
                    }
                }
            });
        }
        let mut done = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            if let Ok(Some(x)) = joined {
                done.push(x);
            }
        }
        if let Some(e) = errors.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(e.into());
        }
        done.sort_by_key(|(i, _)| *i);
        Ok(done.into_iter().map(|(_, o)| o).collect())
    }
}

struct StepCtx {
    store: Arc<Store>,
    state_dir: PathBuf,
    timeout: Duration,
    run: i64,
}

impl StepCtx {
    /// Runs one instance's steps and records the result; a successful deploy also gives
    /// back the record written, so the run's view of the state needs no read-back.
    async fn run(&self, w: Work) -> Result<(Outcome, Option<Deployed>), StateError> {
        let started = Instant::now();
        let log = self
            .state_dir
            .join("logs")
            .join(format!("run-{}", self.run))
            .join(format!("{}.{}.log", w.instance, w.verb.name()));
        let log_text = log.display().to_string();
        let step = self.store.begin_step(&NewStep {
            run: self.run,
            instance: &w.instance,
            project: &w.project,
            environment: &w.environment,
            package: &w.package,
            action: w.verb.name(),
            inputs: &w.inputs,
            commit: &w.commit,
            attributes: &w.attributes,
            sensitive: &w.sensitive,
            log_path: Some(&log_text),
        })?;
        maybe_pause("step-started", &w.instance).await;
        let mut secrets = Vec::new();
        deployed::secrets_in("params", &w.inputs.params, &w.sensitive, &mut secrets);
        // Shaped like the sensitive paths: `connections/<slot>/data/...`.
        let connections: serde_json::Map<String, Value> = w
            .inputs
            .connections
            .iter()
            .map(|(k, i)| (k.clone(), serde_json::json!({ "data": i.data })))
            .collect();
        deployed::secrets_in(
            "connections",
            &Value::Object(connections),
            &w.sensitive,
            &mut secrets,
        );
        deployed::secrets_in(
            "artifacts",
            &serde_json::to_value(&w.previous).unwrap_or_default(),
            &w.sensitive,
            &mut secrets,
        );
        let job = provision::Job {
            verb: w.verb,
            instance: w.instance.as_str(),
            bundle: &w.bundle,
            tree: &w.tree,
            inputs: &w.inputs,
            metadata: serde_json::json!({
                "instance": w.instance.as_str(),
                "project": w.project,
                "environment": w.environment,
                "package": w.package,
                "bundle": w.inputs.bundle,
                "version": w.inputs.version,
                "commit": w.commit,
                "action": w.verb.name(),
                "run": self.run,
            }),
            workdir: self
                .state_dir
                .join("work")
                .join(format!("run-{}-{}", self.run, w.instance)),
            state_dir: &self.state_dir,
            log: &log,
            timeout: self.timeout,
            secrets: secrets.clone(),
        };
        let result = provision::run(&job).await;
        maybe_pause("step-finished", &w.instance).await;
        let artifacts = match (result, &w.checked) {
            (Err(e), _) => Err(e),
            (Ok(a), Some(checked)) => {
                deployed::check_artifacts(&checked.repository, w.bundle.name.as_str(), &a)
                    .map(|()| a)
                    .map_err(|problems| problems.join("; "))
            }
            (Ok(a), None) => Ok(a),
        };
        let mut recorded = None;
        let mut outcome = Outcome {
            instance: w.instance.clone(),
            verb: w.verb,
            result: Result_::Succeeded,
            log: Some(log.clone()),
            seconds: 0.0,
            artifacts: BTreeMap::new(),
        };
        match artifacts {
            Err(message) => {
                self.store.fail_step(step, &message)?;
                outcome.result = Result_::Failed(message);
            }
            Ok(artifacts) => {
                let as_value = serde_json::to_value(&artifacts).unwrap_or_default();
                deployed::secrets_in("artifacts", &as_value, &w.sensitive, &mut secrets);
                if let Err(e) = provision::scrub_log(&log, &Redactor::new(secrets)) {
                    tracing::warn!(log = %log.display(), error = %e, "scrubbing a log");
                }
                match w.verb {
                    Verb::Deploy => {
                        let record = Deployed {
                            instance: w.instance.clone(),
                            project: w.project,
                            environment: w.environment,
                            package: w.package,
                            digest: w.inputs.digest(),
                            inputs: w.inputs,
                            artifacts,
                            status: Status::Deployed,
                            commit: w.commit,
                            attributes: w.attributes,
                            sensitive: w.sensitive.clone(),
                            updated_at: crate::state::now(),
                        };
                        self.store.finish_deploy(step, &record)?;
                        let mut shown = as_value;
                        deployed::redact("artifacts", &mut shown, &w.sensitive);
                        outcome.artifacts = serde_json::from_value(shown).unwrap_or_default();
                        recorded = Some(record);
                    }
                    Verb::Destroy => self.store.finish_destroy(step, &w.instance)?,
                }
            }
        }
        outcome.seconds = started.elapsed().as_secs_f64();
        Ok((outcome, recorded))
    }
}
