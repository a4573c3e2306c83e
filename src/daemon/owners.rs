//! The ownership concern of a pull request (docs/ownership.md): which owner sets the
//! changed files touch, who of them approved (asked of GitHub once per team and candidate),
//! the verdicts shown in the comment, and the `capstan/ownership` status.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::context::Shared;
use super::error::DaemonError;
use super::publish;
use crate::core::commit::CommitId;
use crate::core::ownership::{self, Owner, OwnerSet, Verdict};
use crate::github::{Client, PullRequest, Review, StatusState};

pub const OWNERSHIP_CONTEXT: &str = "capstan/ownership";

/// The verdict of each owner set `sets` of pull request `pr`, given its `reviews`: the
/// memberships of its author and approvers are asked of GitHub.
pub(super) async fn judge(
    gh: &Client,
    pr: &PullRequest,
    sets: Vec<OwnerSet>,
    reviews: &[Review],
) -> Result<Vec<Verdict>, DaemonError> {
    let reviews: Vec<(String, String)> =
        reviews.iter().cloned().map(|r| (r.user, r.state)).collect();
    let approvers = ownership::approvers(&reviews);
    let mut membership: BTreeMap<(String, String, String), bool> = BTreeMap::new();
    let candidates: Vec<&String> = std::iter::once(&pr.author)
        .chain(approvers.iter())
        .collect();
    for set in &sets {
        for owner in &set.owners {
            if let Owner::Team { org, team } = ownership::parse_owner(owner) {
                for user in &candidates {
                    let key = (org.to_string(), team.to_string(), user.to_lowercase());
                    if let std::collections::btree_map::Entry::Vacant(slot) = membership.entry(key)
                    {
                        slot.insert(gh.team_member(org, team, user).await?);
                    }
                }
            }
        }
    }
    Ok(verdicts(sets, &pr.author, &approvers, &membership))
}

/// The verdicts, given who approved and the memberships GitHub told.
fn verdicts(
    sets: Vec<OwnerSet>,
    author: &str,
    approvers: &[String],
    membership: &BTreeMap<(String, String, String), bool>,
) -> Vec<Verdict> {
    let member = |org: &str, team: &str, user: &str| {
        membership
            .get(&(org.to_string(), team.to_string(), user.to_lowercase()))
            .copied()
            .unwrap_or(false)
    };
    ownership::judge(sets, author, approvers, &member)
}

/// `capstan/ownership`: success when every owner set touched is satisfied, else pending
/// naming who must approve.
pub(super) fn status(verdicts: &[Verdict]) -> (StatusState, String) {
    let missing: Vec<String> = verdicts
        .iter()
        .filter(|v| !v.ok())
        .map(|v| v.set.owners.join(", "))
        .collect();
    if missing.is_empty() {
        (
            StatusState::Success,
            "every owner set touched is satisfied".to_string(),
        )
    } else {
        (
            StatusState::Pending,
            format!("needs approval from {}", missing.join("; ")),
        )
    }
}

/// Posts `capstan/ownership` on `head`.
pub(super) async fn publish(
    gh: &Client,
    shared: &Arc<Shared>,
    head: &CommitId,
    verdicts: &[Verdict],
) -> Result<(), DaemonError> {
    let (state, description) = status(verdicts);
    publish::status(gh, shared, head, OWNERSHIP_CONTEXT, state, &description).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_names_the_owner_sets_still_waiting() {
        let set = |owners: &[&str]| OwnerSet {
            scope: "projects/si/**".into(),
            owners: owners.iter().map(|o| o.to_string()).collect(),
            files: vec!["projects/si/project.yaml".into()],
        };
        let membership = BTreeMap::from([(
            (
                "acme".to_string(),
                "platform".to_string(),
                "alice".to_string(),
            ),
            true,
        )]);
        let judged = verdicts(
            vec![set(&["@acme/platform"]), set(&["@acme/dba", "@bob"])],
            "mallory",
            &["alice".to_string()],
            &membership,
        );
        assert_eq!(
            status(&judged),
            (
                StatusState::Pending,
                "needs approval from @acme/dba, @bob".to_string()
            )
        );
        let judged = verdicts(
            vec![set(&["@acme/platform"])],
            "mallory",
            &["Alice".to_string()],
            &membership,
        );
        assert_eq!(status(&judged).0, StatusState::Success);
    }
}
