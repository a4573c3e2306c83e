//! The working directory of one instance's steps: the bundle's files as they are at the
//! commit, each step's inputs (`params.json`, `connections.json`, `metadata.json`,
//! `app.json`), the artifacts files steps write, and what a killed run left behind.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

use super::log::{Log, Redactor, scrub_log};
use super::{Env, Job, StepError};
use crate::core::app::Evaluated;
use crate::core::model::{Bundle, Provisioner, Step};
use crate::core::run::Verb;
use crate::core::sensitive::{self, FieldPath};
use crate::core::source::{Content, SourceTree};
use crate::state::private_dir;

pub(super) fn remove_workdir(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %dir.display(), error = %e, "removing a working directory");
    }
}

/// The artifacts files (`artifacts-<step>.json`) a step wrote into `workdir`, merged;
/// what does not parse is left out (the step reports it).
pub(super) fn written_artifacts(workdir: &Path) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(workdir) else {
        return out;
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("artifacts-") && n.ends_with(".json"))
        })
        .collect();
    files.sort();
    for file in files {
        if let Ok(parsed) = std::fs::read(&file)
            .map_err(|_| ())
            .and_then(|b| serde_json::from_slice::<BTreeMap<String, Value>>(&b).map_err(|_| ()))
        {
            out.extend(parsed);
        }
    }
    out
}

/// A working directory a killed run left behind under `<state>/work/`: the instance it
/// was for, and its run (from its name, `run-<N>-<instance>`).
pub struct Leftover {
    pub dir: PathBuf,
    /// The run it was for; `None` for a drift check (`check-<instance>`).
    pub run: Option<i64>,
    pub instance: String,
}

/// Every working directory under `<state_dir>/work/`: after a crash, what killed runs left.
pub fn leftovers(state_dir: &Path) -> Vec<Leftover> {
    let Ok(entries) = std::fs::read_dir(state_dir.join("work")) else {
        return Vec::new();
    };
    let mut out: Vec<Leftover> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            if let Some(instance) = name.strip_prefix("check-") {
                return Some(Leftover {
                    dir: e.path(),
                    run: None,
                    instance: instance.to_string(),
                });
            }
            let (run, instance) = name.strip_prefix("run-")?.split_once('-')?;
            Some(Leftover {
                dir: e.path(),
                run: Some(run.parse().ok()?),
                instance: instance.to_string(),
            })
        })
        .collect();
    out.sort_by(|a, b| (a.run, &a.instance).cmp(&(b.run, &b.instance)));
    out
}

/// Finishes what a killed step could not: scrubs its logs with `known` secrets and those in
/// the artifacts it wrote (found at `sensitive`, or every value when the paths are not
/// known), then removes its working directory.
pub fn clear_leftover(
    state_dir: &Path,
    leftover: &Leftover,
    mut known: Vec<String>,
    sensitive: Option<&[FieldPath]>,
) {
    let written = serde_json::to_value(written_artifacts(&leftover.dir)).unwrap_or_default();
    match sensitive {
        Some(paths) => sensitive::secrets_in("artifacts", &written, paths, &mut known),
        None => {
            let everything = vec![vec!["artifacts".to_string()]];
            sensitive::secrets_in("artifacts", &written, &everything, &mut known);
        }
    }
    let redactor = Redactor::new(known);
    let logs: Vec<PathBuf> = match leftover.run {
        Some(run) => Verb::ALL
            .iter()
            .map(|verb| {
                state_dir
                    .join("logs")
                    .join(format!("run-{run}"))
                    .join(format!("{}.{}.log", leftover.instance, verb.name()))
            })
            .collect(),
        None => vec![check_log(state_dir, &leftover.instance)],
    };
    for log in logs {
        if let Err(e) = scrub_log(&log, &redactor) {
            tracing::warn!(log = %log.display(), error = %e, "scrubbing a log");
        }
    }
    remove_workdir(&leftover.dir);
}

/// What one instance's steps get: the log, the bundle folder in the working directory,
/// and what its `app:` block gives them.
pub(in crate::deploy) struct Prepared {
    pub log: Log,
    pub bundle_dir: PathBuf,
    pub app: Evaluated,
}

/// The log and the working directory with the bundle's files, and the bundle's `app:`
/// evaluated (its values from sensitive fields kept out of the log too).
pub(in crate::deploy) fn prepare(job: &Job<'_>) -> Result<Prepared, StepError> {
    let app = match &job.bundle.app {
        Some(app) => crate::core::app::evaluate(app, job.inputs, &job.bundle.sensitive)
            .map_err(StepError::App)?,
        None => Evaluated::default(),
    };
    let secrets: Vec<String> = job.secrets.iter().chain(&app.secrets).cloned().collect();
    let log = Log::open(job.log, &secrets)?;
    let bundle_dir = job.workdir.join("bundle");
    let prepare = |source| StepError::Prepare {
        path: job.workdir.clone(),
        source,
    };
    private_dir(&job.workdir).map_err(prepare)?;
    write_bundle(job.tree, job.bundle, &bundle_dir).map_err(prepare)?;
    Ok(Prepared {
        log,
        bundle_dir,
        app,
    })
}

/// Step `index`'s folder made and given the inputs files, and its environment.
pub(in crate::deploy) fn step_env(
    job: &Job<'_>,
    action: &str,
    prepared: &Prepared,
    index: usize,
    step: &Step,
) -> Result<Env, StepError> {
    let bundle_dir = &prepared.bundle_dir;
    let prepare = |source| StepError::Prepare {
        path: job.workdir.clone(),
        source,
    };
    let cwd = step_dir(bundle_dir, &step.path)?;
    std::fs::create_dir_all(&cwd).map_err(prepare)?;
    let artifacts_file = job.workdir.join(format!("artifacts-{}.json", index + 1));
    write_inputs(job, &cwd, &prepared.app).map_err(prepare)?;
    let mut vars: Vec<(String, String)> = match job.only_env {
        None => Vec::new(),
        Some(only) => {
            // PATH finds the provisioner; HOME keeps CLI caches inside the work folder.
            let path =
                std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
            let mut base = vec![
                ("PATH".to_string(), path),
                ("HOME".to_string(), job.workdir.display().to_string()),
                ("TF_IN_AUTOMATION".to_string(), "1".to_string()),
                ("CHECKPOINT_DISABLE".to_string(), "1".to_string()),
            ];
            base.extend(only.iter().cloned());
            base
        }
    };
    vars.extend(prepared.app.envs.iter().cloned());
    if let Some(target) = job.tf_pg
        && matches!(
            step.provisioner,
            Provisioner::OpenTofu { .. } | Provisioner::Terraform { .. }
        )
    {
        vars.extend(super::terraform::pg_env(target));
    }
    vars.extend(
        [
            ("CAPSTAN_ACTION", action.to_string()),
            ("CAPSTAN_INSTANCE", job.instance.to_string()),
            ("CAPSTAN_INPUTS", cwd.display().to_string()),
            ("CAPSTAN_ARTIFACTS", artifacts_file.display().to_string()),
            ("CAPSTAN_STATE_DIR", job.state_dir.display().to_string()),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );
    Ok(Env {
        vars,
        clear: job.only_env.is_some(),
        cancel: job.cancel.cloned(),
        cwd,
        timeout: job.timeouts.step,
        instance: job.instance.to_string(),
        artifacts_file,
    })
}

/// The step's folder inside the bundle; a path leaving the bundle is refused.
pub(super) fn step_dir(bundle_dir: &Path, path: &str) -> Result<PathBuf, StepError> {
    let rel = Path::new(path);
    if rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(StepError::PathOutside(path.to_string()));
    }
    Ok(bundle_dir.join(rel))
}

/// Writes `bundles/<name>/**` of the tree into `dir`, keeping the executable bit.
/// Keeps forks away from open, writable script files. A fork copies every open
/// descriptor into the child until it execs; if another step writes `deploy.sh` in that
/// moment and then runs it, the kernel refuses with ETXTBSY ("Text file busy"), because
/// the child still holds it open for writing. Writing bundle files takes this shared,
/// spawning a process takes it exclusively (`spawn` returns only after the exec).
pub(super) static FORK_GUARD: std::sync::RwLock<()> = std::sync::RwLock::new(());

pub(super) fn write_bundle(tree: &SourceTree, bundle: &Bundle, dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let _writing = FORK_GUARD.read().unwrap_or_else(|p| p.into_inner());
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    let prefix = format!("bundles/{}/", bundle.name);
    for file in tree.files() {
        let Some(rel) = file.path.strip_prefix(&prefix) else {
            continue;
        };
        let Content::Bytes(bytes) = &file.content else {
            // Links, submodules and oversized files are diagnosed by validation; a deploy
            // only runs on a revision without errors, so only warnings reach here.
            continue;
        };
        let target = dir.join(rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, bytes)?;
        let mode = if file.executable { 0o755 } else { 0o644 };
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

pub(super) fn write_inputs(job: &Job<'_>, cwd: &Path, app: &Evaluated) -> std::io::Result<()> {
    std::fs::write(cwd.join("params.json"), pretty(&job.inputs.params))?;
    if job.bundle.app.is_some() {
        std::fs::write(cwd.join("app.json"), pretty(&app.document()))?;
    }
    std::fs::write(
        cwd.join("connections.json"),
        pretty(&job.inputs.connection_data()),
    )?;
    std::fs::write(cwd.join("metadata.json"), pretty(&job.metadata))?;
    Ok(())
}

pub(super) fn pretty<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into()) + "\n"
}

/// Where an instance's last check logs.
pub(in crate::deploy) fn check_log(state_dir: &Path, instance: &str) -> PathBuf {
    state_dir
        .join("logs")
        .join("drift")
        .join(format!("{instance}.check.log"))
}

/// `{field: data}`; the error names where, never what (it may be a secret).
pub(super) fn parse_artifacts(
    bytes: &[u8],
    what: &str,
) -> Result<BTreeMap<String, Value>, StepError> {
    serde_json::from_slice::<BTreeMap<String, Value>>(bytes).map_err(|e| StepError::Artifacts {
        what: what.to_string(),
        line: e.line(),
        column: e.column(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_must_be_an_object_and_errors_never_quote_them() {
        assert!(parse_artifacts(br#"{"network": {"id": "x"}}"#, "x").is_ok());
        let err = parse_artifacts(br#"["secret-value"]"#, "$CAPSTAN_ARTIFACTS").unwrap_err();
        assert!(!err.to_string().contains("secret-value"), "{err}");
    }

    #[test]
    fn step_paths_stay_inside_the_bundle() {
        let base = Path::new("/w/bundle");
        assert_eq!(step_dir(base, "src").unwrap(), base.join("src"));
        assert_eq!(step_dir(base, "./src/tf").unwrap(), base.join("./src/tf"));
        assert!(step_dir(base, "../other").is_err());
        assert!(step_dir(base, "/etc").is_err());
    }
}
