//! Running beside a local checkout, without GitHub: the checkout and its git directory
//! are watched with `notify`; after edits settle (debounced), the working tree is planned
//! against the deploy branch and the plan is printed when it changed; a new commit on the
//! deploy branch prints the plan from the old commit to the new one.
//!
//! The notify callback only forwards into a channel (as watchexec does); all work happens
//! on the runtime.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::config::Config;
use super::{Control, DaemonError, systemd};
use crate::core::render;
use crate::error::chain;
use crate::source;

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
    let mut seen = Seen::default();
    evaluate(&path, &config.repository.branch, &mut seen);
    systemd::ready();
    let stop = control.shutdown.clone();
    tokio::spawn(systemd::watchdog(stop.clone()));
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
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
                let (path, branch) = (path.clone(), config.repository.branch.clone());
                seen = tokio::task::spawn_blocking(move || {
                    evaluate(&path, &branch, &mut seen);
                    seen
                })
                .await
                .map_err(|e| DaemonError::Other(format!("the plan task failed: {e}")))?;
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

fn evaluate(path: &Path, branch: &str, seen: &mut Seen) {
    let color = std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal();
    let tip = tip(path, branch);
    let mut report = String::new();
    if tip != seen.tip {
        if let (Some(old), Some(new)) = (&seen.tip, &tip) {
            report.push_str(&format!(
                "── {branch} moved {} → {}\n",
                short(old),
                short(new)
            ));
            report.push_str(&plan_text(
                source::read_base(path, old),
                source::read(path, Some(new)),
                color,
            ));
        }
        seen.tip.clone_from(&tip);
        // The working tree's plan is relative to the tip, so show it again.
        seen.worktree = None;
    }
    let base = match &tip {
        Some(t) => source::read_base(path, t),
        None => Ok(Default::default()),
    };
    let worktree = plan_text(base, source::read(path, None), color);
    if seen.worktree.as_ref() != Some(&worktree) {
        report.push_str(&format!(
            "── working tree against {branch} ({})\n",
            tip.as_deref().map_or("no commits", short)
        ));
        report.push_str(&worktree);
        seen.worktree = Some(worktree);
    }
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

fn plan_text(
    old: Result<crate::core::source::SourceTree, source::SourceError>,
    new: Result<crate::core::source::SourceTree, source::SourceError>,
    color: bool,
) -> String {
    let (old, new) = match (old, new) {
        (Ok(o), Ok(n)) => (o, n),
        (Err(e), _) | (_, Err(e)) => return format!("capstan: error: {}\n", chain(&e)),
    };
    let new = crate::core::check(&new);
    if new.has_errors() {
        return render::diagnostics::text(&new);
    }
    let old = crate::core::check(&old);
    render::plan::text(&crate::core::plan::plan(&old, &new), color)
}
