//! Conventions as tests (rust-analyzer's tidy): things reviewers would otherwise have to remember.

use capstan::core::diag::Code;

use crate::diagnostics::fixture_paths;
use crate::support::root;

#[test]
fn every_code_has_an_explanation_with_an_example_and_a_fixture() {
    let fixtures: String = fixture_paths()
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("reads"))
        .collect();
    for code in Code::ALL {
        let explanation = code.explanation();
        assert!(
            explanation.lines().any(|l| l.starts_with("    ")),
            "{code}: the explanation needs an indented example"
        );
        let expected = format!("{}[{code}]", code.severity().as_str());
        if code.found_by_plans() {
            // Validation never gives it, so no fixture can: a plan test expects it.
            let tests: String = files_below(&root().join("tests/it"))
                .into_iter()
                .map(|(_, text)| text)
                .collect();
            assert!(
                tests.contains(&expected),
                "{code}: no test in tests/it expects it"
            );
            continue;
        }
        assert!(
            fixtures.contains(&expected),
            "{code}: no fixture in tests/fixtures/diagnostics expects it"
        );
    }
}

#[test]
fn codes_are_documented_in_the_reference() {
    let reference = std::fs::read_to_string(root().join("docs/repository-format.md"))
        .expect("docs/repository-format.md");
    for code in Code::ALL {
        assert!(
            reference.contains(&format!("| `{code}` |")),
            "docs/repository-format.md does not list {code}"
        );
    }
}

/// The project's documentation: README, ARCHITECTURE, BENCHMARKS and docs/.
fn documentation() -> Vec<(std::path::PathBuf, String)> {
    let mut docs: Vec<_> = ["README.md", "ARCHITECTURE.md", "BENCHMARKS.md"]
        .iter()
        .map(|f| {
            let path = root().join(f);
            let text = std::fs::read_to_string(&path).expect("reads");
            (path, text)
        })
        .collect();
    docs.extend(files_below(&root().join("docs")));
    docs
}

/// A fenced code block whose first line is `# <path>` of a file in `example-repo/` is an
/// excerpt of it: its lines appear in the file, in order (blank lines aside).
#[test]
fn snippets_match_the_files_they_name() {
    let mut checked = 0;
    for (path, text) in documentation() {
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            if !line.starts_with("```") || line.len() == 3 {
                continue;
            }
            let block: Vec<&str> = lines
                .by_ref()
                .take_while(|l| !l.starts_with("```"))
                .collect();
            let Some(named) = block.first().and_then(|l| l.strip_prefix("# ")) else {
                continue;
            };
            let file = root().join("example-repo").join(named.trim());
            if named.contains(' ') || !file.is_file() {
                continue;
            }
            let content = std::fs::read_to_string(&file).expect("reads");
            let mut rest = content.lines().map(str::trim_end);
            for wanted in block[1..]
                .iter()
                .map(|l| l.trim_end())
                .filter(|l| !l.is_empty())
            {
                assert!(
                    rest.any(|l| l == wanted),
                    "{}: the snippet of {named} has a line that is not in the file (or not in this order): {wanted:?}",
                    path.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 4, "only {checked} snippets name a file");
}

/// Every command a newcomer copies from the docs runs capstan itself from the one release
/// build the quick start makes: `cargo run --release -- …`, never a second, debug, build.
/// (`cargo run --example …` runs a tool of the repository, not capstan.)
#[test]
fn the_docs_build_capstan_once() {
    for (path, text) in documentation() {
        for (i, line) in text.lines().enumerate() {
            for (at, _) in line.match_indices("cargo run ") {
                let rest = &line[at + "cargo run ".len()..];
                let runs_capstan = rest.starts_with("-- ") || rest.starts_with("--locked -- ");
                assert!(
                    !runs_capstan,
                    "{}:{}: `cargo run` of capstan without --release starts a second build: {line}",
                    path.display(),
                    i + 1
                );
            }
        }
    }
}

/// Documentation links only inside the repository, and every relative link resolves.
#[test]
fn documentation_links_stay_inside_the_repository() {
    let link = regex::Regex::new(r"\]\(([^)#\s]+)(#[^)]*)?\)").expect("valid");
    let root = std::fs::canonicalize(root()).expect("root");
    for (path, text) in documentation() {
        for c in link.captures_iter(&text) {
            let target = &c[1];
            if target.starts_with("http://") || target.starts_with("https://") {
                continue;
            }
            let resolved = path.parent().expect("a folder").join(target);
            let resolved = std::fs::canonicalize(&resolved)
                .unwrap_or_else(|_| panic!("{}: the link {target} leads nowhere", path.display()));
            assert!(
                resolved.starts_with(&root),
                "{}: the link {target} leaves the repository",
                path.display()
            );
        }
        // Spelled in two pieces, so this file does not name the folder it forbids.
        let outside = concat!("..", "/shared");
        assert!(
            !text.contains(outside),
            "{} names a folder outside the repository",
            path.display()
        );
    }
}

/// Every file below `dir` with its text.
fn files_below(dir: &std::path::Path) -> Vec<(std::path::PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("reads") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let text = std::fs::read_to_string(&path).expect("reads");
                out.push((path, text));
            }
        }
    }
    out
}

/// The core is pure: no I/O, clocks, environment, processes or network below `src/core`.
/// (Durations are values; reading the clock is what is forbidden.)
#[test]
fn the_core_does_no_io() {
    let forbidden = [
        "std::fs",
        "std::env",
        "std::process",
        "std::net",
        "Instant",
        "SystemTime",
        "Utc::now",
        "Local::now",
        "git2",
        "tokio",
        "notify",
        "octocrab",
        "rusqlite",
        "ignore::",
    ];
    let files = files_below(&root().join("src/core"));
    assert!(files.len() >= 8, "walked {} files", files.len());
    for (path, text) in files {
        for word in forbidden {
            assert!(
                !text.contains(word),
                "{} uses {word}; the core must stay pure",
                path.display()
            );
        }
    }
}

#[test]
fn no_unwrap_outside_tests() {
    for (path, text) in files_below(&root().join("src")) {
        let code = text
            .split("#[cfg(test)]")
            .next()
            .expect("split yields one part");
        assert!(
            !code.contains(".unwrap()"),
            "{} calls unwrap() outside tests; use expect with the reason",
            path.display()
        );
    }
}

/// The code without its tests (everything from the first `#[cfg(test)]` on).
fn code_of(text: &str) -> &str {
    text.split("#[cfg(test)]")
        .next()
        .expect("split yields one part")
}

/// Which top-level modules each module may use: `cli → daemon → deploy → (source, state) →
/// core`; `github` is a leaf that knows nothing of the daemon; `secret` and `error` are
/// leaves anyone may use.
const LAYERS: &[(&str, &[&str])] = &[
    ("core", &[]),
    ("secret", &[]),
    ("error", &[]),
    ("github", &["secret"]),
    ("state", &["core"]),
    ("source", &["core", "secret"]),
    ("synth", &["core"]),
    ("policy", &["core"]),
    ("web", &["core", "state", "github", "secret", "error"]),
    ("deploy", &["core", "source", "state", "error", "policy"]),
    (
        "daemon",
        &[
            "core", "source", "state", "deploy", "github", "secret", "error", "policy", "web",
        ],
    ),
    (
        "cli",
        &[
            "core", "source", "state", "deploy", "daemon", "github", "secret", "error", "policy",
            "web",
        ],
    ),
];

/// The top-level module a file of `src/` belongs to.
fn module_of(path: &std::path::Path) -> String {
    let rel = path.strip_prefix(root().join("src")).expect("below src");
    let first = rel.components().next().expect("a component");
    first
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_string()
}

/// Which modules of `daemon` each may use (through `super::`): the leaves, then the
/// deploy passes, the shared context, the one publisher, the concerns, and the two modes
/// on top. Nothing points back down the list.
const DAEMON_LAYERS: &[(&str, &[&str])] = &[
    ("config", &[]),
    ("error", &[]),
    ("events", &[]),
    ("health", &[]),
    ("metrics", &[]),
    ("retry", &[]),
    ("queue", &["retry"]),
    ("job", &["queue"]),
    ("preview_section", &[]),
    ("handoff", &[]),
    ("revisions", &[]),
    ("systemd", &[]),
    ("webhook", &[]),
    ("durable", &["events", "job"]),
    ("deploys", &["config", "durable", "error", "job", "queue"]),
    (
        "context",
        &[
            "config",
            "deploys",
            "durable",
            "error",
            "events",
            "health",
            "job",
            "handoff",
            "metrics",
            "queue",
            "revisions",
        ],
    ),
    ("leader", &["context"]),
    ("publish", &["context", "error"]),
    ("instance_plan", &[]),
    ("owners", &["context", "error", "publish"]),
    ("policies", &["context", "error", "publish", "revisions"]),
    ("comment", &["context", "error", "publish"]),
    ("drift", &["context", "error", "job", "publish"]),
    (
        "branch",
        &["context", "deploys", "error", "metrics", "publish"],
    ),
    (
        "previews",
        &[
            "comment",
            "context",
            "deploys",
            "error",
            "job",
            "metrics",
            "preview_section",
            "publish",
        ],
    ),
    (
        "resource_plans",
        &[
            "comment",
            "context",
            "error",
            "handoff",
            "job",
            "previews",
            "publish",
            "revisions",
        ],
    ),
    (
        "pulls",
        &[
            "comment",
            "context",
            "error",
            "instance_plan",
            "job",
            "metrics",
            "owners",
            "policies",
            "previews",
            "resource_plans",
            "revisions",
        ],
    ),
    (
        "server",
        &["context", "error", "health", "metrics", "webhook"],
    ),
    ("ui", &["config", "error", "server"]),
    (
        "local",
        &[
            "config", "deploys", "error", "health", "job", "metrics", "server", "systemd", "ui",
        ],
    ),
    (
        "jobs",
        &[
            "branch",
            "context",
            "drift",
            "error",
            "job",
            "metrics",
            "previews",
            "pulls",
            "queue",
            "resource_plans",
        ],
    ),
    (
        "dispatch",
        &["context", "events", "job", "previews", "resource_plans"],
    ),
    (
        "workers",
        &["context", "dispatch", "durable", "error", "job", "jobs"],
    ),
    (
        "remote",
        &[
            "branch",
            "config",
            "context",
            "deploys",
            "dispatch",
            "drift",
            "durable",
            "error",
            "events",
            "health",
            "job",
            "jobs",
            "leader",
            "workers",
            "metrics",
            "previews",
            "pulls",
            "queue",
            "resource_plans",
            "revisions",
            "server",
            "systemd",
            "ui",
        ],
    ),
];

/// Every path a file names: each `use` tree flattened (`use crate::{core::x, deploy::{a,
/// b}}` names `crate::core::x`, `crate::deploy::a` and `crate::deploy::b`), and the paths
/// written inline (`crate::deploy::line(o)`).
fn paths_named(code: &str) -> Vec<String> {
    fn flatten(prefix: &str, tree: &str, out: &mut Vec<String>) {
        if let Some(inner) = tree.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
            let (mut depth, mut start) = (0, 0);
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        flatten(prefix, &inner[start..i], out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            flatten(prefix, &inner[start..], out);
        } else if let Some(i) = tree.find("::{") {
            flatten(&format!("{prefix}{}::", &tree[..i]), &tree[i + 2..], out);
        } else if !tree.is_empty() {
            out.push(format!("{prefix}{tree}"));
        }
    }
    let statement =
        regex::Regex::new(r"(?m)^\s*(?:pub(?:\([^)]*\))? )?use ([^;]+);").expect("valid");
    let rename = regex::Regex::new(r"\s+as\s+[A-Za-z_][A-Za-z0-9_]*").expect("valid");
    let inline =
        regex::Regex::new(r"\b(?:crate|super)(?:::[A-Za-z_][A-Za-z0-9_]*)+").expect("valid");
    let mut out = Vec::new();
    for c in statement.captures_iter(code) {
        let unrenamed = rename.replace_all(&c[1], "");
        let tree: String = unrenamed.chars().filter(|c| !c.is_whitespace()).collect();
        flatten("", &tree, &mut out);
    }
    let without_uses = statement.replace_all(code, "");
    out.extend(
        inline
            .find_iter(&without_uses)
            .map(|m| m.as_str().to_string()),
    );
    out
}

#[test]
fn paths_named_flattens_grouped_imports() {
    let code = "use crate::{core::x, deploy::{a, b as c}};\npub(super) use super::queue::Queue;\nfn f() { crate::source::read(); }\n";
    assert_eq!(
        paths_named(code),
        [
            "crate::core::x",
            "crate::deploy::a",
            "crate::deploy::b",
            "super::queue::Queue",
            "crate::source::read",
        ]
    );
}

#[test]
fn layers_point_one_way() {
    let mut checked = 0;
    let mut wrong = Vec::new();
    for (path, text) in files_below(&root().join("src")) {
        let module = module_of(&path);
        if module == "lib" || module == "main" {
            continue;
        }
        let Some((_, allowed)) = LAYERS.iter().find(|(m, _)| *m == module) else {
            panic!("src/{module} is in no layer: add it to LAYERS and to ARCHITECTURE.md");
        };
        let rel = path.strip_prefix(root().join("src")).expect("below src");
        let depth = rel.components().count();
        // Inside daemon, a file's own module (`src/daemon/pulls.rs` is `pulls`).
        let inner = (module == "daemon" && depth == 2)
            .then(|| {
                rel.file_stem()
                    .expect("a name")
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|m| m != "mod");
        let code = code_of(&text);
        for named in paths_named(code) {
            let mut parts = named.split("::");
            match (parts.next(), parts.next()) {
                (Some("crate"), Some(used)) => {
                    checked += 1;
                    if used != module && !allowed.contains(&used) {
                        wrong.push(format!("{} uses crate::{used}", path.display()));
                    }
                }
                (Some("super"), Some(used)) if inner.is_some() => {
                    let this = inner.as_deref().expect("checked");
                    let is_module = used.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                        && used != "self"
                        && used != "super";
                    if !is_module {
                        continue;
                    }
                    checked += 1;
                    let Some((_, may)) = DAEMON_LAYERS.iter().find(|(m, _)| *m == this) else {
                        panic!("src/daemon/{this}.rs is in no layer: add it to DAEMON_LAYERS");
                    };
                    if !may.contains(&used) {
                        wrong.push(format!("{} uses daemon::{used}", path.display()));
                    }
                }
                _ => {}
            }
        }
        // `super::` out of a top-level module would reach the crate root unseen.
        let top_file = depth == 1 || path.ends_with("mod.rs") && depth == 2;
        if code.contains("super::super") || top_file && code.contains("super::") {
            wrong.push(format!(
                "{} reaches out of its module with super::",
                path.display()
            ));
        }
    }
    assert!(checked > 200, "checked only {checked} uses");
    assert!(
        wrong.is_empty(),
        "layers point one way:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_module_is_in_the_architecture_map() {
    let map = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let mut missing = Vec::new();
    for (path, _) in files_below(&root().join("src")) {
        let rel = path
            .strip_prefix(root())
            .expect("below the root")
            .display()
            .to_string();
        let named = if let Some(dir) = rel.strip_suffix("mod.rs") {
            map.contains(&format!("`{rel}`")) || map.contains(&format!("`{dir}`"))
        } else {
            map.contains(&format!("`{rel}`"))
        };
        if !named {
            missing.push(rel);
        }
    }
    missing.sort();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md does not map: {missing:?}"
    );
}

/// A user clones only this repository: code, tests, docs and the example point at what it
/// holds, never at design notes or folders beside it (only `.ci/run` reads the shared
/// compatibility corpus, by design).
#[test]
fn nothing_points_outside_the_repository() {
    let mut files = documentation();
    for dir in [
        "src",
        "tests/it",
        "tests/fixtures",
        "tests/corpus",
        "examples",
        "example-repo",
        "schemas",
        "systemd",
    ] {
        if root().join(dir).is_dir() {
            files.extend(files_below(&root().join(dir)));
        }
    }
    let this = std::path::Path::new(file!()).file_name().expect("a name");
    // Written split so that this file does not match itself.
    let needles = [
        concat!("DESIGN", ".md"),
        concat!("DESIGN", " section"),
        concat!("../", "shared"),
    ];
    for (path, text) in files {
        if path.file_name() == Some(this) {
            continue;
        }
        for needle in needles {
            assert!(
                !text.contains(needle),
                "{} mentions {needle}, which a clone of this repository does not have",
                path.display()
            );
        }
    }
}

/// The license `Cargo.toml` declares is in the repository, for whoever reads a clone.
#[test]
fn the_declared_license_is_in_the_repository() {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).expect("reads");
    assert!(
        manifest.contains("license = \"MIT\""),
        "Cargo.toml names another license"
    );
    let license = std::fs::read_to_string(root().join("LICENSE")).expect("a LICENSE file");
    assert!(license.starts_with("MIT License"), "{license}");
}

/// Without `npm ci`, every test that needs an npm package says how to install it, rather than
/// the first one saying so and the rest reporting a poisoned lazy value.
#[test]
fn a_missing_npm_package_says_how_to_install_it() {
    let e = crate::support::npm_file("no-such-package/index.json", "a thing").unwrap_err();
    assert!(e.contains("run `npm ci --prefix tests/npm`"), "{e}");
    assert!(e.contains("a thing comes from npm"), "{e}");
}
