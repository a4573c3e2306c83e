//! `policy test` and `policy eval` (docs/policies.md).

use std::path::Path;

use super::{Format, out};
use crate::core::Checked;
use crate::policy::{self, Budget, Policies};

/// The revision's policies, checked: a repository whose policies do not parse stops here
/// with its diagnostics (they never judge anything).
fn checked(repo: &Path, rev: Option<&str>) -> anyhow::Result<Result<Checked, String>> {
    let checked = crate::core::check(&crate::source::read(repo, rev)?);
    let broken: Vec<String> = checked
        .diagnostics
        .iter()
        .filter(|d| d.code == crate::core::diag::Code::PolicyInvalid)
        .map(|d| d.to_string())
        .collect();
    Ok(if broken.is_empty() {
        Ok(checked)
    } else {
        Err(broken.join("\n") + "\n")
    })
}

/// `capstan policy test`: a line per `test_*` rule; 1 when one fails or none could run.
pub fn test(repo: &Path, rev: Option<&str>) -> anyhow::Result<i32> {
    let checked = match checked(repo, rev)? {
        Ok(c) => c,
        Err(diagnostics) => {
            eprint!("{diagnostics}");
            return Ok(1);
        }
    };
    let results = match Policies::test(&checked.repository.policies, Budget::default()) {
        Ok(results) => results,
        Err(e) => {
            eprintln!("capstan: {e}");
            return Ok(1);
        }
    };
    let mut text = String::new();
    let failed = results.iter().filter(|r| r.outcome.is_err()).count();
    for r in &results {
        match &r.outcome {
            Ok(()) => text.push_str(&format!("PASS {} ({})\n", r.name, r.at)),
            Err(why) => text.push_str(&format!("FAIL {} ({}): got {why}\n", r.name, r.at)),
        }
    }
    text.push_str(&format!(
        "{} passed, {failed} failed\n",
        results.len() - failed
    ));
    out(&text)?;
    Ok(i32::from(failed > 0 || results.is_empty()))
}

/// `capstan policy eval --plan PLAN.json`: the decisions of the revision's policies on a
/// saved plan; 1 on a deny or an error.
pub fn eval(plan: &Path, repo: &Path, rev: Option<&str>, format: Format) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(plan)
        .map_err(|e| anyhow::anyhow!("reading the plan {}: {e}", plan.display()))?;
    let mut plan_json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "{} is not a plan capstan printed (`capstan plan --format json`): line {} column {}",
            plan.display(),
            e.line(),
            e.column()
        )
    })?;
    if plan_json.get("changes").is_none() || plan_json.get("summary").is_none() {
        anyhow::bail!(
            "{} is not a plan: it has no `summary` and `changes` (did `capstan plan` print diagnostics instead?)",
            plan.display()
        );
    }
    let checked = match checked(repo, rev)? {
        Ok(c) => c,
        Err(diagnostics) => {
            eprint!("{diagnostics}");
            return Ok(1);
        }
    };
    let resources = plan_json
        .as_object_mut()
        .and_then(|o| o.remove("resources"))
        .unwrap_or_else(|| serde_json::json!([]));
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let input = policy::document(plan_json, &checked, resources, None, &now);
    let policies = Policies::new(&checked.repository.policies, false)?;
    match policies.evaluate(&input, Budget::default()) {
        Ok(decisions) => {
            out(&match format {
                Format::Text => policy::text(&decisions, &input),
                Format::Json => {
                    serde_json::to_string_pretty(&policy::json(&decisions, &input))? + "\n"
                }
            })?;
            Ok(i32::from(
                decisions
                    .iter()
                    .any(|d| d.kind == crate::core::model::DecisionKind::Deny),
            ))
        }
        Err(e) => {
            eprintln!("capstan: the policies could not decide, so nothing is allowed: {e}");
            Ok(1)
        }
    }
}
