//! Running beside a local checkout, without GitHub: the checkout and its git directory
//! are watched with `notify`. At start and on each new commit on the deploy branch, that
//! commit is deployed against the deployed state (merge-to-deploy, read from git, never
//! from the working tree) and the outcome printed; after edits settle (debounced), the
//! working tree is planned against the deployed state and the plan printed when it changed.
//!
//! The notify callback only forwards into a channel (as watchexec does); all work happens
//! on the runtime.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use std::sync::Arc;

use super::config::Config;
use super::deploys::{Deploys, Prepared};
use super::{Control, DaemonError, systemd};
use crate::core::render;
use crate::error::chain;
use crate::source;
use crate::state::Store;

/// What was last printed, so unchanged results stay quiet.
#[derive(Default)]
struct Seen {
    tip: Option<String>,
    worktree: Option<String>,
}

pub(super) async fn run(
    config: Config,
    path: PathBuf,
    mut control: Control,
) -> Result<(), DaemonError> {
    let repo = git2::Repository::discover(&path).map_err(|e| {
        DaemonError::Other(format!(
            "{} is not inside a git repository: {e}",
            path.display()
        ))
    })?;
    let git_dir = repo.path().to_path_buf();
    drop(repo);
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
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
    let store = Arc::new(Store::open(&config.state_dir.join("state.db"))?);
    let reader = path.clone();
    let deploys = Arc::new(Deploys::open(
        store,
        config.state_dir.clone(),
        Arc::new(move |sha: &str| source::read(&reader, Some(sha)).map_err(|e| chain(&e))),
        control.shutdown.clone(),
    )?);
    let stop = control.shutdown.clone();
    let mut seen = Seen::default();
    evaluate(&path, &config, &deploys, &mut seen, false).await;
    systemd::ready();
    tokio::spawn(systemd::watchdog(stop.clone()));
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            Some(why) = deploys.next() => {
                tracing::info!(trigger = why, "deploying again");
                evaluate(&path, &config, &deploys, &mut seen, true).await;
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
                evaluate(&path, &config, &deploys, &mut seen, false).await;
            }
        }
    }
    systemd::stopping();
    drop(watcher);
    Ok(())
}

/// The deploy branch's commit, or HEAD's when the checkout has no such branch.
fn tip(path: &Path, branch: &str) -> Option<String> {
    let repo = git2::Repository::discover(path).ok()?;
    let id = repo
        .refname_to_id(&format!("refs/heads/{branch}"))
        .or_else(|_| repo.refname_to_id("HEAD"))
        .ok()?;
    Some(id.to_string())
}

/// Deploys the branch's commit when it is new (or `again`), then prints the working
/// tree's plan against the deployed state when it changed.
async fn evaluate(
    path: &Path,
    config: &Config,
    deploys: &Arc<Deploys>,
    seen: &mut Seen,
    again: bool,
) {
    let branch = &config.repository.branch;
    let color = std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal();
    let tip = tip(path, branch);
    if tip != seen.tip || again {
        if let Some(commit) = &tip {
            let trigger = if seen.tip.is_none() {
                "start"
            } else {
                "commit"
            };
            print(&deploy(commit, branch, config, deploys, trigger, color).await);
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
                match deploys.store().deployed() {
                    Ok(state) => {
                        render::plan::text(&crate::core::deployed::plan(&state, &new), color)
                    }
                    Err(e) => format!("capstan: error: {}\n", chain(&e)),
                }
            }
        }
        Err(e) => format!("capstan: error: {}\n", chain(&e)),
    };
    if seen.worktree.as_ref() != Some(&worktree) {
        print(&format!(
            "── working tree against the deployed state ({branch} at {})\n{worktree}",
            tip.as_deref().map_or("no commits", short)
        ));
        seen.worktree = Some(worktree);
    }
}

/// Deploys `commit` and says what happened.
async fn deploy(
    commit: &str,
    branch: &str,
    config: &Config,
    deploys: &Arc<Deploys>,
    trigger: &str,
    color: bool,
) -> String {
    let head = format!("── {branch} at {}: ", short(commit));
    if !config.deploy.enabled {
        return format!("{head}deploys are off (deploy.enabled: false)\n");
    }
    match deploys.prepare(commit, trigger).await {
        Err(e) => format!("{head}capstan: error: {}\n", chain(&e)),
        Ok(Prepared::Invalid(checked)) => format!(
            "{head}does not validate; nothing deployed\n{}",
            render::diagnostics::text(&checked)
        ),
        Ok(Prepared::Nothing(plan)) => {
            format!(
                "{head}nothing to deploy; {} instances as desired\n",
                plan.unchanged
            )
        }
        Ok(Prepared::Ready(target, plan)) => {
            print(&format!(
                "{head}deploying\n{}",
                render::plan::text(&plan, color)
            ));
            let progress = Arc::new(|o: &crate::deploy::Outcome| {
                print(&format!("{}\n", crate::deploy::line(o)));
            });
            match deploys.deploy(&target, &config.deploy, progress).await {
                Ok(report) => {
                    format!(
                        "Deploy of {} (run {}): {}\n",
                        short(commit),
                        report.run,
                        report.summary()
                    )
                }
                Err(e) => format!("capstan: error: {}\n", chain(&e)),
            }
        }
    }
}

fn print(report: &str) {
    if !report.is_empty() {
        let mut stdout = std::io::stdout().lock();
        let _ = stdout
            .write_all(report.as_bytes())
            .and_then(|()| stdout.flush());
    }
}

fn short(sha: &str) -> &str {
    sha.get(..10).unwrap_or(sha)
}
