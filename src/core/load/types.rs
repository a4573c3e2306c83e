//! Artifact types: `artifact-types/<type>.yaml` in capstan's format.

use std::sync::Arc;

use super::string;
use crate::core::diag::Loc;
use crate::core::model::*;
use crate::core::sensitive;
use crate::core::yaml::{Node, Pos};

pub(super) fn artifact_type(name: TypeName, root: &Node, file: &Arc<str>) -> ArtifactType {
    let schema_node = root.get("schema");
    let schema = schema_node.map_or(serde_json::Value::Bool(true), Node::to_json);
    ArtifactType {
        name,
        file: Arc::clone(file),
        label: string(root.get("label")),
        environment_default: string(root.get("environment_default")),
        schema_at: Loc::new(file, schema_node.map_or(Pos::START, |n| n.pos)),
        sensitive: sensitive::marked_in(&schema),
        schema,
    }
}
