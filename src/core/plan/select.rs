//! `capstan apply --instance`: a plan cut down to the named instances and what they need
//! (the instances whose artifacts they take, transitively), each of those saying which
//! named instance needs it; every other change is left out, and counted.

use std::collections::{BTreeMap, BTreeSet};

use super::Plan;
use crate::core::model::InstanceId;
use crate::core::resolve::{Origin, Resolved};

/// The named instances (mapped to `None`) and every instance they take artifacts from,
/// directly or not (mapped to the named instance that needs it). A named instance the
/// desired state no longer has (to be destroyed) needs nothing.
pub fn needs(
    resolved: &Resolved,
    named: &BTreeSet<InstanceId>,
) -> BTreeMap<InstanceId, Option<InstanceId>> {
    let mut out: BTreeMap<InstanceId, Option<InstanceId>> =
        named.iter().map(|id| (id.clone(), None)).collect();
    for root in named {
        let mut stack = vec![root.clone()];
        while let Some(id) = stack.pop() {
            let Some(inst) = resolved.instances.get(&id) else {
                continue;
            };
            for (_, connection) in inst.connections.iter() {
                if let Origin::Instance { instance, .. } = &connection.origin
                    && !out.contains_key(instance)
                {
                    out.insert(instance.clone(), Some(root.clone()));
                    stack.push(instance.clone());
                }
            }
        }
    }
    out
}

impl Plan {
    /// Keeps the changes of `needs` (see [`needs`]); a kept change that was not named
    /// says which named instance needs it, and the other changes go to `left_out`.
    pub fn select(mut self, needs: &BTreeMap<InstanceId, Option<InstanceId>>) -> Plan {
        let kept = |id: &InstanceId| needs.contains_key(id);
        let (changes, left): (Vec<_>, Vec<_>) =
            self.changes.into_iter().partition(|c| kept(&c.instance));
        self.changes = changes;
        for c in &mut self.changes {
            if let Some(Some(by)) = needs.get(&c.instance) {
                c.reasons
                    .push(format!("{by} needs it (named by --instance)"));
            }
        }
        self.left_out = left.into_iter().map(|c| c.instance).collect();
        self.downstream.retain(|d| kept(&d.because_of));
        for wave in &mut self.waves {
            wave.retain(|id| kept(id));
        }
        self.waves.retain(|w| !w.is_empty());
        self.destroy_order.retain(|id| kept(id));
        self.errors.retain(|(id, _)| kept(id));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::plan::against_deployed;
    use crate::core::{check, drift::Heal, run::Scope};

    fn example() -> crate::core::Checked {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("example-repo");
        check(&crate::source::read_dir(&root).expect("the example reads"))
    }

    fn id(s: &str) -> InstanceId {
        InstanceId(s.into())
    }

    #[test]
    fn an_instance_brings_what_it_takes_artifacts_from_and_nothing_else() {
        let checked = example();
        let named = BTreeSet::from([id("ecomm-staging-app")]);
        let needs = needs(&checked.resolved, &named);
        let ids: Vec<&str> = needs.keys().map(InstanceId::as_str).collect();
        assert!(ids.contains(&"si-staging-eks"), "{ids:?}");
        assert!(ids.contains(&"si-staging-vpc"), "{ids:?}");
        assert!(ids.contains(&"ecomm-staging-db"), "{ids:?}");
        assert!(!ids.contains(&"api-staging-app"), "{ids:?}");
        assert_eq!(needs[&id("ecomm-staging-app")], None);
        assert_eq!(needs[&id("si-staging-vpc")], Some(id("ecomm-staging-app")));

        let plan = against_deployed(
            &Default::default(),
            &checked,
            &Scope::Branch {
                previews: Default::default(),
            },
            &Heal::All,
        )
        .select(&needs);
        let changed: Vec<&str> = plan.changes.iter().map(|c| c.instance.as_str()).collect();
        assert_eq!(changed, ids);
        assert_eq!(plan.left_out.len(), 14 - ids.len());
        let vpc = plan
            .changes
            .iter()
            .find(|c| c.instance.as_str() == "si-staging-vpc")
            .expect("kept");
        assert!(
            vpc.reasons
                .contains(&"ecomm-staging-app needs it (named by --instance)".to_string()),
            "{:?}",
            vpc.reasons
        );
        let in_waves: usize = plan.waves.iter().map(Vec::len).sum();
        assert_eq!(in_waves, ids.len());
    }
}
