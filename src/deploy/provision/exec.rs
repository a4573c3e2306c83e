//! `exec` steps: a shell command, artifacts written to `$CAPSTAN_ARTIFACTS`.

use std::collections::BTreeMap;
use std::path::Path;

use super::log::Log;
use super::process::command;
use super::workdir::parse_artifacts;
use super::{Env, Job, StepError, StepRan};
use crate::core::model::Step;
use crate::core::resources::{self, Applied};
use crate::core::run::Verb;

/// Runs the step's `deploy` or `destroy` command; its `plan:` command first, when it has
/// one, says what it is about to change (a plan that fails is logged, not fatal).
pub(super) async fn exec(
    job: &Job<'_>,
    step: &Step,
    env: &Env,
    log: &Log,
    artifacts_file: &Path,
) -> Result<StepRan, StepError> {
    let script = match job.verb {
        Verb::Deploy => step.deploy.as_deref(),
        Verb::Destroy => step.destroy.as_deref(),
    };
    let Some(script) = script else {
        log.line(&format!("no {} command: nothing to run", job.verb.name()));
        return Ok(StepRan {
            artifacts: BTreeMap::new(),
            resources: Some(Applied::default()),
        });
    };
    let resources = match &step.plan {
        Some(plan) => match command(log, env, "sh", &["-c", plan], true).await {
            Ok(out) => resources::parse(&out, false)
                .inspect_err(|e| log.line(&format!("the plan: command's output: {e}")))
                .ok()
                .map(|plan| plan.counts().applied()),
            Err(_) => None,
        },
        None => None,
    };
    command(log, env, "sh", &["-c", script], false).await?;
    if job.verb == Verb::Destroy {
        return Ok(StepRan {
            artifacts: BTreeMap::new(),
            resources,
        });
    }
    let artifacts = match std::fs::read(artifacts_file) {
        Ok(bytes) => parse_artifacts(&bytes, "$CAPSTAN_ARTIFACTS")?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(e) => return Err(StepError::ReadArtifacts(e)),
    };
    Ok(StepRan {
        artifacts,
        resources,
    })
}
