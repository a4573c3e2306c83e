//! End-to-end tests of the built binary: hermetic environment, snapshots of what a user sees.

use std::path::Path;

use assert_cmd::Command;

use crate::support::{commit_all, copy_dir, example_repo, git_init};

fn capstan(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("capstan").expect("binary is built");
    cmd.env_clear()
        .env("HOME", dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("NO_COLOR", "1")
        .current_dir(dir);
    cmd
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(cmd: &mut Command, tmp: &Path) -> Run {
    let out = cmd.output().expect("runs");
    let clean = |b: &[u8]| String::from_utf8_lossy(b).replace(&tmp.display().to_string(), "[TMP]");
    Run {
        code: out.status.code().expect("exit code"),
        stdout: clean(&out.stdout),
        stderr: clean(&out.stderr),
    }
}

#[test]
fn validate_example_repo() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let r = run(
        capstan(tmp.path())
            .args(["validate", "--repo"])
            .arg(example_repo()),
        tmp.path(),
    );
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    insta::assert_snapshot!(r.stdout, @"valid: 0 errors, 0 warnings; 5 projects, 8 environments, 14 instances in 3 deploy waves");
}

fn broken_repo(tmp: &Path) -> std::path::PathBuf {
    let repo = tmp.join("infra");
    copy_dir(&example_repo(), &repo);
    let staging = repo.join("projects/ecomm/environments/staging.yaml");
    let text = std::fs::read_to_string(&staging).expect("reads").replace(
        "aws-vpc: si-staging-vpc.network",
        "aws-vpc: si-produs-vpc.network",
    );
    std::fs::write(&staging, text).expect("writes");
    std::fs::write(
        repo.join("projects/api/environments/qa.yaml"),
        "name: QA\nattributes: {tier: staging}\nbogus: 1\n",
    )
    .expect("writes");
    repo
}

#[test]
fn validate_reports_every_problem_with_exit_code_1() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = broken_repo(tmp.path());
    let r = run(
        capstan(tmp.path()).args(["validate", "--repo"]).arg(&repo),
        tmp.path(),
    );
    assert_eq!(r.code, 1);
    insta::assert_snapshot!("validate_broken_text", r.stdout);
    let r = run(
        capstan(tmp.path())
            .args(["validate", "--format", "json", "--repo"])
            .arg(&repo),
        tmp.path(),
    );
    assert_eq!(r.code, 1);
    insta::assert_snapshot!("validate_broken_json", r.stdout);
}

#[test]
fn validate_rev_in_a_subfolder_matches_the_working_tree() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = broken_repo(tmp.path());
    git_init(tmp.path());
    commit_all(tmp.path(), "broken");
    let dir = run(
        capstan(tmp.path()).args(["validate", "--repo", "infra"]),
        tmp.path(),
    );
    let rev = run(
        capstan(tmp.path())
            .args(["validate", "--rev", "HEAD", "--repo"])
            .arg(&repo),
        tmp.path(),
    );
    assert_eq!((dir.code, &dir.stdout), (rev.code, &rev.stdout));
}

#[test]
fn usage_and_io_failures_exit_2_with_a_clear_message() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let r = run(capstan(tmp.path()).args(["validate"]), tmp.path());
    assert_eq!(r.code, 2);
    insta::assert_snapshot!(r.stderr, @"capstan: error: no capstan.yaml in .: the repository root is the folder that holds capstan.yaml (pass it with --repo)");
    let r = run(
        capstan(tmp.path()).args(["validate", "--repo", "nowhere"]),
        tmp.path(),
    );
    assert_eq!(
        (r.code, r.stderr.trim()),
        (2, "capstan: error: nowhere does not exist")
    );
    git_init(tmp.path());
    let r = run(
        capstan(tmp.path()).args(["validate", "--rev", "HEAD"]),
        tmp.path(),
    );
    assert_eq!(
        (r.code, r.stderr.trim()),
        (
            2,
            "capstan: error: the git repository at . has no commits yet, so there is no revision HEAD"
        )
    );
    let r = run(
        capstan(tmp.path()).args(["validate", "--format", "yaml"]),
        tmp.path(),
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("invalid value 'yaml'"), "{}", r.stderr);
    let r = run(
        capstan(tmp.path()).args(["explain", "no.such-code"]),
        tmp.path(),
    );
    assert_eq!(
        (r.code, r.stderr.trim()),
        (
            2,
            "capstan: error: unknown diagnostic code \"no.such-code\"; `capstan explain` lists them"
        )
    );
}

#[test]
fn explain_lists_and_explains_codes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let r = run(capstan(tmp.path()).args(["explain"]), tmp.path());
    assert_eq!(r.code, 0);
    insta::assert_snapshot!("explain_list", r.stdout);
    let r = run(
        capstan(tmp.path()).args(["explain", "sharing.not-granted"]),
        tmp.path(),
    );
    assert_eq!(r.code, 0);
    insta::assert_snapshot!("explain_sharing", r.stdout);
}

#[test]
fn schema_prints_the_shipped_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let r = run(
        capstan(tmp.path()).args(["schema", "environment"]),
        tmp.path(),
    );
    assert_eq!(r.code, 0);
    let shipped =
        std::fs::read_to_string(crate::support::root().join("schemas/environment.schema.json"))
            .expect("reads");
    assert_eq!(r.stdout, shipped);
    let r = run(capstan(tmp.path()).args(["schema"]), tmp.path());
    assert_eq!(
        r.stdout,
        "capstan\nartifact-type\nbundle\nmassdriver-bundle\nproject\nenvironment\nserve\n"
    );
}

#[test]
fn graph_in_every_format() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = example_repo();
    let r = run(
        capstan(tmp.path()).args(["graph", "--repo"]).arg(&repo),
        tmp.path(),
    );
    assert_eq!(r.code, 0);
    insta::assert_snapshot!("graph_mermaid", r.stdout);
    let r = run(
        capstan(tmp.path())
            .args(["graph", "--format", "dot", "--project", "peering", "--repo"])
            .arg(&repo),
        tmp.path(),
    );
    assert_eq!(r.code, 0);
    insta::assert_snapshot!("graph_dot_peering", r.stdout);
    let r = run(
        capstan(tmp.path())
            .args(["graph", "--format", "json", "--project", "api", "--repo"])
            .arg(&repo),
        tmp.path(),
    );
    assert_eq!(r.code, 0);
    insta::assert_snapshot!("graph_json_api", r.stdout);
    let r = run(
        capstan(tmp.path())
            .args(["graph", "--project", "nope", "--repo"])
            .arg(&repo),
        tmp.path(),
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("project \"nope\" does not exist"),
        "{}",
        r.stderr
    );
}
