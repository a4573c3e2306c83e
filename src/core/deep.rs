//! Provisioner plans (docs/provisioner-plans.md), the decisions: which instances of a plan
//! get one and with which inputs ([`requests`]), whether a request may run the code it
//! would run ([`Trust`]), what a finished one says ([`Outcome`]), and when one already made
//! can be shown again instead of running ([`Request::key`]). Running them is
//! `deploy::deep`'s; showing them is `render::resources`'.

use std::collections::{BTreeMap, BTreeSet};

use super::Checked;
use super::deployed::{self, Deployed, Inputs};
use super::model::InstanceId;
use super::plan::{Action, Plan};
use super::resources::ResourcePlan;
use super::run::Verb;
use super::sensitive::FieldPath;

/// One instance's provisioner plan to make.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub instance: InstanceId,
    /// `Deploy` for a create or an update, `Destroy` for a destroy (`plan -destroy`).
    pub verb: Verb,
    pub project: String,
    pub environment: String,
    pub package: String,
    pub bundle: String,
    /// The head's params and wiring, with the producers' recorded artifacts; for a destroy,
    /// the inputs it was deployed with.
    pub inputs: Inputs,
    /// Producers the same plan creates or changes: the instance's inputs change after
    /// they deploy. Their recorded artifacts (where there are any) are used meanwhile;
    /// none is ever made up.
    pub pending: Vec<InstanceId>,
    pub sensitive: Vec<FieldPath>,
    /// Where the bundle's code comes from, and so whether it may run.
    pub trust: Trust,
}

/// Whose code a provisioner plan would run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trust {
    /// The bundle's files are as merged on the deploy branch (or, for a destroy, as last
    /// deployed): only the pull request's data reaches them. Runs for every pull request.
    Merged,
    /// The pull request changes the bundle's files: runs only where a preview may.
    Changed,
}

impl Request {
    /// What a provisioner plan depends on: the bundle's files and the inputs (both in the
    /// inputs' digest), the verb, and what is deployed (`deployed`: the Terraform state's
    /// lineage and serial, or the exec instance's recorded inputs, as `deploy::deep` reads
    /// them). Equal keys give equal plans, so a plan is reused while its key stands.
    pub fn key(&self, deployed: &str) -> String {
        format!(
            "{}|{}|{}|{}",
            self.verb.name(),
            self.instance,
            self.inputs.digest(),
            deployed
        )
    }
}

/// The provisioner plans `plan` calls for: one per instance it creates, updates or
/// destroys, in the plan's order. Creates and updates take their inputs from `head` and the
/// producers' recorded artifacts in `state`; a destroy of an instance never deployed has
/// nothing to plan. A bundle whose files differ from `merged`'s (the deploy branch, e.g.
/// the merge base) is [`Trust::Changed`]; a destroy runs the code it was deployed with.
pub fn requests(
    plan: &Plan,
    head: &Checked,
    merged: &Checked,
    state: &BTreeMap<InstanceId, Deployed>,
) -> Vec<Request> {
    let changing: BTreeSet<&InstanceId> = plan
        .changes
        .iter()
        .filter(|c| c.action != Action::Destroy)
        .map(|c| &c.instance)
        .collect();
    let mut out = Vec::new();
    for change in &plan.changes {
        let id = &change.instance;
        if change.action == Action::Destroy {
            if let Some(record) = state.get(id) {
                out.push(Request {
                    instance: id.clone(),
                    verb: Verb::Destroy,
                    project: record.project.clone(),
                    environment: record.environment.clone(),
                    package: record.package.clone(),
                    bundle: record.inputs.bundle.clone(),
                    inputs: record.inputs.clone(),
                    pending: Vec::new(),
                    sensitive: record.sensitive.clone(),
                    trust: Trust::Merged,
                });
            }
            continue;
        }
        let Some(inst) = head.resolved.instances.get(id) else {
            continue;
        };
        let Some(bundle) = head.repository.bundles.get(inst.bundle.as_str()) else {
            continue;
        };
        let inputs = deployed::desired_inputs(inst, state);
        let pending = inputs
            .producers()
            .into_iter()
            .filter(|p| changing.contains(p))
            .collect();
        let trust = match merged.repository.bundles.get(inst.bundle.as_str()) {
            Some(old) if old.digest == bundle.digest => Trust::Merged,
            _ => Trust::Changed,
        };
        out.push(Request {
            instance: id.clone(),
            verb: Verb::Deploy,
            project: inst.project.to_string(),
            environment: inst.environment.to_string(),
            package: inst.package.to_string(),
            bundle: inst.bundle.to_string(),
            inputs,
            pending,
            sensitive: bundle.sensitive.clone(),
            trust,
        });
    }
    out
}

/// One instance's provisioner plan, made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished {
    pub instance: InstanceId,
    pub verb: Verb,
    pub pending: Vec<InstanceId>,
    pub outcome: Outcome,
}

/// What one instance's provisioner plan found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Its resource changes; `unplanned` names its steps that have no plan mode.
    Planned {
        resources: ResourcePlan,
        unplanned: Vec<String>,
    },
    /// No step of the bundle has a plan mode (an exec step without `plan:`).
    NotPlannable { why: String },
    /// Not run: the pull request changes the bundle's code and may not run it.
    NotRun { why: String },
    /// The provisioner failed: what it said last, redacted.
    Failed { error: String, lines: Vec<String> },
}

impl Outcome {
    /// The label of `capstan_provisioner_plans_total{result}`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Planned { .. } => "planned",
            Outcome::NotPlannable { .. } => "not_plannable",
            Outcome::NotRun { .. } => "not_run",
            Outcome::Failed { .. } => "failed",
        }
    }

    pub fn resources(&self) -> Option<&ResourcePlan> {
        match self {
            Outcome::Planned { resources, .. } => Some(resources),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::source::SourceTree;

    fn example() -> SourceTree {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("example-repo");
        crate::source::read_dir(&root).expect("the example reads")
    }

    /// Everything the base has, deployed, with made-up artifacts.
    fn deployed_everything(base: &Checked) -> BTreeMap<InstanceId, Deployed> {
        let mut state = BTreeMap::new();
        for wave in &base.resolved.waves {
            for id in wave {
                let inst = &base.resolved.instances[id];
                let inputs = deployed::desired_inputs(inst, &state);
                let bundle = &base.repository.bundles[inst.bundle.as_str()];
                let artifacts = bundle
                    .artifacts
                    .keys()
                    .map(|k| (k.clone(), serde_json::json!({"recorded": id.as_str()})))
                    .collect();
                state.insert(
                    id.clone(),
                    Deployed {
                        instance: id.clone(),
                        project: inst.project.to_string(),
                        environment: inst.environment.to_string(),
                        package: inst.package.to_string(),
                        digest: inputs.digest(),
                        inputs,
                        artifacts,
                        status: deployed::Status::Deployed,
                        commit: "c0ffee".into(),
                        attributes: BTreeMap::new(),
                        sensitive: Vec::new(),
                        updated_at: crate::core::time::Timestamp::from_secs(0),
                        drift: None,
                    },
                );
            }
        }
        state
    }

    #[test]
    fn a_consumer_of_a_changed_producer_waits_for_it_and_nothing_is_invented() {
        let tree = example();
        let base = crate::core::check(&tree);
        let state = deployed_everything(&base);
        // The shared cluster changes: its consumers in other projects are not in the plan
        // (their params did not change), but the cluster's own plan runs.
        let head = crate::core::check(&tree.edited(
            "projects/si/project.yaml",
            "high_availability: true",
            "high_availability: false",
        ));
        let plan = crate::core::plan::plan(&base, &head);
        let requests = requests(&plan, &head, &base, &state);
        assert!(!requests.is_empty());
        assert!(requests.iter().all(|r| r.trust == Trust::Merged));
        assert!(requests.iter().all(|r| r.verb == Verb::Deploy));
        // Inputs are the head's, with recorded artifacts as they are.
        for r in &requests {
            for input in r.inputs.connections.values() {
                if !input.is_import() {
                    let producer = input.source.split('.').next().unwrap();
                    assert_eq!(
                        input.data,
                        Some(serde_json::json!({"recorded": producer})),
                        "{}",
                        r.instance
                    );
                }
            }
        }
    }

    #[test]
    fn a_new_producer_and_its_consumer_marked_and_a_changed_bundle_is_not_merged_code() {
        let tree = example();
        let base = crate::core::check(&tree);
        let head_tree = tree.edited(
            "bundles/aws-aurora-postgresql/src/deploy.sh",
            "\n",
            "\n# changed\n",
        );
        let head = crate::core::check(&head_tree);
        assert!(!head.has_errors());
        // Nothing is deployed: every instance is created, and consumers wait for producers.
        let plan = crate::core::plan::against_deployed(
            &BTreeMap::new(),
            &head,
            &crate::core::run::Scope::Branch {
                previews: Default::default(),
            },
            &crate::core::drift::Heal::All,
        );
        let requests = requests(&plan, &head, &base, &BTreeMap::new());
        let consumer = requests
            .iter()
            .find(|r| !r.inputs.producers().is_empty())
            .expect("some instance takes artifacts");
        assert_eq!(
            consumer.pending,
            consumer.inputs.producers().into_iter().collect::<Vec<_>>()
        );
        assert!(
            consumer
                .inputs
                .connections
                .values()
                .filter(|i| !i.is_import())
                .all(|i| i.data.is_none()),
            "no artifact is invented for a producer that has none"
        );
        let (changed, merged): (Vec<&Request>, Vec<&Request>) = requests
            .iter()
            .partition(|r| r.bundle == "aws-aurora-postgresql");
        assert!(!changed.is_empty() && !merged.is_empty());
        assert!(changed.iter().all(|r| r.trust == Trust::Changed));
        assert!(merged.iter().all(|r| r.trust == Trust::Merged));
    }

    #[test]
    fn keys_change_with_inputs_and_deployed_state_only() {
        let tree = example();
        let base = crate::core::check(&tree);
        let state = deployed_everything(&base);
        let plan = crate::core::plan::against_deployed(
            &BTreeMap::new(),
            &base,
            &crate::core::run::Scope::Branch {
                previews: Default::default(),
            },
            &crate::core::drift::Heal::All,
        );
        let a = requests(&plan, &base, &base, &state);
        let b = requests(&plan, &base, &base, &state);
        assert_eq!(a[0].key("serial 3"), b[0].key("serial 3"));
        assert_ne!(a[0].key("serial 3"), a[0].key("serial 4"));
        assert_ne!(a[0].key("serial 3"), a[1].key("serial 3"));
    }
}
