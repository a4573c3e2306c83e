//! The instance graph (`capstan graph`): instances grouped by project, edges from producer to
//! consumer labelled by how they are made (wiring, default, remote reference, import), as
//! Mermaid, Graphviz DOT or JSON.

use std::collections::BTreeSet;

use serde_json::json;

use crate::core::resolve::{Link, Origin, Resolved};

struct Edge {
    from: String,
    to: String,
    label: String,
    kind: &'static str,
    import: bool,
}

struct Graph {
    nodes: Vec<(String, String)>,
    imports: Vec<(String, String)>,
    edges: Vec<Edge>,
}

fn build(resolved: &Resolved, project: Option<&str>) -> Graph {
    let mut edges = Vec::new();
    let mut imports = Vec::new();
    let mut wanted: BTreeSet<&str> = BTreeSet::new();
    for inst in resolved.instances.values() {
        for (slot, c) in &inst.connections {
            let (from, field, import) = match &c.origin {
                Origin::Instance { instance, field } => {
                    (instance.as_str().to_string(), field.clone(), false)
                }
                Origin::Import { .. } => {
                    let id = format!("import:{}.{slot}", inst.id);
                    (id, String::new(), true)
                }
            };
            let from_project = from.split('-').next().unwrap_or_default().to_string();
            let touches = project
                .is_none_or(|p| inst.project.as_str() == p || (!import && from_project == p));
            if !touches {
                continue;
            }
            let crosses = !import && from_project != inst.project.as_str();
            let kind = if import {
                "import"
            } else {
                Link::of(&c.via, crosses).name()
            };
            let label = if import {
                format!(
                    "{slot} ({}: import {})",
                    Link::of(&c.via, false).name(),
                    c.type_name
                )
            } else {
                format!("{slot} ← {field} ({kind})")
            };
            if import {
                imports.push((from.clone(), format!("import ({})", c.type_name)));
            }
            wanted.insert(inst.id.as_str());
            edges.push(Edge {
                from,
                to: inst.id.as_str().to_string(),
                label,
                kind,
                import,
            });
        }
    }
    for e in &edges {
        if !e.import
            && let Some((id, _)) = resolved.instances.get_key_value(e.from.as_str())
        {
            wanted.insert(id.as_str());
        }
    }
    let nodes = resolved
        .instances
        .values()
        .filter(|i| {
            project.is_none_or(|p| i.project.as_str() == p) || wanted.contains(i.id.as_str())
        })
        .map(|i| (i.id.as_str().to_string(), i.project.as_str().to_string()))
        .collect();
    Graph {
        nodes,
        imports,
        edges,
    }
}

fn mermaid_id(id: &str) -> String {
    id.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

pub fn mermaid(resolved: &Resolved, project: Option<&str>) -> String {
    let g = build(resolved, project);
    let mut out = String::from("flowchart LR\n");
    let projects: BTreeSet<&str> = g.nodes.iter().map(|(_, p)| p.as_str()).collect();
    for p in projects {
        out.push_str(&format!("  subgraph {p}\n"));
        for (id, _) in g.nodes.iter().filter(|(_, np)| np == p) {
            out.push_str(&format!("    {}[\"{id}\"]\n", mermaid_id(id)));
        }
        out.push_str("  end\n");
    }
    for (id, label) in &g.imports {
        out.push_str(&format!("  {}([\"{label}\"])\n", mermaid_id(id)));
    }
    for e in &g.edges {
        out.push_str(&format!(
            "  {} -->|\"{}\"| {}\n",
            mermaid_id(&e.from),
            e.label,
            mermaid_id(&e.to)
        ));
    }
    out
}

pub fn dot(resolved: &Resolved, project: Option<&str>) -> String {
    let g = build(resolved, project);
    let mut out = String::from("digraph capstan {\n  rankdir=LR;\n  node [shape=box];\n");
    let projects: BTreeSet<&str> = g.nodes.iter().map(|(_, p)| p.as_str()).collect();
    for p in projects {
        out.push_str(&format!(
            "  subgraph \"cluster_{p}\" {{\n    label=\"{p}\";\n"
        ));
        for (id, _) in g.nodes.iter().filter(|(_, np)| np == p) {
            out.push_str(&format!("    \"{id}\";\n"));
        }
        out.push_str("  }\n");
    }
    for (id, label) in &g.imports {
        out.push_str(&format!("  \"{id}\" [shape=ellipse, label=\"{label}\"];\n"));
    }
    for e in &g.edges {
        out.push_str(&format!(
            "  \"{}\" -> \"{}\" [label=\"{}\"];\n",
            e.from, e.to, e.label
        ));
    }
    out.push_str("}\n");
    out
}

pub fn json(resolved: &Resolved, project: Option<&str>) -> String {
    let g = build(resolved, project);
    let doc = json!({
        "nodes": g.nodes.iter().map(|(id, p)| json!({"id": id, "project": p})).collect::<Vec<_>>(),
        "imports": g.imports.iter().map(|(id, label)| json!({"id": id, "label": label})).collect::<Vec<_>>(),
        "edges": g.edges.iter().map(|e| json!({"from": e.from, "to": e.to, "label": e.label, "kind": e.kind})).collect::<Vec<_>>(),
    });
    let mut s = serde_json::to_string_pretty(&doc).expect("plain data serialises");
    s.push('\n');
    s
}
