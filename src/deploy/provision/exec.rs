//! `exec` steps: a shell command, artifacts written to `$CAPSTAN_ARTIFACTS`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::log::Log;
use super::process::command;
use super::workdir::parse_artifacts;
use super::{Env, Job, StepError};
use crate::core::model::Step;
use crate::core::run::Verb;

pub(super) async fn exec(
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
