//! The one comparison of an instance's two sides, for both kinds of plan.
//!
//! A [`Side`] is what an instance is deployed with: from a revision (its resolved
//! instance, where a connection's data is known only for imports) or from the deployed
//! record (its concrete inputs, where every connection's data is known). The same rules
//! turn two sides into diffs and reasons: bundle version or files, params field by field
//! (secrets hidden), a connection's source (a likely replacement), a connection's data.

use std::borrow::Cow;
use std::collections::BTreeSet;

use serde_json::Value;

use super::Diff;
use crate::core::commit::short;
use crate::core::deployed::Inputs;
use crate::core::diag::{Code, Diagnostic, Loc};
use crate::core::model::Repository;
use crate::core::resolve::{Instance, Origin, Via};
use crate::core::sensitive::{self, FieldPath};
use crate::core::yaml::Node;

/// What an instance is deployed with, on one side of a plan.
pub(super) struct Side<'a> {
    pub bundle: &'a str,
    pub version: &'a str,
    pub bundle_digest: &'a str,
    pub params: &'a Value,
    /// By slot name, sorted.
    pub slots: Vec<(&'a str, Slot<'a>)>,
    /// Every sensitive path of the instance (`params/...` among them).
    pub sensitive: &'a [FieldPath],
}

/// A filled connection slot on one side.
pub(super) struct Slot<'a> {
    /// `si-staging-vpc.network`, or `an import`.
    pub source: Cow<'a, str>,
    pub import: bool,
    /// The data it carries, where this side knows it.
    pub data: Option<&'a Value>,
    /// How the slot is filled, where this side knows it (a revision does, a record does not).
    pub via: Option<&'a Via>,
}

const AN_IMPORT: &str = "an import";

impl<'a> Side<'a> {
    /// An instance of a revision, with its bundle's sensitive paths.
    pub fn of_instance(inst: &'a Instance, sensitive: &'a [FieldPath]) -> Side<'a> {
        Side {
            bundle: inst.bundle.as_str(),
            version: &inst.bundle_version,
            bundle_digest: &inst.bundle_digest,
            params: &inst.params,
            slots: inst
                .connections
                .iter()
                .map(|(slot, c)| {
                    let (source, import, data) = match &c.origin {
                        Origin::Instance { instance, field } => {
                            (Cow::Owned(format!("{instance}.{field}")), false, None)
                        }
                        Origin::Import { data } => (Cow::Borrowed(AN_IMPORT), true, Some(data)),
                    };
                    (
                        slot.as_str(),
                        Slot {
                            source,
                            import,
                            data,
                            via: Some(&c.via),
                        },
                    )
                })
                .collect(),
            sensitive,
        }
    }

    /// Concrete inputs (recorded or desired); `vias` tells how each slot is filled now.
    pub fn of_inputs(
        inputs: &'a Inputs,
        sensitive: &'a [FieldPath],
        vias: Option<&'a Instance>,
    ) -> Side<'a> {
        Side {
            bundle: &inputs.bundle,
            version: &inputs.version,
            bundle_digest: &inputs.bundle_digest,
            params: &inputs.params,
            slots: inputs
                .connections
                .iter()
                .map(|(slot, i)| {
                    let source = if i.is_import() {
                        Cow::Borrowed(AN_IMPORT)
                    } else {
                        Cow::Borrowed(i.source.as_str())
                    };
                    (
                        slot.as_str(),
                        Slot {
                            source,
                            import: i.is_import(),
                            data: i.data.as_ref(),
                            via: vias.and_then(|v| v.connections.get(slot)).map(|c| &c.via),
                        },
                    )
                })
                .collect(),
            sensitive,
        }
    }

    fn slot(&self, name: &str) -> Option<&Slot<'a>> {
        self.slots
            .binary_search_by(|(s, _)| (*s).cmp(name))
            .ok()
            .map(|i| &self.slots[i].1)
    }
}

/// What differs between two sides, and why, in words a reviewer can check.
pub(super) struct Compared {
    pub diffs: Vec<Diff>,
    pub reasons: Vec<String>,
    pub likely_replacement: bool,
    /// `params.immutable`: changes to params the bundle marks `$md.immutable`.
    pub errors: Vec<Diagnostic>,
}

/// Compares `old` with `new`, the side of `inst` in the new revision `repo`. `since` is the
/// commit the old side was deployed at, when it is a record.
pub(super) fn compare(
    old: &Side<'_>,
    new: &Side<'_>,
    repo: &Repository,
    inst: &Instance,
    since: Option<&str>,
) -> Compared {
    let since = since.map_or_else(String::new, |c| format!(" since {}", short(c)));
    let mut diffs = Vec::new();
    let mut reasons = Vec::new();
    if old.bundle != new.bundle || old.version != new.version {
        diffs.push(Diff::BundleVersion {
            old: format!("{}@{}", old.bundle, old.version),
            new: format!("{}@{}", new.bundle, new.version),
        });
        reasons.push(format!(
            "bundle {} changed from {} to {}{since}",
            new.bundle, old.version, new.version
        ));
    } else if old.bundle_digest != new.bundle_digest {
        diffs.push(Diff::BundleContent);
        reasons.push(format!(
            "the files of bundles/{} changed{since}",
            new.bundle
        ));
    }
    let mut errors = Vec::new();
    params(old, new, repo, inst, &mut diffs, &mut reasons, &mut errors);
    let mut likely_replacement = false;
    let names: BTreeSet<&str> = old
        .slots
        .iter()
        .chain(new.slots.iter())
        .map(|(s, _)| *s)
        .collect();
    for slot in names {
        let (a, b) = (old.slot(slot), new.slot(slot));
        let (sa, sb) = (a.map(|s| &*s.source), b.map(|s| &*s.source));
        let via = b.and_then(|s| s.via).map(via_text).unwrap_or_default();
        if sa != sb {
            likely_replacement = true;
            reasons.push(format!(
                "connection {slot} now comes from {} (was {}){via}",
                sb.unwrap_or("nothing"),
                sa.unwrap_or("nothing"),
            ));
            diffs.push(Diff::ConnectionSource {
                slot: slot.to_string(),
                old: sa.map(str::to_string),
                new: sb.map(str::to_string),
            });
        } else if let (Some(a), Some(b)) = (a, b)
            && a.data != b.data
        {
            let source = &b.source;
            reasons.push(if b.import {
                format!("the imported data of connection {slot} changed{via}")
            } else if b.data.is_none() {
                format!("connection {slot}: {source} is being deployed again")
            } else {
                format!("connection {slot}: the artifact {source} changed since it was deployed")
            });
            diffs.push(Diff::ConnectionData {
                slot: slot.to_string(),
            });
        }
    }
    Compared {
        diffs,
        reasons,
        likely_replacement,
        errors,
    }
}

/// Field-level params differences and their reasons; values under a path either side marks
/// sensitive are not shown.
fn params(
    old: &Side<'_>,
    new: &Side<'_>,
    repo: &Repository,
    inst: &Instance,
    diffs: &mut Vec<Diff>,
    reasons: &mut Vec<String>,
    errors: &mut Vec<Diagnostic>,
) {
    let mut changed = Vec::new();
    diff_values(
        &mut Vec::new(),
        Some(old.params),
        Some(new.params),
        &mut changed,
    );
    if changed.is_empty() {
        return;
    }
    let secret: Vec<&[String]> = sensitive::below("params", old.sensitive)
        .chain(sensitive::below("params", new.sensitive))
        .collect();
    let bundle = repo.bundles.get(inst.bundle.as_str());
    let immutable = bundle.map_or(&[][..], |b| b.immutable.as_slice());
    for (path, before, after) in changed {
        let at = param_loc(repo, inst, &path);
        reasons.push(format!(
            "params.{} changed in {}",
            path.join("."),
            at.as_ref()
                .map_or_else(|| "the bundle's defaults".into(), |l| l.file.to_string())
        ));
        let sensitive = secret.iter().any(|s| path.starts_with(s));
        // A value set at creation (present before) that now differs; a param that was
        // absent is being set for the first time.
        if let Some(before) = &before
            && immutable.iter().any(|p| path.starts_with(p))
        {
            let shown = |v: Option<&Value>| match v {
                _ if sensitive => sensitive::HIDDEN.to_string(),
                Some(v) => v.to_string(),
                None => "(absent)".to_string(),
            };
            errors.push(Diagnostic::new(
                Code::ParamsImmutable,
                at.clone().unwrap_or_else(|| inst.at.clone()),
                format!(
                    "{}: params.{} is immutable ($md.immutable in {}): it was {} when deployed and cannot become {}; to change it, remove the package, deploy, and add it back",
                    inst.id,
                    path.join("."),
                    bundle.map_or_else(|| inst.bundle.to_string(), |b| b.file.to_string()),
                    shown(Some(before)),
                    shown(after.as_ref())
                ),
            ));
        }
        diffs.push(Diff::Param {
            path,
            old: if sensitive { None } else { before },
            new: if sensitive { None } else { after },
            sensitive,
            at,
        });
    }
}

fn via_text(via: &Via) -> String {
    match via {
        Via::Environment(at) => format!(" (remote reference at {at})"),
        Via::Wiring(at) => format!(" (wiring at {at})"),
        Via::Default(at) => format!(" (environment default at {at})"),
    }
}

/// Where `params.<path>` of `inst` is set: in the last environment layer that sets it (a
/// preview's block, then the environment it forks), else in the project's; `None` when
/// the bundle's defaults give it.
fn param_loc(repo: &Repository, inst: &Instance, path: &[String]) -> Option<Loc> {
    let project = repo.projects.get(inst.project.as_str())?;
    let env = project.environments.get(inst.environment.as_str())?;
    let sets = |node: &Node| {
        let l = node.locate(path);
        (l.complete || !l.node.is_map() && l.depth > 0).then_some(l.node.pos)
    };
    let layers = env
        .packages
        .get(inst.package.as_str())
        .map(|p| p.params.as_slice())
        .unwrap_or_default();
    if let Some((layer, pos)) = layers
        .iter()
        .rev()
        .find_map(|l| sets(&l.node).map(|pos| (l, pos)))
    {
        return Some(Loc::new(&layer.file, pos));
    }
    let pos = sets(
        project
            .packages
            .get(inst.package.as_str())
            .and_then(|p| p.params.as_ref())?,
    )?;
    Some(Loc::new(&project.file, pos))
}

type Leaf = (Vec<String>, Option<Value>, Option<Value>);

/// Leaf differences between two JSON values; maps recurse, everything else compares whole.
fn diff_values(path: &mut Vec<String>, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<Leaf>) {
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                path.push(k.clone());
                diff_values(path, x.get(k), y.get(k), out);
                path.pop();
            }
        }
        (a, b) if a != b => out.push((path.clone(), a.cloned(), b.cloned())),
        _ => {}
    }
}
