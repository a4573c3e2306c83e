//! The embedded JSON Schemas of capstan's file kinds (`schemas/*.schema.json`), compiled
//! once per process, and the mapping of schema errors back to YAML nodes.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use jsonschema::error::ValidationErrorKind;
use jsonschema::paths::LocationSegment;
use jsonschema::{Draft, Validator};
use serde_json::Value;

use super::diag::{Code, Diagnostics};
use super::model::Format;
use super::patterns::{
    DATA_KEYWORDS, PATTERN_DFA_LIMIT, PATTERN_SIZE_LIMIT, pattern_error, posix_classes,
};
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
    /// Each kind's validator, and the schema it was compiled from (for the keys it allows).
    kinds: Vec<(FileKind, Validator, Value)>,
}

static COMPILED: LazyLock<Compiled> = LazyLock::new(|| Compiled {
    kinds: FileKind::ALL
        .iter()
        .map(|&kind| {
            let mut schema = parse_embedded(kind);
            inline_sibling_refs(&mut schema);
            let validator = compile(&schema, Format::Capstan)
                .expect("embedded schemas compile (checked by a test)");
            (kind, validator, schema)
        })
        .collect(),
});

/// Why a schema does not compile: the message, and where in the schema (keys and indices
/// from its root; empty when the problem is not at one place).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    pub path: Vec<String>,
    pub message: String,
}

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The JSON Schema draft of schemas written in `format`: capstan's files use 2020-12,
/// Massdriver's draft-07 (as Massdriver validates them).
fn draft(format: Format) -> Draft {
    match format {
        Format::Capstan => Draft::Draft202012,
        Format::Massdriver => Draft::Draft7,
    }
}

/// Compiles a schema written in `format` that refers to nothing outside itself.
pub fn compile(schema: &Value, format: Format) -> Result<Validator, CompileError> {
    compile_with(schema, format, "", &BTreeMap::new())
}

/// Compiles a schema written in folder `base` of the repository (`bundles/vpc/`) that may
/// `$ref` the given `documents` (keyed by their path in the repository) by relative path
/// (`./schemas/network.json#/$defs/cidr`, `../../components/aws/region.json`), resolved from
/// the folder of the file holding the `$ref`. Nothing else is ever read or fetched: a
/// `$ref` to anything else does not compile (callers strip URL `$ref`s first, with a
/// warning). POSIX classes in patterns (`[[:space:]]`), which Massdriver accepts, are read
/// as the ASCII classes they name.
pub fn compile_with(
    schema: &Value,
    format: Format,
    base: &str,
    documents: &BTreeMap<String, Value>,
) -> Result<Validator, CompileError> {
    let mut schema = schema.clone();
    posix_classes(&mut schema);
    jsonschema::options()
        .with_draft(draft(format))
        .should_validate_formats(false)
        .with_pattern_options(
            jsonschema::PatternOptions::regex()
                .size_limit(PATTERN_SIZE_LIMIT)
                .dfa_size_limit(PATTERN_DFA_LIMIT),
        )
        .with_base_uri(format!("{DOCUMENTS}{base}schema"))
        .with_retriever(Documents(documents.clone()))
        .build(&schema)
        .map_err(|e| CompileError {
            path: e
                .instance_path()
                .iter()
                .map(|seg| match seg {
                    LocationSegment::Property(p) => p.to_string(),
                    LocationSegment::Index(i) => i.to_string(),
                })
                .collect(),
            message: match e.kind() {
                ValidationErrorKind::Format { format } if format == "regex" => {
                    pattern_error(e.instance())
                }
                _ => e.to_string(),
            },
        })
}

/// Whether a `$ref` names something outside the bundle (`https://...`, `urn:...`), as
/// opposed to a place in the same schema (`#/$defs/x`) or a file of the bundle
/// (`./schemas/x.json#/a`).
pub fn is_url(r: &str) -> bool {
    let scheme = r.split_once(':').map(|(s, _)| s);
    scheme.is_some_and(|s| {
        s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
    })
}

/// Removes every `$ref` to a URL ([`is_url`]) from a schema, so that subschema accepts
/// anything: capstan never fetches. Returns where each was (the path ends in `$ref`) and
/// the URL, for the warning.
pub fn strip_urls(schema: &mut Value) -> Vec<(Vec<String>, String)> {
    fn walk(value: &mut Value, path: &mut Vec<String>, found: &mut Vec<(Vec<String>, String)>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref")
                    && is_url(r)
                {
                    let mut at = path.clone();
                    at.push("$ref".into());
                    found.push((at, r.clone()));
                    map.remove("$ref");
                }
                for (k, v) in map.iter_mut() {
                    if DATA_KEYWORDS.contains(&k.as_str()) {
                        continue;
                    }
                    path.push(k.clone());
                    walk(v, path, found);
                    path.pop();
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter_mut().enumerate() {
                    path.push(i.to_string());
                    walk(v, path, found);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    walk(schema, &mut Vec::new(), &mut found);
    found
}

/// The base every relative `$ref` resolves against; a document's path is after it.
const DOCUMENTS: &str = "capstan://repository/";

/// Serves the repository files a bundle's schemas read to `$ref`s, and nothing else.
struct Documents(BTreeMap<String, Value>);

impl jsonschema::Retrieve for Documents {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let path = uri
            .as_str()
            .strip_prefix(DOCUMENTS)
            .map(|p| p.split('#').next().unwrap_or(p));
        match path.and_then(|p| self.0.get(p)) {
            Some(doc) => {
                let mut doc = doc.clone();
                posix_classes(&mut doc);
                Ok(doc)
            }
            None => Err(format!(
                "{uri} is not a file the bundle's schemas read, and capstan fetches nothing"
            )
            .into()),
        }
    }
}

/// Validates a parsed file against the schema of its kind; reports each problem at the
/// node it concerns. Returns whether the file matched.
pub fn check_file(kind: FileKind, file: &Arc<str>, root: &Node, diags: &mut Diagnostics) -> bool {
    let (_, validator, schema) = COMPILED
        .kinds
        .iter()
        .find(|(k, _, _)| *k == kind)
        .expect("every kind is compiled");
    report(
        validator,
        schema,
        root,
        Code::SchemaInvalid,
        file,
        "",
        diags,
    )
}

/// One schema violation, in capstan's terms.
#[derive(Debug)]
pub struct SchemaError {
    /// Keys and indices from the validated value's root.
    pub path: Vec<String>,
    pub problem: SchemaProblem,
    /// For an unknown key: the allowed key nearest to it, if one is near.
    pub suggestion: Option<String>,
}

#[derive(Debug)]
pub enum SchemaProblem {
    UnknownKey(String),
    MissingKey(String),
    /// A key whose name the schema does not allow; the text says what it must be.
    BadKey(String, String),
    /// Text that is not a duration (the pattern [`crate::core::duration::PATTERN`]); the
    /// text itself where the file is capstan's own (never in params, which may be secret).
    Duration(Option<String>),
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
                    suggestion: None,
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
                    suggestion: None,
                });
            }
            ValidationErrorKind::Required { property } => {
                let key = property
                    .as_str()
                    .map_or_else(|| property.to_string(), str::to_string);
                out.push(SchemaError {
                    path,
                    problem: SchemaProblem::MissingKey(key),
                    suggestion: None,
                });
            }
            ValidationErrorKind::Pattern { pattern }
                if pattern == crate::core::duration::PATTERN =>
            {
                out.push(SchemaError {
                    path,
                    problem: SchemaProblem::Duration(None),
                    suggestion: None,
                });
            }
            ValidationErrorKind::Type { kind }
                if wants_string(kind) && is_scalar(error.instance()) =>
            {
                // `version: 1.4`: YAML read a number (or a boolean) where text was meant.
                out.push(SchemaError {
                    path,
                    problem: SchemaProblem::Other(format!(
                        "{}; quote the value to make it a string (unquoted, YAML reads it as {})",
                        error.masked(),
                        if error.instance().is_boolean() {
                            "a boolean"
                        } else {
                            "a number"
                        }
                    )),
                    suggestion: None,
                });
            }
            _ => out.push(SchemaError {
                path,
                problem: SchemaProblem::Other(error.masked().to_string()),
                suggestion: None,
            }),
        }
    }
    out
}

/// [`errors`], with the nearest allowed key suggested for each unknown one, the allowed keys
/// read from `schema` (the JSON Schema `validator` was compiled from).
pub fn errors_in(validator: &Validator, schema: &Value, instance: &Value) -> Vec<SchemaError> {
    let mut found = errors(validator, instance);
    for e in &mut found {
        if let SchemaProblem::UnknownKey(key) = &e.problem {
            let known = known_keys(schema, &e.path);
            e.suggestion = crate::core::suggest::nearest(key, &known).map(str::to_string);
        }
    }
    found
}

/// The keys `schema` names (`properties`) for the object at `path`, following local `$ref`s
/// and `allOf`/`anyOf`/`oneOf`/`then`/`else` branches.
pub fn known_keys(schema: &Value, path: &[String]) -> Vec<String> {
    fn expand<'a>(root: &'a Value, node: &'a Value, out: &mut Vec<&'a Value>, depth: usize) {
        if depth > 16 || out.iter().any(|n| std::ptr::eq(*n, node)) {
            return;
        }
        out.push(node);
        if let Some(r) = node.get("$ref").and_then(Value::as_str)
            && let Some(target) = r.strip_prefix('#').and_then(|p| root.pointer(p))
        {
            expand(root, target, out, depth + 1);
        }
        for key in ["allOf", "anyOf", "oneOf"] {
            for branch in node
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                expand(root, branch, out, depth + 1);
            }
        }
        for key in ["then", "else"] {
            if let Some(branch) = node.get(key) {
                expand(root, branch, out, depth + 1);
            }
        }
    }
    let mut nodes = Vec::new();
    expand(schema, schema, &mut nodes, 0);
    for seg in path {
        let mut next = Vec::new();
        for node in &nodes {
            let child = node
                .get("properties")
                .and_then(|p| p.get(seg.as_str()))
                .or_else(|| node.get("additionalProperties").filter(|a| a.is_object()))
                .or_else(|| {
                    seg.parse::<usize>()
                        .ok()
                        .and_then(|_| node.get("items").filter(|i| i.is_object()))
                });
            if let Some(child) = child {
                expand(schema, child, &mut next, 0);
            }
        }
        nodes = next;
    }
    let mut keys: Vec<String> = nodes
        .iter()
        .filter_map(|n| n.get("properties").and_then(Value::as_object))
        .flat_map(|props| props.keys().cloned())
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

fn wants_string(kind: &jsonschema::error::TypeKind) -> bool {
    match kind {
        jsonschema::error::TypeKind::Single(t) => *t == jsonschema::JsonType::String,
        jsonschema::error::TypeKind::Multiple(set) => set.contains(jsonschema::JsonType::String),
    }
}

fn is_scalar(v: &Value) -> bool {
    v.is_number() || v.is_boolean()
}

impl SchemaError {
    /// The message, naming the place as `prefix` followed by the path.
    pub fn message(&self, prefix: &str) -> String {
        let place = describe_path(prefix, &self.path);
        match &self.problem {
            SchemaProblem::UnknownKey(key) => match &self.suggestion {
                Some(near) => format!("unknown key `{key}` in {place} (did you mean `{near}`?)"),
                None => format!("unknown key `{key}` in {place}"),
            },
            SchemaProblem::MissingKey(key) => format!("missing required key `{key}` in {place}"),
            SchemaProblem::BadKey(key, rule) => {
                format!("key `{key}` is not allowed in {place}: {rule}")
            }
            SchemaProblem::Duration(Some(text)) => format!(
                "{place}: {}",
                crate::core::duration::DurationError::malformed(text)
            ),
            SchemaProblem::Duration(None) => format!(
                "{place}: not a duration: write numbers with units ms, s, m, h or d, e.g. 30s, 5m, 1h30m, 2d"
            ),
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
            SchemaProblem::Duration(_) | SchemaProblem::Other(_) => located.node.pos,
        }
    }
}

/// Reports every error of `root` (validated as JSON) against `validator`, each at the node it
/// concerns, the place named from `prefix`. Returns whether it matched.
pub fn report(
    validator: &Validator,
    schema: &Value,
    root: &Node,
    code: Code,
    file: &Arc<str>,
    prefix: &str,
    diags: &mut Diagnostics,
) -> bool {
    let mut found = errors_in(validator, schema, &root.to_json());
    for e in &mut found {
        // capstan's own files hold no secrets: say which text is not a duration.
        if let SchemaProblem::Duration(text) = &mut e.problem {
            *text = root.locate(&e.path).node.as_str().map(str::to_string);
        }
    }
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
    fn patterns_match_in_bounded_time_or_are_errors_at_the_pattern() {
        let schema = serde_json::json!({"properties": {"arn": {"type": "string", "pattern": "a{1,65535}{1,65535}"}}});
        let e = compile(&schema, Format::Capstan).unwrap_err();
        assert_eq!(e.path, ["properties", "arn", "pattern"]);
        assert!(
            e.message.contains("too large to match in bounded time"),
            "{e}"
        );

        let schema = serde_json::json!({"patternProperties": {"^(?!x)a": {}}});
        let e = compile(&schema, Format::Capstan).unwrap_err();
        assert!(e.message.contains("look-around"), "{e}");

        // Patterns that backtrack catastrophically elsewhere are linear here.
        let v = compile(
            &serde_json::json!({"type": "string", "pattern": "^(a+)+$"}),
            Format::Capstan,
        )
        .expect("compiles");
        let long = format!("{}!", "a".repeat(100_000));
        assert!(!v.is_valid(&serde_json::json!(long)));
        assert!(v.is_valid(&serde_json::json!("a".repeat(100_000))));
    }

    #[test]
    fn compile_errors_say_where_in_the_schema() {
        let schema =
            serde_json::json!({"properties": {"name": {"type": "string", "pattern": "(unclosed"}}});
        let e = compile(&schema, Format::Massdriver).unwrap_err();
        assert_eq!(e.path, ["properties", "name", "pattern"]);
        assert!(e.message.contains("(unclosed"), "{e}");
    }

    #[test]
    fn relative_refs_resolve_to_the_documents_given_and_nothing_else() {
        let docs = BTreeMap::from([
            (
                "bundles/vpc/schemas/network.json".to_string(),
                serde_json::json!({"$defs": {"cidr": {"type": "string", "pattern": "^[[:digit:].]+/[0-9]+$"}}}),
            ),
            (
                "components/aws/region.json".to_string(),
                serde_json::json!({"type": "string", "enum": ["us-east-1"]}),
            ),
        ]);
        let base = "bundles/vpc/";
        let schema = serde_json::json!({"properties": {
            "cidr": {"$ref": "./schemas/network.json#/$defs/cidr"},
            "region": {"$ref": "../../components/aws/region.json"},
        }});
        let v = compile_with(&schema, Format::Massdriver, base, &docs).expect("compiles");
        assert!(v.is_valid(&serde_json::json!({"cidr": "10.0.0.0/16", "region": "us-east-1"})));
        assert!(!v.is_valid(&serde_json::json!({"cidr": "ten"})));
        assert!(!v.is_valid(&serde_json::json!({"region": "mars-1"})));
        let missing = serde_json::json!({"properties": {"x": {"$ref": "./schemas/other.json"}}});
        assert!(compile_with(&missing, Format::Massdriver, base, &docs).is_err());
        let local_file = serde_json::json!({"properties": {"x": {"$ref": "file:///etc/passwd"}}});
        assert!(compile_with(&local_file, Format::Massdriver, base, &docs).is_err());
    }

    #[test]
    fn paths_read_like_yaml() {
        assert_eq!(describe_path("", &["shares", "0", "to"]), "shares[0].to");
        assert_eq!(describe_path("params", &["memory"]), "params.memory");
        assert_eq!(describe_path::<&str>("", &[]), "the top level");
    }
}
