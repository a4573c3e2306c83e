//! Files -> the typed [`Repository`] model plus diagnostics. Never stops at the first
//! problem: a broken file is reported and left out, and everything else still loads.
//!
//! Layout (docs/repository-format.md, Layout), identifiers from paths, text decoding, YAML, the JSON Schema
//! of each file kind, and the shape of references are checked here; everything that needs
//! more than one file is `resolve`'s job.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, LazyLock};

use regex::Regex;

mod bundles;
mod newer;
mod policies;
pub use policies::{policy, policy_error, test_rules};
mod projects;
mod settings;
mod types;

use super::diag::{Code, Diagnostics, Loc};
use super::model::*;
use super::schema::{self, FileKind};
use super::source::{Content, MAX_YAML_BYTES, SourceFile, SourceTree};
use super::yaml::{self, Node, Pos};
pub use bundles::type_of_ref;

static PROJECT_LIKE_ID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9]{1,20}$").expect("valid regex"));
static TYPE_LIKE_ID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z][a-z0-9-]{1,51}[a-z0-9]$").expect("valid regex"));
static REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^([a-z0-9]{1,20})-([a-z0-9]{1,20})-([a-z0-9]{1,20})\.([a-z][a-z0-9_-]{0,62})$")
        .expect("valid regex")
});
static LOCAL_REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^([a-z0-9]{1,20})\.([a-z][a-z0-9_-]{0,62})$").expect("valid regex")
});

/// Where a path belongs in the layout.
#[derive(Debug, PartialEq, Eq)]
enum Place<'a> {
    Config,
    /// An artifact type in capstan's YAML, or a Massdriver artifact definition (`.json`).
    ArtifactType(&'a str, Format),
    /// A Massdriver resource type: `artifact-types/<type>/massdriver.yaml`.
    ResourceType(&'a str),
    BundleDefinition {
        bundle: &'a str,
        massdriver: bool,
    },
    BundleFile(&'a str),
    Project(&'a str),
    Environment(&'a str, &'a str),
    /// A Rego policy (or its tests, `*_test.rego`) in `policies/`.
    Policy,
    Ignored,
    Unexpected {
        hint: &'static str,
        report_once_for: Option<&'a str>,
    },
}

const ROOT_HINT: &str = "the repository root holds capstan.yaml, artifact-types/, bundles/, policies/ and projects/ (plus Markdown and hidden files)";
const PROJECT_HINT: &str = "a project folder holds project.yaml and environments/<env>.yaml";

fn classify(path: &str) -> Place<'_> {
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.last().copied().unwrap_or("");
    if segments[0] == "bundles" && segments.len() >= 3 {
        return match (segments.len(), last) {
            (3, "bundle.yaml") => Place::BundleDefinition {
                bundle: segments[1],
                massdriver: false,
            },
            (3, "massdriver.yaml") => Place::BundleDefinition {
                bundle: segments[1],
                massdriver: true,
            },
            _ => Place::BundleFile(segments[1]),
        };
    }
    if segments.iter().any(|s| s.starts_with('.')) || last.ends_with(".md") {
        return Place::Ignored;
    }
    match segments.as_slice() {
        ["capstan.yaml"] => Place::Config,
        [name] if name.starts_with("LICENSE") || *name == "CODEOWNERS" => Place::Ignored,
        ["capstan.yml"] => Place::Unexpected {
            hint: "the settings file is capstan.yaml",
            report_once_for: None,
        },
        ["artifact-types", file] => match file.strip_suffix(".yaml") {
            Some(stem) => Place::ArtifactType(stem, Format::Capstan),
            None => match file.strip_suffix(".json") {
                Some(stem) => Place::ArtifactType(stem, Format::Massdriver),
                None => Place::Unexpected {
                    hint: "artifact types are artifact-types/<type>.yaml (or a Massdriver definition, <type>.json)",
                    report_once_for: None,
                },
            },
        },
        ["artifact-types", name, "massdriver.yaml"] => Place::ResourceType(name),
        ["artifact-types", _, _] => Place::Unexpected {
            hint: "a resource type folder, artifact-types/<type>/, holds massdriver.yaml (and Markdown)",
            report_once_for: None,
        },
        ["bundles", _] => Place::Unexpected {
            hint: "bundles/ holds one folder per bundle",
            report_once_for: None,
        },
        ["policies", file] if file.ends_with(".rego") => Place::Policy,
        ["policies", ..] => Place::Unexpected {
            hint: "policies/ holds Rego files: <name>.rego, and their tests as <name>_test.rego",
            report_once_for: None,
        },
        ["projects", project, "project.yaml"] => Place::Project(project),
        ["projects", project, "environments", file] => match file.strip_suffix(".yaml") {
            Some(stem) => Place::Environment(project, stem),
            None => Place::Unexpected {
                hint: "environments are environments/<env>.yaml",
                report_once_for: None,
            },
        },
        ["projects", ..] => Place::Unexpected {
            hint: PROJECT_HINT,
            report_once_for: None,
        },
        [top, _, ..] if !matches!(*top, "artifact-types") => Place::Unexpected {
            hint: ROOT_HINT,
            report_once_for: Some(top),
        },
        _ => Place::Unexpected {
            hint: ROOT_HINT,
            report_once_for: None,
        },
    }
}

/// Loads every file of `tree` into a model; problems go to `diags`.
pub fn load(tree: &SourceTree, diags: &mut Diagnostics) -> Repository {
    let (shared, folders) = split(tree.files());
    let mut repo = load_shared(&shared, diags);
    for (name, range) in folders {
        if let Some(p) = load_project(name, &tree.files()[range], diags) {
            repo.projects.insert(p.id.clone(), Arc::new(p));
        }
    }
    repo
}

/// The files of `tree` in two parts: those every project's resolution reads (settings,
/// artifact types, bundles, stray files), and each project folder's own, by name, as a
/// range of `files`. A project folder loads on its own, which is what lets an unchanged
/// one be kept.
pub fn split(files: &[SourceFile]) -> (Vec<&SourceFile>, Vec<(&str, Range<usize>)>) {
    let mut shared = Vec::new();
    let mut folders = Vec::new();
    let mut i = 0;
    while i < files.len() {
        let Some(name) = project_folder(&files[i].path) else {
            shared.push(&files[i]);
            i += 1;
            continue;
        };
        // Sorted by path, so a folder's files are consecutive.
        let end = i + files[i..]
            .iter()
            .take_while(|f| project_folder(&f.path) == Some(name))
            .count();
        folders.push((name, i..end));
        i = end;
    }
    (shared, folders)
}

/// `p` for a path inside `projects/p/`.
fn project_folder(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("projects/")?;
    let (name, inside) = rest.split_once('/')?;
    (!inside.is_empty()).then_some(name)
}

/// Reports what is not a file at all (a link, a submodule); true for a file to read.
fn readable(file: &SourceFile, path: &Arc<str>, diags: &mut Diagnostics) -> bool {
    match &file.content {
        Content::Symlink => {
            diags.at(
                Code::FileSymlink,
                path,
                Pos::START,
                "symbolic link; capstan never follows links",
            );
            false
        }
        Content::Submodule => {
            diags.at(
                Code::FileUnexpected,
                path,
                Pos::START,
                "git submodule; capstan reads no submodules",
            );
            false
        }
        _ => true,
    }
}

/// A project folder's files (`projects/<name>/...`, sorted by path) -> its project with
/// its environments; `None` when its project.yaml is missing or unreadable.
pub fn load_project(name: &str, files: &[SourceFile], diags: &mut Diagnostics) -> Option<Project> {
    let mut project = None;
    let mut has_definition = false;
    let mut environments = Vec::new();
    for file in files {
        let path: Arc<str> = Arc::from(file.path.as_str());
        if !readable(file, &path, diags) {
            continue;
        }
        match classify(&file.path) {
            Place::Project(_) => {
                has_definition = true;
                if valid_id(&PROJECT_LIKE_ID, name, "project", &path, diags)
                    && let Some(root) = parse(file, FileKind::Project, &path, diags)
                {
                    project = Some(projects::project(
                        ProjectId(name.into()),
                        &root,
                        &path,
                        diags,
                    ));
                }
            }
            Place::Environment(_, env) => environments.push((env, file, path)),
            Place::Ignored => {}
            Place::Unexpected { hint, .. } => diags.at(
                Code::FileUnexpected,
                &path,
                Pos::START,
                format!("unexpected file: {hint}"),
            ),
            other => unreachable!("{} is in a project folder, not {other:?}", file.path),
        }
    }
    for (env, file, path) in environments {
        let Some(p) = project.as_mut() else {
            if !has_definition {
                diags.at(Code::FileUnexpected, &path, Pos::START, format!("projects/{name}/ has no project.yaml, so this environment belongs to no project"));
            }
            continue;
        };
        if Environment::is_preview_name(env) {
            diags.at(
                Code::IdInvalid,
                &path,
                Pos::START,
                format!("environment name {env:?} is reserved: pr<digits> names the previews of pull requests (see preview: in projects/{name}/project.yaml)"),
            );
            continue;
        }
        if valid_id(&PROJECT_LIKE_ID, env, "environment", &path, diags)
            && let Some(root) = parse(file, FileKind::Environment, &path, diags)
        {
            let e = projects::environment(EnvId(env.into()), &root, &path, diags);
            p.environments.insert(e.id.clone(), e);
        }
    }
    project
}

/// Loads the files outside project folders: settings, artifact types, bundles, and
/// whatever does not belong (reported).
pub fn load_shared(files: &[&SourceFile], diags: &mut Diagnostics) -> Repository {
    let files_outside_projects = files;
    let mut repo = Repository::default();
    // Reported once the bundles are read: a shared schema piece a bundle `$ref`s
    // (`components/aws/region.json`) belongs, wherever it is.
    let mut unexpected: Vec<(&SourceFile, &'static str, Option<&str>)> = Vec::new();
    let mut bundle_files: BTreeMap<&str, Vec<&SourceFile>> = BTreeMap::new();
    let mut bundle_defs: BTreeMap<&str, Vec<(&SourceFile, bool)>> = BTreeMap::new();

    for &file in files {
        let path: Arc<str> = Arc::from(file.path.as_str());
        if !readable(file, &path, diags) {
            continue;
        }
        match classify(&file.path) {
            Place::Config => {
                if let Some(root) = parse(file, FileKind::Config, &path, diags) {
                    repo.config = settings::config(&root, &path, diags);
                }
            }
            Place::ArtifactType(name, _) | Place::ResourceType(name) => {
                if !valid_id(&TYPE_LIKE_ID, name, "artifact type", &path, diags) {
                    continue;
                }
                if let Some(other) = repo.artifact_types.get(name) {
                    diags.at(
                        Code::FileUnexpected,
                        &path,
                        Pos::START,
                        format!("artifact type {name} is already defined by {}", other.file),
                    );
                    continue;
                }
                let massdriver = |read: fn(
                    TypeName,
                    &Node,
                    &Arc<str>,
                    &mut Diagnostics,
                ) -> Option<ArtifactType>,
                                  diags: &mut Diagnostics| {
                    text(file, &path, diags)
                        .and_then(|text| parse_yaml(text, &path, diags))
                        .and_then(|root| read(TypeName(name.into()), &root, &path, diags))
                };
                let t = match classify(&file.path) {
                    Place::ArtifactType(_, Format::Capstan) => {
                        parse(file, FileKind::ArtifactType, &path, diags)
                            .map(|root| types::artifact_type(TypeName(name.into()), &root, &path))
                    }
                    Place::ArtifactType(_, Format::Massdriver) => {
                        massdriver(types::massdriver_definition, diags)
                    }
                    _ => massdriver(types::resource_type, diags),
                };
                if let Some(t) = t {
                    repo.artifact_types.insert(t.name.clone(), t);
                }
            }
            Place::BundleDefinition { bundle, massdriver } => {
                bundle_defs
                    .entry(bundle)
                    .or_default()
                    .push((file, massdriver));
                bundle_files.entry(bundle).or_default().push(file);
            }
            Place::BundleFile(bundle) => bundle_files.entry(bundle).or_default().push(file),
            Place::Policy => {
                if let Some(text) = text(file, &path, diags) {
                    repo.policies.push(policies::policy(&path, text, diags));
                }
            }
            Place::Project(_) | Place::Environment(..) => {
                unreachable!("{} is in a project folder", file.path)
            }
            Place::Ignored => {}
            Place::Unexpected {
                hint,
                report_once_for,
            } => unexpected.push((file, hint, report_once_for)),
        }
    }

    for (name, files) in &bundle_files {
        let folder: Arc<str> = Arc::from(format!("bundles/{name}"));
        let defs = bundle_defs.get(name).map(Vec::as_slice).unwrap_or_default();
        // bundle.yaml wins over massdriver.yaml (massdriver.yaml is read when there is no bundle.yaml).
        let def = defs.iter().find(|(_, md)| !md).or_else(|| defs.first());
        let Some(&(def_file, massdriver)) = def else {
            let first: Arc<str> = Arc::from(files[0].path.as_str());
            diags.at(
                Code::BundleInvalid,
                &first,
                Pos::START,
                format!("{folder}/ has no bundle.yaml (or massdriver.yaml)"),
            );
            continue;
        };
        let path: Arc<str> = Arc::from(def_file.path.as_str());
        if !valid_id(&TYPE_LIKE_ID, name, "bundle", &path, diags) {
            continue;
        }
        let (kind, format) = if massdriver {
            (FileKind::MassdriverBundle, Format::Massdriver)
        } else {
            (FileKind::Bundle, Format::Capstan)
        };
        if let Some(root) = parse(def_file, kind, &path, diags) {
            let b = bundles::bundle(
                BundleName((*name).into()),
                &root,
                &path,
                files,
                files_outside_projects,
                format,
                &repo.artifact_types,
                diags,
            );
            repo.bundles.insert(b.name.clone(), b);
        }
    }

    let read: std::collections::BTreeSet<&str> = repo
        .bundles
        .values()
        .flat_map(|b| b.documents.keys().map(String::as_str))
        .collect();
    let mut reported_folders: Vec<&str> = Vec::new();
    for (file, hint, report_once_for) in unexpected {
        if read.contains(file.path.as_str()) {
            continue;
        }
        let path: Arc<str> = Arc::from(file.path.as_str());
        if let Some(folder) = report_once_for {
            if reported_folders.contains(&folder) {
                continue;
            }
            reported_folders.push(folder);
            diags.at(
                Code::FileUnexpected,
                &path,
                Pos::START,
                format!("folder {folder}/ is not part of the layout: {hint}"),
            );
        } else {
            diags.at(
                Code::FileUnexpected,
                &path,
                Pos::START,
                format!("unexpected file: {hint}"),
            );
        }
    }
    repo
}

fn valid_id(
    pattern: &Regex,
    id: &str,
    what: &str,
    file: &Arc<str>,
    diags: &mut Diagnostics,
) -> bool {
    if pattern.is_match(id) {
        return true;
    }
    diags.at(
        Code::IdInvalid,
        file,
        Pos::START,
        format!(
            "{what} name {id:?} (from the path) does not match {}",
            pattern.as_str()
        ),
    );
    false
}

/// Decodes, parses and schema-checks one YAML file. `None` when it cannot be read at all;
/// a file that parses but breaks its schema is still returned, so its valid parts load.
fn parse(
    file: &SourceFile,
    kind: FileKind,
    path: &Arc<str>,
    diags: &mut Diagnostics,
) -> Option<Node> {
    let text = text(file, path, diags)?;
    parse_text(text, kind, path, diags)
}

/// Parses YAML text and checks it against the schema of `kind`, reporting every problem;
/// `None` when it is not YAML at all. Also used for the daemon's configuration file.
pub fn parse_text(
    text: &str,
    kind: FileKind,
    path: &Arc<str>,
    diags: &mut Diagnostics,
) -> Option<Node> {
    let root = parse_yaml(text, path, diags)?;
    schema::check_file(kind, path, &root, diags);
    Some(root)
}

/// Parses YAML (or JSON, which YAML reads too), reporting every problem; `None` when it is
/// not YAML at all.
pub(super) fn parse_yaml(text: &str, path: &Arc<str>, diags: &mut Diagnostics) -> Option<Node> {
    let (root, problems) = yaml::parse(text);
    for problem in problems {
        match problem {
            yaml::Problem::Syntax { pos, message } => {
                diags.at(Code::YamlSyntax, path, pos, message)
            }
            yaml::Problem::DuplicateKey { pos, key, first } => diags.at(
                Code::YamlDuplicateKey,
                path,
                pos,
                format!(
                    "duplicate key `{key}` (first at line {}); the first is used",
                    first.line
                ),
            ),
            yaml::Problem::KeyNotString { pos, key } => diags.at(
                Code::YamlKeyNotString,
                path,
                pos,
                format!("key {key} is not a string; quote it"),
            ),
            yaml::Problem::TooComplex { pos, message } => {
                diags.at(Code::YamlTooComplex, path, pos, message)
            }
        }
    }
    root
}

fn text<'a>(file: &'a SourceFile, path: &Arc<str>, diags: &mut Diagnostics) -> Option<&'a str> {
    let bytes = match &file.content {
        Content::Bytes(bytes) => bytes,
        Content::TooLarge { size } => {
            diags.at(
                Code::FileUnreadable,
                path,
                Pos::START,
                format!("{size} bytes, over the {MAX_YAML_BYTES}-byte limit for YAML files"),
            );
            return None;
        }
        Content::Unreadable(why) => {
            diags.at(
                Code::FileUnreadable,
                path,
                Pos::START,
                format!("could not be read: {why}"),
            );
            return None;
        }
        Content::Symlink | Content::Submodule => return None,
    };
    if bytes.len() > MAX_YAML_BYTES {
        diags.at(
            Code::FileUnreadable,
            path,
            Pos::START,
            format!(
                "{} bytes, over the {MAX_YAML_BYTES}-byte limit for YAML files",
                bytes.len()
            ),
        );
        return None;
    }
    if let Some(at) = bytes.iter().position(|&b| b == 0) {
        diags.at(
            Code::FileUnreadable,
            path,
            pos_at(bytes, at),
            "binary file (holds a NUL byte); YAML files are text",
        );
        return None;
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => Some(text),
        Err(e) => {
            diags.at(
                Code::FileUnreadable,
                path,
                pos_at(bytes, e.valid_up_to()),
                "not valid UTF-8; YAML files are UTF-8 text",
            );
            None
        }
    }
}

/// The line and column of a byte offset, counting characters of the valid prefix.
fn pos_at(bytes: &[u8], offset: usize) -> Pos {
    let before = String::from_utf8_lossy(&bytes[..offset]);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Pos {
        line: u32::try_from(line).unwrap_or(u32::MAX),
        col: u32::try_from(col).unwrap_or(u32::MAX),
    }
}

fn loc(file: &Arc<str>, node: &Node) -> Loc {
    Loc::new(file, node.pos)
}

fn string(node: Option<&Node>) -> Option<String> {
    node.and_then(Node::as_str).map(str::to_string)
}

fn strings(node: Option<&Node>) -> Vec<String> {
    node.map(Node::items)
        .unwrap_or_default()
        .iter()
        .filter_map(|n| n.as_str().map(str::to_string))
        .collect()
}

fn string_map(node: Option<&Node>) -> BTreeMap<String, String> {
    node.map(Node::entries)
        .unwrap_or_default()
        .iter()
        .filter_map(|e| e.value.as_str().map(|v| (e.key.clone(), v.to_string())))
        .collect()
}

fn audience(node: Option<&Node>) -> Audience {
    match node {
        Some(n) if n.is_map() => Audience::Matching(
            n.entries()
                .iter()
                .map(|e| (e.key.clone(), strings(Some(&e.value))))
                .collect(),
        ),
        _ => Audience::Anyone,
    }
}

/// `<package>.<field>` (wiring, shares).
fn local_reference(
    node: &Node,
    file: &Arc<str>,
    what: &str,
    diags: &mut Diagnostics,
) -> Option<(PackageName, String)> {
    let text = node.as_str()?;
    match LOCAL_REFERENCE.captures(text) {
        Some(c) => Some((PackageName(c[1].to_string().into()), c[2].to_string())),
        None => {
            diags.at(
                Code::ReferenceInvalid,
                file,
                node.pos,
                format!("{what} {text:?} is not of the form <package>.<field>"),
            );
            None
        }
    }
}

/// Parses `<project>-<environment>-<package>.<field>`.
pub fn parse_reference(text: &str) -> Option<ArtifactRef> {
    let c = REFERENCE.captures(text)?;
    Some(ArtifactRef {
        project: ProjectId(c[1].to_string().into()),
        environment: EnvId(c[2].to_string().into()),
        package: PackageName(c[3].to_string().into()),
        field: c[4].to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_places() {
        assert_eq!(classify("capstan.yaml"), Place::Config);
        assert_eq!(
            classify("artifact-types/aws-vpc.yaml"),
            Place::ArtifactType("aws-vpc", Format::Capstan)
        );
        assert_eq!(
            classify("bundles/x/bundle.yaml"),
            Place::BundleDefinition {
                bundle: "x",
                massdriver: false
            }
        );
        assert_eq!(classify("bundles/x/src/.hidden"), Place::BundleFile("x"));
        assert_eq!(
            classify("projects/a/environments/b.yaml"),
            Place::Environment("a", "b")
        );
        assert_eq!(classify("projects/a/README.md"), Place::Ignored);
        assert_eq!(classify(".github/workflows/ci.yaml"), Place::Ignored);
        assert!(matches!(
            classify("projects/a/envs/b.yaml"),
            Place::Unexpected { .. }
        ));
        assert!(matches!(
            classify("docs/a/b.txt"),
            Place::Unexpected {
                report_once_for: Some("docs"),
                ..
            }
        ));
    }

    #[test]
    fn refs_name_the_type_after_the_last_slash() {
        assert_eq!(type_of_ref("aws-vpc"), "aws-vpc");
        assert_eq!(type_of_ref("massdriver/aws-vpc"), "aws-vpc");
        assert_eq!(
            type_of_ref("https://x.example/types/aws-vpc.json"),
            "aws-vpc"
        );
    }

    #[test]
    fn references_split_unambiguously() {
        let r = parse_reference("si-staging-vpc.network").expect("valid");
        assert_eq!(
            (
                r.project.as_str(),
                r.environment.as_str(),
                r.package.as_str(),
                r.field.as_str()
            ),
            ("si", "staging", "vpc", "network")
        );
        assert!(parse_reference("si-staging.network").is_none());
        assert!(parse_reference("si-stag-ing-vpc.network").is_none());
    }

    #[test]
    fn positions_of_bad_bytes() {
        assert_eq!(pos_at(b"ab\ncd", 4), Pos { line: 2, col: 2 });
    }
}
