//! Checking a revision by keeping what checking an earlier one computed, the way an IDE
//! recomputes only what an edit touches.
//!
//! A revision is two kinds of input: the files outside project folders (settings, artifact
//! types, bundles), which every project's resolution reads, and one folder per project.
//! A project folder loads on its own ([`load::load_project`]) and resolves into a
//! [`Unit`] that names the other projects it looked at. So, against the previous revision:
//!
//! - a project folder whose files are byte for byte the same is not parsed again;
//! - a project's unit is kept when the shared files, its own folder and every project it
//!   read are the same; otherwise it is resolved again (so a changed producer re-resolves
//!   its consumers, and a project that appears re-resolves those that looked for it);
//! - when a shared file changes, every project is resolved again (their folders are still
//!   not parsed again).
//!
//! The deploy order and cycle check run over all instances every time. The result is the
//! same, to the byte, as [`super::check`] from scratch; `tests/it/incremental.rs` holds
//! that over random edits.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::Checked;
use super::diag::Diagnostics;
use super::load;
use super::model::{Environment, Project};
use super::resolve::{self, Resolved, Resolver, Unit};
use super::source::SourceTree;

/// A checked revision with what the next check can keep from it.
#[derive(Debug)]
pub struct Revision {
    pub checked: Checked,
    tree: SourceTree,
    /// What loading the shared files reported.
    shared: Diagnostics,
    /// What the deploy order reported (cycles).
    graph: Diagnostics,
    folders: BTreeMap<String, Folder>,
}

/// One project folder's part of a revision.
#[derive(Debug)]
struct Folder {
    /// Where its files are in the revision's tree.
    files: std::ops::Range<usize>,
    project: Option<Arc<Project>>,
    /// What loading its files reported.
    load: Diagnostics,
    /// Its resolution; `None` when it has no project (no or a broken project.yaml).
    /// Shared with the revisions that keep it.
    unit: Option<Arc<Unit>>,
}

/// What a check kept from the previous revision and what it computed again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reuse {
    /// Project folders loaded again (changed or new) / kept.
    pub loaded: usize,
    pub kept_loaded: usize,
    /// Projects resolved again / kept.
    pub resolved: usize,
    pub kept_resolved: usize,
}

/// Bytes an instance holds, model and resolution together: measured at 40,000 instances
/// (BENCHMARKS.md).
const BYTES_PER_INSTANCE: usize = 1_700;
/// Bytes a revision's file list holds per file, beyond its path.
const BYTES_PER_FILE: usize = 64;
/// Bytes a revision holds per instance it shares with another: its map entry and its
/// place in the deploy order.
const BYTES_PER_SHARED_INSTANCE: usize = 64;

impl Revision {
    /// The files it was checked from.
    pub fn tree(&self) -> &SourceTree {
        &self.tree
    }

    /// Estimated bytes `revisions` hold together: each one's file list and instance map,
    /// and every file's bytes and every instance once, however many of them share it.
    pub fn weight<'r>(revisions: impl IntoIterator<Item = &'r Revision>) -> usize {
        let mut contents = std::collections::HashSet::new();
        let mut instances = std::collections::HashSet::new();
        let mut bytes = 0;
        for r in revisions {
            for f in r.tree.files() {
                bytes += BYTES_PER_FILE + f.path.len();
                if let super::source::Content::Bytes(b) = &f.content
                    && contents.insert(b.as_ptr())
                {
                    // Parsed, a file holds about as much again as its text.
                    bytes += 2 * b.len();
                }
            }
            let all = &r.checked.resolved.instances;
            bytes += BYTES_PER_SHARED_INSTANCE * all.len();
            instances.extend(all.values().map(Arc::as_ptr));
        }
        bytes + BYTES_PER_INSTANCE * instances.len()
    }

    /// Checks `tree`, keeping from `previous` whatever the differences cannot affect.
    pub fn check(tree: SourceTree, previous: Option<&Revision>) -> (Revision, Reuse) {
        let mut reuse = Reuse::default();
        let (shared_files, folder_files) = load::split(tree.files());
        let shared_same = previous.is_some_and(|p| load::split(p.tree.files()).0 == shared_files);

        let mut load_diags = Diagnostics::default();
        let mut repository = match previous {
            Some(p) if shared_same => {
                load_diags = p.shared.clone();
                let mut repository = p.checked.repository.clone();
                repository.projects.clear();
                repository
            }
            _ => load::load_shared(&shared_files, &mut load_diags),
        };
        let shared = load_diags;

        // Load: each folder kept when its files are the same.
        let mut folders: BTreeMap<String, Folder> = BTreeMap::new();
        let mut changed: BTreeSet<String> = BTreeSet::new();
        for (name, range) in folder_files {
            let files = &tree.files()[range.clone()];
            let kept = previous
                .and_then(|p| Some((p, p.folders.get(name)?)))
                .filter(|(p, f)| &p.tree.files()[f.files.clone()] == files);
            let folder = match kept {
                Some((_, f)) => {
                    reuse.kept_loaded += 1;
                    Folder {
                        files: range,
                        project: f.project.clone(),
                        load: f.load.clone(),
                        unit: None,
                    }
                }
                None => {
                    reuse.loaded += 1;
                    changed.insert(name.to_string());
                    let mut load = Diagnostics::default();
                    let project = load::load_project(name, files, &mut load).map(Arc::new);
                    Folder {
                        files: range,
                        project,
                        load,
                        unit: None,
                    }
                }
            };
            if let Some(p) = &folder.project {
                repository.projects.insert(p.id.clone(), p.clone());
            }
            folders.insert(name.to_string(), folder);
        }
        if let Some(p) = previous {
            changed.extend(
                p.folders
                    .keys()
                    .filter(|name| !folders.contains_key(*name))
                    .cloned(),
            );
        }

        // Resolve: a unit is kept when nothing it read changed; one that read the list of
        // projects (a "did you mean" among them) also when no project came or went. The
        // list is of projects that load: a folder whose project file breaks leaves it.
        let projects_came_or_went = previous.is_some_and(|p| {
            !p.checked
                .repository
                .projects
                .keys()
                .eq(repository.projects.keys())
        });
        let kept_unit = |name: &str| -> Option<&Arc<Unit>> {
            if !shared_same || changed.contains(name) {
                return None;
            }
            let unit = previous?.folders.get(name)?.unit.as_ref()?;
            unit.reads
                .iter()
                .all(|read| {
                    if read.as_str() == crate::core::resolve::ALL_PROJECTS {
                        !projects_came_or_went
                    } else {
                        !changed.contains(read.as_str())
                    }
                })
                .then_some(unit)
        };
        let mut units: BTreeMap<String, Arc<Unit>> = BTreeMap::new();
        let mut stale: Vec<(&String, &Arc<Project>)> = Vec::new();
        for (name, folder) in &folders {
            let Some(project) = &folder.project else {
                continue;
            };
            match kept_unit(name) {
                Some(unit) => {
                    reuse.kept_resolved += 1;
                    units.insert(name.clone(), unit.clone());
                }
                None => stale.push((name, project)),
            }
        }
        reuse.resolved = stale.len();
        let mut diags = Diagnostics::default();
        let previews: Vec<Option<Environment>> = stale
            .iter()
            .map(|(_, p)| resolve::preview_check(p))
            .collect();
        let mut resolver = Resolver::new(&repository, &mut diags);
        for ((name, project), preview) in stale.iter().zip(&previews) {
            let unit = resolver.project(project, preview.as_ref());
            units.insert((*name).clone(), Arc::new(unit));
        }
        drop(resolver);
        let stale: Vec<String> = stale.into_iter().map(|(name, _)| name.clone()).collect();
        let (resolved, graph) = assemble(previous, &units, &stale);
        for unit in units.values() {
            diags.extend(unit.diagnostics.clone());
        }
        diags.extend(graph.clone());
        diags.extend(shared.clone());
        for (name, folder) in folders.iter_mut() {
            diags.extend(folder.load.clone());
            folder.unit = units.remove(name.as_str());
        }

        let checked = Checked {
            repository,
            resolved,
            diagnostics: diags.finish(),
        };
        let revision = Revision {
            checked,
            tree,
            shared,
            graph,
            folders,
        };
        (revision, reuse)
    }
}

/// The desired state made of `units`, and what its deploy order reports. From `previous`,
/// only the `stale` units' instances are replaced; when the projects are the same ones and
/// no stale unit's edges changed, the deploy order and the consumers are the previous ones.
fn assemble(
    previous: Option<&Revision>,
    units: &BTreeMap<String, Arc<Unit>>,
    stale: &[String],
) -> (Resolved, Diagnostics) {
    let previous = previous.filter(|p| {
        p.folders.iter().filter(|(_, f)| f.unit.is_some()).count() == units.len()
            && units
                .keys()
                .all(|name| p.folders.get(name).is_some_and(|f| f.unit.is_some()))
    });
    let Some(previous) = previous else {
        let mut graph = Diagnostics::default();
        let resolved = resolve::assemble(units.values().map(|u| &**u), &mut graph);
        return (resolved, graph);
    };
    let old_unit = |name: &str| previous.folders.get(name).and_then(|f| f.unit.as_ref());
    let mut instances = previous.checked.resolved.instances.clone();
    let mut same_edges = true;
    for name in stale {
        let (Some(old), Some(new)) = (old_unit(name), units.get(name)) else {
            continue;
        };
        same_edges &= old.edges() == new.edges();
        for i in &old.instances {
            instances.remove(&i.id);
        }
        instances.extend(new.instances.iter().map(|i| (i.id.clone(), i.clone())));
    }
    if same_edges {
        let waves = previous.checked.resolved.waves.clone();
        let resolved = Resolved::new(instances, waves);
        resolved.share_consumers(&previous.checked.resolved);
        return (resolved, previous.graph.clone());
    }
    let mut graph = Diagnostics::default();
    let waves = resolve::order(&instances, &mut graph);
    (Resolved::new(instances, waves), graph)
}
