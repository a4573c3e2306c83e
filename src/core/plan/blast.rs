//! The blast radius of a plan: every unchanged instance, in any project, whose inputs depend
//! transitively on a changed one, with the chain of connections from it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::{Downstream, Hop};
use crate::core::model::InstanceId;
use crate::core::resolve::{Link, Origin, Resolved};

/// Every unchanged instance that depends, transitively, on a changed one, with the path
/// (breadth first, so the path is a shortest one).
pub(super) fn radius<'a>(
    resolved: &'a Resolved,
    changed: &BTreeSet<&'a InstanceId>,
) -> Vec<Downstream> {
    let consumers = resolved.consumers();
    let after = &resolved.instances;
    let mut seen: BTreeMap<&InstanceId, Downstream> = BTreeMap::new();
    for start in changed {
        let mut queue: VecDeque<(&InstanceId, Vec<Hop>)> = VecDeque::from([(*start, Vec::new())]);
        while let Some((node, path)) = queue.pop_front() {
            for (consumer, slot) in consumers.of_producer(node) {
                let Some((consumer, inst)) = after.get_key_value(consumer) else {
                    continue;
                };
                if changed.contains(consumer) || seen.contains_key(consumer) {
                    continue;
                }
                let Some(c) = inst.connections.get(slot) else {
                    continue;
                };
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
