//! Bundles: `bundles/<bundle>/bundle.yaml`, or a Massdriver `massdriver.yaml`; their slots,
//! steps, sensitive paths and the digest of their files.

use std::collections::BTreeMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::{loc, string, strings};
use crate::core::diag::{Code, Diagnostics};
use crate::core::model::*;
use crate::core::sensitive;
use crate::core::source::{Content, SourceFile};
use crate::core::yaml::Node;

/// The artifact type a `$ref` names: after the last `/`, less `.json` (DESIGN 4.3).
pub fn type_of_ref(r: &str) -> &str {
    let last = r.rsplit('/').next().unwrap_or(r);
    last.strip_suffix(".json").unwrap_or(last)
}

fn slots(node: Option<&Node>, file: &Arc<str>) -> BTreeMap<String, Slot> {
    let Some(node) = node else {
        return BTreeMap::new();
    };
    let required = strings(node.get("required"));
    node.get("properties")
        .map(Node::entries)
        .unwrap_or_default()
        .iter()
        .filter_map(|e| {
            let r = e.value.get("$ref")?;
            Some((
                e.key.clone(),
                Slot {
                    type_name: TypeName(type_of_ref(r.as_str()?).to_string()),
                    required: required.contains(&e.key),
                    at: loc(file, r),
                },
            ))
        })
        .collect()
}

pub(super) fn bundle(
    name: BundleName,
    root: &Node,
    file: &Arc<str>,
    files: &[&SourceFile],
    massdriver: bool,
    types: &BTreeMap<TypeName, ArtifactType>,
    diags: &mut Diagnostics,
) -> Bundle {
    let folder = format!("bundles/{name}/");
    if massdriver {
        if let Some(n) = root.get("name")
            && n.as_str().is_some_and(|s| s != name.as_str())
        {
            diags.at(
                Code::BundleInvalid,
                file,
                n.pos,
                format!(
                    "name {:?} differs from the folder name {name}; identifiers come from paths",
                    n.as_str().unwrap_or_default()
                ),
            );
        }
        for key in ["type", "access"] {
            if let Some(e) = root.entry(key) {
                diags.at(
                    Code::BundleDeprecatedKey,
                    file,
                    e.key_pos,
                    format!("`{key}` is deprecated by Massdriver and ignored by capstan"),
                );
            }
        }
    }
    for slots_key in ["connections", "artifacts"] {
        if let Some(set) = root.get(slots_key) {
            let props = set.get("properties");
            for r in set.get("required").map(Node::items).unwrap_or_default() {
                if let Some(field) = r.as_str()
                    && props.and_then(|p| p.get(field)).is_none()
                {
                    diags.at(Code::BundleInvalid, file, r.pos, format!("{slots_key}.required names {field}, which is not in {slots_key}.properties"));
                }
            }
        }
    }
    let steps = root
        .get("steps")
        .map(Node::items)
        .unwrap_or_default()
        .iter()
        .filter_map(|s| step(s, file, &folder, files, diags))
        .collect();
    let params_node = root.get("params");
    let connections = slots(root.get("connections"), file);
    let artifacts = slots(root.get("artifacts"), file);
    let sensitive = sensitive::of_bundle(
        params_node.map(Node::to_json).as_ref(),
        &connections,
        &artifacts,
        types,
    );
    Bundle {
        format: if massdriver {
            BundleFormat::Massdriver
        } else {
            BundleFormat::Capstan
        },
        description: string(root.get("description")),
        version: string(root.get("version")).unwrap_or_else(|| "0.0.0".into()),
        params: params_node.cloned(),
        connections,
        artifacts,
        steps,
        digest: digest(&folder, files),
        sensitive,
        file: Arc::clone(file),
        name,
    }
}

fn step(
    node: &Node,
    file: &Arc<str>,
    folder: &str,
    files: &[&SourceFile],
    diags: &mut Diagnostics,
) -> Option<Step> {
    let path_node = node.get("path")?;
    let raw = path_node.as_str()?;
    let path = raw.trim_start_matches("./").trim_end_matches('/');
    if path.starts_with('/') || path.split('/').any(|s| s == "..") {
        diags.at(
            Code::BundleInvalid,
            file,
            path_node.pos,
            format!("step path {raw:?} must stay inside the bundle folder"),
        );
        return None;
    }
    let prefix = if path.is_empty() || path == "." {
        folder.to_string()
    } else {
        format!("{folder}{path}/")
    };
    if !files.iter().any(|f| f.path.starts_with(&prefix)) {
        diags.at(
            Code::BundleInvalid,
            file,
            path_node.pos,
            format!("step path {raw:?} is not a folder with files in {folder}"),
        );
    }
    let provisioner_node = node.get("provisioner")?;
    let provisioner = match provisioner_node.as_str()? {
        "exec" => Provisioner::Exec,
        "opentofu" => Provisioner::OpenTofu,
        "terraform" => Provisioner::Terraform,
        other => {
            diags.at(
                Code::BundleInvalid,
                file,
                provisioner_node.pos,
                format!("provisioner {other:?} is not supported (exec, opentofu, terraform)"),
            );
            return None;
        }
    };
    let deploy = string(node.get("deploy"));
    let destroy = string(node.get("destroy"));
    if provisioner == Provisioner::Exec && deploy.is_none() {
        diags.at(
            Code::BundleInvalid,
            file,
            node.pos,
            "an exec step needs a `deploy` command",
        );
    }
    if provisioner != Provisioner::Exec {
        for key in ["deploy", "destroy"] {
            if let Some(e) = node.entry(key) {
                diags.at(
                    Code::BundleInvalid,
                    file,
                    e.key_pos,
                    format!(
                        "`{key}` is for exec steps; {} steps run init/apply/destroy",
                        provisioner_node.as_str().unwrap_or_default()
                    ),
                );
            }
        }
    }
    Some(Step {
        path: path.to_string(),
        provisioner,
        deploy,
        destroy,
    })
}

/// SHA-256 over the bundle folder's files: relative path, executable bit and content.
fn digest(folder: &str, files: &[&SourceFile]) -> String {
    let mut hasher = Sha256::new();
    for f in files {
        hasher.update(f.path.strip_prefix(folder).unwrap_or(&f.path).as_bytes());
        hasher.update([0, u8::from(f.executable)]);
        match &f.content {
            Content::Bytes(b) => {
                hasher.update((b.len() as u64).to_le_bytes());
                hasher.update(b);
            }
            other => hasher.update(format!("{other:?}").as_bytes()),
        }
    }
    hex::encode(hasher.finalize())
}
