//! The embedded JSON Schemas of capstan's file kinds (`schemas/*.schema.json`), compiled
//! once per process, and the mapping of schema errors back to YAML nodes.

use std::sync::{Arc, LazyLock};

use jsonschema::error::ValidationErrorKind;
use jsonschema::paths::LocationSegment;
use jsonschema::{Draft, Validator};
use serde_json::Value;

use super::diag::{Code, Diagnostics};
use super::yaml::Node;

/// A file kind with a schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Config,
    ArtifactType,
    Bundle,
    MassdriverBundle,
    Project,
    Environment,
    /// The daemon's configuration file (`capstan serve --config`), not part of a repository.
    Serve,
}

impl FileKind {
    pub const ALL: &'static [FileKind] = &[
        FileKind::Config,
        FileKind::ArtifactType,
        FileKind::Bundle,
        FileKind::MassdriverBundle,
        FileKind::Project,
        FileKind::Environment,
        FileKind::Serve,
    ];

    /// The schema's name: `capstan schema NAME`, `schemas/NAME.schema.json`.
    pub fn name(self) -> &'static str {
        match self {
            FileKind::Config => "capstan",
            FileKind::ArtifactType => "artifact-type",
            FileKind::Bundle => "bundle",
            FileKind::MassdriverBundle => "massdriver-bundle",
            FileKind::Project => "project",
            FileKind::Environment => "environment",
            FileKind::Serve => "serve",
        }
    }

    /// The schema as shipped, for editors.
    pub fn source(self) -> &'static str {
        match self {
            FileKind::Config => include_str!("../../schemas/capstan.schema.json"),
            FileKind::ArtifactType => include_str!("../../schemas/artifact-type.schema.json"),
            FileKind::Bundle => include_str!("../../schemas/bundle.schema.json"),
            FileKind::MassdriverBundle => {
                include_str!("../../schemas/massdriver-bundle.schema.json")
            }
            FileKind::Project => include_str!("../../schemas/project.schema.json"),
            FileKind::Environment => include_str!("../../schemas/environment.schema.json"),
            FileKind::Serve => include_str!("../../schemas/serve.schema.json"),
        }
    }
}

fn parse_embedded(kind: FileKind) -> Value {
    serde_json::from_str(kind.source())
        .expect("embedded schemas are valid JSON (checked by a test)")
}

/// Replaces `"$ref": "<other>.schema.json#/$defs/<name>"` with that definition, so each
/// schema compiles on its own while the shipped files stay editor-friendly.
fn inline_sibling_refs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref")
                && let Some((file, def)) = r.split_once(".schema.json#/$defs/")
                && let Some(kind) = FileKind::ALL.iter().find(|k| k.name() == file)
            {
                let mut defs = parse_embedded(*kind);
                if let Some(found) = defs.pointer_mut(&format!("/$defs/{def}")) {
                    let mut found = found.take();
                    inline_sibling_refs(&mut found);
                    map.remove("$ref");
                    if let Value::Object(inner) = found {
                        map.extend(inner);
                    }
                }
            }
            map.values_mut().for_each(inline_sibling_refs);
        }
        Value::Array(items) => items.iter_mut().for_each(inline_sibling_refs),
        _ => {}
    }
}

struct Compiled {
    kinds: Vec<(FileKind, Validator)>,
}

static COMPILED: LazyLock<Compiled> = LazyLock::new(|| Compiled {
    kinds: FileKind::ALL
        .iter()
        .map(|&kind| {
            let mut schema = parse_embedded(kind);
            inline_sibling_refs(&mut schema);
            let validator = compile(&schema, Draft::Draft202012)
                .expect("embedded schemas compile (checked by a test)");
            (kind, validator)
        })
        .collect(),
});

/// Compiles a schema that must not reach the network: no retriever is configured and
/// the crate is built without HTTP resolution, so an external `$ref` is an error.
pub fn compile(schema: &Value, draft: Draft) -> Result<Validator, String> {
    jsonschema::options()
        .with_draft(draft)
        .should_validate_formats(false)
        .build(schema)
        .map_err(|e| e.to_string())
}

/// Validates a parsed file against the schema of its kind; reports each problem at the
/// node it concerns. Returns whether the file matched.
pub fn check_file(kind: FileKind, file: &Arc<str>, root: &Node, diags: &mut Diagnostics) -> bool {
    let validator = &COMPILED
        .kinds
        .iter()
        .find(|(k, _)| *k == kind)
        .expect("every kind is compiled")
        .1;
    report(validator, root, Code::SchemaInvalid, file, "", diags)
}

/// One schema violation, in capstan's terms.
#[derive(Debug)]
pub struct SchemaError {
    /// Keys and indices from the validated value's root.
    pub path: Vec<String>,
    pub problem: SchemaProblem,
}

#[derive(Debug)]
pub enum SchemaProblem {
    UnknownKey(String),
    MissingKey(String),
    /// A key whose name the schema does not allow; the text says what it must be.
    BadKey(String, String),
    /// The rest, worded by `jsonschema` with the offending value masked, so a secret in a
    /// wrong place is never echoed back.
    Other(String),
}

/// Every violation of `instance` against `validator`.
pub fn errors(validator: &Validator, instance: &Value) -> Vec<SchemaError> {
    let mut out = Vec::new();
    for error in validator.iter_errors(instance) {
        let path: Vec<String> = error
            .instance_path()
            .iter()
            .map(|seg| match seg {
                LocationSegment::Property(p) => p.to_string(),
                LocationSegment::Index(i) => i.to_string(),
            })
            .collect();
        match error.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                out.extend(unexpected.iter().map(|k| SchemaError {
                    path: path.clone(),
                    problem: SchemaProblem::UnknownKey(k.clone()),
                }));
            }
            ValidationErrorKind::PropertyNames { error: inner } => {
                let key = inner
                    .instance()
                    .as_str()
                    .map_or_else(|| inner.instance().to_string(), str::to_string);
                let rule = match inner.kind() {
                    ValidationErrorKind::Pattern { pattern } => {
                        format!("names here must match {pattern}")
                    }
                    _ => "the name is reserved".to_string(),
                };
                out.push(SchemaError {
                    path,
                    problem: SchemaProblem::BadKey(key, rule),
                });
            }
            ValidationErrorKind::Required { property } => {
                let key = property
                    .as_str()
                    .map_or_else(|| property.to_string(), str::to_string);
                out.push(SchemaError {
                    path,
                    problem: SchemaProblem::MissingKey(key),
                });
            }
            _ => out.push(SchemaError {
                path,
                problem: SchemaProblem::Other(error.masked().to_string()),
            }),
        }
    }
    out
}

impl SchemaError {
    /// The message, naming the place as `prefix` followed by the path.
    pub fn message(&self, prefix: &str) -> String {
        let place = describe_path(prefix, &self.path);
        match &self.problem {
            SchemaProblem::UnknownKey(key) => format!("unknown key `{key}` in {place}"),
            SchemaProblem::MissingKey(key) => format!("missing required key `{key}` in {place}"),
            SchemaProblem::BadKey(key, rule) => {
                format!("key `{key}` is not allowed in {place}: {rule}")
            }
            SchemaProblem::Other(text) => format!("{place}: {text}"),
        }
    }

    /// The position in `root` (the YAML the value came from) that the error concerns:
    /// an unknown key itself, the key holding an object that lacks one, else the value.
    pub fn pos_in(&self, root: &Node) -> super::yaml::Pos {
        let located = root.locate(&self.path);
        match &self.problem {
            SchemaProblem::UnknownKey(key) | SchemaProblem::BadKey(key, _) => located
                .node
                .entry(key)
                .map_or(located.node.pos, |e| e.key_pos),
            SchemaProblem::MissingKey(_) => located.key_pos.unwrap_or(located.node.pos),
            SchemaProblem::Other(_) => located.node.pos,
        }
    }
}

/// Reports every error of `root` (validated as JSON) against `validator`, each at the node it
/// concerns, the place named from `prefix`. Returns whether it matched.
pub fn report(
    validator: &Validator,
    root: &Node,
    code: Code,
    file: &Arc<str>,
    prefix: &str,
    diags: &mut Diagnostics,
) -> bool {
    let found = errors(validator, &root.to_json());
    for e in &found {
        diags.at(code, file, e.pos_in(root), e.message(prefix));
    }
    found.is_empty()
}

/// `packages.db.params`, `shares[0].to`, or `the top level`.
pub fn describe_path<S: AsRef<str>>(prefix: &str, path: &[S]) -> String {
    let mut out = prefix.to_string();
    for seg in path {
        let seg = seg.as_ref();
        if seg.parse::<usize>().is_ok() {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(seg);
        }
    }
    if out.is_empty() {
        "the top level".to_string()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_schema_is_valid_and_compiles() {
        for kind in FileKind::ALL {
            let schema = parse_embedded(*kind);
            assert!(
                jsonschema::meta::is_valid(&schema),
                "{} is not a valid JSON Schema",
                kind.name()
            );
        }
        assert_eq!(COMPILED.kinds.len(), FileKind::ALL.len());
    }

    #[test]
    fn paths_read_like_yaml() {
        assert_eq!(describe_path("", &["shares", "0", "to"]), "shares[0].to");
        assert_eq!(describe_path("params", &["memory"]), "params.memory");
        assert_eq!(describe_path::<&str>("", &[]), "the top level");
    }
}
