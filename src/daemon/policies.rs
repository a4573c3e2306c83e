//! The policy concern of a pull request (docs/policies.md): the deploy branch's policies,
//! never the pull request's own, judge its plan; `require_approval` waits for an approving
//! review of the head by a member of the team; the comment's **Policies** section and the
//! status `capstan/policy` say the outcome. A policy that cannot decide fails the status.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::context::Shared;
use super::error::DaemonError;
use super::publish;
use super::revisions::Side;
use crate::core::Checked;
use crate::core::commit::CommitId;
use crate::core::model::DecisionKind;
use crate::core::ownership::{self, Owner};
use crate::core::plan::Plan;
use crate::core::render::comment::cell;
use crate::github::{Client, PullRequest, Review, StatusState};
use crate::policy::{self, Approval, Budget, Decision, Policies, PullFacts};

pub const POLICY_CONTEXT: &str = "capstan/policy";

/// What the policies said about a pull request's head.
pub(super) struct Judged {
    /// The branch commit whose policies judged.
    pub policies_of: CommitId,
    pub outcome: Result<Vec<Decision>, String>,
    /// For each `require_approval` decision (by index in the decisions), who approved it.
    pub approved_by: BTreeMap<usize, String>,
    /// The input document, for where instances are written.
    pub input: Value,
}

/// Judges `plan` (of `head`, checked as `checked_head`) by the policies of `branch` (the
/// deploy branch's tip, checked); `None` when the branch has no policies.
#[allow(clippy::too_many_arguments)]
pub(super) async fn judge(
    gh: &Client,
    pr: &PullRequest,
    head: &CommitId,
    branch: (&CommitId, &Checked),
    checked_head: &Checked,
    plan: &Plan,
    changed_files: &[String],
    reviews: &[Review],
    resources: Value,
) -> Result<Option<Judged>, DaemonError> {
    let (tip, base) = branch;
    if base.repository.policies.iter().all(|p| p.test) {
        return Ok(None);
    }
    // Approvals count for the head they were given on.
    let on_head: Vec<(String, String)> = reviews
        .iter()
        .filter(|r| r.commit.as_deref() == Some(head.as_str()))
        .map(|r| (r.user.clone(), r.state.clone()))
        .collect();
    let approvers = ownership::approvers(&on_head);
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let facts = |approvals: Vec<Approval>| PullFacts {
        number: pr.number,
        author: pr.author.clone(),
        labels: pr.labels.clone(),
        changed_files: changed_files.to_vec(),
        approvals,
    };
    let policies = match Policies::new(&base.repository.policies, false) {
        Ok(p) => p,
        Err(e) => {
            return Ok(Some(Judged {
                policies_of: tip.clone(),
                outcome: Err(e.to_string()),
                approved_by: BTreeMap::new(),
                input: Value::Null,
            }));
        }
    };
    let evaluate = |approvals| {
        let input = policy::document(
            policy::plan_json(plan),
            checked_head,
            resources.clone(),
            Some(&facts(approvals)),
            &now,
        );
        let outcome = policies
            .evaluate(&input, Budget::default())
            .map_err(|e| e.to_string());
        (input, outcome)
    };
    let plain: Vec<Approval> = approvers
        .iter()
        .map(|u| Approval {
            user: u.clone(),
            teams: Vec::new(),
        })
        .collect();
    let (mut input, mut outcome) = evaluate(plain.clone());
    // The teams approvals are asked about: each member is asked once per team.
    let teams: Vec<String> = match &outcome {
        Ok(decisions) => {
            let mut t: Vec<String> = decisions.iter().filter_map(|d| d.team.clone()).collect();
            t.sort();
            t.dedup();
            t
        }
        Err(_) => Vec::new(),
    };
    let mut members: BTreeMap<(String, String), bool> = BTreeMap::new();
    for team in &teams {
        if let Owner::Team { org, team: name } = ownership::parse_owner(team) {
            for user in &approvers {
                let member = gh.team_member(org, name, user).await?;
                members.insert((team.clone(), user.to_lowercase()), member);
            }
        }
    }
    let approvals: Vec<Approval> = approvers
        .iter()
        .map(|u| Approval {
            user: u.clone(),
            teams: teams
                .iter()
                .filter(|t| members.get(&((*t).clone(), u.to_lowercase())) == Some(&true))
                .cloned()
                .collect(),
        })
        .collect();
    if approvals.iter().any(|a| !a.teams.is_empty()) {
        (input, outcome) = evaluate(approvals.clone());
    }
    let approved_by = match &outcome {
        Ok(decisions) => decisions
            .iter()
            .enumerate()
            .filter_map(|(i, d)| {
                let team = d.team.as_ref()?;
                let by = approvals.iter().find(|a| a.teams.contains(team))?;
                Some((i, by.user.clone()))
            })
            .collect(),
        Err(_) => BTreeMap::new(),
    };
    Ok(Some(Judged {
        policies_of: tip.clone(),
        outcome,
        approved_by,
        input,
    }))
}

/// `capstan/policy`: failure on a deny or when the policies cannot decide, pending while
/// an approval is missing, success otherwise.
pub(super) fn status(judged: &Judged) -> (StatusState, String) {
    let decisions = match &judged.outcome {
        Err(_) => {
            return (
                StatusState::Failure,
                "the policies could not decide; nothing is allowed (see the comment)".into(),
            );
        }
        Ok(d) => d,
    };
    if let Some(deny) = decisions.iter().find(|d| d.kind == DecisionKind::Deny) {
        return (StatusState::Failure, format!("denied: {}", deny.msg));
    }
    let waiting: Vec<&str> = decisions
        .iter()
        .enumerate()
        .filter(|(i, d)| {
            d.kind == DecisionKind::RequireApproval && !judged.approved_by.contains_key(i)
        })
        .filter_map(|(_, d)| d.team.as_deref())
        .collect();
    if !waiting.is_empty() {
        let mut teams = waiting;
        teams.dedup();
        return (
            StatusState::Pending,
            format!("needs approval from {}", teams.join(", ")),
        );
    }
    let warnings = decisions
        .iter()
        .filter(|d| d.kind == DecisionKind::Warn)
        .count();
    (
        StatusState::Success,
        if warnings == 0 {
            "allowed".into()
        } else {
            format!(
                "allowed, with {}",
                crate::core::render::plural(warnings, "warning")
            )
        },
    )
}

/// The comment's **Policies** section.
pub(super) fn section(judged: &Judged) -> String {
    let mut out = format!(
        "\n**Policies** (of the deploy branch at `{}`)",
        judged.policies_of.short()
    );
    let decisions = match &judged.outcome {
        Err(e) => {
            out.push_str(&format!(
                "\n\n- ❌ **The policies could not decide**, so nothing is allowed: {}\n",
                cell(e)
            ));
            return out;
        }
        Ok(d) => d,
    };
    if decisions.is_empty() {
        out.push_str(": nothing to say.\n");
        return out;
    }
    out.push_str("\n\n");
    for (i, d) in decisions.iter().enumerate() {
        let mark = match (d.kind, judged.approved_by.get(&i)) {
            (DecisionKind::Deny, _) => "❌ **deny**".to_string(),
            (DecisionKind::Warn, _) => "⚠️ **warn**".to_string(),
            (DecisionKind::RequireApproval, Some(by)) => format!(
                "✅ **approved** for {} by @{by}",
                d.team.as_deref().unwrap_or("?")
            ),
            (DecisionKind::RequireApproval, None) => format!(
                "⏳ **needs an approving review of this head** from {}",
                d.team.as_deref().unwrap_or("?")
            ),
        };
        let about = d
            .instance
            .as_deref()
            .map(|i| match policy::written_at(&judged.input, i) {
                Some(at) => format!(" `{i}` (`{at}`)"),
                None => format!(" `{i}`"),
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "- {mark}{about}: {} (rule `{}`)\n",
            cell(&d.msg),
            d.rule
        ));
    }
    out
}

/// Posts `capstan/policy` on `head`.
pub(super) async fn publish(
    gh: &Client,
    shared: &Arc<Shared>,
    head: &CommitId,
    judged: &Judged,
) -> Result<(), DaemonError> {
    let (state, description) = status(judged);
    publish::status(gh, shared, head, POLICY_CONTEXT, state, &description).await
}

/// For a pull request that changes `policies/`: the other open pull requests its policies
/// (`changed`, its head) would deny where the deploy branch's (`current`) do not, each
/// with the new denials (or why its policies could not decide).
pub(super) async fn newly_denied(
    shared: &Arc<Shared>,
    this: u64,
    current: &Checked,
    changed: &Checked,
) -> Result<Vec<(u64, Vec<String>)>, DaemonError> {
    let (old, new) = (
        Policies::new(&current.repository.policies, false),
        Policies::new(&changed.repository.policies, false),
    );
    let tip = shared.branch_tip()?;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut out = Vec::new();
    for other in shared
        .store
        .open_pulls()?
        .into_keys()
        .filter(|n| *n != this)
    {
        let Some((head, _)) = shared.store.planned(other)? else {
            continue;
        };
        let (base, checked) = {
            let (shared, tip, head) = (shared.clone(), tip.clone(), head.clone());
            tokio::task::spawn_blocking(move || -> Result<_, DaemonError> {
                let merge_base = shared.mirror.merge_base(&tip, &head)?;
                let cache = &shared.revisions;
                let (base, _) = cache.check(&shared.mirror, &merge_base, Side::Base, None)?;
                let (checked, _) = cache.check(&shared.mirror, &head, Side::Head, Some(&base))?;
                Ok((base, checked))
            })
            .await??
        };
        let (base, checked) = (&base.revision.checked, &checked.revision.checked);
        if checked.has_errors() {
            continue;
        }
        let plan = crate::core::plan::plan(base, checked);
        let resources = Value::Array(
            shared
                .store
                .resources(other)?
                .0
                .into_iter()
                .map(|p| p.json)
                .filter(|j| !j.is_null())
                .collect(),
        );
        let input = policy::document(policy::plan_json(&plan), checked, resources, None, &now);
        let denials =
            |policies: &Result<Policies, policy::PolicyError>| -> Result<Vec<String>, String> {
                let decisions = policies
                    .as_ref()
                    .map_err(|e| e.to_string())?
                    .evaluate(&input, Budget::default())
                    .map_err(|e| e.to_string())?;
                Ok(decisions
                    .into_iter()
                    .filter(|d| d.kind == DecisionKind::Deny)
                    .map(|d| format!("{} (rule `{}`)", d.msg, d.rule))
                    .collect())
            };
        let before = denials(&old).unwrap_or_default();
        let lines = match denials(&new) {
            Ok(after) => after
                .into_iter()
                .filter(|d| {
                    !before
                        .iter()
                        .any(|b| b.split(" (rule ").next() == d.split(" (rule ").next())
                })
                .collect(),
            Err(e) => vec![format!("the changed policies could not decide: {e}")],
        };
        if !lines.is_empty() {
            out.push((other, lines));
        }
    }
    Ok(out)
}

/// The comment's section for a pull request that changes policies.
pub(super) fn newly_denied_section(found: &[(u64, Vec<String>)]) -> String {
    if found.is_empty() {
        return "\n**Policies changed here** deny nothing new in the other open pull requests.\n"
            .into();
    }
    let mut out =
        "\n**Policies changed here** would newly deny these open pull requests:\n\n".to_string();
    for (pr, lines) in found {
        for line in lines {
            out.push_str(&format!("- #{pr}: {}\n", cell(line)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::diag::Loc;
    use crate::core::yaml::Pos;

    fn decision(kind: DecisionKind, msg: &str, team: Option<&str>) -> Decision {
        Decision {
            kind,
            msg: msg.into(),
            instance: Some("ecomm-staging-db".into()),
            team: team.map(Into::into),
            rule: Loc::new(&"policies/p.rego".into(), Pos { line: 3, col: 1 }),
        }
    }

    fn judged(outcome: Result<Vec<Decision>, String>, approved: &[(usize, &str)]) -> Judged {
        Judged {
            policies_of: "0123456789abcdef".into(),
            outcome,
            approved_by: approved.iter().map(|(i, u)| (*i, u.to_string())).collect(),
            input: serde_json::json!({"repository": {"instances": {"ecomm-staging-db": {"file": "projects/ecomm/project.yaml", "line": 9}}}}),
        }
    }

    #[test]
    fn the_status_fails_on_a_deny_or_an_error_and_waits_for_approvals() {
        let deny = decision(DecisionKind::Deny, "no", None);
        let warn = decision(DecisionKind::Warn, "careful", None);
        let ask = decision(DecisionKind::RequireApproval, "dba", Some("@acme/dba"));
        assert_eq!(
            status(&judged(Err("over budget".into()), &[])),
            (
                StatusState::Failure,
                "the policies could not decide; nothing is allowed (see the comment)".into()
            )
        );
        assert_eq!(
            status(&judged(Ok(vec![deny, ask.clone()]), &[])),
            (StatusState::Failure, "denied: no".into())
        );
        assert_eq!(
            status(&judged(Ok(vec![warn.clone(), ask.clone()]), &[])),
            (StatusState::Pending, "needs approval from @acme/dba".into())
        );
        let approved = judged(Ok(vec![warn, ask]), &[(1, "hubot")]);
        assert_eq!(
            status(&approved),
            (StatusState::Success, "allowed, with 1 warning".into())
        );
        let section = section(&approved);
        assert!(section.contains("- ⚠️ **warn** `ecomm-staging-db` (`projects/ecomm/project.yaml:9`): careful (rule `policies/p.rego:3:1`)"), "{section}");
        assert!(
            section.contains("- ✅ **approved** for @acme/dba by @hubot `ecomm-staging-db`"),
            "{section}"
        );
        let failed = super::section(&judged(Err("a | b".into()), &[]));
        assert!(
            failed.contains("**The policies could not decide**, so nothing is allowed: a \\| b"),
            "{failed}"
        );
    }
}
