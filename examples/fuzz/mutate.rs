//! Structure-aware mutations of a repository: they know what a YAML key line, a block, a
//! reference, a project's packages and a Massdriver bundle look like, so most mutants get
//! past the parser and reach the validator, the resolver and the plan. Each returns a line
//! saying what it did, so a reported case reads as a recipe.

// Every mutation has the one signature of [`Mutation`], so they sit in one table; some add
// or remove files, so it takes the Vec even where a slice would do.
#![allow(clippy::ptr_arg)]

use capstan::core::source::{Content, SourceFile};

use crate::rng::Rng;

/// One mutation: changes the files, returns what it did.
type Mutation = fn(&mut Vec<SourceFile>, &mut Rng) -> String;

/// Every kind of mutation, by name (the names are printed in the campaign's tally).
pub const KINDS: &[(&str, Mutation)] = &[
    ("delete-key", delete_key),
    ("duplicate-key", duplicate_key),
    ("change-type", change_type),
    ("odd-string", odd_string),
    ("invalid-utf8", invalid_utf8),
    ("truncate", truncate),
    ("deep-nesting", deep_nesting),
    ("anchors", anchors),
    ("tag", tag),
    ("documents", documents),
    ("symlink", symlink),
    ("folder-for-file", folder_for_file),
    ("odd-name", odd_name),
    ("broken-reference", broken_reference),
    ("cycle", cycle),
    ("rename-key", rename_key),
    ("massdriver-hostile", massdriver_hostile),
    ("hostile-pattern", hostile_pattern),
    ("swap-files", swap_files),
    ("delete-file", delete_file),
    ("flip-bit", flip_bit),
];

/// Applies `count` random mutations; returns what each did.
pub fn mutate(files: &mut Vec<SourceFile>, rng: &mut Rng, count: usize) -> Vec<String> {
    (0..count)
        .map(|_| {
            let (name, f) = rng.pick(KINDS);
            format!("{name}: {}", f(files, rng))
        })
        .collect()
}

fn text_files(files: &[SourceFile]) -> Vec<usize> {
    files
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            matches!(f.content, Content::Bytes(_))
                && (f.path.ends_with(".yaml") || f.path.ends_with(".json"))
        })
        .map(|(i, _)| i)
        .collect()
}

/// A random YAML or JSON file with bytes.
fn pick_text(files: &[SourceFile], rng: &mut Rng) -> Option<usize> {
    let candidates = text_files(files);
    (!candidates.is_empty()).then(|| *rng.pick(&candidates))
}

fn bytes(f: &SourceFile) -> Vec<u8> {
    match &f.content {
        Content::Bytes(b) => b.to_vec(),
        _ => Vec::new(),
    }
}

fn set_bytes(f: &mut SourceFile, b: Vec<u8>) {
    f.content = Content::Bytes(b.into());
}

fn lines_of(f: &SourceFile) -> Vec<String> {
    String::from_utf8_lossy(&bytes(f))
        .lines()
        .map(str::to_string)
        .collect()
}

fn set_lines(f: &mut SourceFile, lines: &[String]) {
    set_bytes(f, format!("{}\n", lines.join("\n")).into_bytes());
}

fn put(files: &mut Vec<SourceFile>, path: &str, text: String) {
    files.retain(|f| f.path != path);
    files.push(SourceFile {
        path: path.to_string(),
        executable: false,
        content: Content::Bytes(text.into_bytes().into()),
    });
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// Lines that hold a `key:` (block mappings, list items with a key).
fn key_lines(lines: &[String]) -> Vec<usize> {
    lines
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            let t = l.trim_start().trim_start_matches("- ");
            !t.starts_with('#') && t.split_once(':').is_some_and(|(k, _)| !k.is_empty())
        })
        .map(|(i, _)| i)
        .collect()
}

/// The lines of the block that starts at `at` (the key line and what is indented under it).
fn block(lines: &[String], at: usize) -> std::ops::Range<usize> {
    let base = indent(&lines[at]);
    let mut end = at + 1;
    while end < lines.len() && (lines[end].trim().is_empty() || indent(&lines[end]) > base) {
        end += 1;
    }
    at..end
}

/// A random YAML file and one of its key lines, or `None` when there is none.
fn pick_key(files: &[SourceFile], rng: &mut Rng) -> Option<(usize, Vec<String>, usize)> {
    let file = pick_text(files, rng)?;
    let lines = lines_of(&files[file]);
    let keys = key_lines(&lines);
    if keys.is_empty() {
        return None;
    }
    let at = *rng.pick(&keys);
    Some((file, lines, at))
}

fn delete_key(files: &mut Vec<SourceFile>, rng: &mut Rng) -> String {
    let Some((file, mut lines, at)) = pick_key(files, rng) else {
        return "nothing to delete".into();
    };
    let range = block(&lines, at);
    let said = format!("{}:{} {:?}", files[file].path, at + 1, lines[at].trim());
    lines.drain(range);
    set_lines(&mut files[file], &lines);
    said
}

fn duplicate_key(files: &mut Vec<SourceFile>, rng: &mut Rng) -> String {
    let Some((file, mut lines, at)) = pick_key(files, rng) else {
        return "nothing to duplicate".into();
    };
    let range = block(&lines, at);
    let copy: Vec<String> = lines[range.clone()].to_vec();
    let said = format!("{}:{} {:?}", files[file].path, at + 1, lines[at].trim());
    lines.splice(range.end..range.end, copy);
    set_lines(&mut files[file], &lines);
    said
}

/// Replaces the value after `key:` on a key line (or adds one).
fn replace_value(files: &mut [SourceFile], rng: &mut Rng, value: &str) -> String {
    let Some((file, mut lines, at)) = pick_key(files, rng) else {
        return "no value to replace".into();
    };
    let line = &lines[at];
    let Some((key, _)) = line.split_once(':') else {
        return "no value to replace".into();
    };
    let said = format!(
        "{}:{} {:?} -> {}",
        files[file].path,
        at + 1,
        line.trim(),
        preview(value)
    );
    lines[at] = format!("{key}: {value}");
    set_lines(&mut files[file], &lines);
    said
}

fn preview(s: &str) -> String {
    let short: String = s.chars().take(60).collect();
    if short.len() < s.len() {
        format!("{short:?}… ({} bytes)", s.len())
    } else {
        format!("{short:?}")
    }
}

const VALUES: &[&str] = &[
    "123",
    "-1",
    "0",
    "1.5e308",
    "1e999",
    "-9223372036854775809",
    "18446744073709551616",
    "true",
    "null",
    "~",
    "[]",
    "[a, b]",
    "{}",
    "{a: 1}",
    "\"\"",
    "''",
    ".inf",
    "-.nan",
    "0x1F",
    "0o17",
    "2026-12-05",
    "2026-12-05T10:00:00Z",
    "yes",
    "\"si-staging-vpc.network\"",
    "{data: {}}",
    "[[[]]]",
    "|\n  block\n  text",
    ">-\n  folded",
    "? complex\n: key",
];

fn change_type(files: &mut Vec<SourceFile>, rng: &mut Rng) -> String {
    let value = *rng.pick(VALUES);
    replace_value(files, rng, value)
}

fn odd_text(rng: &mut Rng) -> String {
    match rng.below(9) {
        0 => format!("\"{}\"", "x".repeat(1 + rng.below(200_000))),
        1 => "\"\u{202e}reversed\u{202c} \u{200d}\u{200b}zero width\"".into(),
        2 => "\"e\u{301}\u{301}\u{301}\u{301} combining 🏳️‍🌈 日本語 ﷽\"".into(),
        3 => "\"\\u0000\\a\\x07\\e control\"".into(),
        4 => "\"\\uD800 lone surrogate\"".into(),
        5 => "\"\u{feff}bom inside\"".into(),
        6 => format!("{}: 1", "k".repeat(1 + rng.below(5000))),
        7 => "'it''s \"quoted\" \\ back'".into(),
        _ => "\"\u{10ffff}\u{fffe}\u{fffd}\"".into(),
    }
}

fn odd_string(files: &mut Vec<SourceFile>, rng: &mut Rng) -> String {
    let value = odd_text(rng);
    replace_value(files, rng, &value)
}

fn invalid_utf8(files: &mut Vec<SourceFile>, rng: &mut Rng) -> String {
    let Some(file) = pick_text(files, rng) else {
        return "no file".into();
    };
    let mut b = bytes(&files[file]);
    let at = rng.below(b.len() + 1);
    let n = 1 + rng.below(8);
    let junk: Vec<u8> = (0..n).map(|_| 0x80 | (rng.next() as u8)).collect();
    b.splice(at..at, junk);
    let said = format!("{} at byte {at}: {n} bytes", files[file].path);
    set_bytes(&mut files[file], b);
    said
}

fn truncate(files: &mut Vec<SourceFile>, rng: &mut Rng) -> String {
    let Some(file) = pick_text(files, rng) else {
        return "no file".into();
    };
    let mut b = bytes(&files[file]);
    let at = rng.below(b.len() + 1);
    b.truncate(at);
    let said = format!("{} at byte {at}", files[file].path);
    set_bytes(&mut files[file], b);
    said
}

fn deep_nesting(files: &mut Vec<SourceFile>, rng: &mut Rng) -> String {
    let depth = *rng.pick(&[8usize, 64, 200, 1_000, 10_000, 100_000]);
    let value = match rng.below(3) {
        0 => format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
        1 => format!("{}1{}", "{a: ".repeat(depth), "}".repeat(depth)),
        _ => {
            let depth = depth.min(300);
            let mut s = String::new();
            for d in 0..depth {
                s.push('\n');
                s.push_str(&" ".repeat(2 * (d + 2)));
                s.push_str("n:");
            }
            s.push_str(" 1");
            s
        }
    };
    replace_value(files, rng, &value)
}

fn anchors(files: &mut Vec<SourceFile>, rng: &mut Rng) -> String {
    let value = match rng.below(6) {
        0 => "&x {a: 1, b: [1, 2]}".to_string(),
        1 => "*x".to_string(),
        2 => "*nope".to_string(),
        3 => "&r [*r]".to_string(),
        4 => "{<<: *x, c: 3}".to_string(),
        _ => {
            // Laughs: each level aliases the one before nine times.
            let mut s = "\n  l0: &l0 [x, x, x, x, x, x, x, x, x]".to_string();
            for i in 1..10 {
                let prev = format!("*l{}", i - 1);
                s.push_str(&format!(
                    "\n  l{i}: &l{i} [{}]",
                    [prev.as_str(); 9].join(", ")
                ));
            }
            s
        }
    };
    let mut said = replace_value(files, rng, &value);
    // A second site aliases or merges what the first defined.
    if rng.chance(2) {
        let second = *rng.pick(&["*x", "{<<: *x}", "{<<: [*x, *x]}", "*l9"]);
        said.push_str(&format!("; {}", replace_value(files, rng, second)));
    }
    said
}

fn tag(files: &mut Vec<SourceFile>, rng: &mut Rng) -> String {
    let tag = *rng.pick(&[
        "!!str 1",
        "!!int x",
        "!!binary aGVsbG8=",
        "!!map {}",
        "!!seq []",
        "!custom value",
        "!<tag:yaml.org,2002:str> s",
        "!!timestamp 2026-01-01",
        "!!set {a, b}",
        "!!omap [a: 1]",
        "!!python/object:os.system x",
        "!!float .nan",
        "!!null ''",
    ]);
    replace_value(files, rng, tag)
}

fn documents(files: &mut Vec<SourceFile>, rng: &mut Rng) -> String {
    let Some(file) = pick_text(files, rng) else {
        return "no file".into();
    };
    let b = bytes(&files[file]);
    let text = String::from_utf8_lossy(&b).into_owned();
    let (what, new) = match rng.below(5) {
        0 => ("a second document", format!("{text}---\na: 1\n")),
        1 => ("itself twice", format!("{text}---\n{text}")),
        2 => ("a directive", format!("%YAML 1.1\n---\n{text}")),
        3 => ("an end marker", format!("{text}...\n")),
        _ => ("an empty document first", format!("---\n---\n{text}")),
    };
    set_bytes(&mut files[file], new.into_bytes());
    format!("{}: {what}", files[file].path)
}

fn symlink(files: &mut Vec<SourceFile>, rng: &mut Rng) -> String {
    if files.is_empty() {
        return "no file".into();
    }
    let file = rng.below(files.len());
    files[file].content = Content::Symlink;
    files[file].path.clone()
}

fn folder_for_file(files: &mut Vec<SourceFile>, rng: &mut Rng) -> String {
    if files.is_empty() {
        return "no file".into();
    }
    let file = rng.below(files.len());
    let path = files[file].path.clone();
    if rng.chance(2) {
        files.remove(file);
    }
    let inner = format!("{path}/{}", rng.pick(&["inner.yaml", "project.yaml", "x"]));
    put(files, &inner, "a: 1\n".into());
    format!("{path} is (also) a folder holding {inner}")
}

fn odd_name(files: &mut Vec<SourceFile>, rng: &mut Rng) -> String {
    if files.is_empty() {
        return "no file".into();
    }
    let file = rng.below(files.len());
    let segments: Vec<String> = files[file].path.split('/').map(str::to_string).collect();
    let mut segments = segments;
    let at = rng.below(segments.len());
    let long = "n".repeat(300);
    let odd = *rng.pick(&[
        "UPPER",
        "sp ace",
        "ünïcödé",
        long.as_str(),
        "-dash",
        ".hidden",
        "a.yaml.yaml",
        "..",
        "con",
        "tab\tname",
        "new\nline",
        "日本",
        "x.YAML",
        "",
    ]);
    let stem_only = at + 1 == segments.len() && segments[at].ends_with(".yaml") && rng.chance(2);
    segments[at] = if stem_only {
        format!("{odd}.yaml")
    } else {
        odd.to_string()
    };
    let old = std::mem::replace(&mut files[file].path, segments.join("/"));
    format!("{old} -> {:?}", files[file].path)
}

/// `<project>-<environment>-<package>.<field>` references, and `<package>.<field>` wiring.
fn broken_reference(files: &mut Vec<SourceFile>, rng: &mut Rng) -> String {
    let candidates: Vec<usize> = text_files(files)
        .into_iter()
        .filter(|&i| files[i].path.starts_with("projects/"))
        .collect();
    if candidates.is_empty() {
        return "no project file".into();
    }
    let file = *rng.pick(&candidates);
    let mut lines = lines_of(&files[file]);
    let refs: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            l.split_once(": ")
                .is_some_and(|(_, v)| v.trim().contains('.') && !v.contains(' '))
        })
        .map(|(i, _)| i)
        .collect();
    if refs.is_empty() {
        return format!("{}: no reference", files[file].path);
    }
    let at = *rng.pick(&refs);
    let (key, value) = lines[at].split_once(": ").expect("chosen for it");
    let value = value.trim();
    let replacement = match rng.below(7) {
        0 => value.replacen('-', "x-", 1),
        1 => format!("{value}x"),
        2 => value.split('.').next().unwrap_or("").to_string(),
        3 => format!(".{value}"),
        4 => "si-staging-eks.cluster".to_string(),
        5 => "ecomm-staging-db.database".to_string(),
        _ => value.replace('.', ".."),
    };
    let said = format!("{}:{} {value} -> {replacement}", files[file].path, at + 1);
    lines[at] = format!("{key}: {replacement}");
    set_lines(&mut files[file], &lines);
    said
}

/// Instances that need each other: a network that takes its credentials from a broker that
/// needs the network, inside one project or across two (whose shares allow it).
fn cycle(files: &mut Vec<SourceFile>, rng: &mut Rng) -> String {
    put(
        files,
        "bundles/role-broker/bundle.yaml",
        "version: 0.1.0\nconnections:\n  required: [network]\n  properties:\n    network: {$ref: aws-vpc}\n\
artifacts:\n  required: [role]\n  properties:\n    role: {$ref: aws-iam-role}\n\
steps:\n  - {path: src, provisioner: exec, deploy: ./deploy.sh}\n"
            .into(),
    );
    put(
        files,
        "bundles/role-broker/src/deploy.sh",
        "echo broker\n".into(),
    );
    let vpc =
        "  cycvpc:\n    bundle: aws-vpc\n    params: {region: us-east-1, cidr: 10.40.0.0/16}\n";
    if rng.chance(2) {
        let projects: Vec<usize> = files
            .iter()
            .enumerate()
            .filter(|(_, f)| f.path.starts_with("projects/") && f.path.ends_with("/project.yaml"))
            .map(|(i, _)| i)
            .collect();
        if projects.is_empty() {
            return "no project".into();
        }
        let file = *rng.pick(&projects);
        let mut lines = lines_of(&files[file]);
        let Some(at) = lines.iter().position(|l| l.starts_with("packages:")) else {
            return format!("{}: no packages", files[file].path);
        };
        let ring = format!(
            "{vpc}    connections: {{credentials: cycbroker.role}}\n  cycbroker:\n    bundle: role-broker\n    connections: {{network: cycvpc.network}}"
        );
        lines.splice(at + 1..at + 1, ring.lines().map(str::to_string));
        set_lines(&mut files[file], &lines);
        format!("{}: cycvpc and cycbroker need each other", files[file].path)
    } else {
        let shares = "shares:\n  - {artifacts: [\"*\"], to: \"*\"}\n";
        put(
            files,
            "projects/alpha/project.yaml",
            format!("packages:\n{vpc}{shares}"),
        );
        put(
            files,
            "projects/alpha/environments/dev.yaml",
            "packages:\n  cycvpc:\n    connections:\n      credentials: beta-dev-broker.role\n"
                .into(),
        );
        put(
            files,
            "projects/beta/project.yaml",
            format!("packages:\n  broker:\n    bundle: role-broker\n{shares}"),
        );
        put(
            files,
            "projects/beta/environments/dev.yaml",
            "packages:\n  broker:\n    connections:\n      network: alpha-dev-cycvpc.network\n"
                .into(),
        );
        "projects alpha and beta need each other".into()
    }
}

/// A key renamed: a typo of itself, another case, or something that is not a string.
fn rename_key(files: &mut Vec<SourceFile>, rng: &mut Rng) -> String {
    let Some((file, mut lines, at)) = pick_key(files, rng) else {
        return "no key".into();
    };
    let line = lines[at].clone();
    let Some((key, value)) = line.split_once(':') else {
        return "no key".into();
    };
    let lead = &key[..key.len() - key.trim_start().len()];
    let lead = lead.to_string()
        + if key.trim_start().starts_with("- ") {
            "- "
        } else {
            ""
        };
    let name = key.trim_start().trim_start_matches("- ");
    let mut chars: Vec<char> = name.chars().collect();
    let renamed = match rng.below(7) {
        0 if chars.len() > 2 => {
            let i = rng.below(chars.len() - 1);
            chars.swap(i, i + 1);
            chars.into_iter().collect()
        }
        1 => name.to_uppercase(),
        2 => format!("{name}s"),
        3 => "42".to_string(),
        4 => "[a, b]".to_string(),
        5 => "null".to_string(),
        _ => "? complex".to_string(),
    };
    lines[at] = format!("{lead}{renamed}:{value}");
    set_lines(&mut files[file], &lines);
    format!("{}:{} {name:?} -> {renamed:?}", files[file].path, at + 1)
}

/// JSON-Schema pieces a hostile bundle author might write.
const HOSTILE_SCHEMAS: &[&str] = &[
    r#"{"$ref": "https://example.invalid/types/x.json"}"#,
    r##"{"$ref": "#"}"##,
    r##"{"$ref": "#/properties/p0"}"##,
    r#"{"$ref": "./missing.json"}"#,
    r#"{"$ref": "../../../../../etc/passwd"}"#,
    r#"{"$ref": "/etc/passwd"}"#,
    r#"{"$ref": "file:///etc/passwd"}"#,
    r#"{"$ref": "./schemas/loop.json"}"#,
    r#"{"type": "string", "pattern": "(a+)+$"}"#,
    r#"{"type": "string", "pattern": "a{1,65535}{1,65535}"}"#,
    r#"{"type": "string", "pattern": "(.*a){25}"}"#,
    r#"{"type": "string", "pattern": "(?=x)x"}"#,
    r#"{"type": "string", "pattern": "["}"#,
    r#"{"type": "string", "pattern": "[[:alpha:]]{1,1000}"}"#,
    r##"{"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}"##,
    r##"{"allOf": [{"$ref": "#"}]}"##,
    r#"{"patternProperties": {"(a|a)*$": {}}}"#,
    r#"{"type": "string", "format": "regex"}"#,
    r#"{"type": "string", "minLength": 18446744073709551615}"#,
    r#"{"type": "number", "multipleOf": 1e-300}"#,
    r##"{"$dynamicRef": "#meta"}"##,
    r#"{"$id": "https://evil.invalid/"}"#,
    r#"{"type": "string", "$md.immutable": true, "$md.sensitive": true}"#,
    r#"{"enum": [[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]}"#,
    r##"{"type": "array", "items": {"$ref": "#/properties"}, "uniqueItems": true}"##,
];

fn massdriver_hostile(files: &mut Vec<SourceFile>, rng: &mut Rng) -> String {
    let n = 1 + rng.below(4);
    let mut properties = Vec::new();
    let mut chosen = Vec::new();
    for i in 0..n {
        let s = rng.below(HOSTILE_SCHEMAS.len());
        chosen.push(s);
        properties.push(format!("    p{i}: {}", HOSTILE_SCHEMAS[s]));
    }
    let connection = *rng.pick(&[
        "{$ref: massdriver/aws-vpc}",
        "{$ref: \"https://x.invalid/aws-vpc.json\"}",
        "{$ref: ./schemas/loop.json}",
        "{$ref: \"\"}",
        "{type: object}",
    ]);
    let provisioner = *rng.pick(&["terraform", "opentofu:1.10", "helm", "", "exec"]);
    let text = format!(
        "schema: draft-07\nname: md-hostile\ndescription: hostile\nsource_url: x\ntype: infrastructure\n\
params:\n  required: [p0]\n  properties:\n{}\n\
connections:\n  properties:\n    network: {connection}\n\
artifacts:\n  properties:\n    out: {{$ref: aws-vpc}}\n\
steps:\n  - path: src\n    provisioner: {provisioner}\n",
        properties.join("\n")
    );
    put(files, "bundles/md-hostile/massdriver.yaml", text);
    put(
        files,
        "bundles/md-hostile/schemas/loop.json",
        r##"{"$ref": "./loop.json", "definitions": {"a": {"$ref": "#/definitions/a"}}}"##.into(),
    );
    // A package of it, with a long value for every pattern to chew on.
    let long = "a".repeat(30_000);
    put(
        files,
        "projects/hostile/project.yaml",
        format!(
            "packages:\n  h:\n    bundle: md-hostile\n    params: {{p0: \"{long}\", p1: \"{long}!\", p2: [1, 2], p3: {{a: 1}}}}\n"
        ),
    );
    put(
        files,
        "projects/hostile/environments/dev.yaml",
        "attributes: {tier: staging}\n".into(),
    );
    format!(
        "bundles/md-hostile with schemas {chosen:?}, connection {connection}, provisioner {provisioner:?}"
    )
}

/// An artifact type's pattern turned hostile, with an imported value that exercises it.
fn hostile_pattern(files: &mut Vec<SourceFile>, rng: &mut Rng) -> String {
    let pattern = *rng.pick(&[
        "a{1,65535}{1,65535}",
        "(a+)+$",
        "(a|aa)*b",
        "^(\\\\w+\\\\s?)*$",
        "(x+x+)+y",
        "(?<=a)b",
        "\\\\1(a)",
        "[",
        "^[[:alpha:]]+$",
    ]);
    let long = "a".repeat(1 + rng.below(60_000));
    put(
        files,
        "artifact-types/aws-iam-role.yaml",
        format!(
            "label: AWS IAM role\nenvironment_default: credentials\nschema:\n  type: object\n  required: [arn]\n  properties:\n    arn: {{type: string, pattern: \"{pattern}\"}}\n"
        ),
    );
    put(
        files,
        "projects/si/environments/staging.yaml",
        format!(
            "attributes: {{tier: staging}}\ndefaults:\n  aws-iam-role: {{data: {{arn: \"{long}\"}}}}\n"
        ),
    );
    format!(
        "artifact type aws-iam-role with pattern {pattern:?} and a {}-byte import",
        long.len()
    )
}

fn swap_files(files: &mut Vec<SourceFile>, rng: &mut Rng) -> String {
    if files.len() < 2 {
        return "too few files".into();
    }
    let (a, b) = (rng.below(files.len()), rng.below(files.len()));
    let content = files[a].content.clone();
    files[a].content = files[b].content.clone();
    files[b].content = content;
    format!("{} <-> {}", files[a].path, files[b].path)
}

fn delete_file(files: &mut Vec<SourceFile>, rng: &mut Rng) -> String {
    if files.is_empty() {
        return "no file".into();
    }
    files.remove(rng.below(files.len())).path
}

fn flip_bit(files: &mut Vec<SourceFile>, rng: &mut Rng) -> String {
    let Some(file) = pick_text(files, rng) else {
        return "no file".into();
    };
    let mut b = bytes(&files[file]);
    if b.is_empty() {
        return format!("{}: empty", files[file].path);
    }
    let at = rng.below(b.len());
    let bit = rng.below(8);
    b[at] ^= 1 << bit;
    let said = format!("{} byte {at} bit {bit}", files[file].path);
    set_bytes(&mut files[file], b);
    said
}
