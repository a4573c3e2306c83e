//! Artifact types: `artifact-types/<type>.yaml` in capstan's format, or
//! `artifact-types/<type>.json` holding a Massdriver artifact definition as Massdriver
//! publishes it, so a team can bring its Massdriver catalog as it is.

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
    if !root.is_map() {
        diags.at(
            Code::ArtifactTypeInvalid,
            file,
            root.pos,
            "a Massdriver artifact definition is a JSON Schema object",
        );
        return None;
    }
    let md = root.get("$md");
    if let Some(n) = md.and_then(|m| m.get("name"))
        && let Some(written) = n.as_str()
        && written != name.as_str()
    {
        diags.at(
            Code::ArtifactTypeInvalid,
            file,
            n.pos,
            format!("$md.name {written:?} differs from the file name {name}; identifiers come from paths"),
        );
    }
    let ui = md.and_then(|m| m.get("ui"));
    let group = string(ui.and_then(|u| u.get("environmentDefaultGroup")));
    let oriented = ui
        .and_then(|u| u.get("connectionOrientation"))
        .and_then(Node::as_str)
        == Some("environmentDefault");
    let environment_default = group.or_else(|| oriented.then(|| name.to_string()));
    let schema = root.to_json();
    Some(ArtifactType {
        label: string(md.and_then(|m| m.get("label"))).or_else(|| string(root.get("title"))),
        environment_default,
        schema_at: Loc::new(file, root.pos),
        schema_node: Some(root.clone()),
        sensitive: sensitive::marked_in(&schema),
        schema,
        format: Format::Massdriver,
        file: Arc::clone(file),
        name,
    })
}
