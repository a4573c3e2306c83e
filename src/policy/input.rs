//! The `input` document policies are evaluated on (version 1, docs/policies.md#the-input-document):
//! the plan as `capstan plan --format json` prints it, the provisioner plans where they
//! ran, the repository model (projects with owners and attributes, environments,
//! packages, bundles, and each changed instance with its params), and, for a pull request,
//! its facts. Sensitive params never enter it: each is replaced by `sha256:<digest>` of its
//! value, so "it changed" is still visible. The moment is a field (`now`), never a clock a
//! policy reads, so one input always gives one decision.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::core::Checked;
use crate::core::plan::Plan;
use crate::core::sensitive;

/// The version of the input document; a change that is not only an addition gets a new one.
pub const VERSION: u32 = 1;

/// A pull request's facts for its policies.
#[derive(Clone, Debug, Default)]
pub struct PullFacts {
    pub number: u64,
    pub author: String,
    pub labels: Vec<String>,
    pub changed_files: Vec<String>,
    /// Who approved the head, and the teams (`@org/team`) capstan found them in.
    pub approvals: Vec<Approval>,
}

#[derive(Clone, Debug, Default)]
pub struct Approval {
    pub user: String,
    pub teams: Vec<String>,
}

/// The plan as `capstan plan --format json` prints it, for [`document`].
pub fn plan_json(plan: &Plan) -> Value {
    serde_json::from_str(&crate::core::render::plan::json(plan)).unwrap_or(Value::Null)
}

/// The input document of a plan (`plan`: its JSON, from [`plan_json`] or a file `capstan
/// plan --format json` wrote) of `checked` at `now` (RFC 3339), with the provisioner plans'
/// `resources` (as `capstan plan --deep --format json` gives them, or `[]`) and a pull
/// request's facts.
pub fn document(
    plan: Value,
    checked: &Checked,
    resources: Value,
    pull: Option<&PullFacts>,
    now: &str,
) -> Value {
    let repository = repository(&plan, checked);
    json!({
        "version": VERSION,
        "now": now,
        "plan": plan,
        "resources": resources,
        "repository": repository,
        "pull_request": pull.map(|p| json!({
            "number": p.number,
            "author": p.author,
            "labels": p.labels,
            "changed_files": p.changed_files,
            "approvals": p.approvals.iter().map(|a| json!({"user": a.user, "teams": a.teams})).collect::<Vec<_>>(),
        })),
    })
}

/// Projects, environments, packages and bundles, and the instances the plan changes
/// (with their params, sensitive ones digested, and where they are configured).
fn repository(plan: &Value, checked: &Checked) -> Value {
    let repo = &checked.repository;
    let projects: Map<String, Value> = repo
        .projects
        .values()
        .map(|p| {
            (
                p.id.to_string(),
                json!({
                    "owners": p.owners,
                    "attributes": p.attributes,
                    "file": p.file.as_ref(),
                    "packages": p.packages.iter().map(|(name, pkg)| (name.to_string(), json!({"bundle": pkg.bundle.as_ref().map(|(b, _)| b.to_string())}))).collect::<Map<_, _>>(),
                    "environments": p.environments.iter().map(|(id, e)| (id.to_string(), json!({"attributes": e.attributes, "file": e.file.as_ref()}))).collect::<Map<_, _>>(),
                }),
            )
        })
        .collect();
    let bundles: Map<String, Value> = repo
        .bundles
        .values()
        .map(|b| {
            (
                b.name.to_string(),
                json!({
                    "version": b.version.as_ref(),
                    "provisioners": b.steps.iter().map(|s| s.provisioner.name()).collect::<Vec<_>>(),
                }),
            )
        })
        .collect();
    let changed = plan["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["instance"].as_str());
    let instances: Map<String, Value> = changed
        .filter_map(|id| {
            let environment_attributes = |project: &str, environment: &str| {
                repo.projects
                    .get(project)
                    .and_then(|p| p.environments.get(environment))
                    .map(|e| json!(e.attributes))
                    .unwrap_or(json!({}))
            };
            let Some(inst) = checked
                .resolved
                .instances
                .get(&crate::core::model::InstanceId(id.into()))
            else {
                // Destroyed: no longer declared. Project and environment ids have no `-`,
                // so the id says which they were; the environment may still be declared.
                let mut parts = id.splitn(3, '-');
                let (project, environment, package) = (parts.next()?, parts.next()?, parts.next()?);
                return Some((
                    id.to_string(),
                    json!({
                        "project": project,
                        "environment": environment,
                        "environment_attributes": environment_attributes(project, environment),
                        "package": package,
                        "destroyed": true,
                    }),
                ));
            };
            let mut params = Value::clone(&inst.params);
            if let Some(bundle) = repo.bundles.get(inst.bundle.as_str()) {
                sensitive::replace("params", &mut params, &bundle.sensitive, digest);
            }
            Some((
                id.to_string(),
                json!({
                    "project": inst.project.as_str(),
                    "environment": inst.environment.as_str(),
                    "environment_attributes": environment_attributes(inst.project.as_str(), inst.environment.as_str()),
                    "package": inst.package.as_str(),
                    "bundle": inst.bundle.as_str(),
                    "version": inst.bundle_version.as_ref(),
                    "params": params,
                    "file": inst.at.file.as_ref(),
                    "line": inst.at.pos.line,
                    "destroyed": false,
                }),
            ))
        })
        .collect();
    json!({
        "owners": repo.config.owners,
        "projects": projects,
        "bundles": bundles,
        "instances": instances,
    })
}

/// `sha256:<hex>` of a value's JSON text.
fn digest(value: &Value) -> Value {
    let text = serde_json::to_string(value).unwrap_or_default();
    Value::String(format!(
        "sha256:{}",
        hex::encode(Sha256::digest(text.as_bytes()))
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sensitive_param_enters_only_as_its_digest() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("example-repo");
        let tree = crate::source::read_dir(&root).unwrap().edited(
            "bundles/aws-aurora-postgresql/bundle.yaml",
            "instance_class: {type: string, default: db.t4g.medium}",
            "instance_class: {type: string, default: db.t4g.medium, sensitive: true}",
        );
        let checked = crate::core::check(&tree);
        assert!(!checked.has_errors());
        let plan = crate::core::plan::against_deployed(
            &Default::default(),
            &checked,
            &crate::core::run::Scope::Branch {
                previews: Default::default(),
            },
            &crate::core::drift::Heal::All,
        );
        let input = document(plan_json(&plan), &checked, json!([]), None, "now");
        let class =
            &input["repository"]["instances"]["ecomm-staging-db"]["params"]["instance_class"];
        let expected = digest(&json!("db.t4g.small"));
        assert_eq!(class, &expected);
        assert!(!input.to_string().contains("db.t4g.small"));
    }
}
