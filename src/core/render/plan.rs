//! A plan as terminal text (`+ ~ -` markers) or as stable JSON.
//!
//! JSON shape (stable; fields are only ever added): `{"summary": {...}, "changes": [{"instance",
//! "action", "reasons", "diffs", "likely_replacement"}], "downstream": [{"instance", "because_of",
//! "path": [{"instance", "via", "from", "field", "slot", "link"}]}], "waves": [[...]],
//! "destroy_order": [...], "left_out": [...], "errors": [{"instance", "code", "file", "line",
//! "column", "message"}], "unchanged": n}`. Sensitive values are `"(sensitive)"`.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::core::plan::{Action, Diff, Downstream, Hop, Plan};
use crate::core::resolve::Link;

const SENSITIVE: &str = "(sensitive)";

/// `Plan: 2 to create, 1 to update, 0 to destroy; 3 downstream in 2 other projects`.
pub fn summary(plan: &Plan) -> String {
    let changed_projects: BTreeSet<&str> = plan
        .changes
        .iter()
        .map(|c| project_of(c.instance.as_str()))
        .collect();
    let other: BTreeSet<&str> = plan
        .downstream
        .iter()
        .map(|d| project_of(d.instance.as_str()))
        .filter(|p| !changed_projects.contains(p))
        .collect();
    format!(
        "Plan: {} to create, {} to update, {} to destroy; {} downstream in {} other project{}",
        plan.count(Action::Create),
        plan.count(Action::Update),
        plan.count(Action::Destroy),
        plan.downstream.len(),
        other.len(),
        if other.len() == 1 { "" } else { "s" }
    )
}

/// How a downstream instance is reached, in the direction artifacts flow, one hop after
/// another: `si-staging-vpc ─network→ si-staging-eks ─cluster (remote reference)→ api-staging-app`.
pub fn chain(d: &Downstream) -> String {
    let mut out = d.because_of.to_string();
    for hop in &d.path {
        out.push_str(&format!(" ─{}→ {}", hop_label(hop), hop.to));
    }
    out
}

/// A hop as an arrow's label: the slot, and how it is connected unless it is plain wiring.
pub fn hop_label(hop: &Hop) -> String {
    match hop.link {
        Link::Wiring => hop.slot.clone(),
        other => format!("{} ({})", hop.slot, other.name()),
    }
}

/// `ecomm-staging` of `ecomm-staging-app`.
pub fn environment_of(instance: &str) -> String {
    let mut parts = instance.splitn(3, '-');
    format!(
        "{}-{}",
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default()
    )
}

fn project_of(instance: &str) -> &str {
    instance.split('-').next().unwrap_or(instance)
}

fn marker(action: Action) -> &'static str {
    match action {
        Action::Create => "+",
        Action::Update => "~",
        Action::Destroy => "-",
    }
}

fn show(v: &Option<Value>) -> String {
    v.as_ref()
        .map_or_else(|| "(absent)".to_string(), Value::to_string)
}

pub fn diff_line(d: &Diff) -> String {
    match d {
        Diff::Param {
            path,
            sensitive: true,
            ..
        } => format!("params.{}: {SENSITIVE} changed", path.join(".")),
        Diff::Param { path, old, new, .. } => {
            format!("params.{}: {} -> {}", path.join("."), show(old), show(new))
        }
        Diff::BundleVersion { old, new } => format!("bundle: {old} -> {new}"),
        Diff::BundleContent => "bundle: files changed".to_string(),
        Diff::ConnectionSource { slot, old, new } => format!(
            "connection {slot}: {} -> {} (likely replacement)",
            old.as_deref().unwrap_or("(none)"),
            new.as_deref().unwrap_or("(none)")
        ),
        Diff::ConnectionData { slot } => format!("connection {slot}: imported data changed"),
    }
}

pub fn text(plan: &Plan, color: bool) -> String {
    let paint = |code: &str, s: String| {
        if color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s
        }
    };
    let mut out = String::new();
    for (_, d) in &plan.errors {
        out.push_str(&format!("{d}\n"));
    }
    out.push_str(&format!("{}\n", summary(plan)));
    let left_out = if plan.left_out.is_empty() {
        String::new()
    } else {
        let names: Vec<&str> = plan.left_out.iter().map(|i| i.as_str()).collect();
        format!(
            "Left out: {} of instances --instance does not name or need: {}\n",
            super::plural(names.len(), "change"),
            names.join(", ")
        )
    };
    if plan.is_empty() {
        out.push_str(&format!(
            "No changes; {} unchanged.\n{left_out}",
            super::plural(plan.unchanged, "instance")
        ));
        return out;
    }
    let mut environment = String::new();
    for c in &plan.changes {
        let env = environment_of(c.instance.as_str());
        if env != environment {
            out.push_str(&format!("\n{}\n", paint("1", format!("{env}:"))));
            environment = env;
        }
        let colour = match c.action {
            Action::Create => "32",
            Action::Update => "33",
            Action::Destroy => "31",
        };
        out.push_str(&format!(
            "  {}\n",
            paint(colour, format!("{} {}", marker(c.action), c.instance))
        ));
        for d in &c.diffs {
            out.push_str(&format!("      {}\n", diff_line(d)));
        }
        for r in &c.reasons {
            out.push_str(&format!("      because {r}\n"));
        }
    }
    if !plan.downstream.is_empty() {
        out.push_str("\nDownstream (inputs depend on a changed instance):\n");
        for d in &plan.downstream {
            out.push_str(&format!("  {}\n", chain(d)));
        }
    }
    for (i, w) in plan.waves.iter().enumerate() {
        let names: Vec<&str> = w.iter().map(|i| i.as_str()).collect();
        out.push_str(&format!(
            "{}wave {}: {}\n",
            if i == 0 { "\nDeploy order:\n  " } else { "  " },
            i + 1,
            names.join(", ")
        ));
    }
    if !plan.destroy_order.is_empty() {
        let names: Vec<&str> = plan.destroy_order.iter().map(|i| i.as_str()).collect();
        out.push_str(&format!("\nDestroy order: {}\n", names.join(", ")));
    }
    out.push_str(&format!(
        "\n{} unchanged.\n{left_out}",
        super::plural(plan.unchanged, "instance")
    ));
    out
}

/// `file` and `line` of where a param's new value is written, when it is in a file.
fn written(v: &mut Value, at: Option<&crate::core::diag::Loc>) {
    if let Some(at) = at {
        v["file"] = json!(at.file.as_ref());
        v["line"] = json!(at.pos.line);
    }
}

fn diff_json(d: &Diff) -> Value {
    match d {
        Diff::Param {
            path,
            sensitive: true,
            at,
            ..
        } => {
            let mut v = json!({"kind": "param", "path": path, "old": SENSITIVE, "new": SENSITIVE, "sensitive": true});
            written(&mut v, at.as_ref());
            v
        }
        Diff::Param {
            path, old, new, at, ..
        } => {
            let mut v =
                json!({"kind": "param", "path": path, "old": old, "new": new, "sensitive": false});
            written(&mut v, at.as_ref());
            v
        }
        Diff::BundleVersion { old, new } => {
            json!({"kind": "bundle_version", "old": old, "new": new})
        }
        Diff::BundleContent => json!({"kind": "bundle_content"}),
        Diff::ConnectionSource { slot, old, new } => {
            json!({"kind": "connection_source", "slot": slot, "old": old, "new": new})
        }
        Diff::ConnectionData { slot } => json!({"kind": "connection_data", "slot": slot}),
    }
}

pub fn json(plan: &Plan) -> String {
    let doc = json!({
        "summary": {
            "text": summary(plan),
            "create": plan.count(Action::Create),
            "update": plan.count(Action::Update),
            "destroy": plan.count(Action::Destroy),
            "downstream": plan.downstream.len(),
            "unchanged": plan.unchanged,
        },
        "changes": plan.changes.iter().map(|c| json!({
            "instance": c.instance.as_str(),
            "action": c.action.name(),
            "reasons": c.reasons,
            "diffs": c.diffs.iter().map(diff_json).collect::<Vec<_>>(),
            "likely_replacement": c.likely_replacement,
        })).collect::<Vec<_>>(),
        "downstream": plan.downstream.iter().map(|d| json!({
            "instance": d.instance.as_str(),
            "because_of": d.because_of.as_str(),
            "path": d.path.iter().map(|h| json!({
                "instance": h.to.as_str(),
                "via": h.describe(),
                "from": h.from.as_str(),
                "field": h.field,
                "slot": h.slot,
                "link": h.link.name(),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "waves": plan.waves.iter().map(|w| w.iter().map(|i| i.as_str()).collect::<Vec<_>>()).collect::<Vec<_>>(),
        "destroy_order": plan.destroy_order.iter().map(|i| i.as_str()).collect::<Vec<_>>(),
        "left_out": plan.left_out.iter().map(|i| i.as_str()).collect::<Vec<_>>(),
        "errors": plan.errors.iter().map(|(id, d)| json!({
            "instance": id.as_str(),
            "code": d.code.as_str(),
            "file": &*d.loc.file,
            "line": d.loc.pos.line,
            "column": d.loc.pos.col,
            "message": d.message,
        })).collect::<Vec<_>>(),
    });
    let mut s = serde_json::to_string_pretty(&doc).expect("plain data serialises");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::InstanceId;
    use crate::core::plan::Change;

    #[test]
    fn colour_only_when_asked() {
        let plan = Plan {
            changes: vec![Change {
                instance: InstanceId("a-b-c".into()),
                action: Action::Update,
                reasons: vec![],
                diffs: vec![],
                likely_replacement: false,
            }],
            ..Plan::default()
        };
        assert!(text(&plan, true).contains("\x1b[33m~ a-b-c\x1b[0m"));
        assert!(!text(&plan, false).contains('\x1b'));
    }
}
