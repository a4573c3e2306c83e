//! The policies' say over a deploy (docs/policies.md): the policies of the commit being
//! deployed judge its plan against what is deployed; a deny, or policies that cannot
//! decide, stop the deploy before any step runs. There is no switch around it: a rule that
//! must be broken is changed in a reviewed pull request.

use std::collections::BTreeMap;

use super::{DeployError, Target};
use crate::core::deployed::Deployed;
use crate::core::model::{DecisionKind, InstanceId};
use crate::core::plan;
use crate::policy::{self, Budget, Decision, Policies};

/// The decisions of `target`'s policies on its plan against `state`; `Err` when they deny
/// it or cannot decide. Nothing to change, or no policies, is no decision.
pub fn judge(
    target: &Target,
    state: &BTreeMap<InstanceId, Deployed>,
) -> Result<Vec<Decision>, DeployError> {
    let policies = Policies::new(&target.checked.repository.policies, false).map_err(|e| {
        DeployError::Undecided {
            commit: target.commit.clone(),
            error: e.to_string(),
        }
    })?;
    if policies.is_empty() {
        return Ok(Vec::new());
    }
    let mut planned = plan::against_deployed(state, &target.checked, &target.scope, &target.heal);
    if let Some(only) = &target.only {
        let needs = only.iter().map(|id| (id.clone(), None)).collect();
        planned = planned.select(&needs);
    }
    if planned.is_empty() {
        return Ok(Vec::new());
    }
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let input = policy::document(
        policy::plan_json(&planned),
        &target.checked,
        serde_json::json!([]),
        None,
        &now,
    );
    let decisions =
        policies
            .evaluate(&input, Budget::default())
            .map_err(|e| DeployError::Undecided {
                commit: target.commit.clone(),
                error: e.to_string(),
            })?;
    if decisions.iter().any(|d| d.kind == DecisionKind::Deny) {
        return Err(DeployError::Denied {
            commit: target.commit.clone(),
            decisions: policy::text(&decisions, &input),
        });
    }
    Ok(decisions)
}
