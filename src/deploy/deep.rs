//! Running provisioner plans (docs/provisioner-plans.md): one instance's steps in plan
//! mode, in a work folder laid out as for a deploy, against the instance's deployed state.
//! OpenTofu and Terraform steps run `init`, `plan -lock=false -out` (`-destroy` for a
//! destroy) and `show -json` of the saved plan; an exec step runs its `plan:` command.
//! Nothing is applied and no state is written. Commands get only the configured
//! environment (never capstan's own, which holds the deploy's credentials), their own
//! process group, a timeout and a cancel; the work folder is removed whatever happens.
//! What to plan, and whether it may run, is `core::deep`'s to say.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::LastDeployed;
use super::provision::{self, Job, Prepared, Program, StepError, Timeouts};
use crate::core::Checked;
use crate::core::deep::{Finished, Outcome, Request};
use crate::core::deployed::{self, Deployed};
use crate::core::model::{Bundle, InstanceId, Provisioner, Step};
use crate::core::resources::{self, ResourcePlan};
use crate::core::run::Verb;
use crate::core::source::SourceTree;
use crate::source::Revisions;

/// The last lines of a failed provisioner shown on the pull request.
const LAST_LINES: usize = 15;

/// Runs provisioner plans for one purpose (`label`: `pr-7`, `cli`), which names their logs.
pub struct Planner {
    pub state_dir: PathBuf,
    /// With the state in PostgreSQL: where the modules' Terraform states are.
    pub tf_pg: Option<crate::state::PgTarget>,
    /// `step` bounds one instance's plan.
    pub timeouts: Timeouts,
    /// The only environment the commands get, besides `PATH` and capstan's own variables.
    pub env: Vec<(String, String)>,
    pub label: String,
}

/// Work folders of provisioner plans are unique within the process.
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// Where a provisioner plan's work folders live: `<state>/work/plans/<pid>-<n>-<instance>`.
fn plans_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("work").join("plans")
}

/// Removes the work folders of provisioner plans whose process is gone (a kill leaves
/// them, and they hold the inputs' secrets); those of a running process are left alone.
pub fn clear_stale(state_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(plans_dir(state_dir)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let pid: Option<i32> = name.split('-').next().and_then(|p| p.parse().ok());
        // SAFETY: signal 0 sends nothing; it asks whether the process exists.
        let alive = pid.is_some_and(|pid| unsafe { libc::kill(pid, 0) } == 0);
        if !alive {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl Planner {
    /// What the instance's deployed state is, for the reuse key: its record (inputs
    /// digest, status, when) and each OpenTofu/Terraform step's local state (lineage and
    /// serial). A module with its own backend is known by its record only.
    pub fn deployed_key(
        &self,
        request: &Request,
        bundle: &Bundle,
        record: Option<&Deployed>,
    ) -> String {
        let mut key = match record {
            Some(r) => format!("{}:{}:{}", r.digest, r.status.name(), r.updated_at.secs()),
            None => "undeployed".into(),
        };
        for (i, step) in bundle.steps.iter().enumerate() {
            if matches!(
                step.provisioner,
                Provisioner::OpenTofu { .. } | Provisioner::Terraform { .. }
            ) {
                let path = provision::tf_state_file(&self.state_dir, request.instance.as_str(), i);
                let serial = std::fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                    .map(|v| format!("{}#{}", v["lineage"].as_str().unwrap_or(""), v["serial"]))
                    .unwrap_or_else(|| "none".into());
                key.push_str(&format!("|{serial}"));
            }
        }
        key
    }

    /// Plans `request` with `bundle` as it is in `tree` (the head for a create or update,
    /// the deployed commit for a destroy). `record` is the instance's deployed record, if
    /// any: its artifacts are secrets kept out of the log.
    pub async fn plan(
        &self,
        request: &Request,
        bundle: &Bundle,
        tree: &SourceTree,
        commit: &str,
        record: Option<&Deployed>,
        cancel: &CancellationToken,
    ) -> Outcome {
        let instance = request.instance.as_str();
        let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let workdir =
            plans_dir(&self.state_dir).join(format!("{}-{n}-{instance}", std::process::id()));
        let log = self
            .state_dir
            .join("logs")
            .join("plans")
            .join(&self.label)
            .join(format!("{instance}.log"));
        let _ = std::fs::remove_file(&log);
        let job = Job {
            verb: request.verb,
            instance,
            bundle,
            tree,
            inputs: &request.inputs,
            metadata: serde_json::json!({
                "instance": instance,
                "project": request.project,
                "environment": request.environment,
                "package": request.package,
                "bundle": request.inputs.bundle,
                "version": request.inputs.version,
                "commit": commit,
                "action": "plan",
            }),
            workdir,
            state_dir: &self.state_dir,
            tf_pg: self.tf_pg.as_ref(),
            log: &log,
            timeouts: self.timeouts,
            secrets: deployed::secrets(&request.inputs, &Default::default(), &request.sensitive)
                .into_iter()
                .chain(deployed::previous_secrets(record))
                .collect(),
            sensitive: &request.sensitive,
            only_env: Some(&self.env),
            cancel: Some(cancel),
        };
        let outcome = match provision::prepare(&job) {
            Ok(prepared) => plan_steps(&job, &prepared).await,
            Err(e) => failed(&e, Vec::new()),
        };
        provision::finish(&job, None);
        outcome
    }
}

/// Each step in plan mode, their resource changes together.
async fn plan_steps(job: &Job<'_>, prepared: &Prepared) -> Outcome {
    let log = &prepared.log;
    let mut resources = ResourcePlan::default();
    let mut unplanned = Vec::new();
    let mut planned_any = false;
    let skipped = |step: &Step| job.verb == Verb::Destroy && step.skip_on_destroy;
    for (i, step) in job.bundle.steps.iter().enumerate() {
        let name = format!(
            "step {} ({}, {})",
            i + 1,
            step.path,
            step.provisioner.name()
        );
        if skipped(step) {
            continue;
        }
        log.line(&format!("## plan {name}"));
        let planned = match &step.provisioner {
            Provisioner::Exec => match &step.plan {
                None => {
                    unplanned.push(format!("{name} has no `plan:` command"));
                    continue;
                }
                Some(command) => exec_plan(job, prepared, i, step, command).await,
            },
            Provisioner::OpenTofu { version } => {
                tf_plan(
                    Program::OpenTofu,
                    version.as_deref(),
                    job,
                    prepared,
                    i,
                    step,
                )
                .await
            }
            Provisioner::Terraform { version } => {
                tf_plan(
                    Program::Terraform,
                    version.as_deref(),
                    job,
                    prepared,
                    i,
                    step,
                )
                .await
            }
            Provisioner::Unsupported(p) => {
                unplanned.push(format!("{name}: capstan cannot run {p} steps"));
                continue;
            }
        };
        match planned {
            Ok(plan) => {
                planned_any = true;
                log.line(&format!(
                    "## {name}: {}",
                    crate::core::render::resources::counts(&plan.counts())
                ));
                resources.merge(plan);
            }
            Err(e) => {
                let lines = log.take_recent();
                let start = lines.len().saturating_sub(LAST_LINES);
                return failed(&e, lines[start..].to_vec());
            }
        }
    }
    if planned_any {
        Outcome::Planned {
            resources,
            unplanned,
        }
    } else {
        Outcome::NotPlannable {
            why: if unplanned.is_empty() {
                "the bundle has no steps to plan".into()
            } else {
                unplanned.join("; ")
            },
        }
    }
}

fn failed(e: &dyn std::fmt::Display, lines: Vec<String>) -> Outcome {
    Outcome::Failed {
        error: e.to_string(),
        lines,
    }
}

/// An exec step's `plan:`: its stdout is the resource changes (`CAPSTAN_ACTION` says
/// `deploy` or `destroy`); a non-zero exit fails the plan.
async fn exec_plan(
    job: &Job<'_>,
    prepared: &Prepared,
    index: usize,
    step: &Step,
    command: &str,
) -> Result<ResourcePlan, StepError> {
    let env = provision::step_env(job, job.verb.name(), prepared, index, step)?;
    let out = provision::command(&prepared.log, &env, "sh", &["-c", command], true).await?;
    read(&out, false, &prepared.log, &format!("`{command}`"))
}

/// An OpenTofu or Terraform step: `init`, `plan -lock=false -out` (`-destroy` for a
/// destroy) against the deployed state, and `show -json` of the saved plan.
async fn tf_plan(
    program: Program,
    version: Option<&str>,
    job: &Job<'_>,
    prepared: &Prepared,
    index: usize,
    step: &Step,
) -> Result<ResourcePlan, StepError> {
    let log = &prepared.log;
    let env = provision::step_env(job, job.verb.name(), prepared, index, step)?;
    provision::tf_init(program, version, job, index, &env, log).await?;
    let saved = job.workdir.join(format!("plan-{}.tfplan", index + 1));
    let out = format!("-out={}", saved.display());
    let mut args = vec![
        "plan",
        "-input=false",
        "-lock=false",
        "-no-color",
        out.as_str(),
    ];
    if job.verb == Verb::Destroy {
        args.push("-destroy");
    }
    provision::command(log, &env, program.binary(), &args, false).await?;
    let saved_text = saved.display().to_string();
    // `show -json` prints sensitive values in clear: captured, never logged, read here.
    let json = provision::command(
        log,
        &env,
        program.binary(),
        &["show", "-json", &saved_text],
        true,
    )
    .await?;
    read(&json, true, log, &format!("`{program} show -json`"))
}

/// The resource changes `what` printed; a shape capstan cannot read fails the step.
fn read(
    json: &[u8],
    version_required: bool,
    log: &provision::Log,
    what: &str,
) -> Result<ResourcePlan, StepError> {
    resources::parse(json, version_required).map_err(|e| {
        let e = StepError::Plan {
            what: what.to_string(),
            why: e.to_string(),
        };
        log.line(&e.to_string());
        e
    })
}

/// One provisioner plan to run, owning what its task needs.
pub struct Work {
    pub request: Request,
    pub bundle: Bundle,
    /// The repository at `commit`: the head's for a create or update, the deployed one's
    /// for a destroy.
    pub tree: Arc<SourceTree>,
    pub commit: String,
    pub record: Option<Deployed>,
}

/// The work of `requests`: creates and updates with the head's bundle (`head` at
/// `commit`), destroys with the bundle they were deployed with (read through
/// `revisions`); a destroy whose commit cannot be read fails with why.
pub fn work(
    requests: Vec<Request>,
    head: &Checked,
    tree: &Arc<SourceTree>,
    commit: &str,
    state: &BTreeMap<InstanceId, Deployed>,
    revisions: &dyn Revisions,
) -> (Vec<Work>, Vec<Finished>) {
    let mut bundles = LastDeployed::new(revisions);
    let mut work = Vec::new();
    let mut finished = Vec::new();
    for request in requests {
        let record = state.get(&request.instance).cloned();
        let found = match (request.verb, &record) {
            (Verb::Destroy, Some(record)) => bundles
                .of(record)
                .map(|(tree, bundle)| (tree, bundle, record.commit.to_string())),
            _ => head
                .repository
                .bundles
                .get(request.bundle.as_str())
                .map(|b| (tree.clone(), b.clone(), commit.to_string()))
                .ok_or_else(|| format!("bundle {} is not in the head", request.bundle)),
        };
        match found {
            Ok((tree, bundle, commit)) => work.push(Work {
                request,
                bundle,
                tree,
                commit,
                record,
            }),
            Err(why) => finished.push(Finished {
                instance: request.instance,
                verb: request.verb,
                pending: request.pending,
                outcome: Outcome::Failed {
                    error: why,
                    lines: Vec::new(),
                },
            }),
        }
    }
    (work, finished)
}

impl Planner {
    /// Starts `work`, at most as many at once as `limit` allows (shared by all callers);
    /// results come from [`Running::next`] as they finish. Cancelling `cancel` stops the
    /// commands; dropping the `Running` stops the tasks.
    pub fn start(
        self: &Arc<Self>,
        work: Vec<Work>,
        limit: &Arc<Semaphore>,
        cancel: &CancellationToken,
    ) -> Running {
        let mut tasks = JoinSet::new();
        for w in work {
            let (planner, limit, cancel) = (self.clone(), limit.clone(), cancel.clone());
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await;
                let key =
                    w.request
                        .key(&planner.deployed_key(&w.request, &w.bundle, w.record.as_ref()));
                let outcome = if cancel.is_cancelled() {
                    Outcome::Failed {
                        error: "stopped: a newer head superseded it".into(),
                        lines: Vec::new(),
                    }
                } else {
                    planner
                        .plan(
                            &w.request,
                            &w.bundle,
                            &w.tree,
                            &w.commit,
                            w.record.as_ref(),
                            &cancel,
                        )
                        .await
                };
                let r = w.request;
                (
                    Finished {
                        instance: r.instance,
                        verb: r.verb,
                        pending: r.pending,
                        outcome,
                    },
                    key,
                )
            });
        }
        Running { tasks }
    }
}

/// Provisioner plans under way.
pub struct Running {
    tasks: JoinSet<(Finished, String)>,
}

impl Running {
    /// The next plan to finish, with the key it was made under; `None` when all have.
    pub async fn next(&mut self) -> Option<(Finished, String)> {
        while let Some(joined) = self.tasks.join_next().await {
            match joined {
                Ok(done) => return Some(done),
                Err(e) => tracing::warn!(error = %e, "a provisioner plan's task ended badly"),
            }
        }
        None
    }
}
