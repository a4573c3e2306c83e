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
    let mut stack = vec![root().join("src/core")];
    let mut checked = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("reads") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("reads");
            for word in forbidden {
                assert!(
                    !text.contains(word),
                    "{} uses {word}; the core must stay pure",
                    path.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 8, "walked {checked} files");
}

#[test]
fn no_unwrap_outside_tests() {
    let mut stack = vec![root().join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("reads") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("reads");
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
}
