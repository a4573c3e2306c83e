//! The run: waves in order, the core's decision per instance carried out, instances of a
//! wave in parallel up to a limit, destroys last. Each instance that runs goes through
//! `step.rs`; this file only decides the order and keeps the run's view of the state.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::Timeouts;
use super::report::{Outcome, Report};
use super::step::{Step, Work};
use super::{DeployError, LastDeployed, Target};
use crate::core::deployed::{self, Deployed};
use crate::core::model::InstanceId;
use crate::core::resolve::Instance;
use crate::core::resolve::environment_attributes;
use crate::core::run::{self, Decision, Moment, Scope, StepResult, Trigger, Verb};
use crate::source::Revisions;
use crate::state::{StateError, Store};

pub struct Deployer {
    pub store: Arc<Store>,
    pub state_dir: PathBuf,
    /// Where a destroy reads its bundle from: the commit it was last deployed at.
    pub revisions: Arc<dyn Revisions>,
    pub parallel: usize,
    pub timeouts: Timeouts,
    /// Told about each outcome as it happens (the CLI prints it, the daemon logs it).
    pub progress: Arc<dyn Fn(&Outcome) + Send + Sync>,
    /// The fencing token of the deploy lock held (`DeployLock::fence`): each step's start
    /// and result are written only while it is current.
    pub fence: i64,
}

/// A run in progress: its report so far, and the instances that did not reach their
/// desired state in it (which hold back what depends on them).
struct Run {
    report: Report,
    held: HashMap<InstanceId, StepResult>,
    /// What is recorded, kept current as steps finish (no read-back from the database).
    state: BTreeMap<InstanceId, Deployed>,
}

impl Deployer {
    /// Deploys `target` against the recorded state. The caller holds the deploy lock and
    /// has run [`Store::recover`].
    pub async fn deploy(&self, target: &Target) -> Result<Report, DeployError> {
        if target.checked.has_errors() {
            return Err(DeployError::Invalid {
                commit: target.commit.clone(),
            });
        }
        let state = self.store.deployed()?;
        // The policies judge first: a deny starts no run and no step.
        for warning in super::gate::judge(target, &state)? {
            tracing::info!(rule = %warning.rule, instance = ?warning.instance, "policy: {}", warning.msg);
        }
        let id = self.store.begin_run(&target.commit, target.trigger)?;
        let mut run = Run {
            report: Report::new(id, &target.commit),
            held: HashMap::new(),
            state,
        };
        let moment = Moment {
            windows: &target.checked.repository.config.deploy_windows,
            now: Utc::now(),
        };
        let repo = &target.checked.repository;
        for wave in &target.checked.resolved.waves {
            let mut work = Vec::new();
            for id in wave {
                let Some(inst) = target.checked.resolved.instances.get(id) else {
                    continue;
                };
                if !target.selects(id) {
                    continue;
                }
                if !target
                    .scope
                    .owns(inst.project.as_str(), inst.environment.as_str())
                {
                    continue;
                }
                let Some((project, env)) = repo.projects.get(inst.project.as_str()).and_then(|p| {
                    p.environments
                        .get(inst.environment.as_str())
                        .map(|e| (p, e))
                }) else {
                    continue;
                };
                let Some(bundle) = repo.bundles.get(inst.bundle.as_str()) else {
                    continue;
                };
                let inputs = deployed::desired_inputs(inst, &run.state);
                let attributes = environment_attributes(project, env);
                match run::decide_deploy(
                    &inputs,
                    &run.state,
                    id,
                    &run.held,
                    &attributes,
                    moment,
                    &target.heal,
                ) {
                    Decision::Current => run.report.unchanged += 1,
                    Decision::Hold(result) => self.hold(&mut run, id, Verb::Deploy, result)?,
                    Decision::Run => work.push(Work {
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
                        sensitive: bundle.sensitive.clone(),
                        previous: deployed::previous_secrets(run.state.get(id)),
                    }),
                }
            }
            self.run_all(&mut run, work).await?;
        }
        self.destroy_unwanted(
            &target.checked.resolved.instances,
            &|id, record| {
                target.selects(id) && target.scope.owns(&record.project, &record.environment)
            },
            &mut run,
            moment,
        )
        .await?;
        let report = run.report;
        self.store
            .finish_run(report.run, report.status(), &report.summary())?;
        Ok(report)
    }

    /// Destroys every recorded instance `scope` owns (a preview's), dependants first:
    /// `capstan preview down`, a closed pull request, an expired preview. Needs no revision:
    /// each instance is destroyed with its bundle as it was last deployed. `label` names
    /// what is torn down in the run's record.
    pub async fn teardown(&self, scope: &Scope, label: &str) -> Result<Report, DeployError> {
        let id = self.store.begin_run(label, Trigger::Teardown)?;
        let mut run = Run {
            report: Report::new(id, label),
            held: HashMap::new(),
            state: self.store.deployed()?,
        };
        let moment = Moment {
            windows: &[],
            now: Utc::now(),
        };
        self.destroy_unwanted(
            &BTreeMap::new(),
            &|_, record| scope.owns(&record.project, &record.environment),
            &mut run,
            moment,
        )
        .await?;
        let report = run.report;
        self.store
            .finish_run(report.run, report.status(), &report.summary())?;
        Ok(report)
    }

    /// Destroys what is recorded, not desired and `ours` (the run's scope, and selection),
    /// in the order the core gives.
    async fn destroy_unwanted(
        &self,
        desired: &BTreeMap<InstanceId, Arc<Instance>>,
        ours: &(dyn Fn(&InstanceId, &Deployed) -> bool + Sync),
        run: &mut Run,
        moment: Moment<'_>,
    ) -> Result<(), DeployError> {
        let order: Vec<InstanceId> = deployed::destroy_order(&run.state, desired)
            .into_iter()
            .filter(|id| run.state.get(id).is_some_and(|d| ours(id, d)))
            .collect();
        let mut bundles = LastDeployed::new(self.revisions.as_ref());
        for id in order {
            let Some(record) = run.state.get(&id).cloned() else {
                continue;
            };
            match run::decide_destroy(&record, &run.state, moment) {
                Decision::Current => continue,
                Decision::Hold(result) => {
                    self.hold(run, &id, Verb::Destroy, result)?;
                    continue;
                }
                Decision::Run => {}
            }
            let (tree, bundle) = match bundles.of(&record) {
                Ok(found) => found,
                Err(why) => {
                    self.hold(run, &id, Verb::Destroy, StepResult::Failed(why))?;
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
                previous: deployed::previous_secrets(Some(&record)),
            };
            self.run_all(run, vec![work]).await?;
        }
        Ok(())
    }

    /// Records a step that does not run, and holds back what depends on it.
    fn hold(
        &self,
        run: &mut Run,
        id: &InstanceId,
        verb: Verb,
        result: StepResult,
    ) -> Result<(), DeployError> {
        self.store.note_step(run.report.run, id, verb, &result)?;
        let outcome = Outcome::not_run(id, verb, result);
        run.held.insert(id.clone(), outcome.result.clone());
        (self.progress)(&outcome);
        run.report.outcomes.push(outcome);
        Ok(())
    }

    /// Runs `work` with at most `parallel` at once and takes in the outcomes in the order
    /// given.
    async fn run_all(&self, run: &mut Run, work: Vec<Work>) -> Result<(), DeployError> {
        let limit = Arc::new(Semaphore::new(self.parallel.max(1)));
        let mut tasks = JoinSet::new();
        let errors: Arc<Mutex<Option<StateError>>> = Arc::default();
        for (i, w) in work.into_iter().enumerate() {
            let step = Step {
                store: self.store.clone(),
                state_dir: self.state_dir.clone(),
                timeouts: self.timeouts,
                run: run.report.run,
                fence: self.fence,
            };
            let limit = limit.clone();
            let errors = errors.clone();
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await;
                match step.run(w).await {
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
        for (_, (outcome, recorded)) in done {
            match (&outcome.result, outcome.verb) {
                (StepResult::Succeeded, Verb::Deploy) => {
                    if let Some(d) = recorded {
                        run.state.insert(outcome.instance.clone(), d);
                    }
                }
                (StepResult::Succeeded, Verb::Destroy) => {
                    run.state.remove(&outcome.instance);
                }
                (result, _) => {
                    run.held.insert(outcome.instance.clone(), result.clone());
                }
            }
            (self.progress)(&outcome);
            run.report.outcomes.push(outcome);
        }
        Ok(())
    }
}
