//! The instance graph (docs/repository-format.md, step 5 of resolution): cycles found with an iterative Tarjan (all
//! members named), and deploy waves (each instance one wave after the latest of its
//! producers).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::{Instance, Origin, Via};
use crate::core::diag::{Code, Diagnostics, Loc};
use crate::core::model::InstanceId;

/// Cycle detection (Tarjan, iterative) and waves (longest path from a source).
pub(super) fn waves(
    instances: &BTreeMap<InstanceId, Arc<Instance>>,
    diags: &mut Diagnostics,
) -> Vec<Vec<InstanceId>> {
    let ids: Vec<&InstanceId> = instances.keys().collect();
    let index: HashMap<&InstanceId, usize> =
        ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    // deps[i]: the instances i takes artifacts from, with the place the edge is written.
    let deps: Vec<Vec<(usize, &Loc)>> = instances
        .values()
        .map(|inst| {
            let mut d: Vec<(usize, &Loc)> = inst
                .connections
                .values()
                .filter_map(|c| match &c.origin {
                    Origin::Instance { instance, .. } => {
                        let at = match &c.via {
                            Via::Environment(at) | Via::Wiring(at) | Via::Default(at) => at,
                        };
                        index.get(instance).map(|&j| (j, at))
                    }
                    Origin::Import { .. } => None,
                })
                .collect();
            d.sort_by_key(|(j, _)| *j);
            d.dedup_by_key(|(j, _)| *j);
            d
        })
        .collect();

    let sccs = tarjan(&deps);
    let mut in_cycle = vec![false; ids.len()];
    for scc in &sccs {
        let cyclic = scc.len() > 1 || deps[scc[0]].iter().any(|(j, _)| *j == scc[0]);
        if !cyclic {
            continue;
        }
        let mut members: Vec<usize> = scc.clone();
        members.sort_unstable();
        for &m in &members {
            in_cycle[m] = true;
        }
        let at = members
            .iter()
            .flat_map(|&m| {
                deps[m]
                    .iter()
                    .filter(|(j, _)| members.contains(j))
                    .map(|(_, at)| *at)
            })
            .min()
            .cloned()
            .expect("a cycle has an edge between two of its members (or a self-loop)");
        let names: Vec<&str> = members.iter().map(|&m| ids[m].as_str()).collect();
        diags.push(
            Code::GraphCycle,
            at,
            format!(
                "instances depend on each other in a cycle: {}",
                names.join(", ")
            ),
        );
    }

    // Tarjan yields SCCs with dependencies first: a valid order for computing levels.
    let mut level: Vec<Option<usize>> = vec![None; ids.len()];
    for scc in &sccs {
        for &n in scc {
            if in_cycle[n]
                || deps[n]
                    .iter()
                    .any(|(j, _)| in_cycle[*j] || level[*j].is_none())
            {
                continue;
            }
            level[n] = Some(
                deps[n]
                    .iter()
                    .filter_map(|(j, _)| level[*j])
                    .map(|l| l + 1)
                    .max()
                    .unwrap_or(0),
            );
        }
    }
    let mut waves: Vec<Vec<InstanceId>> = Vec::new();
    for (n, l) in level.iter().enumerate() {
        if let Some(l) = *l {
            if waves.len() <= l {
                waves.resize_with(l + 1, Vec::new);
            }
            waves[l].push(ids[n].clone());
        }
    }
    waves
}

/// Strongly connected components, dependencies before dependants; no recursion, so tens
/// of thousands of instances in a chain cannot overflow the stack.
fn tarjan(deps: &[Vec<(usize, &Loc)>]) -> Vec<Vec<usize>> {
    let n = deps.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut sccs = Vec::new();
    let mut next = 0;
    for start in 0..n {
        if index[start] != usize::MAX {
            continue;
        }
        let mut work: Vec<(usize, usize)> = vec![(start, 0)];
        index[start] = next;
        low[start] = next;
        next += 1;
        stack.push(start);
        on_stack[start] = true;
        while let Some(&mut (v, ref mut edge)) = work.last_mut() {
            if let Some(&(w, _)) = deps[v].get(*edge) {
                *edge += 1;
                if index[w] == usize::MAX {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut scc = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    scc.push(w);
                    if w == v {
                        break;
                    }
                }
                sccs.push(scc);
            }
        }
    }
    sccs
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::core::yaml::Pos;

    #[test]
    fn tarjan_orders_dependencies_first_and_finds_cycles() {
        let at = Loc {
            file: Arc::from("f"),
            pos: Pos::START,
        };
        // 0 -> 1 -> 2, 3 <-> 4
        let deps = vec![
            vec![(1, &at)],
            vec![(2, &at)],
            vec![],
            vec![(4, &at)],
            vec![(3, &at)],
        ];
        let sccs = tarjan(&deps);
        let pos = |n: usize| sccs.iter().position(|s| s.contains(&n)).expect("present");
        assert!(pos(2) < pos(1) && pos(1) < pos(0));
        assert!(sccs.iter().any(|s| s.len() == 2));
    }
}
