//! A provisioner plan as people read it in a pull request: the summary line's
//! `Resources: …` and, per instance, a collapsible list of its resource changes with
//! replacements and destroys first and marked ⚠. Addresses and attribute paths only:
//! a resource plan holds no values (`core/resources.rs`).

use std::fmt::Write as _;

use crate::core::resources::{Action, Counts, ResourceChange, ResourcePlan};

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
    let c = plan.counts();
    let danger = c.replace + c.destroy;
    let mut out = format!(
        "<details{}><summary><code>{}</code>: {}{}</summary>\n\n",
        if danger > 0 { " open" } else { "" },
        html(instance),
        counts(&c).trim_start_matches("Resources: "),
        if danger > 0 { " ⚠" } else { "" }
    );
    if plan.is_empty() {
        out.push_str("No resource changes.\n");
    }
    for change in &plan.changes {
        let _ = writeln!(out, "- {}", line(change));
    }
    out.push_str("\n</details>\n");
    out
}

/// `⚠ `aws_db_instance.main` **replace** (destroy, then create), forced by `engine``.
fn line(c: &ResourceChange) -> String {
    let mark = match c.action {
        Action::Replace | Action::Delete => "⚠",
        Action::Create => "+",
        Action::Update => "~",
        Action::Move => "→",
        Action::Import => "⇐",
        Action::Forget => "−",
        Action::Read | Action::NoOp => "·",
    };
    let mut text = format!("{mark} {} **{}**", code(&c.address), c.action.name());
    if c.action == Action::Replace {
        text.push_str(if c.create_first {
            " (create, then destroy)"
        } else {
            " (destroy, then create)"
        });
    }
    if let Some(from) = &c.previous_address {
        let _ = write!(text, " from {}", code(from));
    }
    if !c.forces.is_empty() {
        let forces: Vec<String> = c.forces.iter().map(|p| code(p)).collect();
        let _ = write!(text, ", forced by {}", forces.join(", "));
    }
    if !c.changed.is_empty() {
        let changed: Vec<String> = c.changed.iter().map(|p| code(p)).collect();
        let _ = write!(text, "; changes {}", changed.join(", "));
        if c.more_changed > 0 {
            let _ = write!(text, " and {} more", c.more_changed);
        }
    }
    text
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

#[cfg(test)]
mod tests {
    use super::*;
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
}
