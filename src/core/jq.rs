//! jq expressions of Massdriver application bundles (`app.envs`, `app.policies`), through
//! the embedded `jaq` implementation: compiled at validation (an expression that does not
//! compile is an error where it is written), evaluated at deploy over `{params,
//! connections}`.
//!
//! jq's core and jaq's standard library are offered, less what reaches the machine: the
//! process's environment (`env`, `$ENV`), input, the clock, writing to capstan's stderr
//! (`debug`, `stderr`) and `halt`. An expression from the repository sees the instance's
//! inputs and nothing of the machine that deploys it.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data};
use jaq_json::Val;
use serde_json::Value;

type Filter = jaq_core::compile::Filter<jaq_core::Native<data::JustLut<Val>>>;

/// Natives left out: the process's environment, the clock, and writing to capstan's own
/// stderr (`debug`, `stderr`), which would put values (secrets among them) in its log.
const WITHHELD: &[&str] = &["env", "now", "debug_empty", "stderr_empty", "halt"];
/// Definitions built on what is withheld.
const WITHHELD_DEFS: &[&str] = &["debug", "stderr", "halt", "halt_error"];

/// Compiles `code`; the error says, in a line, what is wrong with it.
fn compile(code: &str) -> Result<Filter, String> {
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs())
        .filter(|d| !WITHHELD_DEFS.contains(&d.name));
    let funs = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs())
        .filter(|(name, ..)| !WITHHELD.contains(name));
    let arena = Arena::default();
    let modules = Loader::new(defs)
        .load(&arena, File { code, path: () })
        .map_err(|errors| {
            let mut why = Vec::new();
            for (_, e) in errors {
                match e {
                    jaq_core::load::Error::Io(list) => {
                        why.extend(
                            list.into_iter()
                                .map(|(at, msg)| format!("{msg} at `{}`", near(at))),
                        );
                    }
                    jaq_core::load::Error::Lex(list) => {
                        why.extend(list.into_iter().map(|(expected, at)| {
                            format!("expected {expected:?} at `{}`", near(at))
                        }))
                    }
                    jaq_core::load::Error::Parse(list) => {
                        why.extend(list.into_iter().map(|(expected, at)| {
                            format!("expected {} at `{}`", expected.as_str(), near(at))
                        }))
                    }
                }
            }
            why.join("; ")
        })?;
    Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map_err(|errors| {
            errors
                .into_iter()
                .flat_map(|(_, list)| list)
                .map(|(name, undefined)| format!("{name} is not defined ({undefined:?})"))
                .collect::<Vec<_>>()
                .join("; ")
        })
}

/// The start of what a parser stopped at, for a message.
fn near(rest: &str) -> String {
    let mut s: String = rest.chars().take(20).collect();
    if s.len() < rest.len() {
        s.push('…');
    }
    if s.is_empty() { "the end".into() } else { s }
}

/// Why `code` does not compile; `None` when it does.
pub fn check(code: &str) -> Option<String> {
    compile(code).err()
}

/// The values `code` yields for `input` (at most [`MAX_VALUES`]: `repeat(1)` never ends),
/// or the first error (compiling or running).
pub fn eval(code: &str, input: &Value) -> Result<Vec<Value>, String> {
    eval_at_most(code, input, MAX_VALUES)
}

/// The most values an expression is asked for.
pub const MAX_VALUES: usize = 1_000;

/// The first `limit` values `code` yields for `input`; later ones are never computed.
pub fn eval_at_most(code: &str, input: &Value, limit: usize) -> Result<Vec<Value>, String> {
    let filter = compile(code)?;
    let text = serde_json::to_vec(input).map_err(|e| e.to_string())?;
    let input = jaq_json::read::parse_single(&text).map_err(|e| format!("{e:?}"))?;
    let ctx = Ctx::<data::JustLut<Val>>::new(&filter.lut, Vars::new([]));
    let mut out = Vec::new();
    for v in filter.id.run((ctx, input)).take(limit) {
        // Not jaq's `unwrap_valr`: a `halt` there exits the process.
        let v = v.map_err(|e| match e.get_err() {
            Ok(error) => error.to_string(),
            Err(_) => "the expression stopped (halt)".to_string(),
        })?;
        out.push(serde_json::from_str(&v.to_string()).map_err(|e| e.to_string())?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_pipes_and_standard_filters_evaluate() {
        let input = json!({
            "params": {"log_level": "info"},
            "connections": {"topic": {"data": {"infrastructure": {"arn": "arn:aws:sns:us-east-1:1:jobs"}}}}
        });
        assert_eq!(eval(".params.log_level", &input), Ok(vec![json!("info")]));
        assert_eq!(
            eval(
                r#".connections.topic.data.infrastructure.arn | split(":")[5]"#,
                &input
            ),
            Ok(vec![json!("jobs")])
        );
        assert_eq!(
            eval("[.params | keys[]]", &input),
            Ok(vec![json!(["log_level"])])
        );
        assert_eq!(eval(".params.missing", &input), Ok(vec![Value::Null]));
        assert_eq!(eval("empty", &input), Ok(vec![]));
    }

    #[test]
    fn what_does_not_compile_says_why_and_the_machine_stays_out_of_reach() {
        let unclosed = check(".params.a | split(").expect("an error");
        assert!(unclosed.contains("expected"), "{unclosed}");
        let env = check("env.HOME").expect("env is not offered");
        assert!(env.contains("env"), "{env}");
        assert!(check("$ENV").is_some());
        assert!(check("input").is_some());
        assert_eq!(check(".a | ascii_downcase"), None);
    }

    #[test]
    fn hostile_expressions_are_errors_never_panics() {
        for code in [
            "(",
            ")",
            "[",
            "]",
            "{",
            "}",
            "\"",
            "\"\\u",
            "\"\\uD800\"",
            "$",
            "@",
            "§",
            "💣",
            ".[",
            "reduce .",
            "if 0",
            "0 as",
            "def f: ;",
            "import \"x\" as y; .",
            "include \"x\"; .",
            "label",
            "{(.)}",
            "\u{0}",
            "....",
            "$__loc__",
            "input_filename",
            "@base32d",
            "",
        ] {
            let _ = check(code);
            let _ = eval(code, &json!({"a": 1}));
        }
        assert!(eval("[limit(3; repeat(1))]", &json!(null)).is_ok());
        assert_eq!(
            eval("repeat(1)", &json!(null)).map(|v| v.len()),
            Ok(MAX_VALUES)
        );
        assert_eq!(
            eval_at_most("repeat(1)", &json!(null), 1),
            Ok(vec![json!(1)])
        );
    }
}
