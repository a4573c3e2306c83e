//! Artifact types: `artifact-types/<type>.yaml` in capstan's format,
//! `artifact-types/<type>.json` holding a Massdriver artifact definition as Massdriver
//! publishes it, or `artifact-types/<type>/massdriver.yaml`, a resource type of
//! Massdriver's newer catalogs, so a team can bring its Massdriver catalog as it is.

use std::sync::Arc;

use super::string;
use crate::core::diag::{Code, Diagnostics, Loc};
use crate::core::model::*;
use crate::core::sensitive;
use crate::core::yaml::{Node, Pos};

pub(super) fn artifact_type(name: TypeName, root: &Node, file: &Arc<str>) -> ArtifactType {
    let schema_node = root.get("schema");
    let schema = schema_node.map_or(serde_json::Value::Bool(true), Node::to_json);
    ArtifactType {
        name,
        file: Arc::clone(file),
        format: Format::Capstan,
        label: string(root.get("label")),
        environment_default: string(root.get("environment_default")),
        schema_at: Loc::new(file, schema_node.map_or(Pos::START, |n| n.pos)),
        schema_node: schema_node.cloned(),
        sensitive: sensitive::marked_in(&schema),
        schema,
        version: None,
    }
}

/// A Massdriver artifact definition: a draft-07 JSON Schema with `$md` metadata. The schema
/// is the whole definition (its `data` and `specs` alike, so Massdriver bundles receive
/// connections in the shape Massdriver passes them); `$md.label` labels it;
/// `$md.ui.environmentDefaultGroup` (or `connectionOrientation: environmentDefault`) lets it
/// be an environment default; sensitive fields are marked as Massdriver marks them.
pub(super) fn massdriver_definition(
    name: TypeName,
    root: &Node,
    file: &Arc<str>,
    diags: &mut Diagnostics,
) -> Option<ArtifactType> {
    if !is_map(
        root,
        "a Massdriver artifact definition is a JSON Schema object",
        file,
        diags,
    ) {
        return None;
    }
    let md = root.get("$md");
    same_name(
        &name,
        md.and_then(|m| m.get("name")),
        "$md.name",
        "file",
        file,
        diags,
    );
    let environment_default = default_group(&name, md.and_then(|m| m.get("ui")));
    let schema = root.to_json();
    Some(ArtifactType {
        label: string(md.and_then(|m| m.get("label"))).or_else(|| string(root.get("title"))),
        environment_default,
        schema_at: Loc::new(file, root.pos),
        schema_node: Some(root.clone()),
        sensitive: sensitive::marked_in(&schema),
        schema,
        version: None,
        format: Format::Massdriver,
        file: Arc::clone(file),
        name,
    })
}

/// The environment-default group Massdriver's `ui` gives a type: its
/// `environmentDefaultGroup`, or the type's own name with `connectionOrientation:
/// environmentDefault`; `None`: never a default.
fn default_group(name: &TypeName, ui: Option<&Node>) -> Option<String> {
    let group = string(ui.and_then(|u| u.get("environmentDefaultGroup")));
    let oriented = ui
        .and_then(|u| u.get("connectionOrientation"))
        .and_then(Node::as_str)
        == Some("environmentDefault");
    group.or_else(|| oriented.then(|| name.to_string()))
}

/// The keys of a resource type's `massdriver.yaml`.
const RESOURCE_TYPE_KEYS: &[&str] = &[
    "name",
    "label",
    "icon",
    "version",
    "ui",
    "exports",
    "schema",
    "description",
];

/// A resource type of Massdriver's newer catalogs (`artifact-types/<type>/massdriver.yaml`):
/// `schema` is the data schema (draft-07), `version` what `resource_type` constraints are
/// checked against, `ui` makes it an environment default as in an artifact definition.
/// `label`, `icon`, `exports` and `ui.instructions` only describe it.
pub(super) fn resource_type(
    name: TypeName,
    root: &Node,
    file: &Arc<str>,
    diags: &mut Diagnostics,
) -> Option<ArtifactType> {
    if !is_map(
        root,
        "a resource type is a mapping with name, version and schema",
        file,
        diags,
    ) {
        return None;
    }
    same_name(&name, root.get("name"), "name", "folder", file, diags);
    for e in root.entries() {
        if !RESOURCE_TYPE_KEYS.contains(&e.key.as_str()) {
            diags.at(
                Code::BundleIgnoredKey,
                file,
                e.key_pos,
                format!(
                    "`{}` is not a key of a Massdriver resource type; capstan ignores it",
                    e.key
                ),
            );
        }
    }
    let version = root.get("version").and_then(|v| {
        let text = v.as_str().map(str::to_string).or_else(|| {
            // `version: 1` or `1.2` parse as numbers; the version is the text written.
            let json = v.to_json();
            json.is_number().then(|| json.to_string())
        })?;
        if super::newer::semver_version(&text).is_none() {
            diags.at(
                Code::ArtifactTypeInvalid,
                file,
                v.pos,
                format!("version {text:?} is not a semantic version such as 1.2.0"),
            );
        }
        Some(text)
    });
    let schema_node = root.get("schema");
    let Some(schema_node) = schema_node.filter(|n| n.is_map()) else {
        diags.at(
            Code::ArtifactTypeInvalid,
            file,
            schema_node.map_or(root.pos, |n| n.pos),
            "a resource type needs `schema`, the JSON Schema of its data",
        );
        return None;
    };
    let schema = schema_node.to_json();
    Some(ArtifactType {
        label: string(root.get("label")),
        environment_default: default_group(&name, root.get("ui")),
        schema_at: Loc::new(file, schema_node.pos),
        schema_node: Some(schema_node.clone()),
        sensitive: sensitive::marked_in(&schema),
        schema,
        version,
        format: Format::Massdriver,
        file: Arc::clone(file),
        name,
    })
}

/// Whether the definition is a mapping; says so when it is not.
fn is_map(root: &Node, what: &str, file: &Arc<str>, diags: &mut Diagnostics) -> bool {
    if !root.is_map() {
        diags.at(Code::ArtifactTypeInvalid, file, root.pos, what);
    }
    root.is_map()
}

/// A name written in the definition (`written`, under `key`) must be the one the path gives.
fn same_name(
    name: &TypeName,
    written: Option<&Node>,
    key: &str,
    from: &str,
    file: &Arc<str>,
    diags: &mut Diagnostics,
) {
    if let Some(n) = written
        && n.as_str() != Some(name.as_str())
    {
        diags.at(
            Code::ArtifactTypeInvalid,
            file,
            n.pos,
            format!(
                "{key} {:?} differs from the {from} name {name}; identifiers come from paths",
                n.as_str().unwrap_or_default()
            ),
        );
    }
}
