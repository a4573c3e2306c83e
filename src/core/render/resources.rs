//! A provisioner plan as people read it in a pull request: the summary line's
//! `Resources: …` and, per instance, a collapsible list of its resource changes with
//! replacements and destroys first and marked ⚠. Addresses and attribute paths only:
//! a resource plan holds no values (`core/resources.rs`).

use std::fmt::Write as _;

use crate::core::deep::{Finished, Outcome};
use crate::core::model::InstanceId;
use crate::core::resources::{Action, Counts, ResourceChange, ResourcePlan};
use crate::core::run::Verb;

/// `Resources: 3 to add, 1 to change, 0 to destroy, 1 to replace`, with moves, imports
/// and forgets added when there are any.
pub fn counts(c: &Counts) -> String {
    let mut line = format!(
        "Resources: {} to add, {} to change, {} to destroy, {} to replace",
        c.add, c.change, c.destroy, c.replace
    );
    for (n, what) in [
        (c.moved, "to move"),
        (c.import, "to import"),
        (c.forget, "to forget"),
    ] {
        if n > 0 {
            let _ = write!(line, ", {n} {what}");
        }
    }
    line
}

/// One instance's resource changes, collapsed under a line that names the dangerous
/// ones; open when there are any.
pub fn instance(instance: &str, plan: &ResourcePlan) -> String {
    details(instance, plan, &[])
}

fn details(instance: &str, plan: &ResourcePlan, notes: &[String]) -> String {
    let c = plan.counts();
    let danger = c.replace + c.destroy;
    let mut out = format!(
        "<details{}><summary><code>{}</code>: {}{}{}</summary>\n\n",
        if danger > 0 { " open" } else { "" },
        html(instance),
        counts(&c).trim_start_matches("Resources: "),
        if danger > 0 { " ⚠" } else { "" },
        notes
            .iter()
            .map(|n| format!("; {}", html(n)))
            .collect::<String>()
    );
    if plan.is_empty() {
        out.push_str("No resource changes.\n");
    }
    for change in &plan.changes {
        let _ = writeln!(out, "- {}", line(change, Style::Markdown, false));
    }
    out.push_str("\n</details>\n");
    out
}

/// One instance's provisioner plan as the comment keeps it: rendered once when it
/// finishes, stored with the pull request, composed into the comment by [`section`].
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Piece {
    pub instance: String,
    /// `planned`, `not_plannable`, `not_run` or `failed` ([`Outcome::label`]).
    pub outcome: String,
    /// add, change, destroy, replace, move, import, forget.
    pub counts: [usize; 7],
    /// One line per replacement or destroy, naming the instance: kept when lists are cut.
    pub dangerous: Vec<String>,
    /// The collapsible list, or the line saying why there is none.
    pub body: String,
    /// The entry of `capstan plan --deep --format json`'s `resources` (policies read it).
    #[serde(default)]
    pub json: serde_json::Value,
}

impl Piece {
    pub fn counts(&self) -> Counts {
        let [add, change, destroy, replace, moved, import, forget] = self.counts;
        Counts {
            add,
            change,
            destroy,
            replace,
            moved,
            import,
            forget,
        }
    }

    pub fn failed(&self) -> bool {
        self.outcome == "failed"
    }
}

/// The piece of one instance's provisioner plan.
pub fn piece(f: &Finished) -> Piece {
    let (instance, outcome) = (f.instance.as_str(), &f.outcome);
    let notes = notes(f);
    let notes_text: String = notes.iter().map(|n| format!(" ({})", html(n))).collect();
    let name = code(instance);
    let (counts, dangerous, body) = match outcome {
        Outcome::Planned {
            resources,
            unplanned,
        } => {
            let c = resources.counts();
            let dangerous = resources
                .changes
                .iter()
                .filter(|ch| ch.action.is_dangerous())
                .map(|ch| format!("- {name}: {}", line(ch, Style::Markdown, true)))
                .collect();
            let mut notes = notes.clone();
            notes.extend(unplanned.iter().map(|u| format!("{u}: not plannable")));
            (
                [
                    c.add, c.change, c.destroy, c.replace, c.moved, c.import, c.forget,
                ],
                dangerous,
                details(instance, resources, &notes),
            )
        }
        Outcome::NotPlannable { why } => (
            [0; 7],
            Vec::new(),
            format!("- {name}: not plannable: {}{notes_text}\n", html(why)),
        ),
        Outcome::NotRun { why } => (
            [0; 7],
            Vec::new(),
            format!("- {name}: **not planned**: {}{notes_text}\n", html(why)),
        ),
        Outcome::Failed { error, lines } => {
            let mut body = format!(
                "- {name}: ❌ **the provisioner plan failed**: {}{notes_text}\n",
                html(&one_line(error))
            );
            if !lines.is_empty() {
                body.push_str("\n  ```text\n");
                for l in lines {
                    let _ = writeln!(body, "  {}", one_line(l).replace("```", "'''"));
                }
                body.push_str("  ```\n");
            }
            ([0; 7], Vec::new(), body)
        }
    };
    Piece {
        instance: instance.to_string(),
        outcome: outcome.label().to_string(),
        counts,
        dangerous,
        body,
        json: json(std::slice::from_ref(f))[0].take(),
    }
}

/// What a reader must know besides the resources: a destroy, inputs that change later.
fn notes(f: &Finished) -> Vec<String> {
    let mut notes = Vec::new();
    if f.verb == Verb::Destroy {
        notes.push("planned as a destroy".to_string());
    }
    if !f.pending.is_empty() {
        let names: Vec<&str> = f.pending.iter().map(InstanceId::as_str).collect();
        notes.push(format!("inputs change after {} deploys", names.join(", ")));
    }
    notes
}

/// The comment's resources section within `budget` bytes: the `Resources:` line (with how
/// many instances are still being planned), then every instance's list while they fit
/// (failures first, then those with replacements and destroys). When the lists do not all
/// fit, every replacement and destroy is listed on its own line first, and a note says how
/// many lists were left out.
pub fn section(pieces: &[Piece], planning: usize, budget: usize) -> String {
    if pieces.is_empty() && planning == 0 {
        return String::new();
    }
    let mut total = Counts::default();
    for p in pieces {
        total += p.counts();
    }
    let mut out = format!("**{}**", counts(&total));
    if planning > 0 {
        let _ = write!(
            out,
            " (still planning {})",
            crate::core::render::plural(planning, "instance")
        );
    }
    out.push_str("\n\n");
    let mut order: Vec<&Piece> = pieces.iter().collect();
    order.sort_by_key(|p| (!p.failed(), p.dangerous.is_empty(), p.instance.as_str()));
    let whole: usize = order.iter().map(|p| p.body.len()).sum();
    if out.len() + whole <= budget {
        for p in order {
            out.push_str(&p.body);
        }
        return out;
    }
    // Room for the last note.
    const NOTE: usize = 300;
    let dangerous: Vec<&String> = order.iter().flat_map(|p| &p.dangerous).collect();
    if !dangerous.is_empty() {
        out.push_str("⚠ **Replacements and destroys**\n\n");
        for line in &dangerous {
            if out.len() + line.len() + 2 * NOTE > budget {
                out.push_str("- … more than fit here: `capstan plan --deep` lists them all\n");
                break;
            }
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
    }
    let mut left = 0;
    for p in &order {
        if left == 0 && out.len() + p.body.len() + NOTE <= budget {
            out.push_str(&p.body);
        } else {
            left += 1;
        }
    }
    if left > 0 {
        let _ = writeln!(
            out,
            "\n> The resource lists of {left} of {} instances were cut to fit the comment; the replacements and destroys are listed above. `capstan plan --deep` shows every list.",
            order.len()
        );
    }
    out
}

/// At most 200 characters, on one line.
fn one_line(s: &str) -> String {
    let flat = s.replace(['\n', '\r'], " ");
    if flat.chars().count() <= 200 {
        flat
    } else {
        let cut: String = flat.chars().take(199).collect();
        format!("{cut}…")
    }
}

/// How a line marks code and actions: markdown, or plain text for a terminal.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    Markdown,
    Text,
}

impl Style {
    fn code(self, s: &str) -> String {
        match self {
            Style::Markdown => code(s),
            Style::Text => s.to_string(),
        }
    }

    fn strong(self, s: &str) -> String {
        match self {
            Style::Markdown => format!("**{s}**"),
            Style::Text => s.to_string(),
        }
    }
}

/// `⚠ `aws_db_instance.main` **replace** (destroy, then create), forced by `engine``;
/// `short` leaves out the changed paths.
fn line(c: &ResourceChange, style: Style, short: bool) -> String {
    let mark = match c.action {
        Action::Replace | Action::Delete => "⚠",
        Action::Create => "+",
        Action::Update => "~",
        Action::Move => "→",
        Action::Import => "⇐",
        Action::Forget => "−",
        Action::Read | Action::NoOp => "·",
    };
    let mut text = format!(
        "{mark} {} {}",
        style.code(&c.address),
        style.strong(c.action.name())
    );
    if c.action == Action::Replace && !short {
        text.push_str(if c.create_first {
            " (create, then destroy)"
        } else {
            " (destroy, then create)"
        });
    }
    if let Some(from) = &c.previous_address {
        let _ = write!(text, " from {}", style.code(from));
    }
    if !c.forces.is_empty() {
        let forces: Vec<String> = c.forces.iter().map(|p| style.code(p)).collect();
        let _ = write!(text, ", forced by {}", forces.join(", "));
    }
    if !c.changed.is_empty() && !short {
        let changed: Vec<String> = c.changed.iter().map(|p| style.code(p)).collect();
        let _ = write!(text, "; changes {}", changed.join(", "));
        if c.more_changed > 0 {
            let _ = write!(text, " and {} more", c.more_changed);
        }
    }
    text
}

/// `capstan plan --deep` in a terminal: the `Resources:` line, then each instance with
/// its changes, one per line, dangerous first.
pub fn text(finished: &[Finished]) -> String {
    let mut total = Counts::default();
    for f in finished {
        if let Some(r) = f.outcome.resources() {
            total += r.counts();
        }
    }
    let mut out = format!("{}\n", counts(&total));
    for f in finished {
        let notes: String = notes(f).iter().map(|n| format!(" ({n})")).collect();
        let _ = write!(out, "\n{}", f.instance);
        match &f.outcome {
            Outcome::Planned {
                resources,
                unplanned,
            } => {
                let _ = writeln!(
                    out,
                    ": {}{notes}",
                    counts(&resources.counts()).trim_start_matches("Resources: ")
                );
                for change in &resources.changes {
                    let _ = writeln!(out, "  {}", line(change, Style::Text, false));
                }
                for u in unplanned {
                    let _ = writeln!(out, "  not plannable: {u}");
                }
            }
            Outcome::NotPlannable { why } => {
                let _ = writeln!(out, ": not plannable: {why}{notes}");
            }
            Outcome::NotRun { why } => {
                let _ = writeln!(out, ": not planned: {why}{notes}");
            }
            Outcome::Failed { error, lines } => {
                let _ = writeln!(
                    out,
                    ": the provisioner plan failed: {}{notes}",
                    one_line(error)
                );
                for l in lines {
                    let _ = writeln!(out, "  | {}", one_line(l));
                }
            }
        }
    }
    out
}

/// `capstan plan --deep --format json`'s `resources`: per instance its outcome and
/// changes (addresses, actions and paths; never values).
pub fn json(finished: &[Finished]) -> serde_json::Value {
    finished
        .iter()
        .map(|f| {
            let mut entry = serde_json::json!({
                "instance": f.instance.as_str(),
                "action": f.verb.name(),
                "outcome": f.outcome.label(),
                "inputs_change_after": f.pending.iter().map(InstanceId::as_str).collect::<Vec<_>>(),
            });
            match &f.outcome {
                Outcome::Planned {
                    resources,
                    unplanned,
                } => {
                    entry["changes"] = resources
                        .changes
                        .iter()
                        .map(|c| {
                            serde_json::json!({
                                "address": c.address,
                                "previous_address": c.previous_address,
                                "action": c.action.name(),
                                "create_before_destroy": c.create_first,
                                "reason": c.reason,
                                "changed_paths": c.changed,
                                "more_changed_paths": c.more_changed,
                                "replace_paths": c.forces,
                            })
                        })
                        .collect();
                    entry["not_plannable"] = serde_json::json!(unplanned);
                }
                Outcome::NotPlannable { why } | Outcome::NotRun { why } => {
                    entry["why"] = serde_json::json!(why);
                }
                Outcome::Failed { error, lines } => {
                    entry["error"] = serde_json::json!(error);
                    entry["last_lines"] = serde_json::json!(lines);
                }
            }
            entry
        })
        .collect()
}

/// A code span that no backtick in the text can end early.
fn code(s: &str) -> String {
    format!("`{}`", s.replace('`', "'"))
}

fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// For tests: 300 instances' pieces, each with 50 resource changes of which one is a
/// replacement (`aws_db_instance.main` of `team<NNN>-production-db`).
#[cfg(test)]
pub fn three_hundred_instances_of_fifty_resources() -> Vec<Piece> {
    let change = |address: String, action| ResourceChange {
        address,
        previous_address: None,
        action,
        create_first: false,
        reason: None,
        changed: vec!["tags.Name".into(), "size".into()],
        more_changed: 0,
        forces: if action == Action::Replace {
            vec!["engine".into()]
        } else {
            Vec::new()
        },
    };
    (0..300)
        .map(|i| {
            let mut changes: Vec<ResourceChange> = (0..49)
                .map(|r| change(format!("aws_instance.worker_{r}"), Action::Update))
                .collect();
            changes.insert(0, change("aws_db_instance.main".into(), Action::Replace));
            piece(&Finished {
                instance: InstanceId(format!("team{i:03}-production-db").into()),
                verb: Verb::Deploy,
                pending: Vec::new(),
                outcome: Outcome::Planned {
                    resources: ResourcePlan { changes },
                    unplanned: Vec::new(),
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::render::comment::MAX_COMMENT;
    use crate::core::resources::parse;

    const SHOW: &str =
        include_str!("../../../tests/fixtures/provisioner-plans/terraform-show.json");

    #[test]
    fn an_instance_lists_replacements_and_destroys_first_and_opens_for_them() {
        let plan = parse(SHOW.as_bytes(), true).unwrap();
        let text = instance("ecomm-production-db", &plan);
        let expected = "<details open><summary><code>ecomm-production-db</code>: 1 to add, 1 to change, 1 to destroy, 1 to replace, 1 to move ⚠</summary>

- ⚠ `terraform_data.db` **replace** (destroy, then create), forced by `triggers_replace`; changes `id (known after apply)`, `input.size`, `output (known after apply)`, `triggers_replace`
- ⚠ `terraform_data.old` **destroy**
- + `terraform_data.new` **create**
- ~ `terraform_data.cache` **update**; changes `input.password`, `input.size`, `output (known after apply)`
- → `terraform_data.renamed_to` **move** from `terraform_data.renamed_from`

</details>
";
        assert_eq!(text, expected);
        assert!(!text.contains("hunter"));
        assert_eq!(
            counts(&plan.counts()),
            "Resources: 1 to add, 1 to change, 1 to destroy, 1 to replace, 1 to move"
        );
    }

    #[test]
    fn a_quiet_instance_stays_closed_and_backticks_cannot_break_out() {
        let text = instance("a<b>", &ResourcePlan::default());
        assert!(
            text.starts_with("<details><summary><code>a&lt;b&gt;</code>: 0 to add"),
            "{text}"
        );
        assert!(text.contains("No resource changes."));
        assert_eq!(code("x`y"), "`x'y`");
    }

    #[test]
    fn three_hundred_instances_of_fifty_resources_keep_the_summary_and_every_replacement() {
        let pieces = three_hundred_instances_of_fifty_resources();
        let budget = MAX_COMMENT / 2;
        let text = section(&pieces, 0, budget);
        assert!(text.len() <= budget, "{} bytes", text.len());
        assert!(
            text.starts_with(
                "**Resources: 0 to add, 14700 to change, 0 to destroy, 300 to replace**"
            )
        );
        for i in 0..300 {
            assert!(
                text.contains(&format!(
                    "- `team{i:03}-production-db`: ⚠ `aws_db_instance.main` **replace**"
                )),
                "replacement {i} is missing"
            );
        }
        assert!(
            text.contains("were cut to fit the comment"),
            "{}",
            &text[text.len() - 400..]
        );
    }

    #[test]
    fn failures_come_first_with_their_last_lines_and_waiting_inputs_are_named() {
        let failed = piece(&Finished {
            instance: InstanceId("ecomm-staging-db".into()),
            verb: Verb::Deploy,
            pending: vec![InstanceId("si-staging-vpc".into())],
            outcome: Outcome::Failed {
                error: "`terraform plan` exited with status 1".into(),
                lines: vec!["Error: Invalid reference".into(), "```".into()],
            },
        });
        let fine = piece(&Finished {
            instance: InstanceId("ecomm-staging-app".into()),
            verb: Verb::Destroy,
            pending: Vec::new(),
            outcome: Outcome::Planned {
                resources: ResourcePlan::default(),
                unplanned: vec!["step 2 (exec)".into()],
            },
        });
        let text = section(&[fine, failed], 1, 10_000);
        assert!(
            text.starts_with("**Resources: 0 to add, 0 to change, 0 to destroy, 0 to replace** (still planning 1 instance)\n\n- `ecomm-staging-db`: ❌ **the provisioner plan failed**"),
            "{text}"
        );
        assert!(
            text.contains("(inputs change after si-staging-vpc deploys)"),
            "{text}"
        );
        assert!(
            text.contains("  Error: Invalid reference\n  '''\n  ```\n"),
            "{text}"
        );
        assert!(
            text.contains("; planned as a destroy; step 2 (exec): not plannable</summary>"),
            "{text}"
        );
    }
}
