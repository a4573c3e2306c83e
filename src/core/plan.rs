//! Plans (DESIGN section 7): two resolved desired states -> what changes, why, what else is
//! affected downstream, and in what order. A plain, deterministic value; renderings are
//! in `render`.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde_json::Value;

use super::Checked;
use super::model::{InstanceId, Repository};
use super::resolve::{Connection, Instance, Origin, Via};
use super::yaml::Node;

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
    /// From the changed instance to this one: each step names the consumer and how it is connected.
    pub path: Vec<(InstanceId, String)>,
    pub because_of: InstanceId,
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
}

impl Plan {
    pub fn count(&self, action: Action) -> usize {
        self.changes.iter().filter(|c| c.action == action).count()
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// Compares the desired state of `old` with that of `new`.
pub fn plan(old: &Checked, new: &Checked) -> Plan {
    let (before, after) = (&old.resolved.instances, &new.resolved.instances);
    let mut changes = Vec::new();
    let mut unchanged = 0;
    for (id, inst) in after {
        match before.get(id) {
            None => changes.push(Change {
                instance: id.clone(),
                action: Action::Create,
                reasons: vec![created_because(inst, old, new)],
                diffs: Vec::new(),
                likely_replacement: false,
            }),
            Some(prev) => {
                let (diffs, reasons, likely_replacement) =
                    compare(prev, inst, &old.repository, &new.repository);
                if diffs.is_empty() {
                    unchanged += 1;
                } else {
                    changes.push(Change {
                        instance: id.clone(),
                        action: Action::Update,
                        reasons,
                        diffs,
                        likely_replacement,
                    });
                }
            }
        }
    }
    for (id, prev) in before {
        if !after.contains_key(id) {
            changes.push(Change {
                instance: id.clone(),
                action: Action::Destroy,
                reasons: vec![destroyed_because(
                    prev.project.as_str(),
                    prev.environment.as_str(),
                    prev.package.as_str(),
                    id,
                    new,
                )],
                diffs: Vec::new(),
                likely_replacement: false,
            });
        }
    }
    changes.sort_by(|a, b| a.instance.cmp(&b.instance));
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
    finish(
        changes,
        unchanged,
        after,
        &new.resolved.waves,
        destroy_order,
    )
}

/// The blast radius and deploy waves of sorted `changes` against the new state `after`.
pub(super) fn finish(
    changes: Vec<Change>,
    unchanged: usize,
    after: &BTreeMap<InstanceId, Instance>,
    new_waves: &[Vec<InstanceId>],
    destroy_order: Vec<InstanceId>,
) -> Plan {
    let changed: BTreeSet<&InstanceId> = changes
        .iter()
        .filter(|c| c.action != Action::Destroy)
        .map(|c| &c.instance)
        .collect();
    let downstream = blast_radius(after, &changed);
    let waves = new_waves
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
    }
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

/// Why instance `id` (of `project`, `environment`, `package`) is not in the new state.
pub(super) fn destroyed_because(
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
        Some(ep) if !ep.enabled => format!("package {package} is disabled in {}", env.file),
        _ => format!("{id} no longer resolves (see the diagnostics)"),
    }
}

/// Field-level differences, reasons and whether a slot's source moved.
fn compare(
    old: &Instance,
    new: &Instance,
    old_repo: &Repository,
    new_repo: &Repository,
) -> (Vec<Diff>, Vec<String>, bool) {
    let mut diffs = Vec::new();
    let mut reasons = Vec::new();
    if old.bundle_version != new.bundle_version || old.bundle != new.bundle {
        diffs.push(Diff::BundleVersion {
            old: format!("{}@{}", old.bundle, old.bundle_version),
            new: format!("{}@{}", new.bundle, new.bundle_version),
        });
        reasons.push(format!(
            "bundle {} changed from {} to {}",
            new.bundle, old.bundle_version, new.bundle_version
        ));
    } else if old.bundle_digest != new.bundle_digest {
        diffs.push(Diff::BundleContent);
        reasons.push(format!("the files of bundles/{} changed", new.bundle));
    }
    let old_sensitive = || sensitive_params(old_repo, old);
    let (d, r) = param_changes(&old.params, &new.params, new_repo, new, old_sensitive);
    diffs.extend(d);
    reasons.extend(r);
    let mut likely_replacement = false;
    let slots: BTreeSet<&String> = old
        .connections
        .keys()
        .chain(new.connections.keys())
        .collect();
    for slot in slots {
        let (a, b) = (old.connections.get(slot), new.connections.get(slot));
        let (sa, sb) = (a.map(source_name), b.map(source_name));
        if sa != sb {
            likely_replacement = true;
            reasons.push(format!(
                "connection {slot} now comes from {} (was {}){}",
                sb.as_deref().unwrap_or("nothing"),
                sa.as_deref().unwrap_or("nothing"),
                b.map(|c| via_text(&c.via)).unwrap_or_default()
            ));
            diffs.push(Diff::ConnectionSource {
                slot: slot.clone(),
                old: sa,
                new: sb,
            });
        } else if let (
            Some(Connection {
                origin: Origin::Import { data: da },
                ..
            }),
            Some(Connection {
                origin: Origin::Import { data: db },
                via,
                ..
            }),
        ) = (a, b)
            && da != db
        {
            reasons.push(format!(
                "the imported data of connection {slot} changed{}",
                via_text(via)
            ));
            diffs.push(Diff::ConnectionData { slot: slot.clone() });
        }
    }
    (diffs, reasons, likely_replacement)
}

/// Field-level params differences and their reasons; values under a path the bundle (old
/// or new, or `old_sensitive`) marks sensitive are not shown.
pub(super) fn param_changes(
    old: &Value,
    new: &Value,
    new_repo: &Repository,
    inst: &Instance,
    old_sensitive: impl FnOnce() -> Vec<Vec<String>>,
) -> (Vec<Diff>, Vec<String>) {
    let mut diffs = Vec::new();
    let mut reasons = Vec::new();
    let mut param_diffs = Vec::new();
    diff_values(&mut Vec::new(), Some(old), Some(new), &mut param_diffs);
    // Only instances whose params differ need the bundles' sensitive fields: most do not.
    let sensitive = if param_diffs.is_empty() {
        BTreeSet::new()
    } else {
        sensitive_params(new_repo, inst)
            .into_iter()
            .chain(old_sensitive())
            .collect::<BTreeSet<_>>()
    };
    for (path, before, after) in param_diffs {
        let secret = sensitive.iter().any(|s| path.starts_with(s));
        reasons.push(format!(
            "params.{} changed in {}",
            path.join("."),
            param_origin(new_repo, inst, &path).unwrap_or_else(|| "the bundle's defaults".into())
        ));
        diffs.push(if secret {
            Diff::Param {
                path,
                old: None,
                new: None,
                sensitive: true,
            }
        } else {
            Diff::Param {
                path,
                old: before,
                new: after,
                sensitive: false,
            }
        });
    }
    (diffs, reasons)
}

/// What a slot takes: `si-staging-vpc.network`, or `an import`.
pub fn source_name(c: &Connection) -> String {
    match &c.origin {
        Origin::Instance { instance, field } => format!("{instance}.{field}"),
        Origin::Import { .. } => "an import".into(),
    }
}

fn via_text(via: &Via) -> String {
    match via {
        Via::Environment(at) => format!(" (remote reference at {at})"),
        Via::Wiring(at) => format!(" (wiring at {at})"),
        Via::Default(at) => format!(" (environment default at {at})"),
    }
}

/// The file that sets `params.<path>` of `inst`: the environment's, else the project's.
fn param_origin(repo: &Repository, inst: &Instance, path: &[String]) -> Option<String> {
    let project = repo.projects.get(inst.project.as_str())?;
    let env = project.environments.get(inst.environment.as_str())?;
    let sets = |node: Option<&Node>| {
        node.is_some_and(|n| {
            let l = n.locate(path);
            l.complete || !l.node.is_map() && l.depth > 0
        })
    };
    if sets(
        env.packages
            .get(inst.package.as_str())
            .and_then(|p| p.params.as_ref()),
    ) {
        return Some(env.file.to_string());
    }
    if sets(
        project
            .packages
            .get(inst.package.as_str())
            .and_then(|p| p.params.as_ref()),
    ) {
        return Some(project.file.to_string());
    }
    None
}

/// Params paths the bundle's schema marks `sensitive: true` (or `$md: {sensitive: true}`).
fn sensitive_params(repo: &Repository, inst: &Instance) -> Vec<Vec<String>> {
    let Some(schema) = repo
        .bundles
        .get(inst.bundle.as_str())
        .and_then(|b| b.params.as_ref())
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    super::load::collect_sensitive(&schema.to_json(), &mut Vec::new(), &mut out);
    out
}

/// Leaf differences between two JSON values; maps recurse, everything else compares whole.
fn diff_values(
    path: &mut Vec<String>,
    a: Option<&Value>,
    b: Option<&Value>,
    out: &mut Vec<(Vec<String>, Option<Value>, Option<Value>)>,
) {
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                path.push(k.clone());
                diff_values(path, x.get(k), y.get(k), out);
                path.pop();
            }
        }
        (a, b) if a != b => out.push((path.clone(), a.cloned(), b.cloned())),
        _ => {}
    }
}

/// Every unchanged instance that depends, transitively, on a changed one, with the path.
fn blast_radius(
    after: &BTreeMap<InstanceId, Instance>,
    changed: &BTreeSet<&InstanceId>,
) -> Vec<Downstream> {
    // consumers[p]: instances taking an artifact of p, with how.
    let mut consumers: HashMap<&InstanceId, Vec<(&InstanceId, String)>> = HashMap::new();
    for inst in after.values() {
        for (slot, c) in &inst.connections {
            if let Origin::Instance { instance, field } = &c.origin {
                let how = match &c.via {
                    Via::Environment(_) => {
                        format!("{slot} (remote reference to {instance}.{field})")
                    }
                    Via::Wiring(_) => format!("{slot} (wiring to {instance}.{field})"),
                    Via::Default(_) => {
                        format!("{slot} (default {} = {instance}.{field})", c.type_name)
                    }
                };
                consumers.entry(instance).or_default().push((&inst.id, how));
            }
        }
    }
    let mut seen: BTreeMap<&InstanceId, Downstream> = BTreeMap::new();
    for start in changed {
        let mut queue: VecDeque<(&InstanceId, Vec<(InstanceId, String)>)> =
            VecDeque::from([(*start, Vec::new())]);
        while let Some((node, path)) = queue.pop_front() {
            for (consumer, how) in consumers.get(node).map(Vec::as_slice).unwrap_or_default() {
                if changed.contains(consumer) || seen.contains_key(consumer) {
                    continue;
                }
                let mut p = path.clone();
                p.push(((*consumer).clone(), how.clone()));
                seen.insert(
                    consumer,
                    Downstream {
                        instance: (*consumer).clone(),
                        path: p.clone(),
                        because_of: (*start).clone(),
                    },
                );
                queue.push_back((consumer, p));
            }
        }
    }
    seen.into_values().collect()
}
