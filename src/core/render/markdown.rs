//! A plan (or a head that does not validate) as a GitHub pull-request comment.
//!
//! The summary line comes first; then a table of affected environments, one collapsible
//! section per environment, and a Mermaid graph of the changed instances and their
//! cross-project edges. A comment never exceeds GitHub's 65,536 characters: the summary
//! and errors always survive, and a note says what was cut.

use std::collections::{BTreeMap, BTreeSet};

use crate::core::diag::{Diagnostic, Severity};
use crate::core::ownership::{Holds, Verdict};
use crate::core::plan::{Action, Change, Downstream, Plan};
use crate::core::render::comment::{Comment, MAX_COMMENT, cell, table};
use crate::core::render::plan::{chain, diff_line, environment_of, hop_label, summary};

/// Marks capstan's comment so it can be found again and edited in place.
pub const MARKER: &str = "<!-- capstan:plan -->";

const SEE_ALL: &str = "Run `capstan plan` for the full plan.";

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Prefix for links to files at the head commit, e.g.
    /// `https://github.com/acme/infra/blob/<sha>/infra/`; `None`: plain `file:line`.
    pub link_base: Option<String>,
    /// The ownership verdict per owner set touched (docs/daemon.md, On GitHub); `None`: not judged.
    pub ownership: Option<Vec<Verdict>>,
    /// Other open pull requests changing the same instances: (number, instances).
    pub overlaps: Vec<(u64, Vec<String>)>,
}

impl Options {
    pub fn new(link_base: Option<String>) -> Options {
        Options {
            link_base,
            ownership: None,
            overlaps: Vec::new(),
        }
    }
}

fn link(d: &Diagnostic, opts: &Options) -> String {
    let place = format!("{}:{}:{}", d.loc.file, d.loc.pos.line, d.loc.pos.col);
    match &opts.link_base {
        Some(base) => format!("[`{place}`]({base}{}#L{})", d.loc.file, d.loc.pos.line),
        None => format!("`{place}`"),
    }
}

/// The comment for a head that does not validate: summary and every diagnostic.
pub fn diagnostics(diags: &[Diagnostic], opts: &Options) -> Comment {
    let errors = diags
        .iter()
        .filter(|d| d.severity() == Severity::Error)
        .count();
    let mut head = format!(
        "{MARKER}\n**Plan failed: the head has {errors} error{} to fix first.**\n\n",
        if errors == 1 { "" } else { "s" }
    );
    head.push_str(&review_context(opts));
    Comment {
        head,
        kept_title: "**Diagnostics**\n\n".into(),
        kept: diags.iter().map(|d| diagnostic_line(d, opts)).collect(),
        sections: Vec::new(),
        see_all: SEE_ALL.into(),
    }
}

pub fn plan(plan: &Plan, warnings: &[Diagnostic], opts: &Options) -> Comment {
    let mut head = format!("{MARKER}\n**{}**\n\n", summary(plan));
    if plan.is_empty() {
        head.push_str(&format!(
            "No changes; {} unchanged.\n",
            super::plural(plan.unchanged, "instance")
        ));
    }
    head.push_str(&review_context(opts));
    type Section<'p> = (Vec<&'p Change>, Vec<&'p Downstream>);
    let mut per_env: BTreeMap<String, Section<'_>> = BTreeMap::new();
    for c in &plan.changes {
        per_env
            .entry(environment_of(c.instance.as_str()))
            .or_default()
            .0
            .push(c);
    }
    for d in &plan.downstream {
        per_env
            .entry(environment_of(d.instance.as_str()))
            .or_default()
            .1
            .push(d);
    }
    // The plan's own errors (immutable params) and the revision's warnings must survive.
    let kept: Vec<String> = plan
        .errors
        .iter()
        .map(|(_, d)| d)
        .chain(warnings)
        .map(|d| diagnostic_line(d, opts))
        .collect();
    if !per_env.is_empty() {
        // The table may take half of what the summary and diagnostics leave.
        let kept_len: usize = kept.iter().map(String::len).sum();
        let budget = MAX_COMMENT.saturating_sub(head.len() + kept_len + 200) / 2;
        let rows: Vec<String> = per_env
            .iter()
            .map(|(env, (changes, downstream))| {
                let n = |a: Action| changes.iter().filter(|c| c.action == a).count();
                format!(
                    "| `{env}` | {} | {} | {} | {} |\n",
                    n(Action::Create),
                    n(Action::Update),
                    n(Action::Destroy),
                    downstream.len()
                )
            })
            .collect();
        head.push_str(&table(
            "| environment | create | update | destroy | downstream |\n|---|---:|---:|---:|---:|\n",
            &rows,
            budget,
            "environments",
        ));
        head.push('\n');
    }
    let mut sections = Vec::new();
    for (env, (changes, downstream)) in &per_env {
        let mut s = format!(
            "<details><summary><code>{env}</code>: {} changed, {} downstream</summary>\n\n```diff\n",
            changes.len(),
            downstream.len()
        );
        for c in changes {
            let m = match c.action {
                Action::Create => "+",
                Action::Update => "!",
                Action::Destroy => "-",
            };
            s.push_str(&format!("{m} {}\n", c.instance));
            for d in &c.diffs {
                s.push_str(&format!("#     {}\n", diff_line(d)));
            }
            for r in &c.reasons {
                s.push_str(&format!("#     because {r}\n"));
            }
        }
        for d in downstream {
            s.push_str(&format!("  {}\n", chain(d)));
        }
        s.push_str("```\n</details>\n\n");
        sections.push(s);
    }
    if !plan.is_empty() {
        sections.push(mermaid(plan));
    }
    Comment {
        head,
        kept_title: "**Diagnostics**\n\n".into(),
        kept,
        sections,
        see_all: SEE_ALL.into(),
    }
}

/// Ownership verdict and overlapping pull requests: short, and never cut.
fn review_context(opts: &Options) -> String {
    let mut s = String::new();
    if let Some(verdicts) = &opts.ownership {
        s.push_str("**Ownership**\n\n");
        if verdicts.is_empty() {
            s.push_str("- no owned files changed\n");
        }
        for v in verdicts {
            let owners = v.set.owners.join(", ");
            let line = match &v.holds {
                Holds::Author(a) => format!(
                    "✅ `{}` ({owners}): the author @{a} is an owner",
                    v.set.scope
                ),
                Holds::Approved(by) => format!(
                    "✅ `{}` ({owners}): approved by {}",
                    v.set.scope,
                    by.iter()
                        .map(|u| format!("@{u}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Holds::Unowned => format!("✅ `{}`: no owners listed", v.set.scope),
                Holds::Missing => format!(
                    "⏳ `{}`: needs an approving review from one of {owners}",
                    v.set.scope
                ),
            };
            s.push_str(&format!(
                "- {} ({} file{})\n",
                cell(&line),
                v.set.files.len(),
                if v.set.files.len() == 1 { "" } else { "s" }
            ));
        }
        s.push('\n');
    }
    if !opts.overlaps.is_empty() {
        s.push_str("**Also changed by other open pull requests**\n\n");
        for (pr, instances) in &opts.overlaps {
            let shown: Vec<String> = instances
                .iter()
                .take(10)
                .map(|i| format!("`{i}`"))
                .collect();
            let more = instances.len().saturating_sub(shown.len());
            s.push_str(&format!(
                "- #{pr} also changes {}{}\n",
                shown.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            ));
        }
        s.push('\n');
    }
    s
}

fn diagnostic_line(d: &Diagnostic, opts: &Options) -> String {
    format!(
        "- {} **{}[{}]** {}\n",
        link(d, opts),
        d.severity().as_str(),
        d.code,
        cell(&d.message)
    )
}

/// Most downstream instances whose paths the graph draws; a bigger graph is unreadable
/// and beyond what GitHub renders.
const GRAPH_DOWNSTREAM: usize = 100;

/// The changed instances and every path that makes an instance downstream, drawn whole:
/// each node declared once with its label, grouped by project; each hop an edge labelled by
/// its slot (and how it is connected, unless plain wiring).
fn mermaid(plan: &Plan) -> String {
    let mut nodes: BTreeMap<&str, &'static str> = BTreeMap::new();
    for c in &plan.changes {
        nodes.insert(c.instance.as_str(), c.action.name());
    }
    let drawn: Vec<&Downstream> = plan.downstream.iter().take(GRAPH_DOWNSTREAM).collect();
    let mut edges: BTreeSet<(&str, &str, String)> = BTreeSet::new();
    for d in &drawn {
        for hop in &d.path {
            nodes.entry(hop.from.as_str()).or_insert("downstream");
            nodes.entry(hop.to.as_str()).or_insert("downstream");
            edges.insert((hop.from.as_str(), hop.to.as_str(), hop_label(hop)));
        }
    }
    let mut projects: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
    for (id, class) in &nodes {
        projects
            .entry(id.split('-').next().unwrap_or(id))
            .or_default()
            .push((id, class));
    }
    let shown = if drawn.len() < plan.downstream.len() {
        format!(
            " (paths of the first {} of {} downstream instances)",
            drawn.len(),
            plan.downstream.len()
        )
    } else {
        String::new()
    };
    let mut s = format!(
        "<details><summary>Graph of changed instances and what depends on them{shown}</summary>\n\n```mermaid\nflowchart LR\n"
    );
    for (project, members) in &projects {
        s.push_str(&format!("  subgraph project_{project}[\"{project}\"]\n"));
        for (id, class) in members {
            s.push_str(&format!("    {}[\"{id}\"]:::{class}\n", node_id(id)));
        }
        s.push_str("  end\n");
    }
    for (from, to, label) in &edges {
        s.push_str(&format!(
            "  {} -->|\"{label}\"| {}\n",
            node_id(from),
            node_id(to)
        ));
    }
    let boxes: Vec<String> = projects.keys().map(|p| format!("project_{p}")).collect();
    s.push_str(&format!("  class {} project\n", boxes.join(",")));
    s.push_str("  classDef project fill:none,stroke:#d0d7de\n  classDef create fill:#dafbe1,stroke:#1a7f37\n  classDef update fill:#fff8c5,stroke:#9a6700\n  classDef destroy fill:#ffebe9,stroke:#cf222e\n  classDef downstream fill:#f6f8fa,stroke:#8c959f\n```\n</details>\n");
    s
}

/// A Mermaid node id: instance ids hold no `_`, so replacing `-` keeps them apart.
fn node_id(instance: &str) -> String {
    instance.replace('-', "_")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::InstanceId;
    use crate::core::plan::Change;

    fn big_plan(n: usize) -> Plan {
        let changes = (0..n)
            .map(|i| Change {
                instance: InstanceId(format!("p{i}-staging-app").into()),
                action: Action::Create,
                reasons: vec![format!(
                    "package app is new in projects/p{i}/project.yaml {}",
                    "x".repeat(200)
                )],
                diffs: Vec::new(),
                likely_replacement: false,
            })
            .collect();
        Plan {
            changes,
            ..Plan::default()
        }
    }

    #[test]
    fn huge_plans_are_cut_and_say_so() {
        let body = plan(&big_plan(2_000), &[], &Options::new(None)).render(MAX_COMMENT);
        assert!(body.len() <= MAX_COMMENT, "{}", body.len());
        assert!(body.starts_with(MARKER));
        assert!(body.contains("**Plan: 2000 to create, 0 to update, 0 to destroy"));
        assert!(
            body.contains("> **Cut to fit GitHub's 65536 characters:**"),
            "the note is missing"
        );
    }

    #[test]
    fn small_plans_are_whole() {
        let body = plan(&big_plan(3), &[], &Options::new(None)).render(MAX_COMMENT);
        assert!(!body.contains("Cut to fit"));
        assert!(body.contains("```mermaid"));
        assert_eq!(body.matches("<details>").count(), 4);
    }
}
