//! Drift checks (docs/drift.md): per deployed instance, its steps are run in a check mode
//! that changes nothing, in a working directory built like a deploy's (the bundle's files
//! at the recorded commit, the recorded inputs), with the same timeouts, process groups,
//! redacted log and clean-up. OpenTofu and Terraform steps run `init` and
//! `plan -detailed-exitcode`; the summary is the changed resource addresses and actions of
//! the saved plan (`show -json`), never values. `exec` steps run their `check:` command.
//! Each instance's outcome is recorded with it ([`Store::record_check`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::provision::{self, Job, Log, Program, StepError, Timeouts, check_log};
use super::{DeployError, LastDeployed};
use crate::core::deployed::{self, Deployed, Status};
use crate::core::drift::{self, DriftCheck, DriftStatus, StepCheck};
use crate::core::model::{Bundle, InstanceId, Provisioner, Step};
use crate::core::run::Verb;
use crate::core::source::SourceTree;
use crate::source::Revisions;
use crate::state::Store;

/// Checks deployed instances for drift.
pub struct Checker {
    pub store: Arc<Store>,
    pub state_dir: PathBuf,
    /// Where each instance's bundle is read from: the commit it was last deployed at.
    pub revisions: Arc<dyn Revisions>,
    pub parallel: usize,
    pub timeouts: Timeouts,
}

/// One instance's check, as recorded.
#[derive(Clone, Debug)]
pub struct InstanceCheck {
    pub instance: InstanceId,
    pub project: String,
    pub environment: String,
    pub attributes: BTreeMap<String, String>,
    pub check: DriftCheck,
    /// Its last check's log.
    pub log: PathBuf,
}

/// Where an instance's check works (`provision::leftovers` knows it).
fn check_workdir(state_dir: &Path, instance: &str) -> PathBuf {
    state_dir.join("work").join(format!("check-{instance}"))
}

impl Checker {
    /// Checks every deployed instance (or those of `only`; naming one that is not
    /// deployed is an error) and records each outcome; in instance order. The caller
    /// holds the deploy lock: checks never run beside a deploy.
    pub async fn check(&self, only: &[InstanceId]) -> Result<Vec<InstanceCheck>, DeployError> {
        let state = self.store.deployed()?;
        for id in only {
            if !state.contains_key(id) {
                return Err(DeployError::NotDeployed(id.to_string()));
            }
        }
        let records: Vec<Deployed> = state
            .into_values()
            .filter(|d| only.is_empty() || only.contains(&d.instance))
            .filter(|d| d.status == Status::Deployed)
            .collect();
        let mut bundles = LastDeployed::new(self.revisions.as_ref());
        let limit = Arc::new(Semaphore::new(self.parallel.max(1)));
        let mut tasks = JoinSet::new();
        for record in records {
            let found = bundles.of(&record);
            let (limit, state_dir, timeouts) =
                (limit.clone(), self.state_dir.clone(), self.timeouts);
            let tf_pg = self.store.location().terraform_pg().cloned();
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await;
                let outcome = match found {
                    Ok((tree, bundle)) => {
                        let at = Where {
                            state_dir: &state_dir,
                            tf_pg: tf_pg.as_ref(),
                        };
                        check_one(&record, &tree, &bundle, at, timeouts).await
                    }
                    Err(why) => StepCheck {
                        status: DriftStatus::CheckFailed,
                        summary: why,
                    },
                };
                (record, outcome)
            });
        }
        let mut out = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let (record, outcome) = joined.map_err(|e| DeployError::Task(e.to_string()))?;
            // A record redeployed or destroyed meanwhile keeps its own state.
            if let Some(check) = self.store.record_check(
                record.instance.as_str(),
                &record.digest,
                outcome.status,
                &outcome.summary,
                crate::state::now(),
            )? {
                out.push(InstanceCheck {
                    log: check_log(&self.state_dir, record.instance.as_str()),
                    instance: record.instance,
                    project: record.project,
                    environment: record.environment,
                    attributes: record.attributes,
                    check,
                });
            }
        }
        out.sort_by(|a, b| a.instance.cmp(&b.instance));
        Ok(out)
    }
}

/// Where a check keeps its files, and its Terraform states.
#[derive(Clone, Copy)]
struct Where<'a> {
    state_dir: &'a Path,
    tf_pg: Option<&'a crate::state::PgTarget>,
}

/// Checks one instance: its steps' outcomes combined.
async fn check_one(
    record: &Deployed,
    tree: &SourceTree,
    bundle: &Bundle,
    at: Where<'_>,
    timeouts: Timeouts,
) -> StepCheck {
    let state_dir = at.state_dir;
    let log = check_log(state_dir, record.instance.as_str());
    // Each check's log replaces the last one's.
    let _ = std::fs::remove_file(&log);
    let job = Job {
        verb: Verb::Deploy,
        instance: record.instance.as_str(),
        bundle,
        tree,
        inputs: &record.inputs,
        metadata: serde_json::json!({
            "instance": record.instance.as_str(),
            "project": record.project,
            "environment": record.environment,
            "package": record.package,
            "bundle": record.inputs.bundle,
            "version": record.inputs.version,
            "commit": record.commit,
            "action": "check",
        }),
        workdir: check_workdir(state_dir, record.instance.as_str()),
        state_dir,
        tf_pg: at.tf_pg,
        log: &log,
        timeouts,
        secrets: deployed::secrets(&record.inputs, &record.artifacts, &record.sensitive),
        sensitive: &record.sensitive,
        only_env: None,
        cancel: None,
    };
    let result = check_steps(&job).await;
    provision::finish(&job, None);
    match result {
        Ok(steps) => drift::combine(&steps),
        Err(e) => StepCheck {
            status: DriftStatus::CheckFailed,
            summary: e.to_string(),
        },
    }
}

async fn check_steps(job: &Job<'_>) -> Result<Vec<StepCheck>, StepError> {
    let prepared = provision::prepare(job)?;
    let log = &prepared.log;
    let mut out = Vec::new();
    for (i, step) in job.bundle.steps.iter().enumerate() {
        log.line(&format!(
            "## check step {} ({}, {})",
            i + 1,
            step.path,
            step.provisioner.name()
        ));
        let checked = match &step.provisioner {
            Provisioner::Exec => match &step.check {
                None => StepCheck {
                    status: DriftStatus::NotCheckable,
                    summary: format!("step {} ({}) has no check", i + 1, step.path),
                },
                Some(command) => {
                    let env = provision::step_env(job, "check", &prepared, i, step)?;
                    exec_check(command, &env, log).await
                }
            },
            Provisioner::OpenTofu { version } => {
                tf_check(
                    Program::OpenTofu,
                    version.as_deref(),
                    job,
                    i,
                    step,
                    &prepared,
                )
                .await?
            }
            Provisioner::Terraform { version } => {
                tf_check(
                    Program::Terraform,
                    version.as_deref(),
                    job,
                    i,
                    step,
                    &prepared,
                )
                .await?
            }
            Provisioner::Unsupported(name) => StepCheck {
                status: DriftStatus::NotCheckable,
                summary: format!("capstan cannot run {name} steps"),
            },
        };
        log.line(&format!(
            "## step {}: {}{}",
            i + 1,
            checked.status,
            if checked.summary.is_empty() {
                String::new()
            } else {
                format!(": {}", checked.summary)
            }
        ));
        out.push(checked);
    }
    Ok(out)
}

fn failed(e: &StepError) -> StepCheck {
    StepCheck {
        status: DriftStatus::CheckFailed,
        summary: e.to_string(),
    }
}

/// An exec step's `check:`: exit 0 in sync, 2 drifted (its first lines, redacted, say
/// how), anything else: the check failed.
async fn exec_check(command: &str, env: &provision::Env, log: &Log) -> StepCheck {
    log.take_recent();
    let ended = provision::spawn_and_wait(log, env, "sh", &["-c", command], false).await;
    let printed: Vec<String> = log
        .take_recent()
        .into_iter()
        .skip(1) // the `$ command` line
        .collect();
    match ended {
        Err(e) => failed(&e),
        Ok(ended) => match ended.status.code() {
            Some(0) => StepCheck {
                status: DriftStatus::InSync,
                summary: String::new(),
            },
            Some(2) => StepCheck {
                status: DriftStatus::Drifted,
                summary: drift::first_lines(&printed.join("\n"), 3),
            },
            Some(code) => StepCheck {
                status: DriftStatus::CheckFailed,
                summary: format!("`{command}` exited with status {code} (0: in sync, 2: drifted)"),
            },
            None => StepCheck {
                status: DriftStatus::CheckFailed,
                summary: format!("`{command}` was killed by a signal"),
            },
        },
    }
}

/// An OpenTofu or Terraform step: `init`, `plan -detailed-exitcode` into a plan file, and
/// for exit 2 the plan's changed resources from `show -json` (addresses and actions only).
async fn tf_check(
    program: Program,
    version: Option<&str>,
    job: &Job<'_>,
    index: usize,
    step: &Step,
    prepared: &provision::Prepared,
) -> Result<StepCheck, StepError> {
    let log = &prepared.log;
    let env = provision::step_env(job, "check", prepared, index, step)?;
    if let Err(e) = provision::tf_init(program, version, job, index, &env, log).await {
        return Ok(failed(&e));
    }
    let plan = job.workdir.join(format!("check-{}.tfplan", index + 1));
    let out = format!("-out={}", plan.display());
    let lock = provision::lock_timeout(job);
    let args = [
        "plan",
        "-detailed-exitcode",
        "-input=false",
        "-no-color",
        lock.as_str(),
        out.as_str(),
    ];
    let ended = match provision::spawn_and_wait(log, &env, program.binary(), &args, false).await {
        Ok(ended) => ended,
        Err(e) => return Ok(failed(&e)),
    };
    Ok(match ended.status.code() {
        Some(0) => StepCheck {
            status: DriftStatus::InSync,
            summary: String::new(),
        },
        Some(2) => {
            let plan_text = plan.display().to_string();
            let shown = provision::command(
                log,
                &env,
                program.binary(),
                &["show", "-json", &plan_text],
                true,
            )
            .await;
            StepCheck {
                status: DriftStatus::Drifted,
                summary: match shown {
                    Ok(json) => changed_resources(&json),
                    Err(e) => format!("the plan has changes (reading them failed: {e})"),
                },
            }
        }
        _ => failed(&provision::failure(log, &env, program.binary(), &ended)),
    })
}

/// `aws_s3_bucket.logs: replace, terraform_data.greeting: update` from a saved plan's
/// `show -json` (read by `core::resources`): resource addresses and actions, never values,
/// dangerous ones first.
fn changed_resources(json: &[u8]) -> String {
    let Ok(plan) = crate::core::resources::parse(json, false) else {
        return "the plan has changes (its JSON did not parse)".into();
    };
    if plan.is_empty() {
        return "the plan changes outputs only".into();
    }
    plan.changes
        .iter()
        .map(|c| format!("{}: {}", c.address, c.action.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_json_becomes_addresses_and_actions_never_values() {
        let json = serde_json::json!({
            "resource_changes": [
                {"address": "terraform_data.greeting", "change": {"actions": ["update"], "after": {"input": "s3cr3t"}}},
                {"address": "aws_s3_bucket.logs", "change": {"actions": ["delete", "create"]}},
                {"address": "data.x.y", "change": {"actions": ["read"]}},
                {"address": "null_resource.same", "change": {"actions": ["no-op"]}}
            ]
        });
        let summary = changed_resources(&serde_json::to_vec(&json).unwrap());
        assert_eq!(
            summary,
            "aws_s3_bucket.logs: replace, terraform_data.greeting: update"
        );
        assert!(!summary.contains("s3cr3t"));
        assert_eq!(changed_resources(b"{}"), "the plan changes outputs only");
        assert_eq!(
            changed_resources(b"not json"),
            "the plan has changes (its JSON did not parse)"
        );
    }
}
