//! A pull request's one comment, composed. Its sections' inputs are stored: the plan
//! section as the pull-request worker last computed it (`Store::plan_section`), each
//! instance's provisioner plan as it finished (`Store::resources`), the previews as the
//! state records them. Whoever changes an input shows the comment again through [`show`]:
//! the sections are composed in a fixed order (the plan's summary and table, the
//! resources, the previews, the plan's diagnostics and details), each within its budget,
//! and rendered once, to GitHub's limit, by the one publisher. Nothing is spliced into a posted body, and no lock is held across writers:
//! a writer that finds the inputs changed while it published shows them again.

use std::sync::Arc;

use super::context::Shared;
use super::error::DaemonError;
use super::publish::{self, Slot};
use crate::core::render::comment::{Comment, MAX_COMMENT};
use crate::core::render::resources::{Piece, section};
use crate::github::Client;
use crate::state::{StateError, Store};

/// The most the previews section may take, so a plan's details still show beside it.
pub(super) const PREVIEWS_BUDGET: usize = MAX_COMMENT / 4;

/// The most the resources section may take: half the comment; less when the plan's
/// summary and the previews leave less. Within it the section keeps its summary line and
/// every replacement and destroy before any instance's list (`render::resources::section`).
pub(super) const RESOURCES_BUDGET: usize = MAX_COMMENT / 2;

/// How the previews section of pull request `pr` is rendered from the state.
pub(super) type PreviewsSection = fn(&Store, u64) -> Result<String, StateError>;

/// Whether showing may create the comment: only the pull-request worker does (one per
/// pull request at a time), so two writers never both create one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Creates {
    Yes,
    OnlyEdits,
}

/// Room kept for the note `Comment::render` adds when it cuts.
const NOTE: usize = 300;

/// The comment of `plan` with the resources section (rendered from `resources`' pieces
/// and how many instances are still planned) and the `previews` section after its
/// summary: the previews cut at a line to [`PREVIEWS_BUDGET`] (saying so), the resources
/// within what is left, up to [`RESOURCES_BUDGET`], then the plan's diagnostics and
/// details as `Comment::render` fits them.
pub(super) fn compose(plan: &Comment, resources: (&[Piece], usize), previews: &str) -> Comment {
    let previews = if previews.is_empty() {
        String::new()
    } else {
        format!("\n{}", cut(previews, PREVIEWS_BUDGET))
    };
    let left = MAX_COMMENT.saturating_sub(NOTE + plan.head.len() + previews.len() + 1);
    let (pieces, planning) = resources;
    let resources = section(pieces, planning, left.min(RESOURCES_BUDGET));
    let mut head = plan.head.clone();
    if !resources.is_empty() {
        head.push('\n');
        head.push_str(&resources);
    }
    head.push_str(&previews);
    Comment {
        head,
        ..plan.clone()
    }
}

/// What a comment is made of, as the state has it now.
#[derive(PartialEq)]
struct Inputs {
    plan: Comment,
    resources: (Vec<Piece>, usize),
    previews: String,
}

fn inputs(store: &Store, pr: u64, previews: PreviewsSection) -> Result<Option<Inputs>, StateError> {
    let Some(plan) = store.plan_section(pr)? else {
        return Ok(None);
    };
    Ok(Some(Inputs {
        plan,
        resources: store.resources(pr)?,
        previews: previews(store, pr)?,
    }))
}

/// `text` up to `budget` bytes, cut after a whole line with a note when it is longer.
fn cut(text: &str, budget: usize) -> String {
    if text.len() <= budget {
        return text.to_string();
    }
    let note = "\n> The previews section was cut to fit the comment: `capstan preview list` shows every preview.\n";
    let mut end = budget.saturating_sub(note.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let end = text[..end].rfind('\n').map_or(0, |i| i + 1);
    format!("{}{note}", &text[..end])
}

/// Shows pull request `pr`'s comment as its stored inputs say now. Nothing is shown
/// before the first plan. With `Creates::OnlyEdits`, a comment not posted yet is left to
/// the worker that posts the plan.
pub(super) async fn show(
    shared: &Arc<Shared>,
    gh: &Client,
    pr: u64,
    previews: PreviewsSection,
    creates: Creates,
) -> Result<(), DaemonError> {
    let store = &shared.store;
    if creates == Creates::OnlyEdits && store.comment(pr)?.is_none() {
        return Ok(());
    }
    // Each pass shows the inputs as they are; another writer changing them meanwhile is
    // seen on the next. Three passes settle any realistic interleaving.
    for _ in 0..3 {
        let Some(now) = inputs(store, pr, previews)? else {
            return Ok(());
        };
        let resources = (now.resources.0.as_slice(), now.resources.1);
        let body = compose(&now.plan, resources, &now.previews).render(MAX_COMMENT);
        publish::body(gh, shared, Slot::Plan(pr), body).await?;
        if inputs(store, pr, previews)?.as_ref() == Some(&now) {
            return Ok(());
        }
    }
    tracing::warn!(pr, "the comment's inputs kept changing while it was shown");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::render::markdown::MARKER;

    /// A plan section at its largest: a summary, a table and details far over the limit,
    /// and diagnostics.
    fn largest_plan() -> Comment {
        let summary = format!("{MARKER}\n**Plan: 0 to create, 4000 to update, 0 to destroy**\n\n");
        let table: String = (0..2_000)
            .map(|i| format!("| `team{i}-prod` | 0 | 2 | 0 | 0 |\n"))
            .collect();
        Comment {
            head: format!("{summary}{}", &table[..30_000]),
            kept_title: "**Diagnostics**\n\n".into(),
            kept: (0..500)
                .map(|i| format!("- warning at file{i}.yaml: something to look at\n"))
                .collect(),
            sections: (0..200)
                .map(|i| {
                    format!(
                        "<details><summary>env{i}</summary>\n\n{}\n</details>\n",
                        "x".repeat(2_000)
                    )
                })
                .collect(),
            see_all: "Run `capstan plan` for the full plan.".into(),
        }
    }

    #[test]
    fn a_plan_and_a_previews_section_at_their_largest_fit_and_the_summary_survives() {
        let previews: String =
            std::iter::once("<!-- capstan:previews -->\n**Previews**\n\n".to_string())
                .chain((0..5_000).map(|i| {
                    format!(
                        "  | `web-pr{i}-app` | ✅ deployed | `url`: https://pr{i}.example.com |\n"
                    )
                }))
                .collect();
        assert!(previews.len() > MAX_COMMENT);
        let body = compose(&largest_plan(), (&[], 0), &previews).render(MAX_COMMENT);
        assert!(
            body.chars().count() <= MAX_COMMENT,
            "{} characters",
            body.chars().count()
        );
        assert!(body.starts_with(&format!("{MARKER}\n**Plan: 0 to create, 4000 to update")));
        assert!(body.contains("**Previews**"));
        assert!(body.contains("`capstan preview list` shows every preview"));
        // The plan's table comes before the previews, and what did not fit is said.
        assert!(
            body.find("| `team0-prod` |").expect("the table")
                < body.find("**Previews**").expect("previews")
        );
        assert!(
            body.contains("Cut to fit GitHub's 65536 characters"),
            "{}",
            &body[body.len() - 300..]
        );
    }

    #[test]
    fn composing_is_the_plan_alone_without_previews() {
        let plan = largest_plan();
        assert_eq!(compose(&plan, (&[], 0), ""), plan);
    }

    #[test]
    fn three_hundred_instances_of_fifty_resources_keep_every_replacement_beside_the_previews() {
        let pieces = crate::core::render::resources::three_hundred_instances_of_fifty_resources();
        let previews: String = (0..5_000)
            .map(|i| format!("  | `web-pr{i}-app` | ✅ deployed | |\n"))
            .collect();
        // The plan of 300 instances in 100 environments: its summary and table.
        let mut plan = largest_plan();
        plan.head = format!("{MARKER}\n**Plan: 0 to create, 300 to update, 0 to destroy**\n\n");
        for e in 0..100 {
            plan.head
                .push_str(&format!("| `team{e:03}-production` | 0 | 3 | 0 | 0 |\n"));
        }
        let body = compose(&plan, (&pieces, 0), &previews).render(MAX_COMMENT);
        assert!(
            body.chars().count() <= MAX_COMMENT,
            "{}",
            body.chars().count()
        );
        assert!(body.starts_with(&format!("{MARKER}\n**Plan: 0 to create, 300 to update")));
        assert!(
            body.contains("**Resources: 0 to add, 14700 to change, 0 to destroy, 300 to replace**")
        );
        for i in 0..300 {
            assert!(
                body.contains(&format!(
                    "- `team{i:03}-production-db`: ⚠ `aws_db_instance.main` **replace**"
                )),
                "replacement {i}"
            );
        }
        assert!(body.contains("**Previews**") || body.contains("web-pr0-app"));
        assert!(body.contains("were cut to fit the comment"));
        assert!(body.contains("Cut to fit GitHub's 65536 characters"));
    }
}
