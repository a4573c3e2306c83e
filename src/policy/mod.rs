//! Evaluating policies (docs/policies.md): the repository's `policies/*.rego`, parsed at
//! load (`core::load::policies`), run by the embedded Rego interpreter (regorus: no OPA
//! server, no network, no subprocess, and built without the builtins that read the clock,
//! make ids or reach the network) against an `input` document (`core::policy`).
//!
//! Each decision names the rule that made it: every `deny`, `warn` and
//! `require_approval` rule of package `capstan` is evaluated under a name of its own (its
//! head is renamed in a copy of the text, and a generated rule unions them back under the
//! documented names, so policies and their tests still see `deny`), so the file and line of
//! its head go with what it returns.
//!
//! Nothing here reads as "allowed" by accident: a policy that does not parse, a rule that
//! fails, a decision of the wrong shape, or an evaluation over its time budget is an
//! [`PolicyError`], which callers treat as a failure.

mod input;
mod memory;

use std::time::{Duration, Instant};

use regorus::Engine;
use serde_json::Value;

use crate::core::diag::Loc;
use crate::core::model::{DecisionKind, PolicyFile};
pub use input::{Approval, PullFacts, VERSION, document, plan_json};

/// How much one evaluation may take.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// All rules together.
    pub time: Duration,
    /// Bytes all rules together may allocate beyond what is in use when they start.
    pub memory: u64,
    /// Decisions of all rules together; more is an error (a rule gone wild).
    pub decisions: usize,
}

impl Default for Budget {
    fn default() -> Budget {
        Budget {
            time: Duration::from_secs(10),
            memory: 2 << 30,
            decisions: 10_000,
        }
    }
}

/// One decision of one rule.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Decision {
    pub kind: DecisionKind,
    pub msg: String,
    /// The instance it is about, if it names one.
    pub instance: Option<String>,
    /// For `require_approval`: the team (`@org/team`) whose member must approve.
    pub team: Option<String>,
    /// The head of the rule that made it.
    pub rule: Loc,
}

/// Why policies could not decide; never to be read as "allowed".
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("{file}: {message}")]
    Load { file: String, message: String },
    #[error("{rule}: evaluating the rule failed: {message}")]
    Eval { rule: String, message: String },
    #[error("{rule}: a decision must be a string or an object with a string `msg`{extra}")]
    Shape { rule: String, extra: &'static str },
    #[error(
        "the policies took longer than their budget of {budget:?} (stopped at {rule}); a rule that loops or walks a huge input never counts as allowed"
    )]
    Time { rule: String, budget: Duration },
    #[error(
        "the policies needed more memory than their budget of {} MiB (stopped at {rule}); a rule that builds a huge value never counts as allowed",
        budget >> 20
    )]
    Memory { rule: String, budget: u64 },
    #[error("the policies made more than {0} decisions; a rule that makes that many is a bug")]
    TooMany(usize),
}

/// The policies of a revision, ready to evaluate: the decision rules renamed, and the
/// union under the documented names added.
pub struct Policies {
    /// (path, text) of every module given to the engine.
    modules: Vec<(String, String)>,
    /// Each renamed decision rule: its name in the engine, kind and head.
    rules: Vec<(String, DecisionKind, Loc)>,
}

impl Policies {
    /// Prepares `files` (a revision's `Repository::policies`); test files are kept out
    /// unless `with_tests`.
    pub fn new(files: &[PolicyFile], with_tests: bool) -> Result<Policies, PolicyError> {
        let mut modules = Vec::new();
        let mut rules = Vec::new();
        for file in files.iter().filter(|f| with_tests || !f.test) {
            let mut lines: Vec<String> = file.text.lines().map(str::to_string).collect();
            for (kind, pos) in &file.decisions {
                let name = format!("__capstan_{}_{}", kind.rule(), rules.len());
                let line = lines
                    .get_mut((pos.line as usize).saturating_sub(1))
                    .ok_or_else(|| located(file, "a decision rule's head is past the end"))?;
                let at = (pos.col as usize).saturating_sub(1);
                if line
                    .get(at..)
                    .is_none_or(|rest| !rest.starts_with(kind.rule()))
                {
                    return Err(located(file, "a decision rule's head could not be found"));
                }
                line.replace_range(at..at + kind.rule().len(), &name);
                rules.push((name, *kind, Loc::new(&file.path, *pos)));
            }
            modules.push((file.path.to_string(), lines.join("\n") + "\n"));
        }
        if !rules.is_empty() {
            let mut union = String::from("package capstan\n\n");
            for (name, kind, _) in &rules {
                union.push_str(&format!(
                    "{} contains decision if {{\n  some decision in {name}\n}}\n\n",
                    kind.rule()
                ));
            }
            modules.push(("(capstan)/decisions.rego".into(), union));
        }
        Ok(Policies { modules, rules })
    }

    /// Whether there is anything to evaluate.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    fn engine(&self) -> Result<Engine, PolicyError> {
        let mut engine = Engine::new();
        engine.set_rego_v0(false);
        engine.set_strict_builtin_errors(true);
        for (path, text) in &self.modules {
            engine
                .add_policy(path.clone(), text.clone())
                .map_err(|e| PolicyError::Load {
                    file: path.clone(),
                    message: crate::core::load::policy_error(&e.to_string()),
                })?;
        }
        Ok(engine)
    }

    /// Every decision the policies make on `input`, sorted (denies first).
    pub fn evaluate(&self, input: &Value, budget: Budget) -> Result<Vec<Decision>, PolicyError> {
        let mut engine = self.engine()?;
        engine.set_input(regorus::Value::from(input.clone()));
        let started = Instant::now();
        let mut out = Vec::new();
        let ceiling = memory::Ceiling::set(budget.memory);
        for (name, kind, rule) in &self.rules {
            let left = budget.time.saturating_sub(started.elapsed());
            engine.set_execution_timer_config(regorus::utils::limits::ExecutionTimerConfig {
                limit: left.max(Duration::from_millis(1)),
                check_interval: std::num::NonZeroU32::new(64).expect("not zero"),
            });
            let value = engine
                .eval_rule(format!("data.capstan.{name}"))
                .map_err(|e| failed(&e, rule, budget))?;
            let json: Value =
                serde_json::from_str(&value.to_json_str().map_err(|e| PolicyError::Eval {
                    rule: rule.to_string(),
                    message: e.to_string(),
                })?)
                .unwrap_or(Value::Null);
            for item in json.as_array().into_iter().flatten() {
                out.push(decision(*kind, item, rule)?);
                if out.len() > budget.decisions {
                    return Err(PolicyError::TooMany(budget.decisions));
                }
            }
        }
        drop(ceiling);
        out.sort();
        Ok(out)
    }

    /// Runs every `test_*` rule of the test files (the policies beside them), in file
    /// order: (rule, where, passed or why not).
    pub fn test(files: &[PolicyFile], budget: Budget) -> Result<Vec<TestResult>, PolicyError> {
        let policies = Policies::new(files, true)?;
        let mut engine = policies.engine()?;
        let mut out = Vec::new();
        let _ceiling = memory::Ceiling::set(budget.memory);
        for file in files.iter().filter(|f| f.test) {
            for (package, name, pos) in crate::core::load::test_rules(file) {
                engine.set_execution_timer_config(regorus::utils::limits::ExecutionTimerConfig {
                    limit: budget.time,
                    check_interval: std::num::NonZeroU32::new(64).expect("not zero"),
                });
                let at = Loc::new(&file.path, pos);
                let outcome = match engine.eval_rule(format!("data.{package}.{name}")) {
                    Ok(v) if v == regorus::Value::from(true) => Ok(()),
                    Ok(regorus::Value::Undefined) => Err("undefined".to_string()),
                    Ok(v) => Err(v.to_json_str().unwrap_or_default()),
                    Err(e) => Err(crate::core::load::policy_error(&e.to_string())),
                };
                out.push(TestResult {
                    name: format!("data.{package}.{name}"),
                    at,
                    outcome,
                });
            }
        }
        Ok(out)
    }
}

/// Where what a decision says of an instance is written: the file and line of its first
/// changed param's new value (`projects/ecomm/project.yaml:9`), else where the instance is
/// configured, from the input document.
pub fn written_at(input: &Value, instance: &str) -> Option<String> {
    let changed = input["plan"]["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["instance"] == instance)
        .flat_map(|c| c["diffs"].as_array().into_iter().flatten())
        .find_map(|d| Some(format!("{}:{}", d["file"].as_str()?, d["line"].as_u64()?)));
    changed.or_else(|| {
        let inst = &input["repository"]["instances"][instance];
        Some(format!(
            "{}:{}",
            inst["file"].as_str()?,
            inst["line"].as_u64()?
        ))
    })
}

/// `Policies: 1 denied, 2 warnings, 1 approval required` and one line per decision, denies
/// first, each with its rule and, where it names an instance, where that is configured.
pub fn text(decisions: &[Decision], input: &Value) -> String {
    let count = |k| decisions.iter().filter(|d| d.kind == k).count();
    let mut out = format!(
        "Policies: {} denied, {} warned, {} approval required\n",
        count(DecisionKind::Deny),
        count(DecisionKind::Warn),
        count(DecisionKind::RequireApproval)
    );
    for d in decisions {
        let (mark, what) = match d.kind {
            DecisionKind::Deny => ("✗", "deny".to_string()),
            DecisionKind::Warn => ("!", "warn".to_string()),
            DecisionKind::RequireApproval => {
                ("⏳", format!("needs {}", d.team.as_deref().unwrap_or("?")))
            }
        };
        let about = d
            .instance
            .as_deref()
            .map(|i| match written_at(input, i) {
                Some(at) => format!("{i} ({at}): "),
                None => format!("{i}: "),
            })
            .unwrap_or_default();
        out.push_str(&format!("  {mark} {what}: {about}{} [{}]\n", d.msg, d.rule));
    }
    out
}

/// The decisions as JSON: `{"deny": [...], "warn": [...], "require_approval": [...]}`,
/// each `{msg, instance, team, rule: {file, line, column}, written_at}`.
pub fn json(decisions: &[Decision], input: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for kind in DecisionKind::ALL {
        let items: Vec<Value> = decisions
            .iter()
            .filter(|d| d.kind == kind)
            .map(|d| {
                serde_json::json!({
                    "msg": d.msg,
                    "instance": d.instance,
                    "team": d.team,
                    "rule": {"file": d.rule.file.as_ref(), "line": d.rule.pos.line, "column": d.rule.pos.col},
                    "written_at": d.instance.as_deref().and_then(|i| written_at(input, i)),
                })
            })
            .collect();
        out.insert(kind.rule().to_string(), Value::Array(items));
    }
    Value::Object(out)
}

/// One `test_*` rule's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestResult {
    pub name: String,
    pub at: Loc,
    /// `Err` says what it gave instead of `true`.
    pub outcome: Result<(), String>,
}

fn located(file: &PolicyFile, message: &str) -> PolicyError {
    PolicyError::Load {
        file: file.path.to_string(),
        message: message.into(),
    }
}

/// An evaluation error: over a budget, or the rule's own failure.
fn failed(e: &anyhow::Error, rule: &Loc, budget: Budget) -> PolicyError {
    let rule_at = rule.to_string();
    match e.downcast_ref::<regorus::LimitError>() {
        Some(regorus::LimitError::MemoryLimitExceeded { .. }) => {
            return PolicyError::Memory {
                rule: rule_at,
                budget: budget.memory,
            };
        }
        Some(regorus::LimitError::TimeLimitExceeded { .. }) => {
            return PolicyError::Time {
                rule: rule_at,
                budget: budget.time,
            };
        }
        _ => {}
    }
    PolicyError::Eval {
        rule: rule.to_string(),
        message: crate::core::load::policy_error(&e.to_string()),
    }
}

/// A decision from what a rule returned: a string message, or an object with `msg` and
/// optionally `instance` (and `team`, which `require_approval` needs).
fn decision(kind: DecisionKind, item: &Value, rule: &Loc) -> Result<Decision, PolicyError> {
    let shape = |extra| PolicyError::Shape {
        rule: rule.to_string(),
        extra,
    };
    let (msg, instance, team) = match item {
        Value::String(msg) => (msg.clone(), None, None),
        Value::Object(o) => {
            let text = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
            (
                text("msg").ok_or_else(|| shape(""))?,
                text("instance"),
                text("team"),
            )
        }
        _ => return Err(shape("")),
    };
    if kind == DecisionKind::RequireApproval && team.is_none() {
        return Err(shape(
            " and, for require_approval, a string `team` (@org/team)",
        ));
    }
    Ok(Decision {
        kind,
        msg,
        instance,
        team,
        rule: rule.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::diag::Diagnostics;
    use std::sync::Arc;

    fn files(sources: &[(&str, &str)]) -> Vec<PolicyFile> {
        let mut diags = Diagnostics::default();
        let out = sources
            .iter()
            .map(|(path, text)| crate::core::load::policy(&Arc::from(*path), text, &mut diags))
            .collect();
        assert!(diags.finish().is_empty());
        out
    }

    const RULES: &str = r#"package capstan

deny contains {"msg": sprintf("%s is destroyed", [c.instance]), "instance": c.instance} if {
  some c in input.plan.changes
  c.action == "destroy"
}

warn contains "a warning" if input.plan.summary.update > 0

require_approval contains {"msg": "production", "team": "@acme/dba", "instance": c.instance} if {
  some c in input.plan.changes
  endswith(c.instance, "-db")
}

deny contains "too many changes" if count(input.plan.changes) > 2
"#;

    fn input() -> Value {
        serde_json::json!({"plan": {"summary": {"update": 1}, "changes": [
            {"instance": "a-prod-db", "action": "update"},
            {"instance": "b-prod-app", "action": "destroy"},
        ]}})
    }

    #[test]
    fn each_decision_names_the_rule_that_made_it() {
        let policies = Policies::new(&files(&[("policies/rules.rego", RULES)]), false).unwrap();
        let decisions = policies.evaluate(&input(), Budget::default()).unwrap();
        let shown: Vec<String> = decisions
            .iter()
            .map(|d| {
                format!(
                    "{:?} {} {:?} {:?} {}",
                    d.kind, d.msg, d.instance, d.team, d.rule
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                "Deny b-prod-app is destroyed Some(\"b-prod-app\") None policies/rules.rego:3:1",
                "Warn a warning None None policies/rules.rego:8:1",
                "RequireApproval production Some(\"a-prod-db\") Some(\"@acme/dba\") policies/rules.rego:10:1",
            ]
        );
    }

    #[test]
    fn a_rule_that_builds_a_huge_value_is_stopped_by_the_memory_budget() {
        let text = "package capstan\n\ndeny contains \"x\" if {\n  words := [sprintf(\"word %d\", [i]) | some i in numbers.range(1, 2000000)]\n  count(words) > 0\n}\n";
        let policies = Policies::new(&files(&[("policies/p.rego", text)]), false).unwrap();
        let over = policies.evaluate(
            &input(),
            Budget {
                time: Duration::from_secs(120),
                memory: 16 << 20,
                decisions: 100,
            },
        );
        assert_eq!(
            over,
            Err(PolicyError::Memory {
                rule: "policies/p.rego:3:1".into(),
                budget: 16 << 20
            })
        );
        assert!(
            over.unwrap_err()
                .to_string()
                .contains("more memory than their budget of 16 MiB"),
        );
        // One builtin that builds a huge value at once is stopped too.
        let at_once =
            "package capstan\n\ndeny contains \"x\" if count(numbers.range(1, 100000000)) > 0\n";
        let over = Policies::new(&files(&[("policies/p.rego", at_once)]), false)
            .unwrap()
            .evaluate(
                &input(),
                Budget {
                    time: Duration::from_secs(120),
                    memory: 256 << 20,
                    decisions: 100,
                },
            );
        assert!(matches!(over, Err(PolicyError::Memory { .. })), "{over:?}");
        // The ceiling is lifted afterwards: the same policies evaluate on a small input.
        let small = "package capstan\n\ndeny contains \"x\" if count([i | some i in numbers.range(1, 1000)]) > 0\n";
        let fine = Policies::new(&files(&[("policies/p.rego", small)]), false)
            .unwrap()
            .evaluate(&input(), Budget::default())
            .unwrap();
        assert_eq!(fine.len(), 1);
    }

    #[test]
    fn a_failing_looping_or_misshapen_rule_is_an_error_never_allowed() {
        let run = |rule: &str| {
            let text = format!("package capstan\n\n{rule}\n");
            Policies::new(&files(&[("policies/p.rego", &text)]), false)
                .unwrap()
                .evaluate(
                    &input(),
                    Budget {
                        time: Duration::from_millis(300),
                        decisions: 100,
                        ..Budget::default()
                    },
                )
        };
        let looping = run(
            "deny contains \"x\" if count([x | some i in numbers.range(1, 10000); some j in numbers.range(1, 10000); x := i * j]) > 0",
        );
        assert!(
            matches!(looping, Err(PolicyError::Time { .. })),
            "{looping:?}"
        );
        let failing = run("deny contains \"x\" if to_number(\"not a number\") > 0");
        assert!(
            matches!(failing, Err(PolicyError::Eval { .. })),
            "{failing:?}"
        );
        let misshapen = run("deny contains 42 if true");
        assert!(
            matches!(misshapen, Err(PolicyError::Shape { .. })),
            "{misshapen:?}"
        );
        let no_team = run("require_approval contains {\"msg\": \"x\"} if true");
        assert!(
            matches!(no_team, Err(PolicyError::Shape { .. })),
            "{no_team:?}"
        );
        let many = run("deny contains sprintf(\"%d\", [n]) if some n in numbers.range(1, 1000)");
        assert_eq!(many, Err(PolicyError::TooMany(100)));
    }

    #[test]
    fn tests_run_against_the_policies_and_say_what_failed() {
        let test = r#"package capstan_test

import data.capstan

test_a_destroy_is_denied if {
  count(capstan.deny) == 4 with input as {"plan": {"summary": {"update": 0}, "changes": [
    {"instance": "x", "action": "destroy"}, {"instance": "y", "action": "destroy"},
    {"instance": "z", "action": "destroy"}]}}
}

test_nothing_is_denied_for_an_update if {
  count(capstan.deny) == 0 with input as {"plan": {"summary": {"update": 1}, "changes": [{"instance": "x", "action": "update"}]}}
}

test_wrong if {
  count(capstan.deny) == 5 with input as {"plan": {"summary": {"update": 0}, "changes": []}}
}
"#;
        let results = Policies::test(
            &files(&[
                ("policies/rules.rego", RULES),
                ("policies/rules_test.rego", test),
            ]),
            Budget::default(),
        )
        .unwrap();
        let shown: Vec<(String, bool)> = results
            .iter()
            .map(|r| (r.name.clone(), r.outcome.is_ok()))
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "data.capstan_test.test_a_destroy_is_denied".to_string(),
                    true
                ),
                (
                    "data.capstan_test.test_nothing_is_denied_for_an_update".to_string(),
                    true
                ),
                ("data.capstan_test.test_wrong".to_string(), false),
            ]
        );
        assert_eq!(results[0].at.to_string(), "policies/rules_test.rego:5:1");
    }
}
