//! GitHub's own OpenAPI description (npm `@octokit/openapi`, installed by `.ci/run` into
//! `tests/npm/node_modules`) as a checker: every request the fake receives must match an
//! operation with documented query parameters and a valid body, and every answer it gives
//! must match that operation's response schema. Responses are built from the description's
//! own examples, so the fake speaks GitHub's shapes rather than ours.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use jsonschema::{Draft, Validator};
use serde_json::{Value, json};

use crate::support::npm_file;

pub struct Spec {
    doc: Value,
    /// `components` with OpenAPI 3.0's `nullable` turned into JSON Schema.
    components: Value,
    validators: Mutex<HashMap<String, Arc<Validator>>>,
}

static LOADED: LazyLock<Result<Spec, String>> = LazyLock::new(|| {
    let path = npm_file(
        "@octokit/openapi/generated/api.github.com.json",
        "GitHub's OpenAPI description, which the fake GitHub checks every request and answer against,",
    )?;
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let doc: Value = serde_json::from_str(&text).expect("the OpenAPI description is JSON");
    let mut components = doc["components"].clone();
    nullable_to_json_schema(&mut components);
    Ok(Spec {
        doc,
        components,
        validators: Mutex::new(HashMap::new()),
    })
});

/// GitHub's OpenAPI description; every test that needs it and cannot have it says why.
pub fn spec() -> &'static Spec {
    LOADED.as_ref().unwrap_or_else(|e| panic!("{e}"))
}

/// OpenAPI 3.0 `nullable: true` is `type: [T, "null"]` (or `anyOf` with null) in JSON Schema.
fn nullable_to_json_schema(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for child in map.values_mut() {
                nullable_to_json_schema(child);
            }
            if map.remove("nullable") == Some(Value::Bool(true)) {
                match map.get("type").cloned() {
                    Some(Value::String(t)) => {
                        map.insert("type".into(), json!([t, "null"]));
                        if let Some(Value::Array(options)) = map.get_mut("enum") {
                            options.push(Value::Null);
                        }
                    }
                    _ => {
                        let inner = Value::Object(std::mem::take(map));
                        map.insert("anyOf".into(), json!([inner, {"type": "null"}]));
                    }
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(nullable_to_json_schema),
        _ => {}
    }
}

/// An operation of the description that a request matched.
pub struct Operation {
    pub template: String,
    pub method: String,
    op: Value,
}

impl Spec {
    /// Follows a top-level `$ref` (`#/components/...`).
    fn deref<'a>(&'a self, v: &'a Value) -> &'a Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => self
                .doc
                .pointer(r.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("dangling $ref {r}")),
            None => v,
        }
    }

    /// The operation for `method path`, preferring templates with more literal segments.
    pub fn find(&self, method: &str, path: &str) -> Option<Operation> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let method = method.to_ascii_lowercase();
        let mut best: Option<(usize, &String, &Value)> = None;
        for (template, item) in self.doc["paths"].as_object()? {
            let parts: Vec<&str> = template.trim_matches('/').split('/').collect();
            if parts.len() != segments.len() {
                continue;
            }
            let mut literal = 0;
            let matches = parts.iter().zip(&segments).all(|(p, s)| {
                if p.starts_with('{') {
                    !s.is_empty()
                } else {
                    literal += 1;
                    p == s
                }
            });
            if matches
                && let Some(op) = item.get(&method)
                && best.is_none_or(|(l, _, _)| literal > l)
            {
                best = Some((literal, template, op));
            }
        }
        best.map(|(_, template, op)| Operation {
            template: template.clone(),
            method: method.clone(),
            op: op.clone(),
        })
    }

    fn validator(&self, key: String, schema: &Value) -> Arc<Validator> {
        let mut cache = self.validators.lock().unwrap();
        if let Some(v) = cache.get(&key) {
            return v.clone();
        }
        let mut target = schema.clone();
        nullable_to_json_schema(&mut target);
        let root = json!({
            "components": self.components,
            "definitions": {"target": target},
            "$ref": "#/definitions/target",
        });
        let validator = Arc::new(
            jsonschema::options()
                .with_draft(Draft::Draft4)
                .should_validate_formats(true)
                .build(&root)
                .unwrap_or_else(|e| panic!("compiling the schema of {key}: {e}")),
        );
        cache.insert(key, validator.clone());
        validator
    }

    fn check(&self, key: String, schema: &Value, instance: &Value) -> Vec<String> {
        let validator = self.validator(key.clone(), schema);
        validator
            .iter_errors(instance)
            .take(10)
            .map(|e| format!("{key}: {} at {}", e, e.instance_path()))
            .collect()
    }

    /// Problems of a request: undocumented query parameters, a body that breaks the schema.
    pub fn check_request(
        &self,
        op: &Operation,
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        let params: Vec<String> = op.op["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .map(|p| self.deref(p))
                    .filter(|p| p["in"] == "query")
                    .filter_map(|p| p["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        for (name, _) in query {
            if !params.contains(name) {
                problems.push(format!(
                    "{} {}: query parameter `{name}` is not documented",
                    op.method, op.template
                ));
            }
        }
        let request = op.op.get("requestBody").map(|b| self.deref(b));
        match (request, body) {
            (Some(rb), Some(body)) => {
                if let Some(schema) = rb.pointer("/content/application~1json/schema") {
                    problems.extend(self.check(
                        format!("{} {} request", op.method, op.template),
                        schema,
                        body,
                    ));
                }
            }
            (Some(rb), None) if rb["required"] == true => problems.push(format!(
                "{} {}: the request body is required",
                op.method, op.template
            )),
            (None, Some(_)) => problems.push(format!(
                "{} {}: takes no request body",
                op.method, op.template
            )),
            _ => {}
        }
        problems
    }

    /// Problems of an answer: a status the operation does not document, a body that breaks
    /// the documented schema.
    pub fn check_response(&self, op: &Operation, status: u16, body: Option<&Value>) -> Vec<String> {
        let Some(response) = op.op["responses"].get(status.to_string()) else {
            return vec![format!(
                "{} {}: status {status} is not documented",
                op.method, op.template
            )];
        };
        let response = self.deref(response);
        match (response.pointer("/content/application~1json/schema"), body) {
            (Some(schema), Some(body)) => self.check(
                format!("{} {} {status}", op.method, op.template),
                schema,
                body,
            ),
            (Some(_), None) => vec![format!(
                "{} {} {status}: body missing",
                op.method, op.template
            )],
            _ => Vec::new(),
        }
    }

    /// Problems of a webhook payload against the description's schema of that delivery
    /// (`webhook` as in `x-webhooks`, e.g. `pull-request-closed`).
    pub fn check_webhook(&self, webhook: &str, payload: &Value) -> Vec<String> {
        let schema = self.doc["x-webhooks"][webhook]["post"]["requestBody"]["content"]
            ["application/json"]["schema"]
            .clone();
        assert!(!schema.is_null(), "no webhook {webhook} in the description");
        self.check(format!("webhook {webhook}"), &schema, payload)
    }

    /// The description's own example of a component (`#/components/examples/NAME`).
    pub fn example(&self, name: &str) -> Value {
        self.doc["components"]["examples"][name]["value"].clone()
    }
}

#[test]
fn the_checker_refuses_what_github_would() {
    let op = spec()
        .find("POST", "/repos/o/r/statuses/abc")
        .expect("the statuses operation");
    assert_eq!(op.template, "/repos/{owner}/{repo}/statuses/{sha}");
    let ok = json!({"state": "success", "context": "capstan/plan", "description": "fine"});
    assert!(spec().check_request(&op, &[], Some(&ok)).is_empty());
    let bad = json!({"state": "green", "context": 7});
    assert_eq!(
        spec().check_request(&op, &[], Some(&bad)).len(),
        2,
        "bad enum and bad type"
    );
    let query = vec![("verbose".to_string(), "1".to_string())];
    assert_eq!(
        spec().check_request(&op, &query, Some(&ok)).len(),
        1,
        "undocumented query parameter"
    );
    assert!(spec().find("DELETE", "/repos/o/r/statuses/abc").is_none());
    let comment = spec()
        .find("PATCH", "/repos/o/r/issues/comments/5")
        .unwrap();
    assert_eq!(
        comment.template,
        "/repos/{owner}/{repo}/issues/comments/{comment_id}"
    );
    let mut answer = spec().example("issue-comment");
    assert!(
        spec()
            .check_response(&comment, 200, Some(&answer))
            .is_empty()
    );
    answer.as_object_mut().unwrap().remove("node_id");
    assert!(
        !spec()
            .check_response(&comment, 200, Some(&answer))
            .is_empty(),
        "a required field is missing"
    );
    assert!(
        !spec()
            .check_response(&comment, 201, Some(&answer))
            .is_empty(),
        "201 is not documented for PATCH"
    );
}
