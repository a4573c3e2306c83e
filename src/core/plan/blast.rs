//! The blast radius of a plan: every unchanged instance, in any project, whose inputs depend
//! transitively on a changed one, with the chain of connections from it.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use super::Downstream;
use crate::core::model::InstanceId;
use crate::core::resolve::{Instance, Origin, Via};

/// Every unchanged instance that depends, transitively, on a changed one, with the path.
pub(super) fn radius(
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
