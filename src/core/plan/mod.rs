//! Plans (docs/commands.md, capstan plan): what changes, why, what else is affected downstream, and in
//! what order. A plain, deterministic value; renderings are in `render`.
//!
//! Two kinds of plan, built the same way: between the desired states of two revisions
//! ([`plan`], for pull requests) and between a desired state and what is deployed
//! ([`against_deployed`], for deploys). Both compare an instance's two sides with the one
//! comparison in `compare.rs`, make their [`Change`]s with the same constructors, and
//! finish with [`Plan::assemble`] (blast radius and waves).

mod blast;
mod compare;
mod deployed;
mod revisions;
mod select;

use std::collections::BTreeSet;

use serde_json::Value;

use super::Checked;
use super::diag::Diagnostic;
use super::model::InstanceId;
use super::resolve::Link;
pub use deployed::against_deployed;
pub use revisions::plan;
pub use select::needs;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    Create,
    Update,
    Destroy,
}

impl Action {
    /// `create`, `update` or `destroy`, as in JSON output and graph classes.
    pub fn name(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Destroy => "destroy",
        }
    }
}

/// One changed instance and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub instance: InstanceId,
    pub action: Action,
    /// Words a reviewer can check, e.g. `params.memory changed in projects/ecomm/environments/staging.yaml`.
    pub reasons: Vec<String>,
    pub diffs: Vec<Diff>,
    /// A connection's source changed (e.g. another default VPC): the resource is likely replaced.
    pub likely_replacement: bool,
}

impl Change {
    fn create(instance: &InstanceId, reason: String) -> Change {
        Change {
            instance: instance.clone(),
            action: Action::Create,
            reasons: vec![reason],
            diffs: Vec::new(),
            likely_replacement: false,
        }
    }

    fn destroy(instance: &InstanceId, reason: String) -> Change {
        Change {
            action: Action::Destroy,
            ..Change::create(instance, reason)
        }
    }

    /// An instance whose two sides differ (`action` is `Create` for a record that never
    /// deployed successfully).
    fn changed(instance: &InstanceId, action: Action, compared: compare::Compared) -> Change {
        Change {
            instance: instance.clone(),
            action,
            reasons: compared.reasons,
            diffs: compared.diffs,
            likely_replacement: compared.likely_replacement,
        }
    }
}

/// A field-level difference of an updated instance.
#[derive(Clone, Debug, PartialEq)]
pub enum Diff {
    /// `old`/`new` are `None` when the key is absent; both `None` with `sensitive` set when the
    /// value is a secret (it changed, but not from what to what).
    Param {
        path: Vec<String>,
        old: Option<Value>,
        new: Option<Value>,
        sensitive: bool,
        /// Where the new value is written (`None`: the bundle's defaults).
        at: Option<super::diag::Loc>,
    },
    BundleVersion {
        old: String,
        new: String,
    },
    BundleContent,
    ConnectionSource {
        slot: String,
        old: Option<String>,
        new: Option<String>,
    },
    ConnectionData {
        slot: String,
    },
}

/// An instance that does not change itself but takes artifacts, possibly transitively,
/// from one that does.
#[derive(Clone, Debug, PartialEq)]
pub struct Downstream {
    pub instance: InstanceId,
    /// From the changed instance to this one, hop by hop, in the direction artifacts flow.
    pub path: Vec<Hop>,
    pub because_of: InstanceId,
}

/// One connection on a downstream path: artifact `field` of `from` fills `slot` of `to`.
#[derive(Clone, Debug, PartialEq)]
pub struct Hop {
    pub from: InstanceId,
    pub field: String,
    pub to: InstanceId,
    pub slot: String,
    pub link: Link,
}

impl Hop {
    /// `network (wiring to si-staging-vpc.network)`: the hop seen from its consumer.
    pub fn describe(&self) -> String {
        format!(
            "{} ({} to {}.{})",
            self.slot,
            self.link.name(),
            self.from,
            self.field
        )
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub downstream: Vec<Downstream>,
    pub unchanged: usize,
    /// Creates and updates, in deploy waves of the new state.
    pub waves: Vec<Vec<InstanceId>>,
    /// Destroys, dependants first.
    pub destroy_order: Vec<InstanceId>,
    /// Changes left out because `--instance` named other instances ([`Plan::select`]).
    pub left_out: Vec<InstanceId>,
    /// What forbids deploying the plan, by instance: changes to immutable params of
    /// deployed instances (`params.immutable`).
    pub errors: Vec<(InstanceId, Diagnostic)>,
}

impl Plan {
    pub fn count(&self, action: Action) -> usize {
        self.changes.iter().filter(|c| c.action == action).count()
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Whether the plan may not be deployed ([`Plan::errors`]).
    pub fn is_refused(&self) -> bool {
        !self.errors.is_empty()
    }

    /// Sorts `changes` and adds the blast radius and deploy waves against the new state.
    fn assemble(
        mut changes: Vec<Change>,
        unchanged: usize,
        new: &Checked,
        destroy_order: Vec<InstanceId>,
    ) -> Plan {
        changes.sort_by(|a, b| a.instance.cmp(&b.instance));
        let changed: BTreeSet<&InstanceId> = changes
            .iter()
            .filter(|c| c.action != Action::Destroy)
            .map(|c| &c.instance)
            .collect();
        let downstream = blast::radius(&new.resolved, &changed);
        let waves = new
            .resolved
            .waves
            .iter()
            .map(|w| {
                w.iter()
                    .filter(|i| changed.contains(i))
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .filter(|w| !w.is_empty())
            .collect();
        Plan {
            changes,
            downstream,
            unchanged,
            waves,
            destroy_order,
            left_out: Vec::new(),
            errors: Vec::new(),
        }
    }
}

/// Why instance `id` (of `project`, `environment`, `package`) is not in the new state.
fn destroyed_because(
    project_id: &str,
    environment: &str,
    package: &str,
    id: &InstanceId,
    new: &Checked,
) -> String {
    let Some(project) = new.repository.projects.get(project_id) else {
        return format!("project {project_id} was removed");
    };
    let Some(env) = project.environments.get(environment) else {
        return format!("environment {environment} was removed from project {project_id}");
    };
    if !project.packages.contains_key(package) {
        return format!("package {package} was removed from {}", project.file);
    }
    match env.packages.get(package) {
        Some(ep) if ep.remote.is_some() => format!(
            "package {package} is replaced by a remote reference in {}",
            env.file
        ),
        Some(ep) if !ep.is_enabled() => format!("package {package} is disabled in {}", env.file),
        _ => format!("{id} no longer resolves (see the diagnostics)"),
    }
}
