//! Running beside a local checkout, without GitHub: the checkout and its git directory
//! are watched with `notify`. At start and on each new commit on the deploy branch, that
//! commit is deployed against the deployed state (merge-to-deploy, read from git, never
//! from the working tree) and the outcome printed; after edits settle (debounced), the
//! working tree is planned against the deployed state and the plan printed when it changed.
//!
//! The notify callback only forwards into a channel (as watchexec does); all work happens
//! on the runtime. `/healthz`, `/readyz` and `/metrics` are served on `listen` as in
//! GitHub mode; ready once the branch was first deployed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::config::Config;
use super::deploys::{Deploys, Prepared};
use super::error::DaemonError;
use super::health::Health;
use super::job::Job;
use super::metrics::{DeployResult, Metrics};
use super::{Console, Control, systemd};
use super::{server, ui};
use crate::core::commit::CommitId;
use crate::core::drift::Heal;
use crate::core::plan;
use crate::core::render;
use crate::core::run::Trigger;
use crate::error::chain;
use crate::source::{self, Checkout};
use crate::state::Store;

/// What was last printed, so unchanged results stay quiet.
#[derive(Default)]
struct Seen {
    tip: Option<CommitId>,
    worktree: Option<String>,
}

pub(super) async fn run(
    config: Config,
    path: PathBuf,
    mut control: Control,
) -> Result<(), DaemonError> {
    // Like `validate`: a folder that is no capstan repository is an error, not something to watch.
    source::require_root(&path)?;
    let git_dir = source::git_dir(&path)?;
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    // The state folder may lie inside the checkout (it does by default): its writes are
    // capstan's own, not edits.
    let own = [
        config.state_dir.clone(),
        std::fs::canonicalize(&config.state_dir).unwrap_or_else(|_| config.state_dir.clone()),
    ];
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(e) = event else { return };
        let ours = !e.paths.is_empty()
            && e.paths
                .iter()
                .all(|p| own.iter().any(|dir| p.starts_with(dir)));
        if !e.kind.is_access() && !ours {
            let _ = tx.send(());
        }
    })
    .map_err(|source| DaemonError::Watch {
        path: path.clone(),
        source,
    })?;
    // The checkout's folders recursively, except the git directory, of which only what
    // moves a branch is watched (HEAD, packed-refs, refs/), not the thousands of object
    // files. The top level itself is watched too, for files there (capstan.yaml).
    let mut watches = vec![
        (path.clone(), RecursiveMode::NonRecursive),
        (git_dir.clone(), RecursiveMode::NonRecursive),
        (git_dir.join("refs"), RecursiveMode::Recursive),
    ];
    let git_canon = std::fs::canonicalize(&git_dir).unwrap_or_else(|_| git_dir.clone());
    if let Ok(entries) = std::fs::read_dir(&path) {
        for entry in entries.flatten() {
            let p = entry.path();
            let is_git = std::fs::canonicalize(&p).is_ok_and(|c| c == git_canon);
            if entry.file_type().is_ok_and(|t| t.is_dir()) && !is_git {
                watches.push((p, RecursiveMode::Recursive));
            }
        }
    }
    for (dir, mode) in &watches {
        watcher
            .watch(dir, *mode)
            .map_err(|source| DaemonError::Watch {
                path: dir.clone(),
                source,
            })?;
    }
    let mut config = config;
    tracing::info!(path = %path.display(), branch = config.repository.branch, "watching");
    let (listener, addr) = server::bind(config.listen).await?;
    let health = Arc::new(Health::new("deploying the branch for the first time"));
    // One machine watching a checkout: it runs everything, so it leads.
    health.set_leader(true);
    let metrics = Arc::new(Metrics::default());
    let stop = control.shutdown.clone();
    let http = tokio::spawn(server::serve(
        listener,
        server::operations(health.clone(), metrics.clone(), || {}),
        stop.clone(),
    ));
    tracing::info!(%addr, "listening");
    (control.console.print)(&format!(
        "── serving /healthz, /readyz and /metrics on http://{addr}\n"
    ));
    let store = Arc::new(Store::open_at(&config.state)?);
    let deploys = Arc::new(Deploys::open(
        store.clone(),
        config.state_dir.clone(),
        Arc::new(Checkout { path: path.clone() }),
        false,
    )?);
    let view = ui::start(
        config.ui.as_ref(),
        store,
        deploys.branch_model(),
        None,
        stop.clone(),
    )
    .await?;
    if let Some((addr, _)) = &view {
        (control.console.print)(&format!("── the web view is on http://{addr}/\n"));
    }
    let console = control.console.clone();
    let mut seen = Seen::default();
    let out = Outputs {
        console: &console,
        metrics: &metrics,
    };
    evaluate(&path, &config, &deploys, out, &mut seen, false).await;
    health.set_ready();
    systemd::ready();
    let watchdog = tokio::spawn(systemd::watchdog(stop.clone()));
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            Some((job, _)) = deploys.lane().next() => {
                // Local mode has no pull requests, so no previews: only the branch, when
                // a deploy window opens.
                if let Job::Deploy(why) = &job {
                    tracing::info!(trigger = why.name(), "deploying again");
                    evaluate(&path, &config, &deploys, out, &mut seen, true).await;
                }
                deploys.lane().done(&job.key());
            }
            Some(()) = control.reload.recv() => match (control.reloader)() {
                Ok(new) => {
                    config = new;
                    tracing::info!("configuration reloaded");
                }
                Err(e) => tracing::error!(error = %chain(&e), "reloading: keeping the old configuration"),
            },
            Some(()) = rx.recv() => {
                // Debounce: wait until nothing changed for the window.
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(config.repository.watch_debounce) => break,
                        Some(()) = rx.recv() => continue,
                        _ = stop.cancelled() => break,
                    }
                }
                evaluate(&path, &config, &deploys, out, &mut seen, false).await;
            }
        }
    }
    systemd::stopping();
    health.set_draining();
    drop(watcher);
    // Both end with `stop`; waited for, so nothing outlives the daemon.
    let _ = watchdog.await;
    // A client holding a connection open (a followed log) must not hold up the exit.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), http).await;
    if let Some((_, task)) = view {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
    }
    Ok(())
}

/// Where an evaluation's outcomes go: printed, and counted for `/metrics`.
#[derive(Clone, Copy)]
struct Outputs<'a> {
    console: &'a Console,
    metrics: &'a Metrics,
}

/// Deploys the branch's commit when it is new (or `again`), then prints the working
/// tree's plan against the deployed state when it changed.
async fn evaluate(
    path: &Path,
    config: &Config,
    deploys: &Arc<Deploys>,
    out: Outputs<'_>,
    seen: &mut Seen,
    again: bool,
) {
    let console = out.console;
    let branch = &config.repository.branch;
    let tip = source::branch_or_head(path, branch).map(CommitId::from);
    if tip != seen.tip || again {
        if let Some(commit) = &tip {
            let trigger = if seen.tip.is_none() {
                Trigger::Start
            } else {
                Trigger::Commit
            };
            let report = deploy(commit, branch, config, deploys, trigger, out).await;
            (console.print)(&report);
        }
        seen.tip.clone_from(&tip);
        // The working tree's plan is relative to the deployed state, so show it again.
        seen.worktree = None;
    }
    let worktree = match source::read(path, None) {
        Ok(tree) => {
            let new = crate::core::check(&tree);
            if new.has_errors() {
                render::diagnostics::text(&new)
            } else {
                let store = deploys.store();
                match store
                    .deployed()
                    .and_then(|s| Ok((s, store.branch_scope()?)))
                {
                    Ok((state, scope)) => render::plan::text(
                        &plan::against_deployed(
                            &state,
                            &new,
                            &scope,
                            &Heal::Environments(new.repository.config.remediate.clone()),
                        ),
                        console.color,
                    ),
                    Err(e) => format!("capstan: error: {}\n", chain(&e)),
                }
            }
        }
        Err(e) => format!("capstan: error: {}\n", chain(&e)),
    };
    if seen.worktree.as_ref() != Some(&worktree) {
        (console.print)(&format!(
            "── working tree against the deployed state ({branch} at {})\n{worktree}",
            tip.as_ref().map_or("no commits", CommitId::short)
        ));
        seen.worktree = Some(worktree);
    }
}

/// Deploys `commit` and says what happened.
async fn deploy(
    commit: &CommitId,
    branch: &str,
    config: &Config,
    deploys: &Arc<Deploys>,
    trigger: Trigger,
    out: Outputs<'_>,
) -> String {
    let (console, metrics) = (out.console, out.metrics);
    let head = format!("── {branch} at {}: ", commit.short());
    if !config.deploy.enabled {
        return format!("{head}deploys are off (deploy.enabled: false)\n");
    }
    match deploys.prepare(commit, trigger).await {
        Err(e) => {
            metrics.deploy(DeployResult::Error);
            format!("{head}capstan: error: {}\n", chain(&e))
        }
        Ok(Prepared::Invalid(checked)) => {
            metrics.deploy(DeployResult::Invalid);
            format!(
                "{head}does not validate; nothing deployed\n{}",
                render::diagnostics::text(&checked)
            )
        }
        Ok(Prepared::Nothing(plan)) => {
            metrics.deploy(DeployResult::Nothing);
            format!(
                "{head}nothing to deploy; {} as desired\n",
                crate::core::render::plural(plan.unchanged, "instance")
            )
        }
        Ok(Prepared::Ready(target, plan)) => {
            (console.print)(&format!(
                "{head}deploying\n{}",
                render::plan::text(&plan, console.color)
            ));
            let print = console.print.clone();
            let progress = Arc::new(move |o: &crate::deploy::Outcome| {
                print(&format!("{}\n", crate::deploy::line(o)));
            });
            match deploys.deploy(&target, &config.deploy, progress).await {
                Ok(report) => {
                    metrics.deploy(report.status());
                    format!(
                        "Deploy of {} (run {}): {}\n",
                        commit.short(),
                        report.run,
                        report.summary()
                    )
                }
                Err(e) => {
                    metrics.deploy(DeployResult::Error);
                    format!("capstan: error: {}\n", chain(&e))
                }
            }
        }
    }
}
