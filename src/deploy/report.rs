//! Renderings of a deploy [`Report`]: text for the terminal and markdown for the comment
//! on the merged pull request. Artifacts appear with sensitive fields already replaced by
//! `(sensitive)` (done when the outcome was made).

use std::fmt::Write;

use super::{Outcome, Report, Result_};

/// The hidden first line that finds our comment about the deploy of `commit` again.
pub fn marker(commit: &str) -> String {
    format!("<!-- capstan:deploy {commit} -->")
}

fn compact(value: &serde_json::Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// One line per outcome as it happens (the CLI's progress).
pub fn line(o: &Outcome) -> String {
    let mark = match o.result {
        Result_::Succeeded => "✓",
        Result_::Failed(_) => "✗",
        Result_::Skipped(_) => "↷",
        Result_::Waiting { .. } => "⏸",
    };
    let what = match (&o.result, o.verb) {
        (Result_::Succeeded, super::Verb::Deploy) => "deployed".to_string(),
        (Result_::Succeeded, super::Verb::Destroy) => "destroyed".to_string(),
        (r, v) => format!("{} {}", v.name(), r.word()),
    };
    let mut out = format!("{mark} {} {what}", o.instance);
    if o.seconds > 0.0 {
        let _ = write!(out, " in {:.2}s", o.seconds);
    }
    let d = o.result.detail();
    if !d.is_empty() {
        let _ = write!(out, ": {d}");
    }
    if !matches!(o.result, Result_::Succeeded)
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

fn short(sha: &str) -> &str {
    sha.get(..10).unwrap_or(sha)
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// The comment on the merged pull request.
pub fn markdown(report: &Report) -> String {
    let icon = match report.status() {
        "succeeded" => "✅",
        "waiting" => "⏸️",
        _ => "❌",
    };
    let mut out = format!(
        "{}\n### {icon} capstan deploy of `{}`\n\n**{}** (run {})\n",
        marker(&report.commit),
        short(&report.commit),
        report.summary(),
        report.run
    );
    if let Some(at) = report.next_window() {
        let _ = writeln!(
            out,
            "\nWaiting for a deploy window: the rest deploys from {at}."
        );
    }
    if report.outcomes.is_empty() {
        out.push_str("\nNothing to do: every instance is as this commit wants it.\n");
        return out;
    }
    out.push_str("\n| instance | action | result | details |\n|---|---|---|---|\n");
    for o in &report.outcomes {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            o.instance,
            o.verb.name(),
            o.result.word(),
            cell(&o.result.detail())
        );
    }
    let with_artifacts: Vec<&Outcome> = report
        .outcomes
        .iter()
        .filter(|o| !o.artifacts.is_empty())
        .collect();
    if !with_artifacts.is_empty() {
        out.push_str("\n<details><summary>Artifacts (sensitive fields hidden)</summary>\n\n");
        for o in with_artifacts {
            let _ = writeln!(out, "**{}**", o.instance);
            for (field, value) in &o.artifacts {
                let _ = writeln!(
                    out,
                    "- `{field}`: `{}`",
                    cell(&compact(value)).replace('`', "'")
                );
            }
            out.push('\n');
        }
        out.push_str("</details>\n");
    }
    crate::github::truncate(&out, 65_000)
}
