//! Previews (docs/previews.md): a preview of a project is one more environment of it,
//! realised from the project's `preview:` block: the environment the block forks, with the
//! block's attributes, defaults and per-package settings merged over that environment's.
//! A pull request's preview is named `pr<N>`; `capstan preview up NAME` takes any name that
//! is not an environment of the project.

use super::diag::Diagnostics;
use super::model::*;
use super::source::SourceTree;
use super::{Checked, load, resolve};
use std::sync::Arc;

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
    Arc::make_mut(p).environments.insert(name.clone(), env);
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
    EnvId(format!("pr{number}").into())
}

/// The projects whose preview a pull request triggers: with `trigger: touched`, those it
/// changes (`projects/<project>/**`, or the folder of a bundle the project's packages use);
/// with `trigger: label`, all of them when it carries the label `capstan:preview`.
/// `changed` are paths relative to the repository root, as the mirror gives them.
pub fn triggered(repo: &Repository, changed: &[String], labels: &[String]) -> Vec<ProjectId> {
    let labelled = labels.iter().any(|l| l == PreviewTrigger::LABEL);
    repo.projects
        .values()
        .filter(|p| match p.preview.as_ref().map(|b| b.trigger) {
            None => false,
            Some(PreviewTrigger::Label) => labelled,
            Some(PreviewTrigger::Touched) => {
                let own = format!("projects/{}/", p.id);
                let bundles: Vec<String> = p
                    .packages
                    .values()
                    .filter_map(|k| k.bundle.as_ref())
                    .map(|(b, _)| format!("bundles/{b}/"))
                    .collect();
                changed
                    .iter()
                    .any(|f| f.starts_with(&own) || bundles.iter().any(|b| f.starts_with(b)))
            }
        })
        .map(|p| p.id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::source::{Content, SourceFile};

    fn example() -> Repository {
        let files = vec![
            SourceFile {
                path: "projects/web/project.yaml".into(),
                executable: false,
                content: Content::Bytes(
                    b"packages:\n  app: {bundle: container-app}\npreview:\n  from: dev\n  attributes: {tier: preview}\n  packages:\n    app:\n      params: {replicas: 1}\n"
                        .to_vec().into(),
                ),
            },
            SourceFile {
                path: "projects/web/environments/dev.yaml".into(),
                executable: false,
                content: Content::Bytes(
                    b"attributes: {tier: dev}\npackages:\n  app:\n    params: {replicas: 2, image: web:1}\n"
                        .to_vec().into(),
                ),
            },
            SourceFile {
                path: "projects/ops/project.yaml".into(),
                executable: false,
                content: Content::Bytes(
                    b"packages:\n  app: {bundle: container-app}\npreview:\n  from: dev\n  trigger: label\n"
                        .to_vec().into(),
                ),
            },
            SourceFile {
                path: "projects/ops/environments/dev.yaml".into(),
                executable: false,
                content: Content::Bytes(Vec::new().into()),
            },
        ];
        load::load(&SourceTree::new(files), &mut Diagnostics::default())
    }

    #[test]
    fn a_preview_forks_its_environment_with_the_block_merged_over_it() {
        let repo = example();
        let web = &repo.projects["web"];
        let env = environment(web, &EnvId("pr7".into())).expect("realised");
        assert_eq!(env.id.as_str(), "pr7");
        assert_eq!(env.preview_of.as_ref().map(EnvId::as_str), Some("dev"));
        assert_eq!(env.attributes["tier"], "preview");
        let layers = &env.packages["app"].params;
        assert_eq!(layers.len(), 2, "the forked params, then the block's");
        assert_eq!(&*layers[0].file, "projects/web/environments/dev.yaml");
        assert_eq!(&*layers[1].file, "projects/web/project.yaml");
        assert!(environment(&repo.projects["ops"], &EnvId("pr7".into())).is_some());
    }

    #[test]
    fn touched_projects_and_labels_trigger_previews() {
        let repo = example();
        let ids = |v: Vec<ProjectId>| v.into_iter().map(|p| p.0.to_string()).collect::<Vec<_>>();
        assert_eq!(
            ids(triggered(&repo, &["projects/web/project.yaml".into()], &[])),
            ["web"]
        );
        assert_eq!(
            ids(triggered(
                &repo,
                &["bundles/container-app/src/deploy.sh".into()],
                &[]
            )),
            ["web"],
            "a bundle web uses; ops only previews on the label"
        );
        assert_eq!(
            ids(triggered(
                &repo,
                &["README.md".into()],
                &["capstan:preview".into()]
            )),
            ["ops"]
        );
        assert!(triggered(&repo, &["projects/other/x.yaml".into()], &[]).is_empty());
    }
}
