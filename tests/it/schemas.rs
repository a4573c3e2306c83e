//! Valid and invalid corpora for every schema (`tests/corpus/<kind>/{valid,invalid}`), and
//! Massdriver's real bundles loading unchanged.

use std::sync::Arc;

use capstan::core::diag::{Code, Diagnostics, Severity};
use capstan::core::schema::{self, FileKind};
use capstan::core::source::{Content, SourceFile, SourceTree};
use capstan::core::yaml;

use crate::support::{example_files, put, root};

fn corpus(kind: FileKind, valid: bool) -> Vec<(String, String)> {
    let dir = root()
        .join("tests/corpus")
        .join(kind.name())
        .join(if valid { "valid" } else { "invalid" });
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.expect("entry").path();
            (
                p.display().to_string(),
                std::fs::read_to_string(&p).expect("text"),
            )
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} has no files", dir.display());
    files
}

fn schema_diagnostics(kind: FileKind, text: &str) -> Vec<String> {
    let (root, problems) = yaml::parse(text);
    assert!(
        problems.is_empty(),
        "corpus files are valid YAML: {problems:?}"
    );
    let file: Arc<str> = Arc::from("f.yaml");
    let mut diags = Diagnostics::default();
    schema::check_file(kind, &file, &root.expect("parsed"), &mut diags);
    diags
        .finish()
        .iter()
        .map(|d| format!("{}:{} {}", d.loc.pos.line, d.loc.pos.col, d.message))
        .collect()
}

#[test]
fn valid_corpus_passes_every_schema() {
    for kind in FileKind::ALL {
        for (path, text) in corpus(*kind, true) {
            assert_eq!(
                schema_diagnostics(*kind, &text),
                Vec::<String>::new(),
                "{path}"
            );
        }
    }
}

#[test]
fn invalid_corpus_fails_at_the_expected_node() {
    for kind in FileKind::ALL {
        for (path, text) in corpus(*kind, false) {
            let expect = text
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("# expect: "))
                .unwrap_or_else(|| panic!("{path}: first line must be `# expect: LINE:COL`"));
            let found = schema_diagnostics(*kind, &text);
            assert!(
                found.iter().any(|d| d.starts_with(&format!("{expect} "))),
                "{path}: expected a schema error at {expect}, got {found:?}"
            );
        }
    }
}

/// Bundles in Massdriver's format (the team's own, in the corpus) load as bundles and
/// resolve cleanly: only the documented warnings appear, and the draft-07 defaults apply.
/// The real Massdriver files are checked by `.ci/run` against the compatibility corpus.
#[test]
fn massdriver_bundles_load() {
    let corpus = root().join("tests/corpus/massdriver-bundle/valid");
    let mut files: Vec<SourceFile> = example_files()
        .into_iter()
        .filter(|f| !f.path.starts_with("projects/") && !f.path.starts_with("bundles/"))
        .collect();
    for (bundle, dirs) in [
        ("network", &["src"][..]),
        ("cluster", &["src", "services"][..]),
    ] {
        let text = std::fs::read(corpus.join(format!("{bundle}.yaml"))).expect("corpus file");
        put(
            &mut files,
            &format!("bundles/{bundle}/massdriver.yaml"),
            Content::Bytes(text.into()),
        );
        for d in dirs {
            put(
                &mut files,
                &format!("bundles/{bundle}/{d}/main.tf"),
                Content::Bytes(b"# module\n".to_vec().into()),
            );
        }
    }
    put(&mut files, "projects/platform/project.yaml", Content::Bytes(b"packages:\n  net:\n    bundle: network\n    params: {region: us-west-2, cidr: {automatic: true}}\n  k8s:\n    bundle: cluster\n    params: {k8s_version: '1.31', node_groups: [{name: shared, machine: t3.medium, min: 1, max: 10}]}\n    connections: {network: net.network}\n".to_vec().into()));
    put(
        &mut files,
        "projects/platform/environments/dev.yaml",
        Content::Bytes(
            b"defaults:\n  aws-iam-role: {data: {arn: 'arn:aws:iam::111111111111:role/dev'}}\n"
                .to_vec()
                .into(),
        ),
    );
    let checked = capstan::core::check(&SourceTree::new(files));
    let errors: Vec<String> = checked
        .diagnostics
        .iter()
        .filter(|d| d.severity() == Severity::Error)
        .map(ToString::to_string)
        .collect();
    assert_eq!(errors, Vec::<String>::new());
    let warnings: Vec<(Code, &str)> = checked
        .diagnostics
        .iter()
        .map(|d| (d.code, &*d.loc.file))
        .collect();
    for expected in [
        (Code::BundleDeprecatedKey, "bundles/network/massdriver.yaml"),
        (Code::BundleUnresolvedRef, "bundles/network/massdriver.yaml"),
        (Code::BundleUnresolvedRef, "bundles/cluster/massdriver.yaml"),
    ] {
        assert!(warnings.contains(&expected), "{expected:?} in {warnings:?}");
    }
    let ids: Vec<&str> = checked
        .resolved
        .instances
        .keys()
        .map(|i| i.as_str())
        .collect();
    assert_eq!(ids, ["platform-dev-k8s", "platform-dev-net"]);
    let params = |package: &str| {
        &checked
            .resolved
            .instances
            .values()
            .find(|i| i.package.as_str() == package)
            .expect("instance")
            .params
    };
    // Defaults from the draft-07 params schemas were applied, nested ones included.
    assert_eq!(params("net")["zone_count"], serde_json::json!(2));
    assert_eq!(params("net")["cidr"]["size"], serde_json::json!(20));
    assert_eq!(
        params("net")["flow_logs"],
        serde_json::json!({"enabled": false, "retention_days": 30})
    );
    assert_eq!(
        params("k8s")["observability"]["log_retention_days"],
        serde_json::json!(7)
    );
    assert_eq!(
        checked.resolved.waves.len(),
        2,
        "the cluster waits for its network"
    );
}
