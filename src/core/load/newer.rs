//! What Massdriver's newer files add to a bundle: `dependencies:` and `resources:` (slots
//! named with `resource_type: <type>@<constraint>`, the constraint checked against the
//! type's version), and an application bundle's `app:` (jq expressions compiled here).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::loc;
use crate::core::diag::{Code, Diagnostics};
use crate::core::model::*;
use crate::core::yaml::Node;

/// Whether a top-level `dependencies:` or `resources:` is Massdriver's newer format (a map
/// whose entries name a `resource_type`), not the misplaced JSON-Schema `dependencies`
/// block older files hold.
pub(super) fn is_resource_map(node: &Node) -> bool {
    node.is_map()
        && node
            .entries()
            .iter()
            .any(|e| e.value.get("resource_type").is_some())
}

/// Massdriver's newer `dependencies:` or `resources:`: slot (or field) name to
/// `{resource_type: <type>@<constraint>, required: <bool>}`. The constraint is checked
/// against the type's `version` where the type is known and has one.
pub(super) fn resource_slots(
    node: &Node,
    file: &Arc<str>,
    what: &str,
    types: &BTreeMap<TypeName, ArtifactType>,
    diags: &mut Diagnostics,
) -> BTreeMap<String, Slot> {
    let mut out = BTreeMap::new();
    for e in node.entries() {
        let Some(rt) = e.value.get("resource_type") else {
            diags.at(
                Code::BundleInvalid,
                file,
                e.key_pos,
                format!(
                    "{what}.{}: needs a resource_type, e.g. {{resource_type: aws-vpc@~1}}",
                    e.key
                ),
            );
            continue;
        };
        let Some(text) = rt.as_str().filter(|t| !t.is_empty()) else {
            diags.at(
                Code::BundleInvalid,
                file,
                rt.pos,
                format!(
                    "{what}.{}: resource_type must be text such as aws-vpc@~1",
                    e.key
                ),
            );
            continue;
        };
        let (type_name, constraint) = match text.split_once('@') {
            Some((t, c)) => (t, Some(c)),
            None => (text, None),
        };
        for extra in e.value.entries() {
            if !["resource_type", "required", "title", "description"].contains(&extra.key.as_str())
            {
                diags.at(
                    Code::BundleIgnoredKey,
                    file,
                    extra.key_pos,
                    format!(
                        "{what}.{}: `{}` is not enforced by capstan",
                        e.key, extra.key
                    ),
                );
            }
        }
        if let (Some(constraint), Some(t)) = (constraint, types.get(type_name)) {
            check_constraint(type_name, constraint, t, rt, file, diags);
        }
        out.insert(
            e.key.clone(),
            Slot {
                type_name: TypeName(type_name.into()),
                required: e.value.get("required").and_then(Node::as_bool) == Some(true),
                at: loc(file, rt),
            },
        );
    }
    out
}

/// Checks `constraint` (semver requirements, Massdriver's space-separated comparators
/// read as a conjunction) against type `t`'s version.
fn check_constraint(
    type_name: &str,
    constraint: &str,
    t: &ArtifactType,
    at: &Node,
    file: &Arc<str>,
    diags: &mut Diagnostics,
) {
    let req = semver_req(constraint);
    let Ok(req) = req else {
        diags.at(
            Code::BundleInvalid,
            file,
            at.pos,
            format!("resource_type {type_name}@{constraint}: {constraint:?} is not a version constraint such as 1.2.0, ~1, ^1.2 or >=1 <2"),
        );
        return;
    };
    let Some(version) = &t.version else {
        diags.at(
            Code::BundleTypeUnversioned,
            file,
            at.pos,
            format!("resource_type {type_name}@{constraint}: artifact type {type_name} ({}) has no version, so the constraint is not checked", t.file),
        );
        return;
    };
    match semver_version(version) {
        Some(v) if req.matches(&v) => {}
        Some(_) => diags.at(
            Code::BundleTypeVersion,
            file,
            at.pos,
            format!("resource_type {type_name}@{constraint}: artifact type {type_name} is version {version} ({}), which {constraint} does not allow", t.file),
        ),
        None => diags.at(
            Code::BundleTypeVersion,
            file,
            at.pos,
            format!("resource_type {type_name}@{constraint}: artifact type {type_name}'s version {version:?} ({}) is not a semantic version", t.file),
        ),
    }
}

/// `~1`, `^1.2`, `0.0.0`, `>=1 <2` (Massdriver separates comparators with spaces, semver
/// with commas).
fn semver_req(text: &str) -> Result<semver::VersionReq, semver::Error> {
    let mut joined = String::new();
    for (i, part) in text.split_whitespace().enumerate() {
        // An operator written apart from its version (`>= 1`) stays with it.
        let glue = i > 0 && !joined.ends_with(['<', '>', '=', '~', '^']);
        if glue {
            joined.push_str(", ");
        }
        joined.push_str(part);
    }
    semver::VersionReq::parse(&joined)
}

/// A version as types write it: `1.2.3`, or a shorter `1.2` / `1`.
pub(crate) fn semver_version(text: &str) -> Option<semver::Version> {
    let text = text.trim().trim_start_matches('v');
    let padded = match text.matches('.').count() {
        0 => format!("{text}.0.0"),
        1 => format!("{text}.0"),
        _ => text.to_string(),
    };
    semver::Version::parse(&padded).ok()
}

/// A Massdriver application bundle's `app:`: `envs` (name to jq expression) and `policies`
/// (jq expressions), each compiled here so that one that does not is an error at its line;
/// `secrets` and anything else is said to be ignored.
pub(super) fn app(node: &Node, file: &Arc<str>, diags: &mut Diagnostics) -> App {
    let compiled = |expr: &Node, what: String, diags: &mut Diagnostics| -> Option<String> {
        let Some(code) = expr.as_str() else {
            diags.at(
                Code::BundleInvalid,
                file,
                expr.pos,
                format!("{what} must be a jq expression as text"),
            );
            return None;
        };
        if let Some(why) = crate::core::jq::check(code) {
            diags.at(
                Code::BundleInvalid,
                file,
                expr.pos,
                format!("{what} is not a jq expression capstan can run: {why}"),
            );
            return None;
        }
        Some(code.to_string())
    };
    let mut out = App::default();
    for e in node.entries() {
        match e.key.as_str() {
            "envs" => {
                for env in e.value.entries() {
                    if let Some(code) = compiled(&env.value, format!("app.envs.{}", env.key), diags) {
                        out.envs.push((env.key.clone(), code));
                    }
                }
            }
            "policies" => {
                for (i, p) in e.value.items().iter().enumerate() {
                    if let Some(code) = compiled(p, format!("app.policies[{i}]"), diags) {
                        out.policies.push(code);
                    }
                }
            }
            other => diags.at(
                Code::BundleIgnoredKey,
                file,
                e.key_pos,
                if other == "secrets" {
                    "app.secrets is Massdriver's secret store, which capstan does not have: ignored; give secrets as sensitive params or connections".to_string()
                } else {
                    format!("app.{other} is ignored by capstan (it reads app.envs and app.policies)")
                },
            ),
        }
    }
    out
}
