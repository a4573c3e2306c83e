//! Moving OpenTofu and Terraform states into PostgreSQL (`capstan state migrate`): each
//! local state a module without a backend left under `<state>/tfstate/<instance>/step-N`
//! is pushed (`state push`) into the `pg` backend's schema for that instance and step,
//! where steps look for it once the state is in PostgreSQL. The local files stay, renamed
//! `*.moved`, so nothing is pushed twice and nothing is lost.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::provision::tf_schema;
use crate::state::PgTarget;

/// One state moved: the instance, its step (1-based) and where it now is.
#[derive(Debug)]
pub struct Moved {
    pub instance: String,
    pub step: usize,
    pub schema: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    #[error(
        "{count} Terraform states under {dir} must move too, and neither `terraform` nor `tofu` is on PATH; install one, then migrate (nothing was copied)"
    )]
    NoProgram { dir: PathBuf, count: usize },
    #[error(
        "moving {file} into PostgreSQL (schema {schema}): {why}. The records are copied; push this state and any left without `.moved` by hand: in an empty folder holding `terraform {{ backend \"pg\" {{ schema_name = \"{schema}\" }} }}`, with PG_CONN_STR and PGPASSWORD set, run `terraform init` and `terraform state push {file}`"
    )]
    Push {
        file: PathBuf,
        schema: String,
        why: String,
    },
}

/// Every local state under `state_dir`: (instance, 0-based step, file).
fn local_states(state_dir: &Path) -> Vec<(String, usize, PathBuf)> {
    let mut found = Vec::new();
    for instance in std::fs::read_dir(state_dir.join("tfstate"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = instance.file_name().to_string_lossy().into_owned();
        for file in std::fs::read_dir(instance.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let file_name = file.file_name().to_string_lossy().into_owned();
            let step = file_name
                .strip_prefix("step-")
                .and_then(|s| s.strip_suffix(".tfstate"))
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n > 0);
            if let Some(step) = step {
                found.push((name.clone(), step - 1, file.path()));
            }
        }
    }
    found.sort();
    found
}

/// The local states under `state_dir`, and the program that can move them; checked
/// before anything is copied.
pub struct Mover {
    states: Vec<(String, usize, PathBuf)>,
    program: &'static str,
}

impl Mover {
    /// `None` when there is nothing to move.
    pub fn new(state_dir: &Path) -> Result<Option<Mover>, MoveError> {
        let states = local_states(state_dir);
        if states.is_empty() {
            return Ok(None);
        }
        let program = ["terraform", "tofu"]
            .into_iter()
            .find(|p| {
                Command::new(p)
                    .arg("version")
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
            .ok_or_else(|| MoveError::NoProgram {
                dir: state_dir.join("tfstate"),
                count: states.len(),
            })?;
        Ok(Some(Mover { states, program }))
    }
}

/// Pushes every local state `mover` found under `state_dir` into `target`'s `pg` backend.
pub fn move_into_postgres(
    mover: Mover,
    state_dir: &Path,
    target: &PgTarget,
) -> Result<Vec<Moved>, MoveError> {
    let mut moved = Vec::new();
    for (instance, index, file) in mover.states {
        let schema = tf_schema(&instance, index);
        let failed = |why: String| MoveError::Push {
            file: file.clone(),
            schema: schema.clone(),
            why,
        };
        push(mover.program, &file, &schema, target, state_dir).map_err(failed)?;
        let mut done = file.clone().into_os_string();
        done.push(".moved");
        std::fs::rename(&file, &done)
            .map_err(|e| failed(format!("pushed, but not renamed: {e}")))?;
        moved.push(Moved {
            instance,
            step: index + 1,
            schema,
        });
    }
    Ok(moved)
}

/// `init` in an empty module whose only content is the backend, then `state push`.
fn push(
    program: &str,
    file: &Path,
    schema: &str,
    target: &PgTarget,
    state_dir: &Path,
) -> Result<(), String> {
    let work = tempfile::Builder::new()
        .prefix("tf-move-")
        .tempdir_in(state_dir)
        .map_err(|e| e.to_string())?;
    std::fs::write(
        work.path().join("backend.tf"),
        format!("terraform {{\n  backend \"pg\" {{\n    schema_name = \"{schema}\"\n  }}\n}}\n"),
    )
    .map_err(|e| e.to_string())?;
    let run = |args: &[&str]| {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(work.path())
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1")
            .envs(super::provision::pg_env(target));
        let out = cmd
            .output()
            .map_err(|e| format!("{program} did not start: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "`{program} {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    };
    run(&["init", "-input=false", "-no-color"])?;
    run(&["state", "push", &file.display().to_string()])
}
