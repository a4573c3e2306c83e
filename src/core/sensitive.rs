//! Secrets: which values of an instance's params, connections and artifacts are sensitive,
//! and the two things done with that knowledge: hiding them in what is shown (plans,
//! comments, `capstan state show`, JSON) and collecting them to scrub from logs.
//!
//! Paths are computed once per bundle at load ([`of_bundle`], kept in `Bundle::sensitive`)
//! and once per artifact type ([`marked_in`]); nothing here runs per instance and field.

use std::collections::BTreeMap;

use serde_json::Value;

use super::model::{ArtifactType, Slot, TypeName};

/// Object keys from a root: `["params", "password"]`, `["artifacts", "database", "password"]`.
pub type FieldPath = Vec<String>;

/// What stands in the place of a secret wherever values are shown.
pub const HIDDEN: &str = "(sensitive)";

/// Whether a schema property is marked secret: `sensitive: true`, Massdriver's
/// `$md: {sensitive: true}`, or Massdriver's dotted key `"$md.sensitive": true`.
fn marked(prop: &Value) -> bool {
    let yes = Some(&Value::Bool(true));
    prop.get("sensitive") == yes
        || prop.pointer("/$md/sensitive") == yes
        || prop.get("$md.sensitive") == yes
}

/// Paths of the properties `schema` marks sensitive (below a marked property, everything is).
pub fn marked_in(schema: &Value) -> Vec<FieldPath> {
    marked_paths(schema, marked)
}

/// Paths of the properties of `schema` that `marked` holds for, through nested
/// `properties` (a marked property's own properties are not looked at).
pub fn marked_paths(schema: &Value, marked: fn(&Value) -> bool) -> Vec<FieldPath> {
    fn walk(
        schema: &Value,
        marked: fn(&Value) -> bool,
        path: &mut Vec<String>,
        out: &mut Vec<FieldPath>,
    ) {
        let Some(props) = schema.get("properties").and_then(Value::as_object) else {
            return;
        };
        for (key, prop) in props {
            path.push(key.clone());
            if marked(prop) {
                out.push(path.clone());
            } else {
                walk(prop, marked, path, out);
            }
            path.pop();
        }
    }
    let mut out = Vec::new();
    walk(schema, marked, &mut Vec::new(), &mut out);
    out
}

/// Params a Massdriver schema marks `$md.immutable` (the dotted key, or `$md: {immutable:
/// true}`): set when an instance is created, never changed after.
pub fn immutable_in(params: &Value) -> Vec<FieldPath> {
    marked_paths(params, |prop| {
        let yes = Some(&Value::Bool(true));
        prop.pointer("/$md/immutable") == yes || prop.get("$md.immutable") == yes
    })
}

/// Every sensitive path of an instance of a bundle: `params/...` from its params schema,
/// `connections/<slot>/data/...` and `artifacts/<field>/...` from the slots' artifact types.
pub fn of_bundle(
    params: Option<&Value>,
    connections: &BTreeMap<String, Slot>,
    artifacts: &BTreeMap<String, Slot>,
    types: &BTreeMap<TypeName, ArtifactType>,
) -> Vec<FieldPath> {
    let mut out: Vec<FieldPath> = params
        .map(marked_in)
        .unwrap_or_default()
        .into_iter()
        .map(|p| prefixed(&["params"], p))
        .collect();
    let of_type = |t: &TypeName| types.get(t).map(|t| t.sensitive.as_slice()).unwrap_or(&[]);
    for (slot, s) in connections {
        for p in of_type(&s.type_name) {
            out.push(prefixed(&["connections", slot, "data"], p.clone()));
        }
    }
    for (field, s) in artifacts {
        for p in of_type(&s.type_name) {
            out.push(prefixed(&["artifacts", field], p.clone()));
        }
    }
    out
}

fn prefixed(prefix: &[&str], rest: FieldPath) -> FieldPath {
    prefix.iter().map(|s| s.to_string()).chain(rest).collect()
}

/// The paths below `top` (`params`, `connections`, `artifacts`), without the `top` segment.
pub fn below<'a>(top: &'a str, paths: &'a [FieldPath]) -> impl Iterator<Item = &'a [String]> {
    paths
        .iter()
        .filter(move |p| p.first().is_some_and(|f| f == top))
        .map(|p| &p[1..])
}

/// Replaces every value at a sensitive path below `top` in `value` with [`HIDDEN`].
pub fn redact(top: &str, value: &mut Value, paths: &[FieldPath]) {
    replace(top, value, paths, |_| Value::String(HIDDEN.into()));
}

/// Replaces every value at a sensitive path below `top` in `value` with what `with` makes
/// of it (`redact`: `(sensitive)`; policies' input: a digest, so a change still shows).
pub fn replace(top: &str, value: &mut Value, paths: &[FieldPath], with: impl Fn(&Value) -> Value) {
    for path in below(top, paths) {
        let pointer: String = path
            .iter()
            .map(|k| format!("/{}", k.replace('~', "~0").replace('/', "~1")))
            .collect();
        if let Some(node) = value.pointer_mut(&pointer) {
            *node = with(node);
        }
    }
}

/// Every string or number at a sensitive path below `top` in `value`, for scrubbing logs.
pub fn secrets_in(top: &str, value: &Value, paths: &[FieldPath], out: &mut Vec<String>) {
    for path in below(top, paths) {
        let mut node = Some(value);
        for key in path {
            node = node.and_then(|n| n.get(key.as_str()));
        }
        collect_strings(node, out);
    }
}

fn collect_strings(value: Option<&Value>, out: &mut Vec<String>) {
    match value {
        Some(Value::String(s)) => out.push(s.clone()),
        Some(Value::Number(n)) => out.push(n.to_string()),
        Some(Value::Array(items)) => items.iter().for_each(|v| collect_strings(Some(v), out)),
        Some(Value::Object(map)) => map.values().for_each(|v| collect_strings(Some(v), out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_way_of_marking_a_secret() {
        let schema = json!({"properties": {
            "a": {"type": "string", "sensitive": true},
            "b": {"type": "string", "$md": {"sensitive": true}},
            "c": {"type": "string", "$md.sensitive": true},
            "d": {"properties": {"e": {"sensitive": true}, "f": {}}},
            "g": {"type": "string"}
        }});
        let paths = marked_in(&schema);
        let as_text: Vec<String> = paths.iter().map(|p| p.join(".")).collect();
        assert_eq!(as_text, ["a", "b", "c", "d.e"]);
    }

    #[test]
    fn redaction_and_collection_follow_the_same_paths() {
        let paths = vec![
            vec!["artifacts".to_string(), "db".into(), "password".into()],
            vec!["params".to_string(), "token".into()],
        ];
        let mut artifacts = json!({"db": {"password": "hunter22", "host": "h"}});
        let mut secrets = Vec::new();
        secrets_in("artifacts", &artifacts, &paths, &mut secrets);
        assert_eq!(secrets, ["hunter22"]);
        redact("artifacts", &mut artifacts, &paths);
        assert_eq!(artifacts, json!({"db": {"password": HIDDEN, "host": "h"}}));
        let mut params = json!({"token": 1234, "x": 1});
        redact("params", &mut params, &paths);
        assert_eq!(params, json!({"token": HIDDEN, "x": 1}));
    }
}
