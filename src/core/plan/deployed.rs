//! The plan of a desired state against what is deployed: an instance is created when it has
//! no record, updated when its concrete inputs differ from the recorded ones or its last
//! deploy did not succeed, destroyed when it is recorded but not desired.

use std::collections::BTreeMap;

use super::compare::{Compared, Side, compare};
use super::{Action, Change, Plan, destroyed_because};
use crate::core::Checked;
use crate::core::deployed::{self, Deployed, Status};
use crate::core::drift::{DriftCheck, Heal};
use crate::core::model::InstanceId;
use crate::core::resolve::environment_attributes;
use crate::core::run::Scope;

/// Why a drifted instance is redeployed.
fn drift_reason(d: &DriftCheck) -> String {
    let since = d.since.to_minute();
    if d.summary.is_empty() {
        format!("it drifted since {since}")
    } else {
        format!("it drifted since {since}: {}", d.summary)
    }
}

/// Compares the desired state of `new` with the deployed records, as far as `scope` owns
/// them: the branch's plan leaves previews alone, a preview's plan is about it alone.
pub fn against_deployed(
    deployed: &BTreeMap<InstanceId, Deployed>,
    new: &Checked,
    scope: &Scope,
    heal: &Heal,
) -> Plan {
    let after = &new.resolved.instances;
    let mut changes = Vec::new();
    let mut errors = Vec::new();
    let mut unchanged = 0;
    let owned = |project: &str, env: &str| scope.owns(project, env);
    for (id, inst) in after {
        if !owned(inst.project.as_str(), inst.environment.as_str()) {
            continue;
        }
        let desired = deployed::desired_inputs(inst, deployed);
        let Some(record) = deployed.get(id) else {
            changes.push(Change::create(id, "not deployed yet".into()));
            continue;
        };
        let drifted = record.drifted().filter(|_| {
            new.repository
                .projects
                .get(inst.project.as_str())
                .and_then(|p| Some((p, p.environments.get(inst.environment.as_str())?)))
                .is_some_and(|(p, e)| heal.heals(&environment_attributes(p, e)))
        });
        if record.is_current(&desired) {
            if let Some(d) = drifted {
                changes.push(Change::changed(
                    id,
                    Action::Update,
                    Compared {
                        diffs: Vec::new(),
                        reasons: vec![drift_reason(d)],
                        likely_replacement: false,
                        errors: Vec::new(),
                    },
                ));
            } else {
                unchanged += 1;
            }
            continue;
        }
        let sensitive = new
            .repository
            .bundles
            .get(inst.bundle.as_str())
            .map_or(&[][..], |b| b.sensitive.as_slice());
        let mut compared = compare(
            &Side::of_inputs(&record.inputs, &record.sensitive, None),
            &Side::of_inputs(&desired, sensitive, Some(inst)),
            &new.repository,
            inst,
            Some(&record.commit),
        );
        if let Some(d) = drifted {
            compared.reasons.insert(0, drift_reason(d));
        }
        if record.status != Status::Deployed {
            compared.reasons.insert(
                0,
                format!(
                    "its last deploy is {} (at {})",
                    record.status.name(),
                    crate::core::commit::short(&record.commit)
                ),
            );
        } else if compared.diffs.is_empty() {
            // Every part of the inputs is compared; this is only reachable with a record
            // whose digest was computed differently (e.g. by another capstan).
            compared.reasons.push("its recorded inputs differ".into());
        }
        let action = if record.digest.is_empty() {
            Action::Create
        } else {
            // Immutable params are only ever fixed by a deploy that succeeded.
            errors.extend(compared.errors.drain(..).map(|d| (id.clone(), d)));
            Action::Update
        };
        changes.push(Change::changed(id, action, compared));
    }
    for (id, record) in deployed {
        if !after.contains_key(id) && owned(&record.project, &record.environment) {
            let why = destroyed_because(
                &record.project,
                &record.environment,
                &record.package,
                id,
                new,
            );
            changes.push(Change::destroy(id, why));
        }
    }
    let destroy_order = deployed::destroy_order(deployed, after)
        .into_iter()
        .filter(|id| {
            deployed
                .get(id)
                .is_some_and(|d| owned(&d.project, &d.environment))
        })
        .collect();
    Plan {
        errors,
        ..Plan::assemble(changes, unchanged, new, destroy_order)
    }
}
