//! The plan between the desired states of two revisions (a pull request's merge base and
//! head): an instance is created, updated when its two sides differ, or destroyed.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::compare::{Side, compare};
use super::{Action, Change, Plan, destroyed_because};
use crate::core::Checked;
use crate::core::model::InstanceId;
use crate::core::resolve::Instance;
use crate::core::sensitive::FieldPath;

/// Compares the desired state of `old` with that of `new`.
pub fn plan(old: &Checked, new: &Checked) -> Plan {
    let (before, after) = (&old.resolved.instances, &new.resolved.instances);
    let mut changes = Vec::new();
    let mut errors = Vec::new();
    let mut unchanged = 0;
    let destroy = |prev: &Instance| {
        let why = destroyed_because(
            prev.project.as_str(),
            prev.environment.as_str(),
            prev.package.as_str(),
            &prev.id,
            new,
        );
        Change::destroy(&prev.id, why)
    };
    // Both sides are sorted by id: one pass over each.
    let mut olds = before.values().peekable();
    for (id, inst) in after {
        while let Some(prev) = olds.next_if(|p| !Arc::ptr_eq(p, inst) && p.id < *id) {
            changes.push(destroy(prev));
        }
        let Some(prev) = olds.next_if(|p| Arc::ptr_eq(p, inst) || p.id == *id) else {
            changes.push(Change::create(id, created_because(inst, old, new)));
            continue;
        };
        // One instance kept by an incremental check: nothing to compare.
        if Arc::ptr_eq(prev, inst) {
            unchanged += 1;
            continue;
        }
        let mut compared = compare(
            &Side::of_instance(prev, sensitive(old, prev)),
            &Side::of_instance(inst, sensitive(new, inst)),
            &new.repository,
            inst,
            None,
        );
        if compared.diffs.is_empty() {
            unchanged += 1;
        } else {
            errors.extend(compared.errors.drain(..).map(|d| (id.clone(), d)));
            changes.push(Change::changed(id, Action::Update, compared));
        }
    }
    changes.extend(olds.map(|prev| destroy(prev)));
    let destroyed: BTreeSet<&InstanceId> = changes
        .iter()
        .filter(|c| c.action == Action::Destroy)
        .map(|c| &c.instance)
        .collect();
    let destroy_order = old
        .resolved
        .waves
        .iter()
        .rev()
        .flat_map(|w| w.iter().filter(|i| destroyed.contains(i)).cloned())
        .collect();
    Plan {
        errors,
        ..Plan::assemble(changes, unchanged, new, destroy_order)
    }
}

/// The sensitive paths of `inst`'s bundle in `checked`.
fn sensitive<'a>(checked: &'a Checked, inst: &Instance) -> &'a [FieldPath] {
    checked
        .repository
        .bundles
        .get(inst.bundle.as_str())
        .map_or(&[], |b| b.sensitive.as_slice())
}

fn created_because(inst: &Instance, old: &Checked, new: &Checked) -> String {
    let env_file = new
        .repository
        .projects
        .get(inst.project.as_str())
        .and_then(|p| p.environments.get(inst.environment.as_str()))
        .map_or_else(|| inst.at.file.to_string(), |e| e.file.to_string());
    let project = old.repository.projects.get(inst.project.as_str());
    match project {
        None => format!("project {} is new", inst.project),
        Some(p) if !p.environments.contains_key(inst.environment.as_str()) => {
            format!("environment {} is new: {env_file}", inst.environment)
        }
        Some(p) if !p.packages.contains_key(inst.package.as_str()) => {
            format!("package {} is new in {}", inst.package, p.file)
        }
        Some(_) => format!("package {} is now realised in {env_file}", inst.package),
    }
}
