//! Params (docs/repository-format.md, step 1 of resolution): each bundle's params schema compiled once (URL `$ref`s
//! never fetched), and each instance's params: project params deep-merged with the
//! environment's, schema defaults filled in, validated, with errors at the node that set
//! the value.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::Ctx;
use crate::core::diag::{Code, Loc};
use crate::core::model::*;
use crate::core::schema;
use crate::core::yaml::Node;

impl<'a> Ctx<'a> {
    pub(super) fn bundles(&mut self) {
        for b in self.repo.bundles.values() {
            for (kind, slots) in [("connection", &b.connections), ("artifact", &b.artifacts)] {
                for (name, slot) in slots {
                    if !self
                        .repo
                        .artifact_types
                        .contains_key(slot.type_name.as_str())
                    {
                        self.diags.push(Code::ArtifactTypeUnknown, slot.at.clone(), format!("{kind} {name} of bundle {} names artifact type {}, which does not exist", b.name, slot.type_name));
                    }
                }
            }
            let Some(node) = &b.params else {
                let any = serde_json::json!({"type": "object"});
                let v = schema::compile(&any, Format::Capstan).expect("the object schema compiles");
                self.params.insert(b.name.as_str(), (any, v));
                continue;
            };
            let mut json = node.to_json();
            for (at, url) in schema::strip_urls(&mut json) {
                let located = node.locate(&at);
                let pos = if located.complete {
                    located.node.pos
                } else {
                    node.pos
                };
                self.diags.at(Code::BundleUnresolvedRef, &b.file, pos, format!("params schema of bundle {} refers to {url}, which is never fetched; that part accepts any value", b.name));
            }
            match schema::compile_with(&json, b.format, &b.folder(), &b.documents) {
                Ok(v) => {
                    self.params.insert(b.name.as_str(), (json, v));
                }
                Err(e) => {
                    // At the keyword at fault (a `pattern`, a `type`), not at `params:`.
                    let located = node.locate(&e.path);
                    self.diags.at(
                        Code::BundleInvalid,
                        &b.file,
                        located.node.pos,
                        format!(
                            "params of bundle {} is not a valid JSON Schema at {}: {e}",
                            b.name,
                            schema::describe_path("params", &e.path)
                        ),
                    );
                }
            }
        }
    }

    /// Merge (the project's params, then each environment layer), fill defaults, validate;
    /// errors point at the node that set the value, in the file that sets it.
    pub(super) fn params(
        &mut self,
        id: &InstanceId,
        bundle: &'a Bundle,
        package: &Package,
        project: &Project,
        layers: &[ParamsLayer],
        at: &Loc,
    ) -> Arc<Value> {
        let mut merged = package
            .params
            .as_ref()
            .map_or_else(|| Value::Object(Default::default()), Node::to_json);
        for layer in layers {
            merge(&mut merged, &layer.node.to_json());
        }
        let Some((schema_json, validator)) = self.params.get(bundle.name.as_str()) else {
            return self.shared.share(&bundle.name, merged, true);
        };
        apply_defaults(schema_json, &mut merged);
        // Many instances have the same params (an environment that overrides nothing): they
        // share one tree, and a tree known to be valid for this bundle is not checked again.
        if let Some(valid) = self.shared.get(bundle.name.as_str(), &merged) {
            return valid;
        }
        let errors = schema::errors_in(validator, schema_json, &merged);
        let valid = errors.is_empty();
        for e in errors {
            // The last layer that sets the value (or replaced what is below it) owns it.
            let written = layers
                .iter()
                .rev()
                .map(|l| (Some(&l.node), &l.file))
                .chain(std::iter::once((package.params.as_ref(), &project.file)));
            let located = written
                .enumerate()
                .filter_map(|(order, (node, file))| {
                    let l = node?.locate(&e.path);
                    // A value set at a prefix that is not a mapping (a scalar or list) replaced everything below it.
                    let owns = l.complete || !l.node.is_map();
                    Some((
                        owns,
                        l.depth,
                        std::cmp::Reverse(order),
                        file,
                        e.pos_in(node?),
                    ))
                })
                .max_by_key(|(owns, depth, order, ..)| (*owns, *depth, *order));
            let loc = located.map_or_else(|| at.clone(), |(.., file, pos)| Loc::new(file, pos));
            self.diags.push(
                Code::ParamsInvalid,
                loc,
                format!("{id}: {}", e.message("params")),
            );
        }
        self.shared.share(&bundle.name, merged, valid)
    }
}

/// Params trees built so far, per bundle, each stored once, with whether it is valid for
/// its bundle's schema.
#[derive(Default)]
pub(super) struct SharedParams<'a>(HashMap<&'a str, HashMap<Arc<Value>, bool>>);

impl<'a> SharedParams<'a> {
    /// The stored copy of `value` if it is known to be valid for `bundle`.
    fn get(&self, bundle: &str, value: &Value) -> Option<Arc<Value>> {
        let (stored, valid) = self.0.get(bundle)?.get_key_value(value)?;
        valid.then(|| stored.clone())
    }

    /// The one stored copy of `value`, stored now if it is new.
    fn share(&mut self, bundle: &'a BundleName, value: Value, valid: bool) -> Arc<Value> {
        let trees = self.0.entry(bundle.as_str()).or_default();
        if let Some((stored, _)) = trees.get_key_value(&value) {
            return stored.clone();
        }
        let stored = Arc::new(value);
        trees.insert(stored.clone(), valid);
        stored
    }
}

/// Maps merge, everything else (lists included) is replaced.
pub fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// Fills `default`s of `properties`, recursing into objects that are present.
pub fn apply_defaults(schema: &Value, value: &mut Value) {
    let (Some(props), Value::Object(obj)) =
        (schema.get("properties").and_then(Value::as_object), value)
    else {
        return;
    };
    for (key, sub) in props {
        if !obj.contains_key(key)
            && let Some(default) = sub.get("default")
        {
            obj.insert(key.clone(), default.clone());
        }
        if let Some(v) = obj.get_mut(key) {
            apply_defaults(sub, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_merge_and_lists_replace() {
        let mut base = json!({"a": {"x": 1, "y": [1, 2]}, "b": 1});
        merge(&mut base, &json!({"a": {"y": [3]}, "c": 2}));
        assert_eq!(base, json!({"a": {"x": 1, "y": [3]}, "b": 1, "c": 2}));
    }

    #[test]
    fn defaults_fill_missing_keys_only() {
        let schema = json!({"properties": {"cpu": {"default": 256}, "memory": {"default": 512}, "net": {"properties": {"auto": {"default": true}}}}});
        let mut v = json!({"memory": 1024, "net": {}});
        apply_defaults(&schema, &mut v);
        assert_eq!(
            v,
            json!({"cpu": 256, "memory": 1024, "net": {"auto": true}})
        );
    }
}
