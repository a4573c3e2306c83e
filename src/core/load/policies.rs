//! `policies/*.rego` (docs/policies.md): each file parsed with regorus's Rego parser (pure:
//! nothing is evaluated here), a file that does not parse reported where the parser
//! stopped, and the heads of the decision rules (`deny`, `warn`, `require_approval` of
//! package `capstan`) found, so each decision can name the rule that made it.

use std::sync::Arc;

use regorus::unstable::{Expr, Parser, Rule, RuleHead, Source};

use crate::core::diag::{Code, Diagnostics};
use crate::core::model::{DecisionKind, PolicyFile};
use crate::core::yaml::Pos;

/// The package whose decision rules capstan reads.
pub const PACKAGE: &str = "capstan";

/// One policy file; one that does not parse is reported and left out, so the policies
/// as a whole never read as "allowed" (`Repository::policies` then misses it, and the
/// diagnostic makes the revision invalid).
pub fn policy(path: &Arc<str>, text: &str, diags: &mut Diagnostics) -> PolicyFile {
    let test = path.ends_with("_test.rego");
    let mut out = PolicyFile {
        path: path.clone(),
        text: Arc::from(text),
        test,
        decisions: Vec::new(),
    };
    match parse(path, text) {
        Ok(module) => {
            let package = module.package.refr.span().text().to_string();
            if package == PACKAGE {
                for rule in &module.policy {
                    if let Some(found) = decision(rule) {
                        out.decisions.push(found);
                    }
                }
            }
        }
        Err(e) => {
            let (pos, message) = located(&e);
            diags.at(Code::PolicyInvalid, path, pos, message);
        }
    }
    out
}

/// Every `test_*` rule of `file` (any package): (package, rule name, head position), in
/// file order, for `capstan policy test`.
pub fn test_rules(file: &PolicyFile) -> Vec<(String, String, Pos)> {
    let Ok(module) = parse(&file.path, &file.text) else {
        return Vec::new();
    };
    let package = module.package.refr.span().text().to_string();
    let mut out: Vec<(String, String, Pos)> = Vec::new();
    for rule in &module.policy {
        if let Some((name, pos)) = head(rule)
            && name.starts_with("test_")
            && !out.iter().any(|(_, n, _)| *n == name)
        {
            out.push((package.clone(), name, pos));
        }
    }
    out
}

/// The message of a regorus error, without the source excerpt it comes with.
pub fn policy_error(error: &str) -> String {
    let (pos, message) = located(error);
    if pos == Pos::START {
        message
    } else {
        format!("{message} (line {}, column {})", pos.line, pos.col)
    }
}

/// The module, or regorus's error text.
fn parse(path: &str, text: &str) -> Result<regorus::unstable::Module, String> {
    // Rego v1, as the evaluating engine reads it (`deny contains msg if { … }`).
    let source =
        Source::from_contents(path.to_string(), text.to_string()).map_err(|e| e.to_string())?;
    let mut parser = Parser::new(&source).map_err(|e| e.to_string())?;
    parser.enable_rego_v1().map_err(|e| e.to_string())?;
    parser.parse().map_err(|e| e.to_string())
}

/// A rule's name and the position of its head.
fn head(rule: &Rule) -> Option<(String, Pos)> {
    let Rule::Spec { head, .. } = rule else {
        return None;
    };
    let (span, refr) = match head {
        RuleHead::Set { span, refr, .. }
        | RuleHead::Compr { span, refr, .. }
        | RuleHead::Func { span, refr, .. } => (span, refr),
    };
    let Expr::Var { span: name, .. } = refr.as_ref() else {
        return None;
    };
    Some((
        name.text().to_string(),
        Pos {
            line: span.line,
            col: span.col,
        },
    ))
}

/// The kind and head position of a decision rule.
fn decision(rule: &Rule) -> Option<(DecisionKind, Pos)> {
    let (name, pos) = head(rule)?;
    let kind = DecisionKind::ALL.into_iter().find(|k| k.rule() == name)?;
    Some((kind, pos))
}

/// The position and message of a regorus error (`\n--> file:3:5\n … \nerror: message`);
/// the start of the file when it names none.
pub fn located(error: &str) -> (Pos, String) {
    let pos = error
        .lines()
        .find_map(|l| l.trim().strip_prefix("--> "))
        .and_then(|place| {
            let mut parts = place.rsplitn(3, ':');
            let col = parts.next()?.parse().ok()?;
            let line = parts.next()?.parse().ok()?;
            Some(Pos { line, col })
        })
        .unwrap_or(Pos::START);
    let message = error
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .unwrap_or_else(|| error.trim())
        .to_string();
    (pos, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_rules_are_found_and_a_broken_file_is_reported_where_it_broke() {
        let mut diags = Diagnostics::default();
        let path: Arc<str> = Arc::from("policies/rules.rego");
        let file = policy(
            &path,
            "package capstan\n\nimport rego.v1\n\ndeny contains msg if {\n  msg := \"no\"\n}\n\nwarn contains {\"msg\": \"careful\"} if true\n\nhelper := 1\n",
            &mut diags,
        );
        assert_eq!(
            file.decisions,
            [
                (DecisionKind::Deny, Pos { line: 5, col: 1 }),
                (DecisionKind::Warn, Pos { line: 9, col: 1 })
            ]
        );
        let broken = policy(
            &path,
            "package capstan\n\ndeny contains msg if {\n  msg := sprintf(\"%s\", [1]\n}\n",
            &mut diags,
        );
        assert!(broken.decisions.is_empty());
        let found: Vec<String> = diags.finish().iter().map(|d| d.to_string()).collect();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found[0],
            "policies/rules.rego:4:7: error[policy.invalid]: expecting `}` while parsing set"
        );
    }
}
