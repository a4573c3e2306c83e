//! Projects and their environments: packages, wiring, shares, defaults, per-package
//! settings and remote references, each source checked for the shape of a reference.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{
    PROJECT_LIKE_ID, audience, loc, local_reference, parse_reference, string, string_map, strings,
};
use crate::core::diag::{Code, Diagnostics, Loc};
use crate::core::duration;
use crate::core::model::*;
use crate::core::yaml::Node;

pub(super) fn project(
    id: ProjectId,
    root: &Node,
    file: &Arc<str>,
    diags: &mut Diagnostics,
) -> Project {
    let packages =
        root.get("packages")
            .map(Node::entries)
            .unwrap_or_default()
            .iter()
            .filter(|e| PROJECT_LIKE_ID.is_match(&e.key))
            .map(|e| {
                let wiring = e
                    .value
                    .get("connections")
                    .map(Node::entries)
                    .unwrap_or_default()
                    .iter()
                    .map(|w| {
                        let target = local_reference(&w.value, file, "wiring", diags);
                        (
                            w.key.clone(),
                            Wiring {
                                slot_at: Loc::new(file, w.key_pos),
                                target,
                                at: loc(file, &w.value),
                            },
                        )
                    })
                    .collect();
                let package = Package {
                    name: PackageName(e.key.clone().into()),
                    at: Loc::new(file, e.key_pos),
                    bundle: e.value.get("bundle").and_then(|b| {
                        Some((BundleName(b.as_str()?.to_string().into()), loc(file, b)))
                    }),
                    params: e.value.get("params").filter(|p| p.is_map()).cloned(),
                    wiring,
                };
                (package.name.clone(), package)
            })
            .collect();
    let shares = root
        .get("shares")
        .map(Node::items)
        .unwrap_or_default()
        .iter()
        .map(|s| Share {
            at: loc(file, s),
            artifacts: s
                .get("artifacts")
                .map(Node::items)
                .unwrap_or_default()
                .iter()
                .filter_map(|a| {
                    if a.as_str() == Some("*") {
                        return Some(ShareItem::All);
                    }
                    let (package, field) = local_reference(a, file, "shared artifact", diags)?;
                    Some(ShareItem::Artifact {
                        package,
                        field,
                        at: loc(file, a),
                    })
                })
                .collect(),
            environments: s.get("environments").map(|envs| {
                envs.items()
                    .iter()
                    .filter_map(|e| Some((EnvId(e.as_str()?.to_string().into()), loc(file, e))))
                    .collect()
            }),
            to: audience(s.get("to")),
        })
        .collect();
    Project {
        id,
        file: Arc::clone(file),
        name: string(root.get("name")),
        description: string(root.get("description")),
        owners: strings(root.get("owners")),
        attributes: string_map(root.get("attributes")),
        packages,
        shares,
        environments: BTreeMap::new(),
        preview: root
            .entry("preview")
            .map(|e| preview(&e.value, Loc::new(file, e.key_pos), file, diags)),
    }
}

/// `preview:`: the environment it forks, settings in an environment file's shape, and its
/// cost controls. Its shape is the schema's to check.
fn preview(node: &Node, at: Loc, file: &Arc<str>, diags: &mut Diagnostics) -> Preview {
    let ttl = node.get("ttl").and_then(|n| {
        let text = n.as_str()?;
        match duration::parse(text) {
            Ok(d) if !d.is_zero() => Some(d),
            // The schema reports a malformed duration, naming what was typed.
            Err(e) if !e.is_too_long() => None,
            // A zero TTL would destroy every preview at once.
            _ => {
                diags.at(
                    Code::SchemaInvalid,
                    file,
                    n.pos,
                    format!("preview.ttl: `{text}` is not a duration longer than zero and shorter than a lifetime, e.g. 72h"),
                );
                None
            }
        }
    });
    Preview {
        at,
        from: node
            .get("from")
            .and_then(|f| Some((EnvId(f.as_str()?.to_string().into()), loc(file, f)))),
        attributes: string_map(node.get("attributes")),
        defaults: defaults(node.get("defaults"), file, diags),
        packages: env_packages(node.get("packages"), file, diags),
        ttl: ttl.unwrap_or(Preview::DEFAULT_TTL),
        max: node
            .get("max")
            .and_then(Node::as_i64)
            .and_then(|m| usize::try_from(m).ok())
            .filter(|m| *m > 0)
            .unwrap_or(Preview::DEFAULT_MAX),
        trigger: match node.get("trigger").and_then(Node::as_str) {
            Some("label") => PreviewTrigger::Label,
            _ => PreviewTrigger::Touched,
        },
    }
}

fn source(node: &Node, file: &Arc<str>, diags: &mut Diagnostics) -> Source {
    if let Some(text) = node.as_str() {
        return match parse_reference(text) {
            Some(r) => Source::Reference(r, loc(file, node)),
            None => {
                diags.at(Code::ReferenceInvalid, file, node.pos, format!("{text:?} is not a reference of the form <project>-<environment>-<package>.<field>"));
                Source::Invalid
            }
        };
    }
    match node.get("data") {
        Some(data) if data.is_map() => Source::Import(data.clone(), loc(file, data)),
        _ => Source::Invalid,
    }
}

fn sources(
    node: Option<&Node>,
    file: &Arc<str>,
    diags: &mut Diagnostics,
) -> BTreeMap<String, (Loc, Source)> {
    node.map(Node::entries)
        .unwrap_or_default()
        .iter()
        .map(|e| {
            (
                e.key.clone(),
                (Loc::new(file, e.key_pos), source(&e.value, file, diags)),
            )
        })
        .collect()
}

pub(super) fn environment(
    id: EnvId,
    root: &Node,
    file: &Arc<str>,
    diags: &mut Diagnostics,
) -> Environment {
    Environment {
        id,
        file: Arc::clone(file),
        name: string(root.get("name")),
        attributes: string_map(root.get("attributes")),
        defaults: defaults(root.get("defaults"), file, diags),
        packages: env_packages(root.get("packages"), file, diags),
        preview_of: None,
    }
}

/// `defaults:` of an environment or a preview.
fn defaults(node: Option<&Node>, file: &Arc<str>, diags: &mut Diagnostics) -> Vec<EnvDefault> {
    node.map(Node::entries)
        .unwrap_or_default()
        .iter()
        .map(|e| EnvDefault {
            type_name: TypeName(e.key.clone().into()),
            key_at: Loc::new(file, e.key_pos),
            source: source(&e.value, file, diags),
        })
        .collect()
}

/// `packages:` of an environment or a preview: per-package settings.
fn env_packages(
    node: Option<&Node>,
    file: &Arc<str>,
    diags: &mut Diagnostics,
) -> BTreeMap<PackageName, EnvPackage> {
    node.map(Node::entries)
        .unwrap_or_default()
        .iter()
        .filter(|e| PROJECT_LIKE_ID.is_match(&e.key))
        .map(|e| {
            let v = &e.value;
            let remote = v.entry("remote").map(|r| {
                for other in ["params", "connections", "enabled"] {
                    if let Some(o) = v.entry(other) {
                        diags.at(Code::SchemaInvalid, file, o.key_pos, format!("packages.{}: `{other}` does not go with `remote` (a remote package is not deployed here)", e.key));
                    }
                }
                Remote { at: Loc::new(file, r.key_pos), fields: sources(Some(&r.value), file, diags) }
            });
            let package = EnvPackage {
                at: Loc::new(file, e.key_pos),
                enabled: v.get("enabled").and_then(Node::as_bool),
                params: v
                    .get("params")
                    .filter(|p| p.is_map())
                    .map(|node| ParamsLayer {
                        file: Arc::clone(file),
                        node: node.clone(),
                    })
                    .into_iter()
                    .collect(),
                connections: sources(v.get("connections"), file, diags),
                remote,
            };
            (PackageName(e.key.clone().into()), package)
        })
        .collect()
}
