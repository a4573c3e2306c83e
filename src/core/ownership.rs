//! Ownership of changed files (docs/daemon.md, On GitHub): which owner sets a pull request touches,
//! and, given the author, the approving reviewers and team memberships, whether each holds.
//! Membership is asked through a closure so the core stays free of I/O.

use std::collections::BTreeMap;

use super::model::{ProjectId, Repository};

/// One owner set touched by a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerSet {
    /// `projects/si/**`, or `everything outside projects/ with an owner`.
    pub scope: String,
    /// `@user` or `@org/team`, as written in the repository.
    pub owners: Vec<String>,
    /// The changed files it owns (relative to the repository root), sorted.
    pub files: Vec<String>,
}

const ROOT_SCOPE: &str = "repository-wide files (capstan.yaml owners)";

/// The owner sets `changed` touches, judged by `owners_from` (the base revision, so a pull
/// request cannot make its author an owner). A project that has no owners there (new, or
/// none listed) falls to the owners in `capstan.yaml`.
pub fn touched(owners_from: &Repository, changed: &[String]) -> Vec<OwnerSet> {
    let mut sets: BTreeMap<String, OwnerSet> = BTreeMap::new();
    for file in changed {
        let project = file
            .strip_prefix("projects/")
            .and_then(|rest| rest.split('/').next())
            .filter(|p| !p.is_empty());
        let owned = project.and_then(|p| {
            let owners = &owners_from
                .projects
                .get(&ProjectId(p.to_string().into()))?
                .owners;
            (!owners.is_empty()).then(|| (format!("projects/{p}/**"), owners.clone()))
        });
        let (scope, owners) =
            owned.unwrap_or_else(|| (ROOT_SCOPE.to_string(), owners_from.config.owners.clone()));
        sets.entry(scope.clone())
            .or_insert_with(|| OwnerSet {
                scope,
                owners,
                files: Vec::new(),
            })
            .files
            .push(file.clone());
    }
    let mut out: Vec<OwnerSet> = sets.into_values().collect();
    for s in &mut out {
        s.files.sort();
        s.files.dedup();
    }
    out
}

/// Whether an owner set's rule holds for a pull request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holds {
    /// The author is an owner.
    Author(String),
    /// Approved by these owners.
    Approved(Vec<String>),
    /// Nobody may approve: the set has no owners, so anyone's change goes through.
    Unowned,
    /// Still needs an approving review from one of the owners.
    Missing,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub set: OwnerSet,
    pub holds: Holds,
}

impl Verdict {
    pub fn ok(&self) -> bool {
        !matches!(self.holds, Holds::Missing)
    }
}

/// `@alice` is a user; `@acme/platform` is team `platform` of organisation `acme`.
pub enum Owner<'a> {
    User(&'a str),
    Team { org: &'a str, team: &'a str },
}

pub fn parse_owner(text: &str) -> Owner<'_> {
    let bare = text.trim_start_matches('@');
    match bare.split_once('/') {
        Some((org, team)) => Owner::Team { org, team },
        None => Owner::User(bare),
    }
}

/// Judges every set. `member(org, team, user)` answers team membership; the caller
/// resolves it (through the API) before calling, so this stays pure and synchronous.
pub fn judge(
    sets: Vec<OwnerSet>,
    author: &str,
    approvers: &[String],
    member: &dyn Fn(&str, &str, &str) -> bool,
) -> Vec<Verdict> {
    sets.into_iter()
        .map(|set| {
            let is_owner = |user: &str| {
                set.owners.iter().any(|o| match parse_owner(o) {
                    Owner::User(u) => u.eq_ignore_ascii_case(user),
                    Owner::Team { org, team } => member(org, team, user),
                })
            };
            let holds = if set.owners.is_empty() {
                Holds::Unowned
            } else if is_owner(author) {
                Holds::Author(author.to_string())
            } else {
                let approved: Vec<String> = approvers
                    .iter()
                    .filter(|a| !a.eq_ignore_ascii_case(author) && is_owner(a))
                    .cloned()
                    .collect();
                if approved.is_empty() {
                    Holds::Missing
                } else {
                    Holds::Approved(approved)
                }
            };
            Verdict { set, holds }
        })
        .collect()
}

/// Users whose latest review (in order given) is an approval.
pub fn approvers(reviews: &[(String, String)]) -> Vec<String> {
    let mut latest: BTreeMap<String, &str> = BTreeMap::new();
    for (user, state) in reviews {
        // Comments don't change a reviewer's verdict; approvals, change requests and
        // dismissals do.
        if state != "COMMENTED" && state != "PENDING" {
            latest.insert(user.to_ascii_lowercase(), state);
        }
    }
    reviews
        .iter()
        .filter(|(u, _)| latest.get(&u.to_ascii_lowercase()) == Some(&"APPROVED"))
        .map(|(u, _)| u.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(owners: &[&str]) -> OwnerSet {
        OwnerSet {
            scope: "projects/si/**".into(),
            owners: owners.iter().map(|s| s.to_string()).collect(),
            files: vec!["projects/si/project.yaml".into()],
        }
    }

    fn no_teams(_: &str, _: &str, _: &str) -> bool {
        false
    }

    #[test]
    fn author_owner_needs_no_review() {
        let v = judge(vec![set(&["@alice"])], "Alice", &[], &no_teams);
        assert_eq!(v[0].holds, Holds::Author("Alice".into()));
    }

    #[test]
    fn team_member_approval_counts_and_self_approval_does_not() {
        let member = |org: &str, team: &str, user: &str| {
            org == "acme" && team == "platform" && user == "bob"
        };
        let v = judge(
            vec![set(&["@acme/platform"])],
            "carol",
            &["bob".into(), "carol".into()],
            &member,
        );
        assert_eq!(v[0].holds, Holds::Approved(vec!["bob".into()]));
        let v = judge(
            vec![set(&["@acme/platform"])],
            "carol",
            &["dave".into()],
            &member,
        );
        assert_eq!(v[0].holds, Holds::Missing);
        assert!(!v[0].ok());
    }

    #[test]
    fn a_later_change_request_withdraws_an_approval() {
        let reviews = vec![
            ("bob".to_string(), "APPROVED".to_string()),
            ("eve".to_string(), "APPROVED".to_string()),
            ("bob".to_string(), "CHANGES_REQUESTED".to_string()),
            ("eve".to_string(), "COMMENTED".to_string()),
        ];
        assert_eq!(approvers(&reviews), vec!["eve".to_string()]);
    }
}
