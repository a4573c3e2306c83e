//! Plans between two real git revisions of the example repository, through the built
//! binary; every rendering is snapshotted.

use std::path::Path;

use assert_cmd::Command;

use crate::support::{commit_all, copy_dir, example_repo, git_init};

/// Commits the example, applies `edit` to the work tree, and returns (exit code, text, json, markdown)
/// of `capstan plan` of the edit against the commit (both from git: the edit is committed too).
fn scenario(edit: impl FnOnce(&Path)) -> (i32, String, String, String) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path();
    copy_dir(&example_repo(), repo);
    git_init(repo);
    commit_all(repo, "base");
    edit(repo);
    commit_all(repo, "change");
    let run = |format: &str| {
        let out = Command::cargo_bin("capstan")
            .expect("binary")
            .env_clear()
            .env("HOME", repo)
            .env("NO_COLOR", "1")
            .current_dir(repo)
            .args([
                "plan",
                "--base",
                "HEAD~1",
                "--head",
                "HEAD",
                "--detailed-exitcode",
                "--format",
                format,
            ])
            .output()
            .expect("runs");
        (
            out.status.code().expect("code"),
            String::from_utf8(out.stdout).expect("utf-8"),
        )
    };
    let (code, text) = run("text");
    let (json_code, json) = run("json");
    let (markdown_code, markdown) = run("markdown");
    assert_eq!((code, code), (json_code, markdown_code));
    (code, text, json, markdown)
}

/// Snapshots all three renderings of a scenario; the comment's graph must be one Mermaid
/// itself reads, with every node declared by its label.
fn snapshot_all(name: &str, text: &str, json: &str, markdown: &str) {
    insta::assert_snapshot!(format!("{name}_text"), text);
    insta::assert_snapshot!(format!("{name}_json"), json);
    insta::assert_snapshot!(format!("{name}_markdown"), markdown);
    if markdown.contains("```mermaid") {
        mermaid_graph(markdown);
    }
}

/// A Mermaid vertex: (id, label).
type Vertex = (String, String);
/// A Mermaid edge: (from, to, label).
type Edge = (String, String, String);

/// The graph of a plan comment as the real Mermaid library reads it (under jsdom, through
/// `tests/npm/mermaid-check.mjs`): `(vertices as (id, label), edges as (from, to, label))`.
/// Every vertex must have been declared with its label, the instance id.
fn mermaid_graph(markdown: &str) -> (Vec<Vertex>, Vec<Edge>) {
    use std::io::Write;
    let block = markdown
        .split("```mermaid\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a mermaid block");
    for package in ["mermaid/package.json", "jsdom/package.json"] {
        if let Err(e) =
            crate::support::npm_file(package, "the Mermaid library that reads plan graphs")
        {
            panic!("{e}");
        }
    }
    let mut child = std::process::Command::new("node")
        .arg(crate::support::root().join("tests/npm/mermaid-check.mjs"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node runs (.ci/run installs it, and `npm ci --prefix tests/npm` the packages)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(block.as_bytes())
        .expect("writes");
    let out = child.wait_with_output().expect("node ends");
    assert!(
        out.status.success(),
        "Mermaid refuses the graph: {}\n{block}",
        String::from_utf8_lossy(&out.stderr)
    );
    let graph: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let text = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    let vertices: Vec<(String, String)> = graph["vertices"]
        .as_array()
        .expect("vertices")
        .iter()
        .map(|v| (text(v, "id"), text(v, "text")))
        .collect();
    for (id, label) in &vertices {
        assert_eq!(
            label,
            &id.replace('_', "-"),
            "node {id} is drawn without being declared with its label"
        );
    }
    let edges = graph["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| (text(e, "start"), text(e, "end"), text(e, "text")))
        .collect();
    (vertices, edges)
}

#[test]
fn the_comment_graph_draws_every_downstream_path_whole() {
    let (_, text, json, markdown) = scenario(|r| {
        replace(
            r,
            "projects/si/project.yaml",
            "params: {high_availability: true}",
            "params: {high_availability: false}",
        )
    });
    let (vertices, edges) = mermaid_graph(&markdown);
    let plan: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let downstream = plan["downstream"].as_array().expect("downstream");
    assert!(downstream.len() >= 10, "{text}");
    for d in downstream {
        for hop in d["path"].as_array().expect("path") {
            let (from, to) = (
                hop["from"].as_str().expect("from").replace('-', "_"),
                hop["instance"].as_str().expect("to").replace('-', "_"),
            );
            assert!(
                edges.iter().any(|(f, t, _)| *f == from && *t == to),
                "the path to {} lacks the edge {from} -> {to}",
                d["instance"]
            );
        }
    }
    // The path the issue found broken, whole: the shared VPC feeds the cluster, the
    // cluster feeds api's app through a remote reference.
    assert!(edges.contains(&(
        "si_staging_vpc".into(),
        "si_staging_eks".into(),
        "network".into()
    )));
    assert!(edges.contains(&(
        "si_staging_eks".into(),
        "api_staging_app".into(),
        "cluster (remote reference)".into()
    )));
    assert!(vertices.iter().any(|(id, _)| id == "api_staging_app"));
    // The same path, in words, in the direction things flow.
    assert!(
        text.contains(
            "si-staging-vpc ─network→ si-staging-eks ─cluster (remote reference)→ api-staging-app"
        ),
        "{text}"
    );
}

fn replace(repo: &Path, file: &str, from: &str, to: &str) {
    let path = repo.join(file);
    let text = std::fs::read_to_string(&path).expect("reads");
    assert!(text.contains(from), "{file} lacks {from:?}");
    std::fs::write(&path, text.replacen(from, to, 1)).expect("writes");
}

#[test]
fn shared_vpc_param_change_reaches_every_consumer() {
    let (code, text, json, markdown) = scenario(|r| {
        replace(
            r,
            "projects/si/project.yaml",
            "params: {high_availability: true}",
            "params: {high_availability: false}",
        )
    });
    assert_eq!(code, 2);
    for consumer in [
        "ecomm-staging-db",
        "api-staging-app",
        "billing-staging-app",
        "peering-production-link",
    ] {
        assert!(
            text.contains(&format!("→ {consumer}\n")),
            "{consumer} missing from the blast radius:\n{text}"
        );
    }
    snapshot_all("plan_shared_vpc", &text, &json, &markdown);
}

#[test]
fn switching_to_a_dedicated_cluster_creates_it_and_flags_replacement() {
    let (code, text, json, markdown) = scenario(|r| {
        replace(
            r,
            "projects/ecomm/environments/staging.yaml",
            "  cluster:\n    remote:                           # not deployed here: the shared staging cluster stands in\n      cluster: si-staging-eks.cluster\n",
            "  cluster:\n    params: {node_count: 2}\n",
        )
    });
    assert_eq!(code, 2);
    assert!(text.contains("+ ecomm-staging-cluster"), "{text}");
    assert!(text.contains("connection cluster: si-staging-eks.cluster -> ecomm-staging-cluster.cluster (likely replacement)"), "{text}");
    snapshot_all("plan_dedicated_cluster", &text, &json, &markdown);
}

#[test]
fn removing_a_share_still_in_use_is_an_error() {
    let (code, text, _, markdown) = scenario(|r| {
        replace(
            r,
            "projects/si/project.yaml",
            "  - artifacts: [vpc.network, eks.cluster]\n    environments: [staging]\n    to: {tier: [staging, preview]}\n",
            "",
        )
    });
    assert_eq!(code, 1);
    assert!(text.contains("error[sharing.not-granted]"), "{text}");
    // ecomm's preview uses the same grants: it is reported too, named as the preview.
    assert!(
        text.contains("with ecomm-pr<N> (the preview of ecomm)"),
        "{text}"
    );
    assert!(
        markdown.starts_with(
            "<!-- capstan:plan -->\n**Plan failed: the head has 8 errors to fix first.**"
        ),
        "{markdown}"
    );
}

#[test]
fn adding_an_environment_disabling_and_renaming_packages() {
    let (code, text, json, markdown) = scenario(|r| {
        std::fs::write(r.join("projects/billing/environments/qa.yaml"), "attributes: {tier: staging}\ndefaults:\n  kubernetes-cluster: si-staging-eks.cluster\n").expect("writes");
        replace(
            r,
            "projects/ecomm/environments/production.yaml",
            "  app:\n",
            "  worker:\n    enabled: false\n  app:\n",
        );
        replace(r, "projects/api/project.yaml", "  app:\n", "  web:\n");
        replace(
            r,
            "projects/api/environments/staging.yaml",
            "  app:\n",
            "  web:\n",
        );
    });
    assert_eq!(code, 2);
    snapshot_all("plan_env_disable_rename", &text, &json, &markdown);
}

#[test]
fn a_huge_change_is_cut_to_fit_a_comment() {
    let (code, text, json, markdown) = scenario(|r| {
        for i in 0..600 {
            std::fs::write(r.join(format!("projects/billing/environments/qa{i}.yaml")), "attributes: {tier: staging}\ndefaults:\n  kubernetes-cluster: si-staging-eks.cluster\n").expect("writes");
        }
    });
    assert_eq!(code, 2);
    assert!(
        text.starts_with("Plan: 600 to create, 0 to update, 0 to destroy"),
        "{text}"
    );
    assert!(json.contains("\"create\": 600"));
    assert!(markdown.len() <= 65_536, "{} characters", markdown.len());
    assert!(
        markdown.starts_with("<!-- capstan:plan -->\n**Plan: 600 to create"),
        "the summary comes first"
    );
    let note = markdown.lines().last().expect("a last line");
    assert!(
        note.starts_with("> **Cut to fit GitHub's 65536 characters:**"),
        "{note}"
    );
    insta::assert_snapshot!("plan_huge_cut_note", note);
}

#[test]
fn a_change_touching_nothing_is_an_empty_plan() {
    let (code, text, _, _) = scenario(|r| {
        std::fs::write(r.join("projects/api/README.md"), "docs only\n").expect("writes")
    });
    assert_eq!(code, 0);
    insta::assert_snapshot!(text, @r"
    Plan: 0 to create, 0 to update, 0 to destroy; 0 downstream in 0 other projects
    No changes; 14 instances unchanged.
    ");
}

#[test]
fn sensitive_params_never_show_their_values() {
    let (_, text, json, markdown) = scenario(|r| {
        replace(
            r,
            "bundles/container-app/bundle.yaml",
            "    env: {type: object",
            "    api_key: {type: string, sensitive: true, default: old-secret-value}\n    env: {type: object",
        );
        replace(
            r,
            "projects/billing/project.yaml",
            "      env: {CURRENCY: EUR}",
            "      env: {CURRENCY: EUR}\n      api_key: new-secret-value",
        );
    });
    for out in [&text, &json, &markdown] {
        assert!(!out.contains("secret-value"), "a secret leaked:\n{out}");
    }
    assert!(
        text.contains("params.api_key: (sensitive) changed"),
        "{text}"
    );
}

#[test]
fn the_change_that_introduces_capstan_creates_everything() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path();
    git_init(repo);
    std::fs::write(repo.join("README.md"), "before capstan\n").expect("writes");
    commit_all(repo, "before");
    copy_dir(&example_repo(), &repo.join("infra"));
    commit_all(repo, "introduce capstan");
    let out = Command::cargo_bin("capstan")
        .expect("binary")
        .env_clear()
        .env("HOME", repo)
        .current_dir(repo)
        .args([
            "plan",
            "--repo",
            "infra",
            "--base",
            "HEAD~1",
            "--head",
            "HEAD",
            "--detailed-exitcode",
        ])
        .output()
        .expect("runs");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(
        out.status.code(),
        Some(2),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with("Plan: 14 to create, 0 to update, 0 to destroy"),
        "{text}"
    );
    assert!(text.contains("because project si is new"), "{text}");
}
