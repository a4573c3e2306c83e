//! The deploying commands: `apply`, `state list|show`, and `plan --state`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};

use super::StateAt;
use super::{Format, PlanFormat, color_on_stdout, out};
use crate::core::commit::short;
use crate::core::deployed::Deployed;
use crate::core::drift::Heal;
use crate::core::model::InstanceId;
use crate::core::run::{RunStatus, Scope, Trigger};
use crate::core::source::SourceTree;
use crate::core::{plan, render};
use crate::deploy::{DeployLock, Deployer, Target};
use crate::source::Checkout;
use crate::state::Store;

/// How `capstan apply` and `capstan preview` deploy.
pub struct Settings {
    pub repo: PathBuf,
    pub state: StateAt,
    pub parallel: usize,
    pub timeouts: crate::deploy::Timeouts,
    pub yes: bool,
}

impl Settings {
    /// Takes over the state directory (lock, recovery), saying what a crash left behind.
    /// `command` names the command as typed (`capstan drift`), for whoever is refused.
    pub(super) fn take_over(
        &self,
        command: &'static str,
    ) -> anyhow::Result<(Arc<Store>, PathBuf, DeployLock)> {
        crate::state::state_folder(&self.state.dir)?;
        take_over(Arc::new(self.state.open()?), &self.state.dir, command)
    }
}

/// Takes over the state directory `dir` of `store` (lock, recovery) for `command`,
/// saying what a crash left behind.
fn take_over(
    store: Arc<Store>,
    dir: &Path,
    command: &'static str,
) -> anyhow::Result<(Arc<Store>, PathBuf, DeployLock)> {
    let taken = crate::deploy::take_over(dir, &store, crate::deploy::Holder::Command(command))?;
    if !taken.recovered.instances.is_empty() {
        eprintln!(
            "capstan: a previous deploy was interrupted; these run again: {}",
            taken.recovered.instances.join(", ")
        );
    }
    if !taken.cleared.is_empty() {
        eprintln!(
            "capstan: removed the working folders of killed steps after scrubbing their logs: {}",
            taken.cleared.join(", ")
        );
    }
    Ok((store, taken.dir, taken.lock))
}

impl Settings {
    /// A deployer that prints each outcome as it happens.
    pub(super) fn deployer(&self, store: Arc<Store>, dir: PathBuf, lock: &DeployLock) -> Deployer {
        Deployer {
            fence: lock.fence,
            store,
            state_dir: dir,
            revisions: Arc::new(Checkout {
                path: self.repo.clone(),
            }),
            parallel: self.parallel,
            timeouts: self.timeouts,
            progress: Arc::new(|o| {
                let _ = out(&format!("{}\n", crate::deploy::line(o)));
            }),
        }
    }

    /// The commit `rev` names, and the tree at it.
    pub(super) fn read(&self, rev: &str) -> anyhow::Result<(String, SourceTree)> {
        let commit = crate::source::resolve_commit(&self.repo, rev).map_err(|e| {
            super::revision_error(
                e,
                "--rev",
                "capstan deploys commits; commit the repository to git first",
            )
        })?;
        let tree = crate::source::read(&self.repo, Some(&commit))?;
        Ok((commit, tree))
    }

    /// `Commit 1a2b3c4d5e "no HA" (HEAD) against example-repo/.capstan/state.db`: what
    /// is about to be planned and deployed, before its plan.
    pub(super) fn heading(&self, rev: &str, commit: &str) -> String {
        let subject = crate::source::commit_subject(&self.repo, commit)
            .map(|s| format!(" {s:?}"))
            .unwrap_or_default();
        let named = if commit.starts_with(rev) {
            String::new()
        } else {
            format!(" ({rev})")
        };
        format!(
            "Commit {}{subject}{named} against {}\n",
            short(commit),
            self.state
        )
    }

    /// Asks before going ahead, unless `--yes`.
    pub(super) fn confirmed(&self, question: &str) -> anyhow::Result<bool> {
        Ok(self.yes || confirm(question)?)
    }
}

/// Runs a deploy future to its end.
pub(super) fn block_on<T>(f: impl std::future::Future<Output = T>) -> anyhow::Result<T> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(f))
}

/// Deploys a revision against the state: lock, recover, plan, confirm, deploy. With
/// `instances` named, only those and what they need.
pub fn apply(rev: &str, instances: &[String], settings: &Settings) -> anyhow::Result<i32> {
    let (commit, tree) = settings.read(rev)?;
    let checked = crate::core::check(&tree);
    if checked.has_errors() {
        out(&render::diagnostics::text(&checked))?;
        eprintln!("capstan: {commit} has validation errors; nothing is deployed");
        return Ok(1);
    }
    let (store, dir, lock) = settings.take_over("capstan apply")?;
    out(&settings.heading(rev, &commit))?;
    warn_uncommitted(settings, &commit, &tree)?;
    let scope = store.branch_scope()?;
    let deployed = store.deployed()?;
    let mut plan = plan::against_deployed(&deployed, &checked, &scope, &Heal::All);
    let only = match named(instances, &checked, &deployed)? {
        Some(named) => {
            let needs = plan::needs(&checked.resolved, &named);
            plan = plan.select(&needs);
            Some(Arc::new(needs.into_keys().collect()))
        }
        None => None,
    };
    out(&render::plan::text(&plan, color_on_stdout()))?;
    if refused(&plan) {
        return Ok(1);
    }
    if plan.is_empty() {
        return Ok(0);
    }
    let target = Target {
        commit: commit.into(),
        tree: Arc::new(tree),
        checked: Arc::new(checked),
        trigger: Trigger::Apply,
        scope,
        heal: Heal::All,
        only,
    };
    // The policies judge before anyone is asked (and again as the deploy starts).
    match crate::deploy::gate::judge(&target, &deployed) {
        Ok(decisions) => {
            for d in decisions {
                eprintln!("capstan: policy {}: {} [{}]", d.kind.rule(), d.msg, d.rule);
            }
        }
        Err(e) => {
            eprintln!("capstan: {e}");
            return Ok(1);
        }
    }
    if !settings.confirmed("Deploy this plan?")? {
        eprintln!("capstan: nothing deployed");
        return Ok(1);
    }
    let report = block_on(settings.deployer(store, dir, &lock).deploy(&target))??;
    out(&format!("{}\n", report.summary()))?;
    Ok(i32::from(report.status() != RunStatus::Succeeded))
}

/// The instances `--instance` names, each desired by the revision or recorded in the
/// state (to be destroyed); `None` when none is named.
fn named(
    instances: &[String],
    checked: &crate::core::Checked,
    deployed: &BTreeMap<InstanceId, Deployed>,
) -> anyhow::Result<Option<BTreeSet<InstanceId>>> {
    if instances.is_empty() {
        return Ok(None);
    }
    let desired = &checked.resolved.instances;
    let mut named = BTreeSet::new();
    for name in instances {
        let id = InstanceId(name.as_str().into());
        if !desired.contains_key(&id) && !deployed.contains_key(&id) {
            let known: BTreeSet<&str> = desired
                .keys()
                .chain(deployed.keys())
                .map(InstanceId::as_str)
                .collect();
            let known: Vec<&str> = known.into_iter().collect();
            anyhow::bail!(
                "--instance {name}: no such instance in the revision or the state{}",
                crate::core::suggest::did_you_mean(name, &known)
            );
        }
        named.insert(id);
    }
    Ok(Some(named))
}

/// When `commit` is what the checkout has out, says which of the working tree's files
/// differ from it: `apply` deploys commits, so those edits are left out.
fn warn_uncommitted(settings: &Settings, commit: &str, tree: &SourceTree) -> anyhow::Result<()> {
    if crate::source::resolve_commit(&settings.repo, "HEAD")
        .ok()
        .as_deref()
        != Some(commit)
    {
        return Ok(());
    }
    let worktree = crate::source::read(&settings.repo, None)?;
    let edited = tree.differing(&worktree);
    if let Some(first) = edited.first() {
        let more = match edited.len() {
            1 => String::new(),
            n => format!(" and {}", render::plural(n - 1, "other file")),
        };
        eprintln!(
            "capstan: warning: uncommitted changes are not deployed: {first}{more} in the working tree {} from commit {}; commit them to deploy them",
            if edited.len() == 1 {
                "differs"
            } else {
                "differ"
            },
            short(commit)
        );
    }
    Ok(())
}

/// Whether the plan may not be deployed (its errors are printed with it), said once more.
pub(super) fn refused(plan: &plan::Plan) -> bool {
    if plan.is_refused() {
        eprintln!(
            "capstan: nothing is deployed: the plan changes {} of deployed instances (see above)",
            render::plural(plan.errors.len(), "immutable param")
        );
    }
    plan.is_refused()
}

/// Asks on the terminal; refuses without one (`--yes` is for scripts).
fn confirm(question: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("not asking without a terminal: pass --yes to go ahead");
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// How `plan --state` shows its plan.
pub struct PlanHow {
    pub format: PlanFormat,
    pub detailed_exitcode: bool,
    /// Provisioner plans too (`--deep`).
    pub deep: bool,
}

/// `plan --state DB` (or `--empty-state`, with `db` `None`): a revision (or the working
/// tree) against what is deployed; with `--deep`, each changed instance's provisioner plan.
pub fn plan(
    repo: &Path,
    rev: Option<&str>,
    db: Option<&StateAt>,
    how: PlanHow,
) -> anyhow::Result<i32> {
    // A named database that is not there is a typo or the wrong folder, not "nothing is
    // deployed": planning against nothing is asked for by name.
    let store = match db {
        Some(db) if !db.exists() => anyhow::bail!(
            "no state database at {db}; name the database `capstan apply` uses (by default .capstan/state.db in --repo), or pass --empty-state to plan against nothing deployed"
        ),
        Some(db) => Some(db.open()?),
        None => None,
    };
    let tree = crate::source::read(repo, rev)?;
    let new = crate::core::check(&tree);
    if new.has_errors() {
        out(&super::diagnostics(&new, how.format))?;
        return Ok(1);
    }
    let (state, scope) = match &store {
        Some(store) => (store.deployed()?, store.branch_scope()?),
        None => (
            BTreeMap::new(),
            Scope::Branch {
                previews: Default::default(),
            },
        ),
    };
    let plan = plan::against_deployed(&state, &new, &scope, &Heal::All);
    let exit = super::plan_exit(&plan, how.detailed_exitcode);
    if !how.deep {
        out(&super::render_plan(&plan, &new, how.format))?;
        return Ok(exit);
    }
    let commit = match rev {
        Some(rev) => crate::source::resolve_commit(repo, rev)?,
        None => "working tree".to_string(),
    };
    // Without a database, nothing is deployed: no Terraform state either.
    let scratch;
    let state_dir = match db {
        // Steps run in their own folder: the state folder they are told of is absolute.
        Some(db) => std::path::absolute(&db.dir)?,
        None => {
            scratch = tempfile::tempdir()?;
            scratch.path().to_path_buf()
        }
    };
    let tf_pg = db.and_then(|db| db.location.terraform_pg());
    let finished = deep(
        repo,
        (&state_dir, tf_pg),
        &new,
        tree,
        &commit,
        &plan,
        &state,
    )?;
    let failed = finished
        .iter()
        .filter(|f| matches!(f.outcome, crate::core::deep::Outcome::Failed { .. }))
        .count();
    out(&match how.format {
        PlanFormat::Text => format!(
            "{}\n{}",
            super::render_plan(&plan, &new, how.format),
            render::resources::text(&finished)
        ),
        PlanFormat::Markdown => {
            let pieces: Vec<_> = finished.iter().map(render::resources::piece).collect();
            format!(
                "{}\n{}",
                super::render_plan(&plan, &new, how.format),
                render::resources::section(&pieces, 0, usize::MAX)
            )
        }
        PlanFormat::Json => {
            let mut doc: Value = serde_json::from_str(&render::plan::json(&plan))?;
            doc["resources"] = render::resources::json(&finished);
            format!("{}\n", serde_json::to_string_pretty(&doc)?)
        }
    })?;
    Ok(if failed > 0 { 1 } else { exit })
}

/// Every provisioner plan `plan` calls for, two at a time, with this shell's environment
/// (a person's own credentials), in the plan's order.
fn deep(
    repo: &Path,
    (state_dir, tf_pg): (&Path, Option<&crate::state::PgTarget>),
    new: &crate::core::Checked,
    tree: SourceTree,
    commit: &str,
    plan: &plan::Plan,
    state: &BTreeMap<InstanceId, Deployed>,
) -> anyhow::Result<Vec<crate::core::deep::Finished>> {
    use crate::deploy::deep::{self, Planner};
    let requests = crate::core::deep::requests(plan, new, new, state);
    let order: Vec<InstanceId> = requests.iter().map(|r| r.instance.clone()).collect();
    let revisions = Checkout {
        path: repo.to_path_buf(),
    };
    let (work, mut finished) =
        deep::work(requests, new, &Arc::new(tree), commit, state, &revisions);
    let planner = Arc::new(Planner {
        state_dir: state_dir.to_path_buf(),
        tf_pg: tf_pg.cloned(),
        timeouts: crate::deploy::Timeouts {
            step: std::time::Duration::from_secs(10 * 60),
            ..Default::default()
        },
        env: std::env::vars().collect(),
        label: "cli".into(),
    });
    let cancel = tokio_util::sync::CancellationToken::new();
    let limit = Arc::new(tokio::sync::Semaphore::new(2));
    block_on(async {
        let mut running = planner.start(work, &limit, &cancel);
        while let Some((f, _)) = running.next().await {
            finished.push(f);
        }
    })?;
    finished.sort_by_key(|f| order.iter().position(|i| *i == f.instance));
    Ok(finished)
}

/// The last drift check, in a few words.
fn drift_word(d: &Deployed) -> String {
    match &d.drift {
        None => "not checked".into(),
        Some(c) => c.status.name().into(),
    }
}

pub fn state_list(db: &StateAt, format: Format) -> anyhow::Result<i32> {
    let store = db.open_existing()?;
    let all = store.deployed()?;
    match format {
        Format::Json => {
            let rows: Vec<Value> = all.values().map(Deployed::shown).collect();
            out(&format!("{}\n", serde_json::to_string_pretty(&rows)?))?;
        }
        Format::Text => {
            let mut text = format!(
                "{:<28} {:<15} {:<14} {:<28} {:<11} {}\n",
                "INSTANCE", "STATUS", "DRIFT", "BUNDLE", "COMMIT", "UPDATED"
            );
            for d in all.values() {
                text.push_str(&format!(
                    "{:<28} {:<15} {:<14} {:<28} {:<11} {}\n",
                    d.instance.as_str(),
                    d.status.name(),
                    drift_word(d),
                    format!("{}@{}", d.inputs.bundle, d.inputs.version),
                    crate::core::commit::short(&d.commit),
                    d.updated_at
                ));
            }
            if let Some(run) = store.runs(1)?.first() {
                text.push_str(&format!(
                    "\nlast run {} of {} ({}): {}, {}\n",
                    run.id,
                    crate::core::commit::short(&run.commit),
                    run.trigger,
                    run.status,
                    run.summary
                ));
            }
            out(&text)?;
        }
    }
    Ok(0)
}

/// The error for an instance the state has no record of, with the nearest that it has.
fn not_recorded(store: &Store, db: &StateAt, instance: &str) -> anyhow::Result<anyhow::Error> {
    let known: Vec<InstanceId> = store.deployed()?.into_keys().collect();
    let names: Vec<&str> = known.iter().map(|i| i.0.as_ref()).collect();
    Ok(anyhow::anyhow!(
        "{instance} is not in the state database {db}{} ({} recorded; `capstan state list` shows them)",
        crate::core::suggest::did_you_mean(instance, &names),
        crate::core::render::plural(known.len(), "instance")
    ))
}

/// `capstan state forget`: the instance's record goes, its resource stays (handed over to
/// another tool), after saying what that means and asking; recorded as a run with who.
pub fn state_forget(repo: &Path, db: &StateAt, instance: &str, yes: bool) -> anyhow::Result<i32> {
    let store = Arc::new(db.open_existing()?);
    let (store, _dir, _lock) = take_over(store, &db.dir, "capstan state forget")?;
    let Some(record) = store.instance(instance)? else {
        return Err(not_recorded(&store, db, instance)?);
    };
    let id = record.instance.clone();
    eprintln!(
        "{id} ({}@{}, {}, last deployed at {}) leaves the state. Nothing is destroyed: its resources stay, and capstan stops managing them.",
        record.inputs.bundle,
        record.inputs.version,
        record.status.name(),
        short(&record.commit)
    );
    let users = crate::core::deployed::users_of(&store.deployed()?, &id);
    if !users.is_empty() {
        let names: Vec<&str> = users.iter().map(InstanceId::as_str).collect();
        eprintln!(
            "capstan: note: {} keep{} the artifacts {id} gave {} until deployed again",
            names.join(", "),
            if users.len() == 1 { "s" } else { "" },
            if users.len() == 1 { "it" } else { "them" }
        );
    }
    match crate::source::read(repo, None).map(|tree| crate::core::check(&tree)) {
        Ok(checked) if checked.resolved.instances.contains_key(&id) => eprintln!(
            "capstan: warning: the repository at {} still declares {id}: the next deploy creates it again; remove it from the repository too",
            repo.display()
        ),
        Ok(_) => {}
        Err(e) => eprintln!(
            "capstan: note: could not read {} to see whether it still declares {id}: {}",
            repo.display(),
            crate::error::chain(&e)
        ),
    }
    if !(yes || confirm(&format!("Forget {id}?"))?) {
        eprintln!("capstan: nothing forgotten");
        return Ok(1);
    }
    let who = whoami();
    match store.forget(&id, &who)? {
        Some(run) => out(&format!(
            "Forgot {id} (run {run}, by {who}); nothing was destroyed.\n"
        ))?,
        None => anyhow::bail!("{id} left the state while capstan was asking"),
    }
    Ok(0)
}

/// `alice@build-01`: who runs this command, for the run history.
fn whoami() -> String {
    let user = ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        // SAFETY: getuid cannot fail and has no preconditions.
        .unwrap_or_else(|| format!("uid {}", unsafe { libc::getuid() }));
    match std::fs::read_to_string("/proc/sys/kernel/hostname") {
        Ok(host) if !host.trim().is_empty() => format!("{user}@{}", host.trim()),
        _ => user,
    }
}

pub fn state_show(db: &StateAt, instance: &str, format: Format) -> anyhow::Result<i32> {
    let store = db.open_existing()?;
    let Some(d) = store.instance(instance)? else {
        return Err(not_recorded(&store, db, instance)?);
    };
    let steps = store.steps_of(instance, 10)?;
    let mut value = d.shown();
    value["steps"] = steps
        .iter()
        .map(|s| {
            json!({
                "run": s.run,
                "action": s.action.name(),
                "status": s.status.name(),
                "message": s.message,
                "log": s.log_path,
                "started_at": s.started_at.to_string(),
                "seconds": s.finished_at.map(|f| f.since(s.started_at)),
            })
        })
        .collect();
    match format {
        Format::Json => out(&format!("{}\n", serde_json::to_string_pretty(&value)?))?,
        Format::Text => {
            let pretty = |v: &Value| {
                serde_json::to_string_pretty(v)
                    .unwrap_or_default()
                    .replace('\n', "\n    ")
            };
            let drift = match &d.drift {
                None => "not checked since its last deploy".to_string(),
                Some(c) => format!(
                    "{} since {} (checked {}){}",
                    c.status.name(),
                    c.since,
                    c.checked_at,
                    if c.summary.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", c.summary)
                    }
                ),
            };
            let mut text = format!(
                "{}\n  status:      {}\n  drift:       {drift}\n  bundle:      {}@{}\n  commit:      {}\n  updated:     {}\n  digest:      {}\n",
                d.instance,
                d.status.name(),
                d.inputs.bundle,
                d.inputs.version,
                d.commit,
                d.updated_at,
                if d.digest.is_empty() {
                    "(never deployed)"
                } else {
                    &d.digest
                }
            );
            text.push_str(&format!("  params:\n    {}\n", pretty(&value["params"])));
            text.push_str(&format!(
                "  connections:\n    {}\n",
                pretty(&value["connections"])
            ));
            text.push_str(&format!(
                "  artifacts:\n    {}\n",
                pretty(&value["artifacts"])
            ));
            text.push_str("  recent steps:\n");
            for s in &steps {
                text.push_str(&format!(
                    "    run {:<4} {:<8} {:<12} {}{}{}\n",
                    s.run,
                    s.action,
                    s.status,
                    s.started_at,
                    if s.message.is_empty() {
                        String::new()
                    } else {
                        format!("  {}", s.message)
                    },
                    s.log_path
                        .as_deref()
                        .map(|l| format!("  log: {l}"))
                        .unwrap_or_default()
                ));
            }
            out(&text)?;
        }
    }
    Ok(0)
}
