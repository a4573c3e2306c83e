//! The graph of instances and the connections between them (docs/web.md#graph), laid out
//! in the deploy waves (a producer always left of its consumers). Pure: the page draws it
//! as SVG and lists the same edges for a reader without pictures.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::core::Checked;
use crate::core::model::InstanceId;
use crate::core::resolve::Origin;

/// More nodes than this is no picture a person can read: the page asks for a filter.
pub const MAX_NODES: usize = 400;

pub const NODE_WIDTH: u32 = 230;
pub const NODE_HEIGHT: u32 = 34;
const COLUMN_GAP: u32 = 90;
const ROW_GAP: u32 = 14;
const MARGIN: u32 = 10;

/// Which instances the graph shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Focus {
    All,
    /// A project's instances, and the instances of other projects they connect to.
    Project(String),
    /// These instances and everything that takes their artifacts, transitively: what a
    /// plan that changes them reaches.
    Radius(BTreeSet<InstanceId>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub id: InstanceId,
    pub project: String,
    pub environment: String,
    pub package: String,
    /// Top-left corner.
    pub x: u32,
    pub y: u32,
    /// In the radius's own changes (not only reached).
    pub changed: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edge {
    pub from: InstanceId,
    pub to: InstanceId,
    /// `network <- si-prod-vpc.network`.
    pub slot: String,
    /// Producer and consumer in different projects: shared infrastructure.
    pub cross_project: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
    pub width: u32,
    pub height: u32,
    /// Nodes the focus held, when more than [`MAX_NODES`] (then nothing is laid out).
    pub too_many: Option<usize>,
}

impl Graph {
    pub fn node(&self, id: &InstanceId) -> Option<&Node> {
        self.nodes.iter().find(|n| &n.id == id)
    }
}

/// The graph of `checked`'s instances that `focus` selects.
pub fn graph(checked: &Checked, focus: &Focus) -> Graph {
    let instances = &checked.resolved.instances;
    let mut edges = Vec::new();
    for inst in instances.values() {
        for (slot, c) in inst.connections.iter() {
            if let Origin::Instance { instance, .. } = &c.origin {
                let cross = instances
                    .get(instance)
                    .is_some_and(|p| p.project != inst.project);
                edges.push(Edge {
                    from: instance.clone(),
                    to: inst.id.clone(),
                    slot: slot.clone(),
                    cross_project: cross,
                });
            }
        }
    }
    let (keep, changed): (BTreeSet<InstanceId>, BTreeSet<InstanceId>) = match focus {
        Focus::All => (instances.keys().cloned().collect(), BTreeSet::new()),
        Focus::Project(project) => {
            let own: BTreeSet<InstanceId> = instances
                .values()
                .filter(|i| i.project.as_str() == project)
                .map(|i| i.id.clone())
                .collect();
            let mut keep = own.clone();
            for e in &edges {
                if own.contains(&e.from) || own.contains(&e.to) {
                    keep.insert(e.from.clone());
                    keep.insert(e.to.clone());
                }
            }
            (keep, BTreeSet::new())
        }
        Focus::Radius(changed) => {
            let consumers = checked.resolved.consumers();
            let mut keep: BTreeSet<InstanceId> = changed.clone();
            let mut queue: VecDeque<InstanceId> = changed.iter().cloned().collect();
            while let Some(id) = queue.pop_front() {
                for (consumer, _) in consumers.of_producer(&id) {
                    if keep.insert(consumer.clone()) {
                        queue.push_back(consumer.clone());
                    }
                }
            }
            keep.retain(|id| instances.contains_key(id));
            (keep, changed.clone())
        }
    };
    edges.retain(|e| keep.contains(&e.from) && keep.contains(&e.to));
    if keep.len() > MAX_NODES {
        return Graph {
            edges: Vec::new(),
            too_many: Some(keep.len()),
            ..Graph::default()
        };
    }
    // Columns: the deploy waves; an instance in a cycle (in no wave) goes last.
    let wave_of: BTreeMap<&InstanceId, usize> = checked
        .resolved
        .waves
        .iter()
        .enumerate()
        .flat_map(|(w, ids)| ids.iter().map(move |id| (id, w)))
        .collect();
    let mut columns: BTreeMap<usize, Vec<&InstanceId>> = BTreeMap::new();
    for id in &keep {
        columns
            .entry(wave_of.get(id).copied().unwrap_or(usize::MAX))
            .or_default()
            .push(id);
    }
    let mut nodes = Vec::new();
    let mut height = 0;
    for (x, column) in columns.values_mut().enumerate() {
        column.sort_by_key(|id| {
            let i = &instances[*id];
            (i.project.clone(), i.environment.clone(), i.package.clone())
        });
        for (y, id) in column.iter().enumerate() {
            let i = &instances[*id];
            let top = MARGIN + y as u32 * (NODE_HEIGHT + ROW_GAP);
            height = height.max(top + NODE_HEIGHT + MARGIN);
            nodes.push(Node {
                id: (*id).clone(),
                project: i.project.to_string(),
                environment: i.environment.to_string(),
                package: i.package.to_string(),
                x: MARGIN + x as u32 * (NODE_WIDTH + COLUMN_GAP),
                y: top,
                changed: changed.contains(*id),
            });
        }
    }
    let width = MARGIN * 2 + columns.len() as u32 * (NODE_WIDTH + COLUMN_GAP);
    edges.sort_by(|a, b| (&a.from, &a.to, &a.slot).cmp(&(&b.from, &b.to, &b.slot)));
    Graph {
        nodes,
        edges,
        width: width.saturating_sub(COLUMN_GAP).max(NODE_WIDTH),
        height,
        too_many: None,
    }
}

/// An SVG path from the producer's right edge to the consumer's left edge.
pub fn path(from: &Node, to: &Node) -> String {
    let (x1, y1) = (from.x + NODE_WIDTH, from.y + NODE_HEIGHT / 2);
    let (x2, y2) = (to.x, to.y + NODE_HEIGHT / 2);
    let bend = (x2.saturating_sub(x1)) / 2;
    format!(
        "M{x1},{y1} C{},{y1} {},{y2} {x2},{y2}",
        x1 + bend,
        x2.saturating_sub(bend)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Checked {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("example-repo");
        crate::core::check(&crate::source::read_dir(&root).unwrap())
    }

    #[test]
    fn a_project_shows_what_it_shares_with_other_projects() {
        let checked = example();
        let si = graph(&checked, &Focus::Project("si".into()));
        let cluster_consumers: BTreeSet<&str> = si
            .edges
            .iter()
            .filter(|e| e.from.as_str() == "si-staging-eks" && e.cross_project)
            .map(|e| e.to.as_str().split('-').next().unwrap())
            .collect();
        assert_eq!(
            cluster_consumers,
            ["api", "billing", "ecomm"].into_iter().collect()
        );
        for e in &si.edges {
            let (from, to) = (si.node(&e.from).unwrap(), si.node(&e.to).unwrap());
            assert!(from.x < to.x, "a producer is left of its consumer: {e:?}");
        }
    }

    #[test]
    fn a_radius_holds_the_change_and_everything_downstream() {
        let checked = example();
        let changed: BTreeSet<InstanceId> = [InstanceId("si-staging-vpc".into())].into();
        let g = graph(&checked, &Focus::Radius(changed));
        let ids: BTreeSet<&str> = g.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "api-staging-app",
                "billing-staging-app",
                "ecomm-staging-app",
                "ecomm-staging-db",
                "si-staging-eks",
                "si-staging-vpc"
            ]
            .into_iter()
            .collect()
        );
        assert!(
            g.nodes
                .iter()
                .all(|n| n.changed == (n.id.as_str() == "si-staging-vpc"))
        );
        assert_eq!(g.too_many, None);
    }
}
