//! Bundles: `bundles/<bundle>/bundle.yaml`, or a Massdriver `massdriver.yaml`; their slots,
//! steps, sensitive paths and the digest of their files.

use std::collections::BTreeMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::newer::{app, is_resource_map, resource_slots};
use super::{loc, string, strings};
use crate::core::diag::{Code, Diagnostics};
use crate::core::model::*;
use crate::core::schema;
use crate::core::sensitive;
use crate::core::source::{Content, SourceFile};
use crate::core::yaml::{Node, Pos};

/// The artifact type a `$ref` names: after the last `/`, less `.json`.
pub fn type_of_ref(r: &str) -> &str {
    let last = r.rsplit('/').next().unwrap_or(r);
    last.strip_suffix(".json").unwrap_or(last)
}

/// Keys a slot may carry beside its `$ref` that only annotate it.
const SLOT_ANNOTATIONS: &[&str] = &["$ref", "title", "description"];

/// Keys of `connections:` and `artifacts:` capstan reads or that only annotate them.
const SLOTS_KEYS: &[&str] = &["required", "properties", "title", "description", "type"];

/// The connections or artifacts of a bundle. In a Massdriver file, keys capstan does not
/// enforce are warned about (`bundle.ignored-key`); capstan's own schema refuses them.
fn slots(
    node: Option<&Node>,
    file: &Arc<str>,
    what: &str,
    format: Format,
    diags: &mut Diagnostics,
) -> BTreeMap<String, Slot> {
    let Some(node) = node else {
        return BTreeMap::new();
    };
    let mut ignored = |at: Pos, text: String| {
        if format == Format::Massdriver {
            diags.at(Code::BundleIgnoredKey, file, at, format!("{what}: {text}"));
        }
    };
    for e in node.entries() {
        if !SLOTS_KEYS.contains(&e.key.as_str()) {
            ignored(e.key_pos, format!("`{}` is not enforced by capstan", e.key));
        }
    }
    let required = strings(node.get("required"));
    node.get("properties")
        .map(Node::entries)
        .unwrap_or_default()
        .iter()
        .filter_map(|e| {
            let r = e.value.get("$ref")?;
            // Constraints beside the `$ref` (Massdriver allows them) are not enforced:
            // said, never dropped silently.
            for extra in e.value.entries() {
                if !SLOT_ANNOTATIONS.contains(&extra.key.as_str()) {
                    ignored(
                        extra.key_pos,
                        format!(
                            "{}: `{}` beside its $ref is not enforced by capstan",
                            e.key, extra.key
                        ),
                    );
                }
            }
            Some((
                e.key.clone(),
                Slot {
                    type_name: TypeName(type_of_ref(r.as_str()?).to_string().into()),
                    required: required.contains(&e.key),
                    at: loc(file, r),
                },
            ))
        })
        .collect()
}

/// The top-level keys of a `massdriver.yaml` capstan reads or knowingly ignores.
const MASSDRIVER_KEYS: &[&str] = &[
    "schema",
    "name",
    "description",
    "version",
    "source_url",
    "access",
    "type",
    "ui",
    "app",
    "params",
    "connections",
    "artifacts",
    "steps",
];

/// What only a Massdriver bundle file may say: its name (which must be the folder's), keys
/// Massdriver deprecated, and keys it ignores (real files keep YAML anchors in them).
fn massdriver_keys(name: &BundleName, root: &Node, file: &Arc<str>, diags: &mut Diagnostics) {
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
    for e in root.entries() {
        let newer =
            matches!(e.key.as_str(), "dependencies" | "resources") && is_resource_map(&e.value);
        if !MASSDRIVER_KEYS.contains(&e.key.as_str()) && !newer {
            diags.at(
                Code::BundleIgnoredKey,
                file,
                e.key_pos,
                format!(
                    "`{}` is not a key of a Massdriver bundle; Massdriver ignores it and so does capstan (anchors in it still work)",
                    e.key
                ),
            );
        }
    }
}

/// Reads bundle `name` from its definition `root` in `file`, with its folder's `files`;
/// `repository` is every file outside projects, for the shared pieces its schemas `$ref`.
#[allow(clippy::too_many_arguments)]
pub(super) fn bundle(
    name: BundleName,
    root: &Node,
    file: &Arc<str>,
    files: &[&SourceFile],
    repository: &[&SourceFile],
    format: Format,
    types: &BTreeMap<TypeName, ArtifactType>,
    diags: &mut Diagnostics,
) -> Bundle {
    let folder = format!("bundles/{name}/");
    if format == Format::Massdriver {
        massdriver_keys(&name, root, file, diags);
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
    let steps = match root.get("steps") {
        Some(steps) => steps
            .items()
            .iter()
            .filter_map(|s| step(s, file, &folder, files, format, diags))
            .collect(),
        None => default_steps(root, file, &folder, files, diags),
    };
    let params_node = root.get("params");
    let params_json = params_node.map(Node::to_json);
    let connections = either_slots(
        root,
        ("connections", "dependencies"),
        file,
        format,
        types,
        diags,
    );
    let artifacts = either_slots(root, ("artifacts", "resources"), file, format, types, diags);
    let sensitive = sensitive::of_bundle(params_json.as_ref(), &connections, &artifacts, types);
    let app = (format == Format::Massdriver)
        .then(|| root.get("app"))
        .flatten()
        .map(|node| app(node, file, diags));
    let immutable = params_json
        .as_ref()
        .map(sensitive::immutable_in)
        .unwrap_or_default();
    let documents = params_node
        .map(|node| documents(node, file, &folder, repository, diags))
        .unwrap_or_default();
    let shared: Vec<&SourceFile> = documents
        .keys()
        .filter(|path| !path.starts_with(&folder))
        .filter_map(|path| repository.iter().find(|f| f.path == *path).copied())
        .collect();
    Bundle {
        format,
        description: string(root.get("description")),
        version: string(root.get("version")).map_or_else(|| "0.0.0".into(), Into::into),
        params: params_node.cloned(),
        connections,
        artifacts,
        steps,
        digest: digest(&folder, files, &shared).into(),
        sensitive,
        app,
        immutable,
        documents,
        file: Arc::clone(file),
        name,
    }
}

/// A bundle's connections (or artifacts): the older JSON-Schema `connections:` or, in a
/// Massdriver file, the newer `dependencies:` (`resources:`); both at once is an error,
/// and the older is read.
fn either_slots(
    root: &Node,
    (older, newer): (&str, &str),
    file: &Arc<str>,
    format: Format,
    types: &BTreeMap<TypeName, ArtifactType>,
    diags: &mut Diagnostics,
) -> BTreeMap<String, Slot> {
    let newer_node = (format == Format::Massdriver)
        .then(|| root.entry(newer))
        .flatten()
        .filter(|e| is_resource_map(&e.value));
    match (root.get(older), newer_node) {
        (Some(_), Some(e)) => {
            diags.at(
                Code::BundleInvalid,
                file,
                e.key_pos,
                format!("`{older}` and `{newer}` say the same thing in Massdriver's older and newer formats; keep one (`{older}` is read)"),
            );
            slots(root.get(older), file, older, format, diags)
        }
        (None, Some(e)) => resource_slots(&e.value, file, newer, types, diags),
        (node, None) => slots(node, file, older, format, diags),
    }
}

/// A Massdriver bundle without `steps`: Massdriver's deprecated default, one terraform step
/// at `src` (only Massdriver bundles get here: capstan's schema requires `steps`).
fn default_steps(
    root: &Node,
    file: &Arc<str>,
    folder: &str,
    files: &[&SourceFile],
    diags: &mut Diagnostics,
) -> Vec<Step> {
    diags.at(
        Code::BundleDeprecatedKey,
        file,
        root.pos,
        "no `steps`: Massdriver's deprecated default, one terraform step at src, is used",
    );
    if !files
        .iter()
        .any(|f| f.path.starts_with(&format!("{folder}src/")))
    {
        diags.at(
            Code::BundleInvalid,
            file,
            root.pos,
            format!("the default step's folder src is not a folder with files in {folder}"),
        );
    }
    vec![Step {
        path: "src".into(),
        provisioner: Provisioner::Terraform { version: None },
        deploy: None,
        destroy: None,
        check: None,
        plan: None,
        skip_on_destroy: false,
    }]
}

/// `exec`, `opentofu`, `terraform`, optionally with a version (`opentofu:1.10`); for a
/// Massdriver bundle, any other name Massdriver defines too (`helm`), which capstan cannot
/// run. `None` for what is no provisioner at all (reported).
fn provisioner(
    text: &str,
    at: &Node,
    file: &Arc<str>,
    format: Format,
    diags: &mut Diagnostics,
) -> Option<Provisioner> {
    let (name, version) = match text.split_once(':') {
        Some((name, version)) => (name, Some(version)),
        None => (text, None),
    };
    let valid_version = version.is_none_or(|v| {
        !v.is_empty()
            && v.split('.')
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
    });
    let version = version.map(str::to_string);
    match name {
        "opentofu" | "terraform" if !valid_version && format == Format::Capstan => None,
        "opentofu" | "terraform" if !valid_version => {
            diags.at(
                Code::BundleInvalid,
                file,
                at.pos,
                format!(
                    "provisioner {text:?}: the version must be numbers and dots, e.g. {name}:1.10"
                ),
            );
            None
        }
        "opentofu" => Some(Provisioner::OpenTofu { version }),
        "terraform" => Some(Provisioner::Terraform { version }),
        "exec" if version.is_none() => Some(Provisioner::Exec),
        _ if format == Format::Massdriver && !name.is_empty() && name != "exec" => {
            diags.at(
                Code::BundleProvisionerUnsupported,
                file,
                at.pos,
                format!(
                    "provisioner {text:?} is not one capstan runs (exec, opentofu, terraform): the bundle plans, and deploying it fails its instances"
                ),
            );
            Some(Provisioner::Unsupported(text.to_string()))
        }
        // capstan's own schema already said what is wrong with it.
        _ if format == Format::Capstan => None,
        _ => {
            diags.at(
                Code::BundleInvalid,
                file,
                at.pos,
                format!("provisioner {text:?} is not supported (exec, opentofu, terraform)"),
            );
            None
        }
    }
}

fn step(
    node: &Node,
    file: &Arc<str>,
    folder: &str,
    files: &[&SourceFile],
    format: Format,
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
    let text = provisioner_node.as_str()?;
    let provisioner = provisioner(text, provisioner_node, file, format, diags)?;
    let deploy = string(node.get("deploy"));
    let destroy = string(node.get("destroy"));
    let check = string(node.get("check"));
    let plan = string(node.get("plan"));
    if provisioner == Provisioner::Exec && deploy.is_none() {
        diags.at(
            Code::BundleInvalid,
            file,
            node.pos,
            "an exec step needs a `deploy` command",
        );
    }
    if provisioner != Provisioner::Exec {
        for key in ["deploy", "destroy", "check", "plan"] {
            if let Some(e) = node.entry(key) {
                diags.at(
                    Code::BundleInvalid,
                    file,
                    e.key_pos,
                    if key == "check" {
                        format!("`check` is for exec steps; {text} steps are checked for drift with `plan -detailed-exitcode`")
                    } else if key == "plan" {
                        format!("`plan` is for exec steps; {text} steps are planned with `plan` and `show -json`")
                    } else {
                        format!("`{key}` is for exec steps; {text} steps run init/apply/destroy")
                    },
                );
            }
        }
    }
    if let Some(e) = node.entry("config") {
        diags.at(
            Code::BundleIgnoredKey,
            file,
            e.key_pos,
            format!("`config` of the {text} step (settings for Massdriver's provisioner, such as checkov) is ignored by capstan"),
        );
    }
    Some(Step {
        path: path.to_string(),
        provisioner,
        deploy,
        destroy,
        check,
        plan,
        skip_on_destroy: node
            .get("skip_on_delete")
            .and_then(Node::as_bool)
            .unwrap_or(false),
    })
}

/// The files its params schema `$ref`s, directly or not, parsed, by their path in the
/// repository: the bundle's own (`./schemas/x.json#/definitions/y`) and shared pieces
/// elsewhere in the repository (`../../components/aws/region.json`), resolved from the
/// folder of the file holding the `$ref`, as the Mass CLI does. A `$ref` that leaves the
/// repository, is absolute, names a link, a file the repository lacks or one that is not
/// JSON or YAML is reported where it is written; a URL `$ref` in such a file is never
/// fetched, as in `params` (a warning).
fn documents(
    params: &Node,
    file: &Arc<str>,
    folder: &str,
    repository: &[&SourceFile],
    diags: &mut Diagnostics,
) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    // (the file holding the `$ref`s, its folder in the repository, the `$ref`s)
    let mut pending = vec![(Arc::clone(file), folder.to_string(), local_refs(params))];
    while let Some((from, dir, refs)) = pending.pop() {
        for (target, at) in refs {
            // What a `$ref` that cannot be followed names rejects every value, so the
            // schema still compiles; the error is where the `$ref` is written.
            let (rel, leaves) = repository_path(&format!("{dir}{target}"));
            let refuse = |why: String, diags: &mut Diagnostics| {
                diags.at(
                    Code::BundleInvalid,
                    &from,
                    at,
                    format!("$ref {target:?} {why}"),
                );
            };
            if target.starts_with('/') {
                refuse(
                    "is an absolute path; a $ref names a file relative to the one it is in".into(),
                    diags,
                );
                out.insert(rel, serde_json::Value::Bool(false));
                continue;
            }
            if leaves {
                refuse("leaves the repository".into(), diags);
                out.insert(rel, serde_json::Value::Bool(false));
                continue;
            }
            if out.contains_key(&rel) {
                continue;
            }
            let found = repository.iter().find(|f| f.path == rel);
            let parsed = match found.map(|f| &f.content) {
                Some(Content::Symlink) => {
                    refuse(
                        format!("names {rel}, a symbolic link; capstan never follows links"),
                        diags,
                    );
                    out.insert(rel, serde_json::Value::Bool(false));
                    continue;
                }
                Some(Content::Bytes(b)) => {
                    let path: Arc<str> = rel.as_str().into();
                    std::str::from_utf8(b)
                        .ok()
                        .and_then(|text| super::parse_yaml(text, &path, diags))
                }
                _ => None,
            };
            let Some(node) = parsed else {
                let what = if found.is_some() {
                    "is not JSON or YAML"
                } else {
                    "is not in the repository"
                };
                refuse(format!("names {rel}, which {what}"), diags);
                out.insert(rel, serde_json::Value::Bool(false));
                continue;
            };
            let path: Arc<str> = rel.as_str().into();
            let mut json = node.to_json();
            for (at, url) in schema::strip_urls(&mut json) {
                diags.at(
                    Code::BundleUnresolvedRef,
                    &path,
                    node.locate(&at).node.pos,
                    format!("{path} refers to {url}, which is never fetched; that part accepts any value"),
                );
            }
            let doc_dir = rel
                .rsplit_once('/')
                .map_or(String::new(), |(d, _)| format!("{d}/"));
            pending.push((Arc::clone(&path), doc_dir, local_refs(&node)));
            out.insert(rel, json);
        }
    }
    out
}

/// `$ref`s below `node` that name a file (not `#...` inside the schema, not a URL).
fn local_refs(node: &Node) -> Vec<(String, Pos)> {
    fn walk(node: &Node, out: &mut Vec<(String, Pos)>) {
        for e in node.entries() {
            if e.key == "$ref"
                && let Some(r) = e.value.as_str()
                && is_file_ref(r)
            {
                out.push((r.to_string(), e.value.pos));
            }
            walk(&e.value, out);
        }
        for item in node.items() {
            walk(item, out);
        }
    }
    let mut out = Vec::new();
    walk(node, &mut out);
    out
}

/// Whether a `$ref` names a file of the bundle (`./schemas/x.json`, `defs.yaml#/a`).
fn is_file_ref(r: &str) -> bool {
    !r.starts_with('#') && !schema::is_url(r)
}

/// The repository path a file `$ref` resolves to (its fragment dropped), as URL
/// resolution does it (a `..` above the root stays at it), and whether it tried to leave
/// the repository.
fn repository_path(r: &str) -> (String, bool) {
    let path = r.split('#').next().unwrap_or(r);
    let mut parts: Vec<&str> = Vec::new();
    let mut leaves = false;
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => leaves |= parts.pop().is_none(),
            s => parts.push(s),
        }
    }
    (parts.join("/"), leaves)
}

/// SHA-256 over the bundle folder's files (relative path, executable bit and content) and
/// the shared schema pieces elsewhere in the repository that its schemas read (by their
/// path in the repository): editing `components/aws/region.json` updates exactly the
/// bundles that read it.
fn digest(folder: &str, files: &[&SourceFile], shared: &[&SourceFile]) -> String {
    let mut hasher = Sha256::new();
    for f in files.iter().chain(shared) {
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
