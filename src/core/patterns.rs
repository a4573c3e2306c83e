//! Patterns in the schemas a repository brings: matched by the `regex` crate's linear-time
//! engine within a size limit (so no value can make validation backtrack for minutes), and
//! POSIX bracket classes (`[[:space:]]`), which Massdriver accepts, read as the ranges they
//! name.

use serde_json::Value;

/// The largest a pattern may be once compiled. Patterns a repository brings run on the
/// `regex` crate's engine, whose matching is linear in the value's length, so a pattern
/// within this size matches any value a file can hold in bounded time and memory; real
/// patterns (CIDRs, ARNs, names) compile to a few KiB. Nested counted repetitions
/// (`a{1,65535}{1,65535}`) exceed it and are an error at the pattern.
pub const PATTERN_SIZE_LIMIT: usize = 1 << 20;
/// The cache of the lazy DFA that matches a pattern, per pattern.
pub(super) const PATTERN_DFA_LIMIT: usize = 2 << 20;

/// Why `pattern` (the JSON value of a `pattern` keyword or a `patternProperties` key) does
/// not compile, in people's words.
pub(super) fn pattern_error(pattern: &Value) -> String {
    let text = pattern.as_str().unwrap_or_default();
    let too_big = matches!(
        regex::RegexBuilder::new(text)
            .size_limit(PATTERN_SIZE_LIMIT)
            .build(),
        Err(regex::Error::CompiledTooBig(_))
    );
    let fancy = ["(?=", "(?!", "(?<=", "(?<!"]
        .iter()
        .any(|la| text.contains(la))
        || (1..=9).any(|n| text.contains(&format!("\\{n}")));
    if too_big {
        format!(
            "{pattern} is too large to match in bounded time: compiled, it exceeds capstan's limit of {} KiB (use smaller repetition counts)",
            PATTERN_SIZE_LIMIT / 1024
        )
    } else if fancy {
        format!(
            "{pattern} uses look-around or a back-reference, which capstan's linear-time pattern engine does not run (patterns must match in bounded time)"
        )
    } else {
        format!("{pattern} is not a regular expression (ECMA-262, as JSON Schema defines patterns)")
    }
}

/// Keys whose values are data, not subschemas: a `pattern` in them is no keyword.
pub(super) const DATA_KEYWORDS: &[&str] = &["default", "const", "enum", "examples", "$md"];

/// Rewrites POSIX bracket classes in every `pattern` and `patternProperties` key of a
/// schema into the ECMA-262 ranges they name, so `^[[:alnum:]-]+$` means what its author
/// meant (ECMA-262 has no POSIX classes; Massdriver accepts them).
pub fn posix_classes(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::String(p)) = map.get_mut("pattern") {
                *p = posix_pattern(p);
            }
            if let Some(Value::Object(props)) = map.get_mut("patternProperties") {
                *props = std::mem::take(props)
                    .into_iter()
                    .map(|(k, v)| (posix_pattern(&k), v))
                    .collect();
            }
            for (k, v) in map.iter_mut() {
                if !DATA_KEYWORDS.contains(&k.as_str()) {
                    posix_classes(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(posix_classes),
        _ => {}
    }
}

/// `[[:space:]]` → `[\t\n\v\f\r ]`, inside bracket expressions only; the rest as it is.
fn posix_pattern(pattern: &str) -> String {
    const CLASSES: &[(&str, &str)] = &[
        ("alnum", "a-zA-Z0-9"),
        ("alpha", "a-zA-Z"),
        ("blank", " \\t"),
        ("cntrl", "\\x00-\\x1f\\x7f"),
        ("digit", "0-9"),
        ("graph", "!-~"),
        ("lower", "a-z"),
        ("print", " -~"),
        ("punct", "!-\\/:-@\\[-`{-~"),
        ("space", "\\t\\n\\v\\f\\r "),
        ("upper", "A-Z"),
        ("word", "\\w"),
        ("xdigit", "0-9A-Fa-f"),
    ];
    let mut out = String::with_capacity(pattern.len());
    let mut rest = pattern;
    let mut in_class = false;
    while let Some(c) = rest.chars().next() {
        if c == '\\' {
            let escaped: String = rest.chars().take(2).collect();
            out.push_str(&escaped);
            rest = &rest[escaped.len()..];
            continue;
        }
        if in_class
            && let Some(after) = rest.strip_prefix("[:")
            && let Some((name, tail)) = after.split_once(":]")
            && let Some((_, ranges)) = CLASSES.iter().find(|(n, _)| *n == name)
        {
            out.push_str(ranges);
            rest = tail;
            continue;
        }
        if !in_class && c == '[' {
            in_class = true;
            out.push('[');
            rest = &rest[1..];
            continue;
        }
        if in_class && c == ']' {
            in_class = false;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::Format;
    use crate::core::schema::compile;

    #[test]
    fn posix_classes_become_the_ranges_they_name_inside_brackets_only() {
        assert_eq!(posix_pattern("^[^[:space:]]+$"), "^[^\\t\\n\\v\\f\\r ]+$");
        assert_eq!(
            posix_pattern("^[[:alnum:]_-]{1,9}$"),
            "^[a-zA-Z0-9_-]{1,9}$"
        );
        assert_eq!(
            posix_pattern("[:space:]"),
            "[:space:]",
            "outside brackets: as written"
        );
        assert_eq!(
            posix_pattern("\\[[:digit:]]"),
            "\\[[:digit:]]",
            "an escaped [ opens no bracket, so [:digit:] is not inside one"
        );
        assert_eq!(posix_pattern("[\\][:digit:]]"), "[\\]0-9]");
        assert_eq!(
            posix_pattern("[[:nope:]]"),
            "[[:nope:]]",
            "unknown names stay"
        );
        let mut schema = serde_json::json!({
            "properties": {"name": {"type": "string", "pattern": "^[[:lower:]]+$", "default": {"pattern": "[[:lower:]]"}}},
            "patternProperties": {"^[[:digit:]]+$": {"type": "integer"}}
        });
        posix_classes(&mut schema);
        assert_eq!(schema["properties"]["name"]["pattern"], "^[a-z]+$");
        assert_eq!(
            schema["properties"]["name"]["default"]["pattern"], "[[:lower:]]",
            "data is data"
        );
        assert!(schema["patternProperties"].get("^[0-9]+$").is_some());
        let v = compile(
            &serde_json::json!({"type": "string", "pattern": "^[^[:space:]]+$"}),
            Format::Massdriver,
        )
        .expect("compiles");
        assert!(v.is_valid(&serde_json::json!("no-spaces")));
        assert!(!v.is_valid(&serde_json::json!("two words")));
    }
}
