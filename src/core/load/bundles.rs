//! Bundles: `bundles/<bundle>/bundle.yaml`, or a Massdriver `massdriver.yaml`; their slots,
//! steps, sensitive paths and the digest of their files.

use std::collections::BTreeMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};

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

/// Whether a top-level `dependencies:` or `resources:` is Massdriver's newer format (a map
/// whose entries name a `resource_type`), not the misplaced JSON-Schema `dependencies`
/// block older files hold.
fn is_resource_map(node: &Node) -> bool {
    node.is_map()
        && node
            .entries()
            .iter()
            .any(|e| e.value.get("resource_type").is_some())
}

/// Massdriver's newer `dependencies:` or `resources:`: slot (or field) name to
/// `{resource_type: <type>@<constraint>, required: <bool>}`. The constraint is checked
/// against the type's `version` where the type is known and has one.
fn resource_slots(
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

/// A Massdriver application bundle's `app:`: `envs` (name to jq expression) and `policies`
/// (jq expressions), each compiled here so that one that does not is an error at its line;
/// `secrets` and anything else is said to be ignored.
fn app(node: &Node, file: &Arc<str>, diags: &mut Diagnostics) -> App {
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
    if provisioner == Provisioner::Exec && deploy.is_none() {
        diags.at(
            Code::BundleInvalid,
            file,
            node.pos,
            "an exec step needs a `deploy` command",
        );
    }
    if provisioner != Provisioner::Exec {
        for key in ["deploy", "destroy", "check"] {
            if let Some(e) = node.entry(key) {
                diags.at(
                    Code::BundleInvalid,
                    file,
                    e.key_pos,
                    if key == "check" {
                        format!("`check` is for exec steps; {text} steps are checked for drift with `plan -detailed-exitcode`")
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
