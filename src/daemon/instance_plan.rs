//! The instance plan of a pull request (docs/pull-requests.md): the head planned against
//! its merge base, as the comment's plan section (with the ownership verdicts and the
//! pull requests changing the same instances) and the plan's own `capstan/plan` verdict,
//! which `resource_plans.rs` combines with the provisioner plans. Pure: the reconciler in
//! `pulls.rs` observes, this decides.

use crate::core::ownership::Verdict;
use crate::core::plan::Plan;
use crate::core::render::comment::Comment;
use crate::core::render::markdown::{self, MARKER};
use crate::core::render::plan::summary;
use crate::core::{self, Checked};
use crate::error::chain;
use crate::github::{PullRequest, StatusState};
use crate::source::SourceError;

/// The plan section and the instance plan's verdict, before anything is posted.
pub(super) struct Computed {
    pub body: Comment,
    pub plan_state: StatusState,
    pub plan_description: String,
}

/// The plan of a head that validates against its merge base; `None` when it does not.
pub(super) fn plan_of(base: &Checked, head: Result<&Checked, &SourceError>) -> Option<Plan> {
    match head {
        Ok(head) if !head.has_errors() => Some(core::plan::plan(base, head)),
        _ => None,
    }
}

/// Whose owners judge the pull request: the merge base's, or the head's when the base
/// predates capstan (its change introduces capstan).
pub(super) fn owners_from<'a>(
    base: &'a Checked,
    head: Result<&'a Checked, &SourceError>,
) -> &'a Checked {
    if base.repository.config.owners.is_empty() && base.repository.projects.is_empty() {
        head.unwrap_or(base)
    } else {
        base
    }
}

/// The plan section and the instance plan's own `capstan/plan` verdict: a pure decision
/// over the checked head, its plan, the ownership verdicts and the overlapping pull
/// requests.
pub(super) fn decide(
    pr: &PullRequest,
    head: &str,
    root: &str,
    checked_head: Result<&Checked, &SourceError>,
    plan: Option<&Plan>,
    verdicts: &[Verdict],
    overlaps: Vec<(u64, Vec<String>)>,
) -> Computed {
    let link_base = (!pr.repo_html_url.is_empty()).then(|| {
        let root = if root.is_empty() {
            String::new()
        } else {
            format!("{root}/")
        };
        format!("{}/blob/{head}/{root}", pr.repo_html_url)
    });
    let mut opts = markdown::Options::new(link_base);
    opts.ownership = Some(verdicts.to_vec());
    match (checked_head, plan) {
        (Ok(head), Some(plan)) => {
            opts.overlaps = overlaps;
            let body = markdown::plan(plan, &head.diagnostics, &opts);
            let (plan_state, plan_description) = if plan.is_refused() {
                (
                    StatusState::Failure,
                    format!(
                        "changes {} of deployed instances; see the comment",
                        core::render::plural(plan.errors.len(), "immutable param")
                    ),
                )
            } else {
                (StatusState::Success, summary(plan))
            };
            Computed {
                body,
                plan_state,
                plan_description,
            }
        }
        (Ok(head), None) => {
            let errors = head
                .diagnostics
                .iter()
                .filter(|d| d.severity() == core::diag::Severity::Error)
                .count();
            Computed {
                body: markdown::diagnostics(&head.diagnostics, &opts),
                plan_state: StatusState::Failure,
                plan_description: format!(
                    "the head has {} error{}; see the comment",
                    errors,
                    if errors == 1 { "" } else { "s" }
                ),
            }
        }
        (Err(e), _) => Computed {
            body: Comment {
                head: format!(
                    "{MARKER}\n**Plan failed: the head is not a capstan repository.**\n\n{}\n",
                    chain(e)
                ),
                ..Comment::default()
            },
            plan_state: StatusState::Failure,
            plan_description: "the head is not a capstan repository".into(),
        },
    }
}

/// The instances a plan creates, updates or destroys.
pub(super) fn changed_instances(plan: &Plan) -> Vec<String> {
    plan.changes
        .iter()
        .map(|c| c.instance.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ownership;
    use crate::core::source::SourceTree;

    fn example() -> SourceTree {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("example-repo");
        crate::source::read_dir(&root).expect("the example reads")
    }

    fn pr(author: &str) -> PullRequest {
        PullRequest {
            number: 7,
            open: true,
            head_sha: "abc".into(),
            base_ref: "main".into(),
            author: author.into(),
            repo_html_url: "https://github.com/acme/infra".into(),
            merge_commit: None,
            labels: Vec::new(),
            head_repo: Some("acme/infra".into()),
            base_repo: "acme/infra".into(),
        }
    }

    #[test]
    fn a_change_is_planned_and_waits_for_its_owners_approval() {
        let base = core::check(&example());
        let head = core::check(&example().edited(
            "projects/si/project.yaml",
            "high_availability: true",
            "high_availability: false",
        ));
        let changed = vec!["projects/si/project.yaml".to_string()];
        let plan = plan_of(&base, Ok(&head));
        let sets = ownership::touched(&owners_from(&base, Ok(&head)).repository, &changed);
        let verdicts = ownership::judge(sets, "mallory", &[], &|_, _, _| false);
        let computed = decide(
            &pr("mallory"),
            "abc",
            "",
            Ok(&head),
            plan.as_ref(),
            &verdicts,
            Vec::new(),
        );
        assert_eq!(computed.plan_state, StatusState::Success);
        assert!(
            computed
                .plan_description
                .starts_with("Plan: 0 to create, 3 to update"),
            "{}",
            computed.plan_description
        );
        assert_eq!(plan.as_ref().map(changed_instances).unwrap().len(), 3);
        assert!(
            !verdicts.iter().all(Verdict::ok),
            "si's owners have not approved"
        );
        assert!(
            computed
                .body
                .head
                .contains("needs an approving review from one of @acme/platform"),
            "{}",
            computed.body.head
        );
        assert!(
            computed
                .body
                .head
                .contains("**Plan: 0 to create, 3 to update"),
            "{}",
            computed.body.head
        );
    }

    #[test]
    fn a_head_that_does_not_validate_fails_with_its_error_count() {
        let base = core::check(&example());
        let head = core::check(&example().edited(
            "projects/ecomm/project.yaml",
            "bundle: aws-eks-cluster",
            "bundle: aws-eks",
        ));
        let plan = plan_of(&base, Ok(&head));
        assert!(plan.is_none());
        let computed = decide(
            &pr("alice"),
            "abc",
            "",
            Ok(&head),
            plan.as_ref(),
            &[],
            Vec::new(),
        );
        assert_eq!(computed.plan_state, StatusState::Failure);
        assert_eq!(
            computed.plan_description,
            "the head has 1 error; see the comment"
        );
    }
}
