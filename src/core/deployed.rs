//! The deployed state as the core sees it (DESIGN sections 7 and 10): what was last
//! deployed per instance, the concrete inputs an instance would be deployed with now, and
//! the plan of a desired state against the deployed one.
//!
//! Pure like the rest of the core: the database is read elsewhere and handed in as
//! [`Deployed`] records.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::Checked;
use super::model::{InstanceId, Repository};
use super::plan::{Action, Change, Diff, Plan};
use super::resolve::{Instance, Origin};
use super::schema::{self, SchemaProblem};

/// Everything a deploy of an instance depends on, concretely: connection data is the
/// producing instance's recorded artifact, not a reference to it. Two equal `Inputs`
/// deploy the same thing, so an instance whose inputs are unchanged is not run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Inputs {
    pub bundle: String,
    pub version: String,
    pub bundle_digest: String,
    pub params: Value,
    pub connections: BTreeMap<String, Input>,
}

/// One filled slot: where it comes from (`si-staging-vpc.network` or `import`) and its data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Input {
    pub source: String,
    /// `None` while the producing instance has not recorded the artifact.
    pub data: Option<Value>,
}

impl Inputs {
    /// SHA-256 of the canonical JSON (object keys sorted).
    pub fn digest(&self) -> String {
        let text = serde_json::to_string(self).unwrap_or_default();
        hex(&Sha256::digest(text.as_bytes()))
    }

    /// The instances whose artifacts these inputs take.
    pub fn producers(&self) -> BTreeSet<InstanceId> {
        self.connections
            .values()
            .filter_map(|i| i.source.split_once('.'))
            .map(|(inst, _)| InstanceId(inst.to_string()))
            .collect()
    }

    /// `{slot: data}` as written to `connections.json`.
    pub fn connection_data(&self) -> BTreeMap<&str, &Value> {
        self.connections
            .iter()
            .filter_map(|(slot, i)| i.data.as_ref().map(|d| (slot.as_str(), d)))
            .collect()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where an instance stands in the state database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Its last deploy succeeded with the recorded inputs.
    Deployed,
    /// A deploy or destroy is running (or was, when the process died).
    Deploying,
    Destroying,
    /// The last deploy failed; what exists is unknown, so it is run again.
    Failed,
    DestroyFailed,
    /// The process died during its deploy or destroy (marked at the next start).
    Interrupted,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Deployed => "deployed",
            Status::Deploying => "deploying",
            Status::Destroying => "destroying",
            Status::Failed => "failed",
            Status::DestroyFailed => "destroy-failed",
            Status::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        [
            Status::Deployed,
            Status::Deploying,
            Status::Destroying,
            Status::Failed,
            Status::DestroyFailed,
            Status::Interrupted,
        ]
        .into_iter()
        .find(|st| st.name() == s)
    }
}

/// One instance's row in the state database.
#[derive(Clone, Debug, PartialEq)]
pub struct Deployed {
    pub instance: InstanceId,
    pub project: String,
    pub environment: String,
    pub package: String,
    /// The inputs of the last deploy (for a create that never finished: of the attempt).
    pub inputs: Inputs,
    /// Of `inputs` when deployed; empty when the instance never deployed successfully.
    pub digest: String,
    pub artifacts: BTreeMap<String, Value>,
    pub status: Status,
    /// The commit last deployed (or attempted); a destroy reads the bundle from here.
    pub commit: String,
    /// The environment's attributes, for deploy windows of a destroy.
    pub attributes: BTreeMap<String, String>,
    /// JSON paths (`params/password`, `artifacts/database/password`) never shown.
    pub sensitive: Vec<Vec<String>>,
    pub updated_at: i64,
}

impl Deployed {
    /// Whether `desired` would change nothing.
    pub fn is_current(&self, desired: &Inputs) -> bool {
        self.status == Status::Deployed && self.digest == desired.digest()
    }
}

/// The concrete inputs of `inst` given what is deployed now.
pub fn desired_inputs(inst: &Instance, deployed: &BTreeMap<InstanceId, Deployed>) -> Inputs {
    let connections = inst
        .connections
        .iter()
        .map(|(slot, c)| {
            let input = match &c.origin {
                Origin::Instance { instance, field } => Input {
                    source: format!("{instance}.{field}"),
                    // The last recorded artifacts, even of an instance about to run again:
                    // its consumers are compared with what they were deployed against.
                    data: deployed
                        .get(instance)
                        .and_then(|d| d.artifacts.get(field))
                        .cloned(),
                },
                Origin::Import { data } => Input {
                    source: "import".into(),
                    data: Some(data.clone()),
                },
            };
            (slot.clone(), input)
        })
        .collect();
    Inputs {
        bundle: inst.bundle.to_string(),
        version: inst.bundle_version.clone(),
        bundle_digest: inst.bundle_digest.clone(),
        params: inst.params.clone(),
        connections,
    }
}

/// Paths under `params`, `connections/<slot>/data` and `artifacts/<field>` that the
/// bundle's params schema or the artifact types mark sensitive.
pub fn sensitive_paths(repo: &Repository, inst: &Instance) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let Some(bundle) = repo.bundles.get(inst.bundle.as_str()) else {
        return out;
    };
    if let Some(params) = &bundle.params {
        let mut found = Vec::new();
        super::load::collect_sensitive(&params.to_json(), &mut Vec::new(), &mut found);
        out.extend(found.into_iter().map(|p| prefixed(&["params"], p)));
    }
    let of_type = |t: &str| {
        repo.artifact_types
            .get(t)
            .map(|t| t.sensitive.clone())
            .unwrap_or_default()
    };
    for (slot, s) in &bundle.connections {
        for p in of_type(s.type_name.as_str()) {
            out.push(prefixed(&["connections", slot, "data"], p));
        }
    }
    for (field, s) in &bundle.artifacts {
        for p in of_type(s.type_name.as_str()) {
            out.push(prefixed(&["artifacts", field], p));
        }
    }
    out
}

fn prefixed(prefix: &[&str], rest: Vec<String>) -> Vec<String> {
    prefix.iter().map(|s| s.to_string()).chain(rest).collect()
}

/// Replaces every value at a sensitive path (`params/...`, `artifacts/...`, as from
/// [`sensitive_paths`]) below `root` (named by `top`, e.g. `artifacts`) with `(sensitive)`.
pub fn redact(top: &str, value: &mut Value, sensitive: &[Vec<String>]) {
    for path in sensitive {
        if path.first().map(String::as_str) != Some(top) {
            continue;
        }
        let pointer: String = path[1..]
            .iter()
            .map(|k| format!("/{}", k.replace('~', "~0").replace('/', "~1")))
            .collect();
        if let Some(node) = value.pointer_mut(&pointer) {
            *node = Value::String("(sensitive)".into());
        }
    }
}

/// Every string at a sensitive path of `value` (for scrubbing logs).
pub fn secrets_in(top: &str, value: &Value, sensitive: &[Vec<String>], out: &mut Vec<String>) {
    for path in sensitive {
        let mut rest = path.iter();
        if rest.next().map(String::as_str) != Some(top) {
            continue;
        }
        let mut node = Some(value);
        for key in rest {
            node = node.and_then(|n| n.get(key.as_str()));
        }
        collect_strings(node, out);
    }
}

fn collect_strings(value: Option<&Value>, out: &mut Vec<String>) {
    match value {
        Some(Value::String(s)) => out.push(s.clone()),
        Some(Value::Number(n)) => out.push(n.to_string()),
        Some(Value::Array(items)) => items.iter().for_each(|v| collect_strings(Some(v), out)),
        Some(Value::Object(map)) => map.values().for_each(|v| collect_strings(Some(v), out)),
        _ => {}
    }
}

/// Checks the artifacts a deploy produced against its bundle: every required field is
/// there, no undeclared one is, and each matches its artifact type. Messages never quote
/// a value (it may be a secret).
pub fn check_artifacts(
    repo: &Repository,
    bundle: &str,
    artifacts: &BTreeMap<String, Value>,
) -> Result<(), Vec<String>> {
    let Some(bundle) = repo.bundles.get(bundle) else {
        return Err(vec![format!("bundle {bundle} is not in this revision")]);
    };
    let mut problems = Vec::new();
    for (field, slot) in &bundle.artifacts {
        match artifacts.get(field) {
            None if slot.required => problems.push(format!(
                "artifact {field} ({}) is required but the deploy did not write it",
                slot.type_name
            )),
            None => {}
            Some(data) => {
                let Some(t) = repo.artifact_types.get(slot.type_name.as_str()) else {
                    continue;
                };
                let validator = match schema::compile(&t.schema, jsonschema::Draft::Draft202012) {
                    Ok(v) => v,
                    Err(e) => {
                        problems.push(format!("artifact type {} is invalid: {e}", t.name));
                        continue;
                    }
                };
                for e in schema::errors(&validator, data) {
                    let at = std::iter::once(field.as_str())
                        .chain(e.path.iter().map(String::as_str))
                        .collect::<Vec<_>>()
                        .join(".");
                    let what = match e.problem {
                        SchemaProblem::UnknownKey(k) => format!("unknown field {k}"),
                        SchemaProblem::MissingKey(k) => format!("missing field {k}"),
                        SchemaProblem::BadKey(k, rule) => format!("field {k}: {rule}"),
                        SchemaProblem::Other(text) => text,
                    };
                    problems.push(format!(
                        "artifact {at} does not match type {}: {what}",
                        t.name
                    ));
                }
            }
        }
    }
    for field in artifacts.keys() {
        if !bundle.artifacts.contains_key(field) {
            problems.push(format!(
                "the deploy wrote artifact {field}, which bundle {} does not declare",
                bundle.name
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Compares the desired state of `new` with what is deployed (DESIGN section 7): an
/// instance is created when it has no record, updated when its concrete inputs differ
/// or its last deploy did not succeed, destroyed when it is recorded but not desired.
pub fn plan(deployed: &BTreeMap<InstanceId, Deployed>, new: &Checked) -> Plan {
    let after = &new.resolved.instances;
    let mut changes = Vec::new();
    let mut unchanged = 0;
    for (id, inst) in after {
        let desired = desired_inputs(inst, deployed);
        let Some(record) = deployed.get(id) else {
            changes.push(Change {
                instance: id.clone(),
                action: Action::Create,
                reasons: vec!["not deployed yet".into()],
                diffs: Vec::new(),
                likely_replacement: false,
            });
            continue;
        };
        if record.is_current(&desired) {
            unchanged += 1;
            continue;
        }
        let (diffs, mut reasons, likely_replacement) =
            compare(record, &desired, &new.repository, inst);
        if record.status != Status::Deployed {
            reasons.insert(
                0,
                format!(
                    "its last deploy is {} (at {})",
                    record.status.name(),
                    short(&record.commit)
                ),
            );
        } else if diffs.is_empty() {
            // Every field of `Inputs` is compared above; this is only reachable with a
            // record whose digest was computed differently (e.g. by another capstan).
            reasons.push("its recorded inputs differ".into());
        }
        changes.push(Change {
            instance: id.clone(),
            action: if record.digest.is_empty() {
                Action::Create
            } else {
                Action::Update
            },
            reasons,
            diffs,
            likely_replacement,
        });
    }
    for (id, record) in deployed {
        if !after.contains_key(id) {
            changes.push(Change {
                instance: id.clone(),
                action: Action::Destroy,
                reasons: vec![super::plan::destroyed_because(
                    &record.project,
                    &record.environment,
                    &record.package,
                    id,
                    new,
                )],
                diffs: Vec::new(),
                likely_replacement: false,
            });
        }
    }
    changes.sort_by(|a, b| a.instance.cmp(&b.instance));
    let destroy_order = destroy_order(deployed, after);
    super::plan::finish(
        changes,
        unchanged,
        after,
        &new.resolved.waves,
        destroy_order,
    )
}

fn short(sha: &str) -> &str {
    sha.get(..10).unwrap_or(sha)
}

/// The recorded instances that `desired` no longer has, dependants first, by the
/// dependencies recorded with each instance.
pub fn destroy_order(
    deployed: &BTreeMap<InstanceId, Deployed>,
    desired: &BTreeMap<InstanceId, Instance>,
) -> Vec<InstanceId> {
    let mut pending: BTreeSet<&InstanceId> = deployed
        .keys()
        .filter(|id| !desired.contains_key(*id))
        .collect();
    let mut order = Vec::new();
    while !pending.is_empty() {
        // Those no other pending destroy takes artifacts from.
        let ready: Vec<&InstanceId> = pending
            .iter()
            .filter(|id| {
                !pending.iter().any(|other| {
                    other != *id
                        && deployed
                            .get(*other)
                            .is_some_and(|d| d.inputs.producers().contains(**id))
                })
            })
            .copied()
            .collect();
        // A recorded cycle cannot happen (each revision was acyclic); never loop on one.
        let ready = if ready.is_empty() {
            pending.iter().copied().collect()
        } else {
            ready
        };
        for id in ready {
            pending.remove(id);
            order.push(id.clone());
        }
    }
    order
}

/// Why the recorded inputs differ from the desired ones, field by field.
fn compare(
    record: &Deployed,
    desired: &Inputs,
    repo: &Repository,
    inst: &Instance,
) -> (Vec<Diff>, Vec<String>, bool) {
    let old = &record.inputs;
    let mut diffs = Vec::new();
    let mut reasons = Vec::new();
    if old.bundle != desired.bundle || old.version != desired.version {
        diffs.push(Diff::BundleVersion {
            old: format!("{}@{}", old.bundle, old.version),
            new: format!("{}@{}", desired.bundle, desired.version),
        });
        reasons.push(format!(
            "bundle {} changed from {} to {} since {}",
            desired.bundle,
            old.version,
            desired.version,
            short(&record.commit)
        ));
    } else if old.bundle_digest != desired.bundle_digest {
        diffs.push(Diff::BundleContent);
        reasons.push(format!(
            "the files of bundles/{} changed since {}",
            desired.bundle,
            short(&record.commit)
        ));
    }
    let (param_diffs, param_reasons) =
        super::plan::param_changes(&old.params, &desired.params, repo, inst, || {
            record
                .sensitive
                .iter()
                .filter(|p| p.first().is_some_and(|f| f == "params"))
                .map(|p| p[1..].to_vec())
                .collect()
        });
    diffs.extend(param_diffs);
    reasons.extend(param_reasons);
    let mut likely_replacement = false;
    let slots: BTreeSet<&String> = old
        .connections
        .keys()
        .chain(desired.connections.keys())
        .collect();
    for slot in slots {
        let (a, b) = (old.connections.get(slot), desired.connections.get(slot));
        let (sa, sb) = (a.map(|i| i.source.clone()), b.map(|i| i.source.clone()));
        if sa != sb {
            likely_replacement = true;
            reasons.push(format!(
                "connection {slot} now comes from {} (was {})",
                sb.as_deref().unwrap_or("nothing"),
                sa.as_deref().unwrap_or("nothing"),
            ));
            diffs.push(Diff::ConnectionSource {
                slot: slot.clone(),
                old: sa,
                new: sb,
            });
        } else if a.map(|i| &i.data) != b.map(|i| &i.data) {
            let source = sb.unwrap_or_default();
            reasons.push(if source == "import" {
                format!("the imported data of connection {slot} changed")
            } else if b.is_some_and(|i| i.data.is_none()) {
                format!("connection {slot}: {source} is being deployed again")
            } else {
                format!("connection {slot}: the artifact {source} changed since it was deployed")
            });
            diffs.push(Diff::ConnectionData { slot: slot.clone() });
        }
    }
    (diffs, reasons, likely_replacement)
}
