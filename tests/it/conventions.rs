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
        assert!(
            fixtures.contains(&expected),
            "{code}: no fixture in tests/fixtures/diagnostics expects it"
        );
    }
}

#[test]
fn codes_are_documented_in_the_readme() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    for code in Code::ALL {
        assert!(
            readme.contains(&format!("`{code}`")),
            "README.md does not list {code}"
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
#[test]
fn the_core_does_no_io() {
    let forbidden = [
        "std::fs",
        "std::env",
        "std::process",
        "std::net",
        "std::time",
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
