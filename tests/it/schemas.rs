//! Valid and invalid corpora for every schema (`tests/corpus/<kind>/{valid,invalid}`), and
//! Massdriver's real bundles loading unchanged (DESIGN 4.3).

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

/// Massdriver's aws-vpc and aws-eks-cluster bundles, copied unchanged from `shared/compat`,
/// load as bundles and deploy-plan cleanly: only the documented warnings appear.
#[test]
fn massdriver_bundles_load_unchanged() {
    let compat = root().join("../shared/compat/massdriver");
    let mut files: Vec<SourceFile> = example_files()
        .into_iter()
        .filter(|f| !f.path.starts_with("projects/") && !f.path.starts_with("bundles/"))
        .collect();
    for (bundle, dirs) in [
        ("aws-vpc", &["src"][..]),
        ("aws-eks-cluster", &["src", "core-services"][..]),
    ] {
        let text = std::fs::read(compat.join(bundle).join("massdriver.yaml"))
            .expect("shared/compat is beside the checkout");
        put(
            &mut files,
            &format!("bundles/{bundle}/massdriver.yaml"),
            Content::Bytes(text),
        );
        for d in dirs {
            put(
                &mut files,
                &format!("bundles/{bundle}/{d}/main.tf"),
                Content::Bytes(b"# module\n".to_vec()),
            );
        }
    }
    put(&mut files, "projects/platform/project.yaml", Content::Bytes(b"packages:\n  vpc:\n    bundle: aws-vpc\n    params: {aws_region: us-west-2, network: {automatic: true, mask: 20}}\n  eks:\n    bundle: aws-eks-cluster\n    params: {k8s_version: '1.34', monitoring: {}, node_groups: [{name: shared, instance_type: t3.medium, min_size: 1, max_size: 10, advanced_configuration_enabled: false}]}\n    connections: {vpc: vpc.vpc}\n".to_vec()));
    put(
        &mut files,
        "projects/platform/environments/dev.yaml",
        Content::Bytes(
            b"defaults:\n  aws-iam-role: {data: {arn: 'arn:aws:iam::111111111111:role/dev'}}\n"
                .to_vec(),
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
    assert!(
        warnings.contains(&(Code::BundleDeprecatedKey, "bundles/aws-vpc/massdriver.yaml")),
        "{warnings:?}"
    );
    assert!(
        warnings.contains(&(Code::BundleUnresolvedRef, "bundles/aws-vpc/massdriver.yaml")),
        "{warnings:?}"
    );
    assert!(
        warnings.contains(&(
            Code::BundleUnresolvedRef,
            "bundles/aws-eks-cluster/massdriver.yaml"
        )),
        "{warnings:?}"
    );
    let eks = &checked
        .resolved
        .instances
        .keys()
        .map(|i| i.as_str())
        .collect::<Vec<_>>();
    assert_eq!(eks, &["platform-dev-eks", "platform-dev-vpc"]);
    // Defaults from the Massdriver params schema were applied.
    let vpc = &checked
        .resolved
        .instances
        .values()
        .find(|i| i.package.as_str() == "vpc")
        .expect("vpc")
        .params;
    assert_eq!(vpc["high_availability"], serde_json::json!(true));
    let eks = &checked
        .resolved
        .instances
        .values()
        .find(|i| i.package.as_str() == "eks")
        .expect("eks")
        .params;
    assert_eq!(
        eks["monitoring"]["control_plane_log_retention"],
        serde_json::json!(7)
    );
    assert_eq!(
        checked.resolved.waves.len(),
        2,
        "the cluster waits for its network"
    );
}
