//! Massdriver application bundles' `app:` block, evaluated for one instance: `app.envs`
//! (environment variable to jq expression) and `app.policies` (jq expressions, typically
//! selecting IAM policies from connections) over `{params, connections}`, as Massdriver
//! passes them. A value that depends on a sensitive field is itself a secret: it is kept
//! out of logs like the field it comes from.

use serde_json::{Value, json};

use super::deployed::Inputs;
use super::jq;
use super::model::App;
use super::sensitive::{self, FieldPath};

/// What `app:` gives one instance's steps.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Evaluated {
    /// Environment variables, in the order written: text as it is, anything else as JSON.
    pub envs: Vec<(String, String)>,
    pub policies: Vec<Value>,
    /// The values among them that were read from sensitive fields.
    pub secrets: Vec<String>,
}

impl Evaluated {
    /// `app.json`: `{"envs": {...}, "policies": [...]}`.
    pub fn document(&self) -> Value {
        let envs: serde_json::Map<String, Value> = self
            .envs
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        json!({"envs": envs, "policies": self.policies})
    }
}

/// The jq input: `{params, connections: {slot: artifact}}`; with `masked`, every sensitive
/// value replaced.
fn input(inputs: &Inputs, sensitive: &[FieldPath], masked: bool) -> Value {
    let mut params = inputs.params.clone();
    // Redaction paths go through each connection's record (`connections/<slot>/data/...`).
    let mut connections: Value = inputs
        .connection_data()
        .into_iter()
        .map(|(slot, data)| (slot.to_string(), json!({"data": data})))
        .collect::<serde_json::Map<_, _>>()
        .into();
    if masked {
        sensitive::redact("params", &mut params, sensitive);
        sensitive::redact("connections", &mut connections, sensitive);
    }
    let connections: serde_json::Map<String, Value> = connections
        .as_object()
        .into_iter()
        .flatten()
        .map(|(slot, c)| (slot.clone(), c["data"].clone()))
        .collect();
    json!({"params": params, "connections": connections})
}

/// The first value `code` yields, as an environment variable's text.
fn first(code: &str, input: &Value) -> Result<Option<Value>, String> {
    Ok(jq::eval_at_most(code, input, 1)?.into_iter().next())
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Evaluates `app` for an instance with `inputs`; an expression that fails, or that
/// yields nothing for an env, is an error naming it. Whether a value depends on a secret is
/// found by evaluating again with every sensitive field masked: what changes is secret.
pub fn evaluate(app: &App, inputs: &Inputs, sensitive: &[FieldPath]) -> Result<Evaluated, String> {
    let real = input(inputs, sensitive, false);
    let masked = input(inputs, sensitive, true);
    let mut out = Evaluated::default();
    for (name, code) in &app.envs {
        let value = first(code, &real)
            .map_err(|e| format!("app.envs.{name} ({code}): {e}"))?
            .ok_or_else(|| format!("app.envs.{name} ({code}) yields nothing for this instance"))?;
        let shown = text(&value);
        if first(code, &masked).ok().flatten().as_ref() != Some(&value) {
            out.secrets.push(shown.clone());
        }
        out.envs.push((name.clone(), shown));
    }
    for code in &app.policies {
        let values = jq::eval(code, &real).map_err(|e| format!("app.policies ({code}): {e}"))?;
        let unmasked = jq::eval(code, &masked).unwrap_or_default();
        if unmasked != values {
            out.secrets.extend(values.iter().map(text));
        }
        out.policies.extend(values);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::deployed::Input;

    #[test]
    fn envs_and_policies_read_params_and_connections_and_secrets_stay_secret() {
        let inputs = Inputs {
            bundle: "api".into(),
            version: "1.0.0".into(),
            bundle_digest: String::new(),
            params: json!({"log_level": "info"}),
            connections: [(
                "database".to_string(),
                Input {
                    source: "db-dev-pg.database".into(),
                    data: Some(
                        json!({"data": {"host": "db.internal", "password": "hunter2-secret"},
                                      "specs": {"policies": ["read", "write"]}}),
                    ),
                },
            )]
            .into(),
        };
        let sensitive = vec![vec![
            "connections".to_string(),
            "database".into(),
            "data".into(),
            "data".into(),
            "password".into(),
        ]];
        let app = App {
            envs: vec![
                ("LOG_LEVEL".into(), ".params.log_level".into()),
                ("DB_HOST".into(), ".connections.database.data.host".into()),
                (
                    "DB_URL".into(),
                    r#""pg://app:" + .connections.database.data.password + "@db""#.into(),
                ),
            ],
            policies: vec![".connections.database.specs.policies[]".into()],
        };
        let got = evaluate(&app, &inputs, &sensitive).expect("evaluates");
        assert_eq!(
            got.envs,
            [
                ("LOG_LEVEL".to_string(), "info".to_string()),
                ("DB_HOST".into(), "db.internal".into()),
                ("DB_URL".into(), "pg://app:hunter2-secret@db".into())
            ]
        );
        assert_eq!(got.policies, [json!("read"), json!("write")]);
        assert_eq!(got.secrets, ["pg://app:hunter2-secret@db"]);

        let missing = App {
            envs: vec![("X".into(), ".connections.nope.data | empty".into())],
            policies: vec![],
        };
        assert_eq!(
            evaluate(&missing, &inputs, &sensitive),
            Err(
                "app.envs.X (.connections.nope.data | empty) yields nothing for this instance"
                    .into()
            )
        );
    }
}
