//! A run's outcome ([`Report`]) and its renderings: lines for the terminal, and the comment
//! on the merged pull request (assembled to fit GitHub's limit like every comment).
//! Artifacts appear with sensitive fields already replaced by `(sensitive)`, which is done
//! when the outcome is made.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::core::commit::short;
use crate::core::model::InstanceId;
use crate::core::render::comment::{Comment, MAX_COMMENT, cell, table};
use crate::core::resources::Applied;
use crate::core::run::{self, RunStatus, StepResult, StepStatus, Verb};

/// What happened to one instance in a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub instance: InstanceId,
    pub verb: Verb,
    pub result: StepResult,
    pub log: Option<PathBuf>,
    pub seconds: f64,
    /// After a successful deploy: its artifacts with sensitive fields shown as `(sensitive)`.
    pub artifacts: BTreeMap<String, Value>,
    /// How many resources it added, changed and destroyed; `None` when a step could not
    /// say.
    pub resources: Option<Applied>,
}

impl Outcome {
    /// A step that did not run.
    pub fn not_run(instance: &InstanceId, verb: Verb, result: StepResult) -> Outcome {
        Outcome {
            instance: instance.clone(),
            verb,
            result,
            log: None,
            seconds: 0.0,
            artifacts: BTreeMap::new(),
            resources: None,
        }
    }
}

/// The result of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub run: i64,
    pub commit: String,
    pub outcomes: Vec<Outcome>,
    pub unchanged: usize,
}

impl Report {
    pub fn new(run: i64, commit: &str) -> Report {
        Report {
            run,
            commit: commit.to_string(),
            outcomes: Vec::new(),
            unchanged: 0,
        }
    }

    pub fn count(&self, status: StepStatus) -> usize {
        self.outcomes
            .iter()
            .filter(|o| o.result.status() == status)
            .count()
    }

    /// Succeeded (everything is as desired), waiting (only deploy windows hold something
    /// back) or failed.
    pub fn status(&self) -> RunStatus {
        run::run_status(self.outcomes.iter().map(|o| &o.result))
    }

    /// The earliest moment a closed window opens.
    pub fn next_window(&self) -> Option<DateTime<Utc>> {
        self.outcomes
            .iter()
            .filter_map(|o| match &o.result {
                StepResult::Waiting { opens, .. } => *opens,
                _ => None,
            })
            .min()
    }

    /// One line: `3 deployed, 1 destroyed, 1 failed, 2 skipped; 9 unchanged`.
    pub fn summary(&self) -> String {
        let ok = |verb| {
            self.outcomes
                .iter()
                .filter(|o| o.verb == verb && o.result == StepResult::Succeeded)
                .count()
        };
        let mut parts = vec![
            format!("{} deployed", ok(Verb::Deploy)),
            format!("{} destroyed", ok(Verb::Destroy)),
        ];
        for status in [StepStatus::Failed, StepStatus::Skipped, StepStatus::Waiting] {
            let n = self.count(status);
            if n > 0 {
                parts.push(format!("{n} {status}"));
            }
        }
        format!("{}; {} unchanged", parts.join(", "), self.unchanged)
    }
}

/// The hidden first line that finds our comment about the deploy of `commit` again.
pub fn marker(commit: &str) -> String {
    format!("<!-- capstan:deploy {commit} -->")
}

fn compact(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// One line per outcome as it happens (the CLI's progress).
pub fn line(o: &Outcome) -> String {
    let mark = match o.result {
        StepResult::Succeeded => "✓",
        StepResult::Failed(_) => "✗",
        StepResult::Skipped(_) => "↷",
        StepResult::Waiting { .. } => "⏸",
    };
    let what = match (&o.result, o.verb) {
        (StepResult::Succeeded, Verb::Deploy) => "deployed".to_string(),
        (StepResult::Succeeded, Verb::Destroy) => "destroyed".to_string(),
        (r, v) => format!("{v} {}", r.status()),
    };
    let mut out = format!("{mark} {} {what}", o.instance);
    if o.seconds > 0.0 {
        let _ = write!(out, " in {:.2}s", o.seconds);
    }
    let d = o.result.detail();
    if !d.is_empty() {
        let _ = write!(out, ": {d}");
    }
    if !matches!(o.result, StepResult::Succeeded)
        && let Some(log) = &o.log
    {
        let _ = write!(out, " (log: {})", log.display());
    }
    for (field, value) in &o.artifacts {
        let _ = write!(out, "\n    {field} = {}", compact(value));
    }
    out
}

pub fn text(report: &Report) -> String {
    let mut out = format!(
        "Deploy of {} (run {}): {}\n",
        short(&report.commit),
        report.run,
        report.summary()
    );
    for o in &report.outcomes {
        out.push_str("  ");
        out.push_str(&line(o).replace('\n', "\n  "));
        out.push('\n');
    }
    out
}

/// Where the deploy changed other resources than the merged pull request's provisioner
/// plans showed (`planned`, by instance, counted as an apply counts): one line each. The
/// cloud drifted, or another merge came in between; instances either side could not
/// count are not compared.
pub fn differences(report: &Report, planned: &BTreeMap<String, Applied>) -> Vec<String> {
    let said = |a: &Applied| {
        format!(
            "{} added, {} changed, {} destroyed",
            a.added, a.changed, a.destroyed
        )
    };
    report
        .outcomes
        .iter()
        .filter(|o| o.result == StepResult::Succeeded)
        .filter_map(|o| {
            let did = o.resources.as_ref()?;
            let plan = planned.get(o.instance.as_str())?;
            (did != plan).then(|| {
                format!(
                    "`{}`: the deploy {}, where the pull request's provisioner plan showed {}",
                    o.instance,
                    said(did),
                    said(plan)
                )
            })
        })
        .collect()
}

/// The comment on the merged pull request: the summary, where the resources changed
/// differ from what the pull request's provisioner plans showed (`differences`), a table
/// of outcomes, and the artifacts of what deployed (one collapsible section per instance).
pub fn markdown(report: &Report, differences: &[String]) -> Comment {
    let icon = match report.status() {
        RunStatus::Succeeded => "✅",
        RunStatus::Waiting => "⏸️",
        _ => "❌",
    };
    let mut head = format!(
        "{}\n### {icon} capstan deploy of `{}`\n\n**{}** (run {})\n",
        marker(&report.commit),
        short(&report.commit),
        report.summary(),
        report.run
    );
    if let Some(at) = report.next_window() {
        let _ = writeln!(
            head,
            "\nWaiting for a deploy window: the rest deploys from {at}."
        );
    }
    if !differences.is_empty() {
        head.push_str(
            "\n⚠ **Not what the pull request's provisioner plans showed** (the cloud drifted, or another merge came in between):\n\n",
        );
        for line in differences.iter().take(50) {
            let _ = writeln!(head, "- {line}");
        }
        if differences.len() > 50 {
            let _ = writeln!(head, "- … and {} more", differences.len() - 50);
        }
    }
    if report.outcomes.is_empty() {
        head.push_str("\nNothing to do: every instance is as this commit wants it.\n");
    } else {
        let rows: Vec<String> = report
            .outcomes
            .iter()
            .map(|o| {
                format!(
                    "| `{}` | {} | {} | {} |\n",
                    o.instance,
                    o.verb,
                    o.result.status(),
                    cell(&o.result.detail())
                )
            })
            .collect();
        head.push('\n');
        head.push_str(&table(
            "| instance | action | result | details |\n|---|---|---|---|\n",
            &rows,
            MAX_COMMENT / 2,
            "instances",
        ));
    }
    let sections = report
        .outcomes
        .iter()
        .filter(|o| !o.artifacts.is_empty())
        .map(|o| {
            let mut s = format!(
                "\n<details><summary>Artifacts of <code>{}</code> (sensitive fields hidden)</summary>\n\n",
                o.instance
            );
            for (field, value) in &o.artifacts {
                let _ = writeln!(
                    s,
                    "- `{field}`: `{}`",
                    cell(&compact(value)).replace('`', "'")
                );
            }
            s.push_str("\n</details>\n");
            s
        })
        .collect();
    Comment {
        head,
        kept_title: String::new(),
        kept: Vec::new(),
        sections,
        see_all: "Run `capstan state list` for every instance.".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_deploy_that_changed_other_resources_than_planned_says_so() {
        let mut report = Report::new(3, "abc");
        let applied = |added, changed, destroyed| Applied {
            added,
            changed,
            destroyed,
        };
        for (name, did) in [
            ("db", Some(applied(1, 0, 1))),
            ("app", Some(applied(0, 1, 0))),
            ("cache", None),
        ] {
            report.outcomes.push(Outcome {
                resources: did,
                ..Outcome::not_run(
                    &InstanceId(name.into()),
                    Verb::Deploy,
                    StepResult::Succeeded,
                )
            });
        }
        let planned = BTreeMap::from([
            ("db".to_string(), applied(0, 1, 0)),
            ("app".to_string(), applied(0, 1, 0)),
            ("cache".to_string(), applied(5, 0, 0)),
        ]);
        let lines = differences(&report, &planned);
        assert_eq!(
            lines,
            [
                "`db`: the deploy 1 added, 0 changed, 1 destroyed, where the pull request's provisioner plan showed 0 added, 1 changed, 0 destroyed"
            ]
        );
        let body = markdown(&report, &lines).render(MAX_COMMENT);
        assert!(
            body.contains("⚠ **Not what the pull request's provisioner plans showed**"),
            "{body}"
        );
    }

    #[test]
    fn a_huge_deploy_comment_fits_and_never_cuts_inside_a_section() {
        let mut report = Report::new(7, "0123456789abcdef");
        for i in 0..3_000 {
            report.outcomes.push(Outcome {
                instance: InstanceId(format!("p{i}-staging-app").into()),
                verb: Verb::Deploy,
                result: StepResult::Succeeded,
                log: None,
                seconds: 1.0,
                artifacts: BTreeMap::from([(
                    "service".to_string(),
                    json!({"url": format!("https://p{i}.example.com"), "padding": "x".repeat(40)}),
                )]),
                resources: None,
            });
        }
        let body = markdown(&report, &[]).render(MAX_COMMENT);
        assert!(body.len() <= MAX_COMMENT, "{}", body.len());
        assert!(body.starts_with(&marker("0123456789abcdef")));
        assert!(body.contains("**3000 deployed, 0 destroyed; 0 unchanged**"));
        assert!(
            body.contains("more instances |"),
            "the table says what it left out"
        );
        assert_eq!(
            body.matches("<details>").count(),
            body.matches("</details>").count()
        );
        assert!(body.contains("Cut to fit GitHub's 65536 characters"));
    }
}
