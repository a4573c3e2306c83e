//! The deployed state as the core sees it (docs/deploying.md): what was last deployed per
//! instance ([`Deployed`]), the concrete inputs an instance would be deployed with now
//! ([`Inputs`], [`desired_inputs`]), the order of destroys, and the check of the artifacts
//! a deploy produced.
//!
//! Pure like the rest of the core: the state database is read by `state`, which converts
//! its rows into these values by hand, so renaming a field here changes neither what is
//! stored nor any digest.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::commit::CommitId;
use super::drift::{DriftCheck, DriftStatus};
use super::model::{InstanceId, Repository};
use super::resolve::{Instance, Origin};
use super::schema::{self, SchemaProblem};
use super::sensitive::{self, FieldPath};
use super::time::Timestamp;

/// Everything a deploy of an instance depends on, concretely: connection data is the
/// producing instance's recorded artifact, not a reference to it. Two equal `Inputs`
/// deploy the same thing, so an instance whose inputs are unchanged is not run.
#[derive(Clone, Debug, PartialEq)]
pub struct Inputs {
    pub bundle: String,
    pub version: String,
    pub bundle_digest: String,
    pub params: Value,
    pub connections: BTreeMap<String, Input>,
}

/// One filled slot: where it comes from (`si-staging-vpc.network` or [`IMPORT`]) and its data.
#[derive(Clone, Debug, PartialEq)]
pub struct Input {
    pub source: String,
    /// `None` while the producing instance has not recorded the artifact.
    pub data: Option<Value>,
}

/// The source of a slot filled by an inline import.
pub const IMPORT: &str = "import";

impl Input {
    pub fn is_import(&self) -> bool {
        self.source == IMPORT
    }
}

/// The version of [`Inputs::digest`]'s encoding. Digests are stored with every deployed
/// instance and compared on every plan: a new encoding would redeploy everything, so it
/// gets a new version (and a prefix) instead of replacing this one.
pub const DIGEST_VERSION: u32 = 1;

impl Inputs {
    /// SHA-256 of the version-1 encoding: the JSON text
    /// `{"bundle":…,"version":…,"bundle_digest":…,"params":…,"connections":{<slot>:{"source":…,"data":…}}}`,
    /// compact, with the keys of `params` and of connection data sorted and slots sorted.
    /// Written out here by hand, so no Rust name takes part in it.
    pub fn digest(&self) -> String {
        let mut text = String::new();
        let json = |v: &Value| serde_json::to_string(v).expect("a JSON value always serialises");
        let string = |s: &str| json(&Value::String(s.to_string()));
        text.push_str("{\"bundle\":");
        text.push_str(&string(&self.bundle));
        text.push_str(",\"version\":");
        text.push_str(&string(&self.version));
        text.push_str(",\"bundle_digest\":");
        text.push_str(&string(&self.bundle_digest));
        text.push_str(",\"params\":");
        text.push_str(&json(&self.params));
        text.push_str(",\"connections\":{");
        for (i, (slot, input)) in self.connections.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.push_str(&string(slot));
            text.push_str(":{\"source\":");
            text.push_str(&string(&input.source));
            text.push_str(",\"data\":");
            text.push_str(&input.data.as_ref().map_or_else(|| "null".into(), json));
            text.push('}');
        }
        text.push_str("}}");
        hex::encode(Sha256::digest(text.as_bytes()))
    }

    /// The instances whose artifacts these inputs take.
    pub fn producers(&self) -> BTreeSet<InstanceId> {
        self.connections
            .values()
            .filter_map(|i| i.source.split_once('.'))
            .map(|(inst, _)| InstanceId(inst.to_string().into()))
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

/// Where an instance stands in the state database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    pub const ALL: [Status; 6] = [
        Status::Deployed,
        Status::Deploying,
        Status::Destroying,
        Status::Failed,
        Status::DestroyFailed,
        Status::Interrupted,
    ];

    /// As stored and printed.
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
        Status::ALL.into_iter().find(|st| st.name() == s)
    }
}

/// One instance's record in the state database.
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
    pub commit: CommitId,
    /// The environment's attributes, for deploy windows of a destroy.
    pub attributes: BTreeMap<String, String>,
    /// Paths (`params/password`, `artifacts/database/password`) never shown.
    pub sensitive: Vec<FieldPath>,
    pub updated_at: Timestamp,
    /// The last drift check since the last deploy; `None` when not checked since.
    pub drift: Option<DriftCheck>,
}

impl Deployed {
    /// The record as `capstan state show` and the web view show it: sensitive params,
    /// connection data and artifact fields replaced by `(sensitive)`.
    pub fn shown(&self) -> Value {
        let d = self;
        let mut params = d.inputs.params.clone();
        sensitive::redact("params", &mut params, &d.sensitive);
        let mut connections: Value = d
            .inputs
            .connections
            .iter()
            .map(|(slot, i)| (slot.clone(), json!({"source": i.source, "data": i.data})))
            .collect::<serde_json::Map<_, _>>()
            .into();
        sensitive::redact("connections", &mut connections, &d.sensitive);
        let mut artifacts = serde_json::to_value(&d.artifacts).unwrap_or_default();
        sensitive::redact("artifacts", &mut artifacts, &d.sensitive);
        json!({
            "instance": d.instance.as_str(),
            "status": d.status.name(),
            "project": d.project,
            "environment": d.environment,
            "package": d.package,
            "bundle": d.inputs.bundle,
            "version": d.inputs.version,
            "commit": d.commit,
            "updated_at": d.updated_at.to_string(),
            "digest": d.digest,
            "params": params,
            "connections": connections,
            "artifacts": artifacts,
            "drift": d.drift.as_ref().map(|c| json!({
                "status": c.status.name(),
                "since": c.since.to_string(),
                "summary": c.summary,
                "checked_at": c.checked_at.to_string(),
            })),
        })
    }

    /// Whether `desired` would change nothing.
    pub fn is_current(&self, desired: &Inputs) -> bool {
        self.status == Status::Deployed && self.digest == desired.digest()
    }

    /// The last check found it drifted.
    pub fn drifted(&self) -> Option<&DriftCheck> {
        self.drift
            .as_ref()
            .filter(|d| d.status == DriftStatus::Drifted)
    }
}

/// Every secret value an instance's step may print: its sensitive params and connection
/// data in `inputs`, and its sensitive `artifacts`, at the instance's sensitive paths.
pub fn secrets(
    inputs: &Inputs,
    artifacts: &BTreeMap<String, Value>,
    paths: &[FieldPath],
) -> Vec<String> {
    let mut out = Vec::new();
    sensitive::secrets_in("params", &inputs.params, paths, &mut out);
    // Shaped like the sensitive paths: `connections/<slot>/data/...`.
    let connections: serde_json::Map<String, Value> = inputs
        .connections
        .iter()
        .map(|(k, i)| (k.clone(), serde_json::json!({ "data": i.data })))
        .collect();
    sensitive::secrets_in("connections", &Value::Object(connections), paths, &mut out);
    let artifacts = serde_json::to_value(artifacts).unwrap_or_default();
    sensitive::secrets_in("artifacts", &artifacts, paths, &mut out);
    out
}

/// The secrets of a record about to be replaced (its inputs and artifacts): a provisioner
/// may print the old values beside the new ones.
pub fn previous_secrets(record: Option<&Deployed>) -> Vec<String> {
    record.map_or_else(Vec::new, |d| secrets(&d.inputs, &d.artifacts, &d.sensitive))
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
                    source: IMPORT.into(),
                    data: Some(data.clone()),
                },
            };
            (slot.clone(), input)
        })
        .collect();
    Inputs {
        bundle: inst.bundle.to_string(),
        version: inst.bundle_version.to_string(),
        bundle_digest: inst.bundle_digest.to_string(),
        params: Value::clone(&inst.params),
        connections,
    }
}

/// The recorded instances that `desired` no longer has, dependants first, by the
/// dependencies recorded with each instance.
pub fn destroy_order(
    deployed: &BTreeMap<InstanceId, Deployed>,
    desired: &BTreeMap<InstanceId, Arc<Instance>>,
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

/// The recorded instances, other than `id`, whose inputs take `id`'s artifacts.
pub fn users_of(deployed: &BTreeMap<InstanceId, Deployed>, id: &InstanceId) -> Vec<InstanceId> {
    deployed
        .values()
        .filter(|d| d.instance != *id && d.inputs.producers().contains(id))
        .map(|d| d.instance.clone())
        .collect()
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
                let validator = match schema::compile(&t.schema, t.format) {
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
                        SchemaProblem::Duration(_) => "not a duration".to_string(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inputs() -> Inputs {
        Inputs {
            bundle: "aws-vpc".into(),
            version: "1.2.0".into(),
            bundle_digest: "b0".into(),
            params: json!({"region": "us-east-1", "cidr": "10.10.0.0/16", "high_availability": true, "nested": {"z": 1.5, "a": ["é", null]}}),
            connections: BTreeMap::from([
                (
                    "credentials".to_string(),
                    Input {
                        source: IMPORT.into(),
                        data: Some(json!({"arn": "arn:aws:iam::111111111111:role/x"})),
                    },
                ),
                (
                    "network".to_string(),
                    Input {
                        source: "si-staging-vpc.network".into(),
                        data: None,
                    },
                ),
            ]),
        }
    }

    /// The digest is stored with every deployed instance: this value must never change
    /// for these inputs, whatever happens to the Rust types. (A new encoding is a new
    /// `DIGEST_VERSION`.)
    #[test]
    fn the_digest_encoding_is_pinned() {
        assert_eq!(DIGEST_VERSION, 1);
        assert_eq!(
            inputs().digest(),
            "6f26f720df590927f3b0ebf2f2731f0eaa9c155df277f1395ef172bd52b0e142"
        );
    }

    /// Version 1 is what capstan stored before the encoding was written out by hand: the
    /// serde serialisation of a struct with these fields in this order.
    #[test]
    fn version_one_is_the_encoding_digests_were_stored_with() {
        #[derive(serde::Serialize)]
        struct Before<'a> {
            bundle: &'a str,
            version: &'a str,
            bundle_digest: &'a str,
            params: &'a Value,
            connections: BTreeMap<&'a str, BeforeInput<'a>>,
        }
        #[derive(serde::Serialize)]
        struct BeforeInput<'a> {
            source: &'a str,
            data: &'a Option<Value>,
        }
        let i = inputs();
        let before = Before {
            bundle: &i.bundle,
            version: &i.version,
            bundle_digest: &i.bundle_digest,
            params: &i.params,
            connections: i
                .connections
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str(),
                        BeforeInput {
                            source: &v.source,
                            data: &v.data,
                        },
                    )
                })
                .collect(),
        };
        let text = serde_json::to_string(&before).expect("serialises");
        assert_eq!(hex::encode(Sha256::digest(text.as_bytes())), i.digest());
    }
}
