//! The blast radius of a plan: every unchanged instance, in any project, whose inputs depend
//! transitively on a changed one, with the chain of connections from it.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use super::{Downstream, Hop};
use crate::core::model::InstanceId;
use crate::core::resolve::{Connection, Instance, Link, Origin};

/// Every unchanged instance that depends, transitively, on a changed one, with the path
/// (breadth first, so the path is a shortest one).
pub(super) fn radius(
    after: &BTreeMap<InstanceId, Arc<Instance>>,
    changed: &BTreeSet<&InstanceId>,
) -> Vec<Downstream> {
    // consumers[p]: the connections out of p, with their consumers; a hop is only built
    // for the few that are followed.
    let mut consumers: HashMap<&InstanceId, Vec<(&Instance, &String, &Connection)>> =
        HashMap::new();
    for inst in after.values() {
        for (slot, c) in &inst.connections {
            if let Origin::Instance { instance, .. } = &c.origin {
                consumers.entry(instance).or_default().push((inst, slot, c));
            }
        }
    }
    let mut seen: BTreeMap<&InstanceId, Downstream> = BTreeMap::new();
    for start in changed {
        let mut queue: VecDeque<(&InstanceId, Vec<Hop>)> = VecDeque::from([(*start, Vec::new())]);
        while let Some((node, path)) = queue.pop_front() {
            for &(inst, slot, c) in consumers.get(node).map(Vec::as_slice).unwrap_or_default() {
                let consumer = &inst.id;
                if changed.contains(consumer) || seen.contains_key(consumer) {
                    continue;
                }
                let Origin::Instance { instance, field } = &c.origin else {
                    continue;
                };
                let crosses = after
                    .get(instance)
                    .is_some_and(|p| p.project != inst.project);
                let mut p = path.clone();
                p.push(Hop {
                    from: instance.clone(),
                    field: field.clone(),
                    to: consumer.clone(),
                    slot: slot.clone(),
                    link: Link::of(&c.via, crosses),
                });
                seen.insert(
                    consumer,
                    Downstream {
                        instance: consumer.clone(),
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
