//! The working tree and a git revision give identical results for the same content, on real
//! repositories built with real git in temp dirs, including a repository root that is a
//! subfolder, links, ignored files, and broken content.

use std::path::Path;

use capstan::core::source::SourceTree;

use crate::diagnostics::fixture_paths;
use crate::support::{apply_fixture, commit_all, copy_dir, example_repo, git_init, write_tree};

/// Everything the core concludes, as text, for comparing two reads.
fn outcome(tree: &SourceTree) -> String {
    let checked = capstan::core::check(tree);
    format!(
        "{:#?}\n{:#?}\n{:#?}",
        checked.diagnostics, checked.resolved.instances, checked.resolved.waves
    )
}

fn both(root: &Path) -> (SourceTree, SourceTree) {
    let dir = capstan::source::read_dir(root).expect("directory reads");
    let rev = capstan::source::read_rev(root, "HEAD").expect("revision reads");
    (dir, rev)
}

#[test]
fn example_repo_in_a_subfolder_reads_the_same_from_dir_and_rev() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let infra = tmp.path().join("infra");
    copy_dir(&example_repo(), &infra);
    std::fs::write(tmp.path().join("README.md"), "monorepo\n").expect("write");
    git_init(tmp.path());
    commit_all(tmp.path(), "example");
    let (dir, rev) = both(&infra);
    assert_eq!(dir, rev, "same files, bytes and executable bits");
    assert_eq!(outcome(&dir), outcome(&rev));
    assert!(!capstan::core::check(&rev).has_errors());
}

#[test]
fn every_fixture_reads_the_same_from_dir_and_rev() {
    for path in fixture_paths() {
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let fixture = apply_fixture(&std::fs::read_to_string(&path).expect("reads"), &name);
        let tmp = tempfile::tempdir().expect("tempdir");
        write_tree(&fixture.files, tmp.path());
        git_init(tmp.path());
        commit_all(tmp.path(), &name);
        let (dir, rev) = both(tmp.path());
        // Fixtures that fake links or oversized files in memory have nothing on disk for them.
        assert_eq!(outcome(&dir), outcome(&rev), "{name}");
    }
}

#[test]
#[cfg(unix)]
fn links_are_reported_not_followed_in_both() {
    let tmp = tempfile::tempdir().expect("tempdir");
    copy_dir(&example_repo(), tmp.path());
    std::fs::write(tmp.path().join("../secret.yaml"), "password: hunter2\n").ok();
    std::os::unix::fs::symlink(
        "../../../secret.yaml",
        tmp.path().join("projects/api/environments/prod.yaml"),
    )
    .expect("symlink");
    std::os::unix::fs::symlink("/etc", tmp.path().join("bundles/aws-vpc/src/etc"))
        .expect("symlink");
    git_init(tmp.path());
    commit_all(tmp.path(), "links");
    let (dir, rev) = both(tmp.path());
    assert_eq!(outcome(&dir), outcome(&rev));
    let codes: Vec<String> = capstan::core::check(&dir)
        .diagnostics
        .iter()
        .map(|d| format!("{} {}", d.code, d.loc.file))
        .collect();
    assert_eq!(
        codes,
        [
            "file.symlink bundles/aws-vpc/src/etc",
            "file.symlink projects/api/environments/prod.yaml"
        ]
    );
}

#[test]
fn ignored_files_are_skipped_in_the_working_tree_like_git_does() {
    let tmp = tempfile::tempdir().expect("tempdir");
    copy_dir(&example_repo(), tmp.path());
    std::fs::write(tmp.path().join(".gitignore"), "*.tfstate\n").expect("write");
    git_init(tmp.path());
    commit_all(tmp.path(), "base");
    std::fs::write(
        tmp.path().join("bundles/aws-vpc/src/terraform.tfstate"),
        "{}",
    )
    .expect("write");
    let (dir, rev) = both(tmp.path());
    assert_eq!(dir, rev);
}

#[test]
fn older_revisions_are_read_without_a_checkout() {
    let tmp = tempfile::tempdir().expect("tempdir");
    copy_dir(&example_repo(), tmp.path());
    git_init(tmp.path());
    commit_all(tmp.path(), "valid");
    std::fs::remove_file(tmp.path().join("artifact-types/aws-vpc.yaml")).expect("rm");
    commit_all(tmp.path(), "break it");
    let head = capstan::core::check(&capstan::source::read_rev(tmp.path(), "HEAD").expect("reads"));
    let before =
        capstan::core::check(&capstan::source::read_rev(tmp.path(), "HEAD~1").expect("reads"));
    assert!(head.has_errors());
    assert!(!before.has_errors());
    assert!(
        tmp.path().join("projects").exists()
            && !tmp.path().join("artifact-types/aws-vpc.yaml").exists(),
        "the work tree is untouched"
    );
}

#[test]
fn clear_errors_for_missing_things() {
    let tmp = tempfile::tempdir().expect("tempdir");
    git_init(tmp.path());
    let err = capstan::source::read(tmp.path(), Some("HEAD")).expect_err("no commits");
    assert!(err.to_string().contains("has no commits yet"), "{err}");
    let err = capstan::source::read(tmp.path(), None).expect_err("no capstan.yaml");
    assert!(err.to_string().starts_with("no capstan.yaml in"), "{err}");
    copy_dir(&example_repo(), tmp.path());
    commit_all(tmp.path(), "base");
    let err = capstan::source::read(tmp.path(), Some("no-such-branch")).expect_err("unknown rev");
    assert!(
        err.to_string()
            .contains("revision \"no-such-branch\" is not known"),
        "{err}"
    );
    let outside = tempfile::tempdir().expect("tempdir");
    let err = capstan::source::read(outside.path(), Some("HEAD")).expect_err("not git");
    assert!(
        err.to_string().contains("is not inside a git repository"),
        "{err}"
    );
}

#[test]
fn a_revision_read_from_its_neighbour_is_the_revision_read_whole() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let infra = tmp.path().join("infra");
    copy_dir(&example_repo(), &infra);
    git_init(tmp.path());
    commit_all(tmp.path(), "example");
    let repo = git2::Repository::open(tmp.path()).expect("opens");
    let first = capstan::source::read_rev(&infra, "HEAD").expect("reads");
    let base = repo
        .head()
        .and_then(|h| h.peel_to_commit())
        .expect("a commit")
        .id()
        .to_string();

    // Every kind of change: edit, delete, add, rename, a link, an executable bit, a folder
    // gone, and a file outside the root (not part of it).
    let env = infra.join("projects/ecomm/environments/staging.yaml");
    let text = std::fs::read_to_string(&env).expect("reads");
    std::fs::write(&env, format!("{text}\n# edited\n")).expect("write");
    std::fs::remove_file(infra.join("artifact-types/postgresql.yaml")).expect("rm");
    std::fs::write(infra.join("projects/ecomm/notes.md"), "new\n").expect("write");
    std::fs::rename(
        infra.join("projects/ecomm/environments/production.yaml"),
        infra.join("projects/ecomm/environments/prod.yaml"),
    )
    .expect("mv");
    std::os::unix::fs::symlink(
        "staging.yaml",
        infra.join("projects/ecomm/environments/link.yaml"),
    )
    .expect("ln");
    let script = infra.join("bundles/aws-vpc/src/deploy.sh");
    if script.exists() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    std::fs::remove_dir_all(infra.join("projects/platform")).ok();
    std::fs::write(tmp.path().join("README.md"), "outside\n").expect("write");
    commit_all(tmp.path(), "changes");

    let whole = capstan::source::read_rev(&infra, "HEAD").expect("reads");
    let from =
        capstan::source::read_from(&repo, &infra, "infra", (&base, &first), "HEAD").expect("reads");
    assert_ne!(first, whole);
    assert_eq!(from, whole, "same files, bytes, kinds and executable bits");
    assert_eq!(outcome(&from), outcome(&whole));
}

/// Ignore rules keep untracked files out of a commit and nothing else: a `.gitignore` that
/// names committed folders does not hide them from a check of the working tree, while an
/// untracked file inside those folders stays out, as `git commit -a` would leave it.
#[test]
fn ignore_rules_apply_to_untracked_files_only() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let infra = tmp.path().join("infra");
    copy_dir(&example_repo(), &infra);
    std::fs::write(infra.join(".gitignore"), "projects/si/\naws-vpc/\n").expect("write");
    git_init(tmp.path());
    crate::support::git(tmp.path(), &["add", "-A", "-f"]);
    crate::support::git(tmp.path(), &["commit", "-q", "-m", "ignored but committed"]);
    std::fs::write(
        infra.join("projects/si/environments/scratch.yaml"),
        "not: [valid\n",
    )
    .expect("write");
    let (dir, rev) = both(&infra);
    assert!(dir.get("projects/si/project.yaml").is_some());
    assert!(dir.get("bundles/aws-vpc/bundle.yaml").is_some());
    assert!(dir.get("projects/si/environments/scratch.yaml").is_none());
    assert_eq!(dir, rev, "same files, bytes and executable bits");
    assert!(
        !capstan::core::check(&dir).has_errors(),
        "{}",
        outcome(&dir)
    );
}
