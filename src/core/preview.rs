//! Previews (docs/previews.md): a preview of a project is one more environment of it,
//! realised from the project's `preview:` block: the environment the block forks, with the
//! block's attributes, defaults and per-package settings merged over that environment's.
//! A pull request's preview is named `pr<N>`; `capstan preview up NAME` takes any name that
//! is not an environment of the project.

use super::diag::Diagnostics;
use super::model::*;
use super::source::SourceTree;
use super::{Checked, load, resolve};

/// The name validation realises every `preview:` block under, so that what it reports
/// names the preview (`ecomm-pr<N>-app`). Never a valid environment name.
pub const ANY: &str = "pr<N>";

/// Preview `name` of `project` as an environment, or `None` when the project has no
/// `preview:` block or the environment it forks does not exist (validation reports that).
///
/// Merging: attributes key by key; defaults type by type; per-package settings package by
/// package, where `enabled` (if the block writes it) replaces, params are one more layer
/// deep-merged over the forked environment's, connections are replaced slot by slot, and a
/// `remote` on either side means the block's settings replace the forked ones whole.
pub fn environment(project: &Project, name: &EnvId) -> Option<Environment> {
    let preview = project.preview.as_ref()?;
    let (from, _) = preview.from.as_ref()?;
    let mut env = project.environments.get(from.as_str())?.clone();
    env.id = name.clone();
    env.name = Some(format!("preview {name} of {}", project.id));
    env.preview_of = Some(from.clone());
    env.attributes.extend(
        preview
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    for d in &preview.defaults {
        env.defaults.retain(|x| x.type_name != d.type_name);
        env.defaults.push(d.clone());
    }
    for (package, over) in &preview.packages {
        match env.packages.get_mut(package.as_str()) {
            Some(base) if base.remote.is_none() && over.remote.is_none() => {
                base.at = over.at.clone();
                if over.enabled.is_some() {
                    base.enabled = over.enabled;
                }
                base.params.extend(over.params.iter().cloned());
                for (slot, source) in &over.connections {
                    base.connections.insert(slot.clone(), source.clone());
                }
            }
            _ => {
                env.packages.insert(package.clone(), over.clone());
            }
        }
    }
    Some(env)
}

/// Why a preview cannot be realised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreviewError {
    #[error("project {0} does not exist")]
    NoProject(String),
    #[error("project {0} has no preview: block in projects/{0}/project.yaml")]
    NoPreview(String),
    #[error(
        "{name:?} cannot name a preview: it must match ^[a-z0-9]{{1,20}}$ and not be an environment of project {project}"
    )]
    BadName { project: String, name: String },
    #[error(
        "the preview of project {project} forks environment {from}, which does not exist at this revision"
    )]
    NoFork { project: String, from: String },
}

/// Checks `tree` with preview `name` of `project` realised: the repository gains the
/// environment, and the resolved state its instances (`<project>-<name>-<package>`) beside
/// every other.
pub fn check(
    tree: &SourceTree,
    project: &ProjectId,
    name: &EnvId,
) -> Result<Checked, PreviewError> {
    let mut diags = Diagnostics::default();
    let mut repository = load::load(tree, &mut diags);
    let p = repository
        .projects
        .get_mut(project.as_str())
        .ok_or_else(|| PreviewError::NoProject(project.to_string()))?;
    let Some(block) = &p.preview else {
        return Err(PreviewError::NoPreview(project.to_string()));
    };
    if !valid_name(name.as_str()) || p.environments.contains_key(name.as_str()) {
        return Err(PreviewError::BadName {
            project: project.to_string(),
            name: name.to_string(),
        });
    }
    let from = block
        .from
        .as_ref()
        .map(|(f, _)| f.to_string())
        .unwrap_or_default();
    let env = environment(p, name).ok_or_else(|| PreviewError::NoFork {
        project: project.to_string(),
        from,
    })?;
    p.environments.insert(name.clone(), env);
    let resolved = resolve::resolve(&repository, &mut diags);
    Ok(Checked {
        repository,
        resolved,
        diagnostics: diags.finish(),
    })
}

/// Whether `name` may name a preview: an environment name (`pr12`, `demo`).
pub fn valid_name(name: &str) -> bool {
    (1..=20).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// The preview name of pull request `number`.
pub fn of_pull(number: u64) -> EnvId {
    EnvId(format!("pr{number}"))
}
