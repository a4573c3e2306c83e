//! One instance's deploy or destroy within a run: recorded as started, its bundle's steps
//! run (`provision.rs`), its artifacts checked, recorded as finished, its log scrubbed of
//! every secret known by then. Start and end are one transaction each, so a crash between
//! them leaves the instance `deploying`/`destroying`, which recovery turns into
//! `interrupted`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use super::maybe_pause;
use super::provision::{self, Timeouts};
use super::report::Outcome;
use crate::core::Checked;
use crate::core::commit::CommitId;
use crate::core::deployed::{self, Deployed, Inputs, Status};
use crate::core::model::{Bundle, InstanceId};
use crate::core::run::{StepResult, Verb};
use crate::core::sensitive::{self, FieldPath};
use crate::core::source::SourceTree;
use crate::state::{NewStep, StateError, Store};

/// One instance to run, owning what its task needs.
pub(super) struct Work {
    pub instance: InstanceId,
    pub verb: Verb,
    pub project: String,
    pub environment: String,
    pub package: String,
    pub bundle: Bundle,
    pub tree: Arc<SourceTree>,
    /// The revision whose types validate the artifacts (deploys only).
    pub checked: Option<Arc<Checked>>,
    pub inputs: Inputs,
    pub commit: CommitId,
    pub attributes: BTreeMap<String, String>,
    pub sensitive: Vec<FieldPath>,
    /// The secrets of the record before (its inputs and artifacts): the provisioner may
    /// print the old values as it replaces them.
    pub previous: Vec<String>,
}

/// Where and how steps of a run are carried out.
pub(super) struct Step {
    pub store: Arc<Store>,
    pub state_dir: PathBuf,
    pub timeouts: Timeouts,
    pub run: i64,
    pub fence: i64,
}

impl Step {
    /// Runs one instance's steps and records the result; a successful deploy also gives
    /// back the record written, so the run's view of the state needs no read-back.
    pub async fn run(&self, w: Work) -> Result<(Outcome, Option<Deployed>), StateError> {
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
            action: w.verb,
            inputs: &w.inputs,
            commit: &w.commit,
            attributes: &w.attributes,
            sensitive: &w.sensitive,
            log_path: Some(&log_text),
            fence: self.fence,
        })?;
        maybe_pause("step-started", &w.instance).await;
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
            tf_pg: self.store.location().terraform_pg(),
            log: &log,
            timeouts: self.timeouts,
            secrets: deployed::secrets(&w.inputs, &BTreeMap::new(), &w.sensitive)
                .into_iter()
                .chain(w.previous.iter().cloned())
                .collect(),
            sensitive: &w.sensitive,
            only_env: None,
            cancel: None,
        };
        let result = provision::run(&job).await;
        maybe_pause("step-finished", &w.instance).await;
        let resources = result.as_ref().ok().and_then(|r| r.resources);
        let artifacts = match (result.map(|r| r.artifacts), &w.checked) {
            (Err(e), _) => Err(crate::error::chain(&e)),
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
            result: StepResult::Succeeded,
            log: Some(log.clone()),
            seconds: 0.0,
            artifacts: BTreeMap::new(),
            resources,
        };
        match artifacts {
            Err(message) => {
                self.store.fail_step(step, &message)?;
                outcome.result = StepResult::Failed(message);
            }
            Ok(artifacts) => {
                let as_value = serde_json::to_value(&artifacts).unwrap_or_default();
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
                            drift: None,
                        };
                        self.store.finish_deploy(step, &record)?;
                        let mut shown = as_value;
                        sensitive::redact("artifacts", &mut shown, &w.sensitive);
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
