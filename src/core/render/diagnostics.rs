//! Diagnostics as compiler-style lines, or as a stable JSON document.
//!
//! JSON shape (stable; fields are only ever added):
//! `{"valid": bool, "errors": n, "warnings": n, "diagnostics": [{"code", "severity", "file", "line", "column", "message"}]}`

use serde::Serialize;

use crate::core::Checked;
use crate::core::diag::{Diagnostic, Severity};
use crate::core::render::plural;

#[derive(Serialize)]
struct Report<'a> {
    valid: bool,
    errors: usize,
    warnings: usize,
    projects: usize,
    environments: usize,
    instances: usize,
    diagnostics: Vec<Wire<'a>>,
}

#[derive(Serialize)]
struct Wire<'a> {
    code: &'a str,
    severity: &'a str,
    file: &'a str,
    line: u32,
    column: u32,
    message: &'a str,
}

fn count(diags: &[Diagnostic], severity: Severity) -> usize {
    diags.iter().filter(|d| d.severity() == severity).count()
}

/// One line per diagnostic, then a summary line.
pub fn text(checked: &Checked) -> String {
    let mut out = String::new();
    for d in &checked.diagnostics {
        out.push_str(&d.to_string());
        out.push('\n');
    }
    let repo = &checked.repository;
    let environments: usize = repo.projects.values().map(|p| p.environments.len()).sum();
    let errors = count(&checked.diagnostics, Severity::Error);
    let warnings = count(&checked.diagnostics, Severity::Warning);
    let verdict = if errors == 0 { "valid" } else { "invalid" };
    out.push_str(&format!(
        "{verdict}: {}, {}; {}, {}, {} in {}\n",
        plural(errors, "error"),
        plural(warnings, "warning"),
        plural(repo.projects.len(), "project"),
        plural(environments, "environment"),
        plural(checked.resolved.instances.len(), "instance"),
        plural(checked.resolved.waves.len(), "deploy wave"),
    ));
    out
}

pub fn json(checked: &Checked) -> String {
    let diags = &checked.diagnostics;
    let report = Report {
        valid: !checked.has_errors(),
        errors: count(diags, Severity::Error),
        warnings: count(diags, Severity::Warning),
        projects: checked.repository.projects.len(),
        environments: checked
            .repository
            .projects
            .values()
            .map(|p| p.environments.len())
            .sum(),
        instances: checked.resolved.instances.len(),
        diagnostics: diags
            .iter()
            .map(|d| Wire {
                code: d.code.as_str(),
                severity: d.severity().as_str(),
                file: &d.loc.file,
                line: d.loc.pos.line,
                column: d.loc.pos.col,
                message: &d.message,
            })
            .collect(),
    };
    let mut s = serde_json::to_string_pretty(&report).expect("plain data serialises");
    s.push('\n');
    s
}
