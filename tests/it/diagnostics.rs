//! Data-driven diagnostics: each `tests/fixtures/diagnostics/*.fixture` edits the example
//! repository and lists the exact diagnostics (code, file, line, column, message) it must
//! give. `UPDATE_FIXTURES=1 cargo test` rewrites the expectations; review the diff like code.

use std::path::PathBuf;

use capstan::core::source::SourceTree;

use crate::support::{apply_fixture, diagnostic_lines, root};

pub fn fixture_paths() -> Vec<PathBuf> {
    let dir = root().join("tests/fixtures/diagnostics");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixture folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "fixture"))
        .collect();
    paths.sort();
    paths
}

#[test]
fn example_repo_has_no_diagnostics() {
    let tree = SourceTree::new(crate::support::example_files());
    assert_eq!(diagnostic_lines(&tree), Vec::<String>::new());
}

#[test]
fn fixtures() {
    let update = std::env::var_os("UPDATE_FIXTURES").is_some();
    let mut failures = Vec::new();
    let paths = fixture_paths();
    assert!(
        paths.len() >= 30,
        "expected a fixture for every code, found {}",
        paths.len()
    );
    for path in paths {
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let script = std::fs::read_to_string(&path).expect("fixture reads");
        let fixture = apply_fixture(&script, &name);
        let actual = diagnostic_lines(&SourceTree::new(fixture.files));
        if actual == fixture.expect {
            continue;
        }
        if update {
            let head = script
                .split("--- expect")
                .next()
                .expect("split yields one part");
            std::fs::write(&path, format!("{head}--- expect\n{}\n", actual.join("\n")))
                .expect("fixture writes");
        } else {
            failures.push(format!(
                "{name}\n  expected:\n    {}\n  actual:\n    {}",
                fixture.expect.join("\n    "),
                actual.join("\n    ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixture(s) differ (UPDATE_FIXTURES=1 rewrites them):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
