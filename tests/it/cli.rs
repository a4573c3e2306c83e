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
    let r = run(
        capstan(tmp.path()).args(["explain", "sharing.notgranted"]),
        tmp.path(),
    );
    assert_eq!(
        (r.code, r.stderr.trim()),
        (
            2,
            "capstan: error: unknown diagnostic code \"sharing.notgranted\" (did you mean `sharing.not-granted`?); `capstan explain` lists them"
        )
    );
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
    let r = run(capstan(tmp.path()).args(["schema", "projects"]), tmp.path());
    assert_eq!(
        (r.code, r.stderr.trim()),
        (
            2,
            "capstan: error: unknown file kind \"projects\" (did you mean `project`?); `capstan schema` lists them"
        )
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

/// A git repository holding a copy of the example, committed.
fn committed_example(tmp: &Path) -> std::path::PathBuf {
    let repo = tmp.join("infra");
    copy_dir(&example_repo(), &repo);
    git_init(&repo);
    commit_all(&repo, "the example");
    repo
}

#[test]
fn usage_errors_exit_3_whenever_detailed_exitcode_is_given() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = committed_example(tmp.path());
    for args in [
        &["plan", "--detailed-exitcode", "--format", "yaml"][..],
        &["plan", "--detailed-exitcode", "--no-such-flag"],
        &["plan", "--no-such-flag", "--detailed-exitcode"],
        &["plan", "--detailed-exitcode", "--head"],
    ] {
        let r = run(
            capstan(tmp.path()).args(args).arg("--repo").arg(&repo),
            tmp.path(),
        );
        assert_eq!(r.code, 3, "{args:?}: {}", r.stderr);
    }
    // Without it, a usage error is 2 as everywhere else; with it, "changes" stays 2.
    let r = run(
        capstan(tmp.path()).args(["plan", "--format", "yaml"]),
        tmp.path(),
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = run(
        capstan(tmp.path())
            .args(["plan", "--detailed-exitcode", "--base", "HEAD", "--repo"])
            .arg(&repo),
        tmp.path(),
    );
    assert_eq!(r.code, 0, "no changes: {}", r.stderr);
}

#[test]
fn plan_compares_the_working_tree_with_head_by_default() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = committed_example(tmp.path());
    let project = repo.join("projects/billing/project.yaml");
    let text = std::fs::read_to_string(&project).expect("reads");
    // An edit in the working tree is planned without naming a revision...
    std::fs::write(&project, text.replace("billing:2.0", "billing:2.1")).expect("writes");
    let r = run(
        capstan(tmp.path()).args(["plan", "--repo"]).arg(&repo),
        tmp.path(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .starts_with("Plan: 0 to create, 1 to update, 0 to destroy"),
        "{}",
        r.stdout
    );
    // ...--head REV plans a commit instead...
    let r = run(
        capstan(tmp.path())
            .args(["plan", "--head", "HEAD", "--repo"])
            .arg(&repo),
        tmp.path(),
    );
    assert!(r.stdout.contains("No changes"), "{}", r.stdout);
    // ...and a broken working tree is reported, never "No changes".
    std::fs::write(&project, "packages: [\n").expect("writes");
    let r = run(
        capstan(tmp.path()).args(["plan", "--repo"]).arg(&repo),
        tmp.path(),
    );
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("error[yaml.syntax]"), "{}", r.stdout);
}

#[test]
fn errors_name_what_was_typed_and_what_would_work() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = committed_example(tmp.path());
    let plain = tmp.path().join("plain");
    copy_dir(&example_repo(), &plain);
    let cases: Vec<(Vec<&str>, &std::path::Path, &str)> = vec![
        (
            vec!["validate", "--rev", "nope"],
            &repo,
            "capstan: error: revision \"nope\" is not known to the git repository at [TMP]/infra: give a branch, a tag or a commit id (e.g. HEAD, main, HEAD~1)",
        ),
        (
            vec!["plan", "--base", "nope"],
            &repo,
            "capstan: error: revision \"nope\" is not known to the git repository at [TMP]/infra: give a branch, a tag or a commit id (e.g. HEAD, main, HEAD~1)",
        ),
        (
            vec!["plan"],
            &plain,
            "capstan: error: [TMP]/plain is not inside a git repository, so revision HEAD (--base) cannot be read: commit it to git, or pass --state to plan the folder against what is deployed",
        ),
        (
            vec!["apply", "--yes"],
            &plain,
            "capstan: error: [TMP]/plain is not inside a git repository, so revision HEAD (--rev) cannot be read: capstan deploys commits; commit the repository to git first",
        ),
        (
            vec!["validate", "--rev", "HEAD"],
            &plain,
            "capstan: error: [TMP]/plain is not inside a git repository, so revision HEAD (--rev) cannot be read: leave out --rev to check the folder as it is",
        ),
    ];
    for (args, at, expected) in cases {
        let r = run(
            capstan(tmp.path()).args(&args).arg("--repo").arg(at),
            tmp.path(),
        );
        assert_eq!((r.code, r.stderr.trim()), (2, expected), "{args:?}");
    }
    let r = run(
        capstan(tmp.path())
            .args(["apply", "--timeout", "banana", "--repo"])
            .arg(&repo),
        tmp.path(),
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("invalid value 'banana' for '--timeout <TIMEOUT>': `banana` is not a duration: write numbers with units ms, s, m, h or d, e.g. 30s, 5m, 1h30m, 2d"),
        "{}",
        r.stderr
    );
}

#[test]
fn logs_have_colour_only_on_a_terminal() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // stderr is a pipe here, and NO_COLOR is not set: still no colour codes.
    let out = Command::cargo_bin("capstan")
        .expect("binary")
        .env_clear()
        .env("HOME", tmp.path())
        .env("CAPSTAN_LOG", "debug")
        .args(["validate", "--repo"])
        .arg(example_repo())
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("validated"),
        "the log line is there: {stderr}"
    );
    assert!(
        !stderr.contains('\x1b'),
        "colour codes in a piped log: {stderr:?}"
    );
}

/// A pattern that a backtracking engine needs minutes for (`a{1,65535}{1,65535}` against an
/// imported value of 30,000 `a`s) is an error at the pattern, and validation ends at once;
/// the bound on the run is what fails the test should it ever hang again.
#[test]
fn a_pattern_that_cannot_match_in_bounded_time_is_an_error_at_the_pattern() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("infra");
    copy_dir(&example_repo(), &repo);
    let edit = |path: &str, from: &str, to: &str| {
        let file = repo.join(path);
        let text = std::fs::read_to_string(&file).expect("reads");
        assert!(text.contains(from), "{path}");
        std::fs::write(&file, text.replace(from, to)).expect("writes");
    };
    edit(
        "artifact-types/aws-iam-role.yaml",
        r#"pattern: "^arn:aws:iam::[0-9]{12}:role/.+$""#,
        r#"pattern: "a{1,65535}{1,65535}""#,
    );
    edit(
        "projects/si/environments/staging.yaml",
        "arn:aws:iam::111111111111:role/platform-deployer",
        &"a".repeat(30_000),
    );
    let r = run(
        capstan(tmp.path())
            .args(["validate", "--repo"])
            .arg(&repo)
            .timeout(std::time::Duration::from_secs(60)),
        tmp.path(),
    );
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(
            "artifact-types/aws-iam-role.yaml:9:34: error[artifact-type.invalid]: schema of artifact type aws-iam-role is not a valid JSON Schema at properties.arn.pattern: \"a{1,65535}{1,65535}\" is too large to match in bounded time"
        ),
        "{}",
        r.stdout
    );
}
