//! YAML merge keys are honoured in every file at every position, and what capstan does not
//! honour is an error where it is written, never dropped.
//!
//! The walk: each YAML file of the example repository is written out again (as flow YAML,
//! keys in their order) once as it is, and once per mapping in it with that mapping's
//! entries moved behind a merge key, in one of the three forms YAML 1.1 allows (taken in
//! turn, so each form lands on every kind of place across the files):
//!
//! ```yaml
//! {<<: {a: 1, b: 2}}                 # one mapping merged
//! {<<: [{a: 1}, {b: 2}]}             # a list of mappings merged
//! {a: 1, <<: {a: lost, b: 2}}        # the mapping's own key wins over the merged one
//! ```
//!
//! Every variant must load and resolve to exactly what the plain rewrite does (positions and
//! bundle digests aside), with no diagnostics. A fourth variant puts a merge key with a
//! scalar at every mapping: each must be an error at that mapping's file.

use std::sync::LazyLock;

use capstan::core::source::{Content, SourceFile, SourceTree};
use capstan::core::yaml::{self, Kind, Node};
use regex::Regex;

use crate::support::{example_files, put};

/// How a mapping is written out.
#[derive(Clone, Copy, Debug)]
enum Form {
    Plain,
    Merged,
    MergedList,
    OwnKeyWins,
    /// `<<: not-a-mapping` added: must be an error.
    Broken,
}

const FORMS: [Form; 3] = [Form::Merged, Form::MergedList, Form::OwnKeyWins];

/// Writes `node` as flow YAML; the `target`-th mapping (pre-order) in `form`.
fn emit(node: &Node, target: Option<(usize, Form)>, seen: &mut usize, out: &mut String) {
    match &node.kind {
        Kind::Null => out.push_str("null"),
        Kind::Bool(b) => out.push_str(&b.to_string()),
        Kind::Int(i) => out.push_str(&i.to_string()),
        Kind::Float(f) => out.push_str(&format!("{f:?}")),
        Kind::Str(s) => out.push_str(&serde_json::to_string(s).expect("a string")),
        Kind::Seq(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                emit(item, target, seen, out);
            }
            out.push(']');
        }
        Kind::Map(entries) => {
            let index = *seen;
            *seen += 1;
            let form = match target {
                Some((t, form)) if t == index => form,
                _ => Form::Plain,
            };
            let mut entry = |e: &yaml::Entry, out: &mut String| {
                out.push_str(&serde_json::to_string(&e.key).expect("a key"));
                out.push_str(": ");
                emit(&e.value, target, seen, out);
            };
            let mut mapping = |entries: &[yaml::Entry], out: &mut String| {
                out.push('{');
                for (i, e) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    entry(e, out);
                }
                out.push('}');
            };
            match form {
                Form::Plain => mapping(entries, out),
                Form::Merged => {
                    out.push_str("{<<: ");
                    mapping(entries, out);
                    out.push('}');
                }
                Form::MergedList => {
                    let half = entries.len() / 2;
                    out.push_str("{<<: [");
                    mapping(&entries[..half], out);
                    out.push_str(", ");
                    mapping(&entries[half..], out);
                    out.push_str("]}");
                }
                Form::OwnKeyWins => match entries.split_first() {
                    None => mapping(entries, out),
                    Some((first, rest)) => {
                        out.push('{');
                        entry(first, out);
                        out.push_str(", <<: {");
                        out.push_str(&serde_json::to_string(&first.key).expect("a key"));
                        out.push_str(": \"the merged value must lose\"");
                        for e in rest {
                            out.push_str(", ");
                            entry(e, out);
                        }
                        out.push_str("}}");
                    }
                },
                Form::Broken => {
                    out.push_str("{<<: not-a-mapping");
                    for e in entries {
                        out.push_str(", ");
                        entry(e, out);
                    }
                    out.push('}');
                }
            }
        }
    }
}

fn mappings(node: &Node) -> usize {
    match &node.kind {
        Kind::Seq(items) => items.iter().map(mappings).sum(),
        Kind::Map(entries) => 1 + entries.iter().map(|e| mappings(&e.value)).sum::<usize>(),
        _ => 0,
    }
}

fn rewrite(root: &Node, target: Option<(usize, Form)>) -> Vec<u8> {
    let mut out = String::new();
    emit(root, target, &mut 0, &mut out);
    out.push('\n');
    out.into_bytes()
}

/// What capstan made of a repository, positions and bundle digests masked (they follow
/// the bytes, not the meaning).
fn meaning(files: &[SourceFile]) -> (Vec<String>, String) {
    static MASK: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"Pos \{ line: \d+, col: \d+ \}|(digest: )"[0-9a-f]{64}""#).expect("regex")
    });
    let checked = capstan::core::check(&SourceTree::new(files.to_vec()));
    let diagnostics = checked
        .diagnostics
        .iter()
        .map(ToString::to_string)
        .collect();
    let debug = format!("{:?}\n{:?}", checked.repository, checked.resolved);
    (diagnostics, MASK.replace_all(&debug, "${1}_").into_owned())
}

fn yaml_files() -> Vec<(String, Node)> {
    example_files()
        .iter()
        .filter(|f| f.path.ends_with(".yaml"))
        .map(|f| {
            let Content::Bytes(bytes) = &f.content else {
                panic!("{} is not a plain file", f.path)
            };
            let text = std::str::from_utf8(bytes).expect("utf-8");
            let (root, problems) = yaml::parse(text);
            assert!(problems.is_empty(), "{}: {problems:?}", f.path);
            (f.path.clone(), root.expect("a document"))
        })
        .collect()
}

#[test]
fn merge_keys_mean_the_same_at_every_mapping_of_every_file() {
    let mut checked = 0;
    for (path, root) in yaml_files() {
        let mut files = example_files();
        put(
            &mut files,
            &path,
            Content::Bytes(rewrite(&root, None).into()),
        );
        let plain = meaning(&files);
        assert_eq!(
            plain.0,
            Vec::<String>::new(),
            "{path} rewritten as flow YAML"
        );
        for index in 0..mappings(&root) {
            let form = FORMS[checked % FORMS.len()];
            let text = rewrite(&root, Some((index, form)));
            put(&mut files, &path, Content::Bytes(text.clone().into()));
            let variant = meaning(&files);
            assert!(
                variant == plain,
                "{path}, mapping {index} as {form:?}: capstan reads it differently\n{}\ndiagnostics: {:?}",
                String::from_utf8_lossy(&text),
                variant.0
            );
            checked += 1;
        }
    }
    assert!(
        checked > 200,
        "only {checked} mappings: is the example repository there?"
    );
}

#[test]
fn a_merge_key_capstan_cannot_honour_is_an_error_at_every_mapping() {
    for (path, root) in yaml_files() {
        let mut files = example_files();
        for index in 0..mappings(&root) {
            put(
                &mut files,
                &path,
                Content::Bytes(rewrite(&root, Some((index, Form::Broken))).into()),
            );
            let (diagnostics, _) = meaning(&files);
            assert!(
                diagnostics
                    .iter()
                    .any(|d| d.starts_with(&format!("{path}:"))
                        && d.contains("error[yaml.syntax]")
                        && d.contains("merge key")),
                "{path}, mapping {index}: a scalar merge key must be an error, got {diagnostics:?}"
            );
        }
    }
}

/// The silent bug this replaces: a param declared through a merge key was dropped, so
/// anything was accepted. Here as a Massdriver file writes it: the anchor in a top-level key
/// Massdriver ignores, merged into a param with a key of its own.
#[test]
fn a_merged_params_schema_constrains_the_params() {
    let bundle = "\
name: counter
Replicas: &replicas
  type: integer
  minimum: 3
  title: merged title loses
params:
  required: [replicas]
  properties:
    replicas:
      <<: *replicas
      title: Replicas
steps:
  - path: src
    provisioner: opentofu
";
    let mut files = example_files();
    put(
        &mut files,
        "bundles/counter/massdriver.yaml",
        Content::Bytes(bundle.as_bytes().into()),
    );
    put(
        &mut files,
        "bundles/counter/src/main.tf",
        Content::Bytes(b"# module\n".to_vec().into()),
    );
    let project = |replicas: &str| {
        format!("packages:\n  web:\n    bundle: counter\n    params: {{replicas: {replicas}}}\n")
    };
    put(
        &mut files,
        "projects/demo/environments/dev.yaml",
        Content::Bytes(Vec::new().into()),
    );
    let mut diagnostics = |replicas: &str| {
        put(
            &mut files,
            "projects/demo/project.yaml",
            Content::Bytes(project(replicas).into_bytes().into()),
        );
        let (d, _) = meaning(&files);
        d.into_iter()
            .filter(|d| d.contains("error"))
            .collect::<Vec<_>>()
    };
    assert_eq!(diagnostics("4"), Vec::<String>::new());
    let wrong_type = diagnostics("not-an-integer");
    assert!(
        wrong_type
            .iter()
            .any(|d| d.contains("params.invalid") && d.contains("params.replicas")),
        "{wrong_type:?}"
    );
    let too_small = diagnostics("2");
    assert!(
        too_small
            .iter()
            .any(|d| d.contains("params.invalid") && d.contains("params.replicas")),
        "{too_small:?}"
    );
    let checked = capstan::core::check(&SourceTree::new(files.clone()));
    let params = checked.repository.bundles["counter"]
        .params
        .as_ref()
        .expect("params")
        .to_json();
    assert_eq!(
        params["properties"]["replicas"]["title"], "Replicas",
        "own key wins"
    );
}
