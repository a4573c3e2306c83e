//! What an operator reaches for beside `apply`: where the state is by default, which commit
//! is deployed and what it leaves out, deploying some instances only, handing an instance
//! over to another tool, and logs that stay readable. The built binary on real git
//! repositories, run from the folders a user would be in.

use std::process::Output;

use crate::deploy::{World, capstan, text};
use crate::support::git;

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `capstan apply --yes` with the default state, from `dir`, of the repository `repo`.
fn apply_from(dir: &std::path::Path, repo: &std::path::Path, more: &[&str]) -> Output {
    capstan(dir)
        .args(["apply", "--yes", "--repo"])
        .arg(repo)
        .args(more)
        .output()
        .expect("capstan runs")
}

#[test]
fn the_default_state_is_the_repositorys_whichever_folder_capstan_runs_from() {
    let w = World::example();
    let above = w.repo.parent().expect("a parent").to_path_buf();
    let first = apply_from(&above, &w.repo, &[]);
    assert!(first.status.success(), "{}", text(&first));
    let db = w.repo.join(".capstan").join("state.db");
    assert!(
        db.exists(),
        "the state is in the repository: {}",
        text(&first)
    );

    // From inside the repository, `state list` finds it without a flag.
    let list = capstan(&w.repo).args(["state", "list"]).output().unwrap();
    assert!(list.status.success(), "{}", text(&list));
    assert!(
        stdout(&list).contains("ecomm-staging-app"),
        "{}",
        text(&list)
    );
    // And from a folder below it, naming the repository.
    let below = w.repo.join("projects");
    let show = capstan(&below)
        .args(["state", "show", "ecomm-staging-app", "--repo", ".."])
        .output()
        .unwrap();
    assert!(show.status.success(), "{}", text(&show));

    // The state folder keeps itself out of git: nothing to commit after a deploy.
    let status = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=all"])
        .current_dir(&w.repo)
        .output()
        .unwrap();
    assert_eq!(stdout(&status), "", "git status after a deploy");
    assert_eq!(
        std::fs::read_to_string(w.repo.join(".capstan/.gitignore"))
            .unwrap()
            .lines()
            .last(),
        Some("*")
    );

    // `plan --state` with the database apply wrote: nothing to do.
    let plan = capstan(&w.repo)
        .args(["plan", "--state", ".capstan/state.db"])
        .output()
        .unwrap();
    assert!(
        stdout(&plan).contains("No changes; 14 instances unchanged."),
        "{}",
        text(&plan)
    );
}

#[test]
fn apply_names_the_commit_and_the_edits_it_leaves_out() {
    let w = World::example();
    git(
        &w.repo,
        &["commit", "-q", "--allow-empty", "-m", "deploy me"],
    );
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=10", "HEAD"])
        .current_dir(&w.repo)
        .output()
        .unwrap();
    let head = stdout(&head).trim().to_string();
    let first = apply_from(&w.repo, &w.repo, &[]);
    assert!(
        stdout(&first).starts_with(&format!(
            "Commit {head} \"deploy me\" (HEAD) against {}\nPlan: 14 to create",
            w.repo.join(".capstan/state.db").display()
        )),
        "{}",
        text(&first)
    );
    assert!(!stderr(&first).contains("uncommitted"), "{}", text(&first));

    w.edit(
        "projects/si/project.yaml",
        "high_availability: true",
        "high_availability: false",
    );
    let again = apply_from(&w.repo, &w.repo, &[]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        stderr(&again).contains(&format!(
            "capstan: warning: uncommitted changes are not deployed: projects/si/project.yaml in the working tree differs from commit {head}; commit them to deploy them"
        )),
        "{}",
        text(&again)
    );
    assert!(stdout(&again).contains("No changes; 14 instances unchanged."));
}

#[test]
fn apply_instance_deploys_the_named_instance_and_what_it_needs_only() {
    let w = World::example();
    let typo = apply_from(&w.repo, &w.repo, &["--instance", "ecomm-staging-ap"]);
    assert_eq!(typo.status.code(), Some(2));
    assert!(
        stderr(&typo).contains(
            "--instance ecomm-staging-ap: no such instance in the revision or the state (did you mean `ecomm-staging-app`?)"
        ),
        "{}",
        text(&typo)
    );

    let out = apply_from(&w.repo, &w.repo, &["--instance", "ecomm-staging-app"]);
    assert!(out.status.success(), "{}", text(&out));
    let shown = stdout(&out);
    assert!(
        shown.contains("Plan: 4 to create, 0 to update, 0 to destroy"),
        "{shown}"
    );
    assert!(
        shown.contains("because ecomm-staging-app needs it (named by --instance)"),
        "{shown}"
    );
    assert!(
        shown.contains(
            "Left out: 10 changes of instances --instance does not name or need: api-staging-app,"
        ),
        "{shown}"
    );
    assert!(
        shown.contains("4 deployed, 0 destroyed; 0 unchanged"),
        "{shown}"
    );
    let db = capstan::state::Store::open(&w.repo.join(".capstan/state.db")).unwrap();
    let deployed: Vec<String> = db
        .deployed()
        .unwrap()
        .into_keys()
        .map(|i| i.to_string())
        .collect();
    assert_eq!(
        deployed,
        [
            "ecomm-staging-app",
            "ecomm-staging-db",
            "si-staging-eks",
            "si-staging-vpc"
        ]
    );

    // The rest follows with a plain apply.
    let rest = apply_from(&w.repo, &w.repo, &[]);
    assert!(
        stdout(&rest).contains("10 deployed, 0 destroyed; 4 unchanged"),
        "{}",
        text(&rest)
    );
}

#[test]
fn state_forget_removes_the_record_destroys_nothing_and_says_who() {
    let w = World::example();
    assert!(apply_from(&w.repo, &w.repo, &[]).status.success());
    let cloud = w.repo.join(".capstan/cloud/ecomm-staging-db.json");
    assert!(cloud.exists());

    // Without a terminal and without --yes it asks nobody and changes nothing.
    let refused = capstan(&w.repo)
        .args(["state", "forget", "ecomm-staging-db"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(
        stderr(&refused).contains("ecomm-staging-db (aws-aurora-postgresql@"),
        "{}",
        text(&refused)
    );
    assert!(
        stderr(&refused)
            .contains("Nothing is destroyed: its resources stay, and capstan stops managing them."),
        "{}",
        text(&refused)
    );
    assert!(
        stderr(&refused).contains(
            "capstan: note: ecomm-staging-app keeps the artifacts ecomm-staging-db gave it until deployed again"
        ),
        "{}",
        text(&refused)
    );
    assert!(
        stderr(&refused)
            .contains("still declares ecomm-staging-db: the next deploy creates it again"),
        "{}",
        text(&refused)
    );

    let forgot = capstan(&w.repo)
        .args(["state", "forget", "ecomm-staging-db", "--yes"])
        .env("USER", "alice")
        .output()
        .unwrap();
    assert!(forgot.status.success(), "{}", text(&forgot));
    assert!(
        stdout(&forgot).starts_with("Forgot ecomm-staging-db (run 2, by alice"),
        "{}",
        text(&forgot)
    );
    assert!(cloud.exists(), "nothing was destroyed");
    let store = capstan::state::Store::open(&w.repo.join(".capstan/state.db")).unwrap();
    assert!(store.instance("ecomm-staging-db").unwrap().is_none());
    assert_eq!(store.deployed().unwrap().len(), 13);
    let run = &store.runs(1).unwrap()[0];
    assert_eq!(run.trigger.name(), "forget");
    assert!(
        run.summary
            .starts_with("ecomm-staging-db forgotten by alice"),
        "{}",
        run.summary
    );
    let list = capstan(&w.repo).args(["state", "list"]).output().unwrap();
    assert!(
        stdout(&list).contains("(forget): succeeded, ecomm-staging-db forgotten by alice"),
        "{}",
        text(&list)
    );

    let gone = capstan(&w.repo)
        .args(["state", "forget", "ecomm-staging-db", "--yes"])
        .output()
        .unwrap();
    assert_eq!(gone.status.code(), Some(2));
    assert!(stderr(&gone).contains("ecomm-staging-db is not in the state database"));
}

#[test]
fn a_bare_log_level_is_capstans_own() {
    let w = World::example();
    let out = capstan(&w.repo)
        .args(["validate"])
        .env("CAPSTAN_LOG", "debug")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let log = stderr(&out);
    assert!(log.contains("capstan::cli: validated"), "{log}");
    for library in ["globset", "ignore::"] {
        assert!(!log.contains(library), "{library} in {log}");
    }
    // Naming targets still reaches the libraries.
    let out = capstan(&w.repo)
        .args(["validate"])
        .env("CAPSTAN_LOG", "debug,ignore=debug")
        .output()
        .unwrap();
    assert!(stderr(&out).contains("ignore::"), "{}", text(&out));
}
