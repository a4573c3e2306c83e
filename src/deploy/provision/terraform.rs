//! OpenTofu and Terraform steps ([`Program`]): `init`, `apply`/`destroy`, outputs as
//! artifacts, the installed version checked against the step's.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::log::Log;
use super::process::command;
use super::workdir::{parse_artifacts, pretty};
use super::{Env, Job, StepError, StepRan};
use crate::core::resources::Applied;
use crate::core::run::Verb;
use crate::state::private_dir;

/// Which of the two CLIs a step runs; they take the same commands and flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Program {
    OpenTofu,
    Terraform,
}

impl Program {
    /// The binary looked up on `PATH`.
    pub fn binary(self) -> &'static str {
        match self {
            Program::OpenTofu => "tofu",
            Program::Terraform => "terraform",
        }
    }
}

impl std::fmt::Display for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.binary())
    }
}

/// OpenTofu and Terraform: `init`, then `apply` or `destroy`, with the inputs as
/// `_params.auto.tfvars.json` and `_connections.auto.tfvars.json`; artifacts are the
/// outputs (`output -json`) named like the bundle's artifact fields.
pub(super) async fn terraform(
    program: Program,
    version: Option<&str>,
    job: &Job<'_>,
    index: usize,
    env: &Env,
    log: &Log,
) -> Result<StepRan, StepError> {
    tf_init(program, version, job, index, env, log).await?;
    let lock_timeout = lock_timeout(job);
    let verb = match job.verb {
        Verb::Deploy => "apply",
        Verb::Destroy => "destroy",
    };
    let args = [
        verb,
        "-auto-approve",
        "-input=false",
        "-no-color",
        &lock_timeout,
    ];
    log.take_recent();
    command(log, env, program.binary(), &args, false).await?;
    // What it changed, as its last words say (`Apply complete! Resources: 1 added, …`).
    let resources = log
        .take_recent()
        .iter()
        .rev()
        .find_map(|l| Applied::read(l));
    if job.verb == Verb::Destroy {
        return Ok(StepRan {
            artifacts: BTreeMap::new(),
            resources,
        });
    }
    let out = command(log, env, program.binary(), &["output", "-json"], true).await?;
    let outputs = parse_artifacts(&out, &format!("`{program} output -json`"))?;
    Ok(StepRan {
        artifacts: outputs
            .into_iter()
            .filter(|(name, _)| job.bundle.artifacts.contains_key(name))
            .map(|(name, o)| (name, o.get("value").cloned().unwrap_or(Value::Null)))
            .collect(),
        resources,
    })
}

/// The inputs of an OpenTofu or Terraform step as `_params.auto.tfvars.json` and
/// `_connections.auto.tfvars.json`, and a local backend under the state directory when the
/// module declares none (one state file per instance and step, so the next fresh working
/// directory, a deploy's or a drift check's, finds it).
pub(super) fn tf_inputs(job: &Job<'_>, index: usize, env: &Env) -> Result<(), StepError> {
    let write = |name: &str, text: String| {
        std::fs::write(env.cwd.join(name), text).map_err(|source| StepError::Prepare {
            path: env.cwd.join(name),
            source,
        })
    };
    write("_params.auto.tfvars.json", pretty(&job.inputs.params))?;
    write(
        "_connections.auto.tfvars.json",
        pretty(&job.inputs.connection_data()),
    )?;
    if declares_backend(&env.cwd) {
        return Ok(());
    }
    if job.tf_pg.is_some() {
        // The address and password come as PG_CONN_STR and PGPASSWORD (`pg_env`).
        return write(
            "_capstan_backend.tf",
            format!(
                "terraform {{\n  backend \"pg\" {{\n    schema_name = \"{}\"\n  }}\n}}\n",
                tf_schema(job.instance, index)
            ),
        );
    }
    {
        let state = tf_state_file(job.state_dir, job.instance, index);
        if let Some(parent) = state.parent() {
            private_dir(parent).map_err(|source| StepError::Prepare {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        write(
            "_capstan_backend.tf",
            format!(
                "terraform {{\n  backend \"local\" {{\n    path = {}\n  }}\n}}\n",
                serde_json::to_string(&state.display().to_string()).unwrap_or_default()
            ),
        )?;
    }
    Ok(())
}

/// The PostgreSQL schema holding step `index` of `instance`'s Terraform state with the
/// `pg` backend: `capstan_tf_<instance>_<step>` in lower-case letters, digits and `_`,
/// with a hash of the exact id so that ids differing only in other characters never meet.
pub fn tf_schema(instance: &str, index: usize) -> String {
    use sha2::Digest;
    let plain: String = instance
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(36)
        .collect();
    let hash = hex::encode(&sha2::Sha256::digest(instance.as_bytes())[..4]);
    format!("capstan_tf_{plain}_{hash}_{}", index + 1)
}

/// The variables that point OpenTofu and Terraform at the `pg` backend's database.
pub fn pg_env(target: &crate::state::PgTarget) -> Vec<(String, String)> {
    let mut vars = vec![("PG_CONN_STR".to_string(), target.terraform_address())];
    if let Some(password) = target.password() {
        vars.push(("PGPASSWORD".to_string(), password));
    }
    vars
}

/// The local state of step `index` of `instance` when its module declares no backend.
pub(in crate::deploy) fn tf_state_file(
    state_dir: &Path,
    instance: &str,
    index: usize,
) -> std::path::PathBuf {
    state_dir
        .join("tfstate")
        .join(instance)
        .join(format!("step-{}.tfstate", index + 1))
}

/// What every OpenTofu or Terraform command of a step needs first: the version checked,
/// the inputs and backend written, `init`.
pub(in crate::deploy) async fn tf_init(
    program: Program,
    version: Option<&str>,
    job: &Job<'_>,
    index: usize,
    env: &Env,
    log: &Log,
) -> Result<(), StepError> {
    if let Some(wanted) = version {
        check_version(program, wanted, env, log).await?;
    }
    tf_inputs(job, index, env)?;
    command(
        log,
        env,
        program.binary(),
        &["init", "-input=false", "-no-color"],
        false,
    )
    .await?;
    Ok(())
}

/// `-lock-timeout=<seconds>s` for OpenTofu and Terraform.
pub(in crate::deploy) fn lock_timeout(job: &Job<'_>) -> String {
    format!("-lock-timeout={}s", job.timeouts.state_lock.as_secs())
}

/// Checks the installed `program` against the step's version (`1.10` takes any `1.10.x`).
pub(in crate::deploy) async fn check_version(
    program: Program,
    wanted: &str,
    env: &Env,
    log: &Log,
) -> Result<(), StepError> {
    let out = command(log, env, program.binary(), &["version", "-json"], true).await?;
    let found = serde_json::from_slice::<Value>(&out)
        .ok()
        .and_then(|v| v.get("terraform_version")?.as_str().map(str::to_string))
        .ok_or_else(|| StepError::UnknownVersion {
            program: program.to_string(),
        })?;
    log.line(&format!("{program} {found} (the step wants {wanted})"));
    if version_matches(wanted, &found) {
        Ok(())
    } else {
        let e = StepError::Version {
            program: program.to_string(),
            wanted: wanted.to_string(),
            found,
        };
        log.line(&e.to_string());
        Err(e)
    }
}

/// Whether `found` (`1.10.3`, `1.11.0-beta1`) is the version `wanted` names: every dotted
/// part `wanted` gives is equal (`1` takes any 1.x, `1.10` any 1.10.x).
pub(super) fn version_matches(wanted: &str, found: &str) -> bool {
    let release = found.split(['-', '+']).next().unwrap_or(found);
    let mut have = release.split('.');
    wanted.split('.').all(|w| have.next() == Some(w))
}

/// Whether any `.tf` file of the folder configures a backend.
pub(super) fn declares_backend(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            e.path().extension().is_some_and(|x| x == "tf")
                && std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains("backend \""))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_match_on_every_part_the_step_names() {
        assert!(version_matches("1.10", "1.10.3"));
        assert!(version_matches("1", "1.11.4"));
        assert!(version_matches("1.5.7", "1.5.7"));
        assert!(version_matches("1.11", "1.11.0-beta1"));
        assert!(!version_matches("1.10", "1.11.4"));
        assert!(!version_matches("1.1", "1.10.0"));
        assert!(!version_matches("1.5.7", "1.5"));
    }
}
