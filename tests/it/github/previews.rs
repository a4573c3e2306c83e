//! Pull-request previews end to end: the built `capstan serve` on the example (whose
//! `ecomm` previews fork `staging` onto `si`'s shared staging cluster), real git pushes,
//! the fake GitHub checked against GitHub's OpenAPI description, and real webhook payloads
//! (edited where GitHub's examples have no such case, and then checked against GitHub's
//! schema of that delivery).

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use super::openapi::spec;
use super::webhooks::{example, modernize, preview_command};
use super::{Daemon, OWNER, Options, REPO, Remote, SECRET, replace_in, write_config};
use crate::github::fake::FakeGitHub;
use capstan::core::model::InstanceId;
use capstan::state::{PreviewStatus, Store};

const SWEEP: &str = "previews: {sweep_interval: 1s}\n";

fn options() -> Options {
    Options {
        extra: SWEEP,
        ..Options::default()
    }
}

fn store(remote: &Remote) -> Store {
    Store::open(&remote.path("state").join("state.db")).expect("the state opens beside the daemon")
}

/// Waits until the branch's start-up deploy put si's staging cluster up.
fn branch_deployed(daemon: &Daemon, remote: &Remote) {
    daemon.wait_for("the branch deployed", || {
        store(remote)
            .instance("si-staging-eks")
            .ok()
            .flatten()
            .is_some()
    });
}

/// A change to ecomm's app: it triggers ecomm's preview.
pub(super) fn app_memory(to: &'static str) -> impl FnOnce(&Path) {
    move |dir| {
        let file = dir.join("projects/ecomm/project.yaml");
        let text = std::fs::read_to_string(&file).unwrap();
        let from = text
            .lines()
            .find(|l| l.trim_start().starts_with("memory:"))
            .expect("the app's memory")
            .to_string();
        std::fs::write(
            &file,
            text.replacen(&from, &format!("      memory: {to}"), 1),
        )
        .unwrap();
    }
}

/// A real `pull_request` payload for `number`, edited by `edit`, checked against GitHub's
/// schema of the `pull-request-<action>` delivery, and signed.
pub(super) fn deliver(daemon: &Daemon, action: &str, number: u64, edit: impl FnOnce(&mut Value)) {
    let mut v = example("pull_request", Some(action));
    v["number"] = number.into();
    v["pull_request"]["number"] = number.into();
    modernize(&mut v);
    edit(&mut v);
    let problems = spec().check_webhook(&format!("pull-request-{action}"), &v);
    assert!(
        problems.is_empty(),
        "not a payload GitHub sends: {problems:?}"
    );
    let body = serde_json::to_vec(&v).unwrap();
    assert_eq!(daemon.deliver("pull_request", &body, Some(SECRET)), 202);
}

/// A pull request payload edited to come from `fork` (owned by octocat), as GitHub sends
/// one from a fork.
pub(super) fn from_fork(v: &mut Value, fork: &str, number: u64) {
    let mut repo = v["repository"].clone();
    repo["full_name"] = json!(fork);
    repo["name"] = json!(fork.rsplit('/').next().unwrap_or(fork));
    repo["fork"] = json!(true);
    repo["owner"]["login"] = json!("octocat");
    v["pull_request"]["head"]["repo"] = repo;
    v["pull_request"]["head"]["label"] = json!(format!("octocat:change-{number}"));
    v["pull_request"]["head"]["user"]["login"] = json!("octocat");
}

fn preview_status(fake: &FakeGitHub, sha: &str) -> Option<(String, String)> {
    fake.latest_statuses(sha).get("capstan/preview").cloned()
}

fn wait_preview(daemon: &Daemon, fake: &FakeGitHub, sha: &str, state: &str) -> String {
    let mut text = String::new();
    daemon.wait_for(
        &format!("capstan/preview {state} on {sha}"),
        || match preview_status(fake, sha) {
            Some((s, t)) if s == state => {
                text = t;
                true
            }
            _ => false,
        },
    );
    text
}

fn instances_of(remote: &Remote, prefix: &str) -> Vec<String> {
    store(remote)
        .deployed()
        .unwrap()
        .into_keys()
        .map(|i| i.to_string())
        .filter(|i| i.starts_with(prefix))
        .collect()
}

fn cloud_files(remote: &Remote, prefix: &str) -> Vec<String> {
    std::fs::read_dir(remote.path("state").join("cloud"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

fn comment(fake: &FakeGitHub, pr: u64) -> String {
    let comments = fake.capstan_comments(pr);
    assert_eq!(comments.len(), 1, "one living comment");
    comments[0].body.clone()
}

#[test]
fn a_preview_comes_up_on_the_shared_cluster_follows_pushes_and_goes_when_closed() {
    let remote = Remote::new();
    let fake = FakeGitHub::start(OWNER, REPO, super::TOKEN);
    let daemon = Daemon::start(&write_config(&remote, &fake, &options()));
    branch_deployed(&daemon, &remote);

    // Opened: ecomm's preview pr7 comes up on si's staging cluster.
    let head1 = remote.push_pull(7, app_memory("1536"));
    fake.open_pull(7, &head1, "master", OWNER);
    deliver(&daemon, "opened", 7, |_| {});
    let up = wait_preview(&daemon, &fake, &head1, "success");
    assert_eq!(up, "preview up: ecomm-pr7");
    let state = store(&remote);
    let app = state
        .instance("ecomm-pr7-app")
        .unwrap()
        .expect("the app is up");
    let cluster = state.instance("si-staging-eks").unwrap().unwrap();
    assert_eq!(
        app.inputs.connections["cluster"].data.as_ref().unwrap()["endpoint"],
        cluster.artifacts["cluster"]["endpoint"],
        "the preview runs on the shared staging cluster"
    );
    assert_eq!(app.inputs.params["memory"], 1536);
    let db = state
        .instance("ecomm-pr7-db")
        .unwrap()
        .expect("its own database");
    assert_eq!(db.inputs.params["instance_class"], "db.t4g.micro");
    assert!(!cloud_files(&remote, "ecomm-pr7-app").is_empty());
    daemon.wait_for("the comment's preview section", || {
        comment(&fake, 7).contains("**`ecomm-pr7`** is up at")
    });
    let body = comment(&fake, 7);
    assert!(body.contains("| `ecomm-pr7-db` | ✅ deployed |"), "{body}");
    assert!(body.contains("`database.hostname`"), "{body}");
    assert!(
        !body.contains("password"),
        "sensitive fields stay out: {body}"
    );
    assert!(body.contains("Plan: "), "the plan is still there: {body}");

    // A push: only what changed redeploys.
    let head2 = remote.push_pull(7, app_memory("2048"));
    fake.set_head(7, &head2);
    deliver(&daemon, "synchronize", 7, |_| {});
    wait_preview(&daemon, &fake, &head2, "success");
    daemon.wait_for("the pushed preview deployed", || {
        store(&remote)
            .instance("ecomm-pr7-app")
            .unwrap()
            .is_some_and(|a| a.commit == head2)
    });
    let run = state
        .runs(20)
        .unwrap()
        .into_iter()
        .find(|r| r.commit == head2)
        .expect("a run of the new head");
    let ran: Vec<String> = state
        .steps_in(run.id)
        .unwrap()
        .into_iter()
        .map(|s| format!("{} {} {}", s.instance, s.action, s.status))
        .collect();
    assert_eq!(ran, ["ecomm-pr7-app deploy succeeded"]);
    assert_eq!(
        state.instance("ecomm-pr7-db").unwrap().unwrap().commit,
        head1,
        "the database did not change"
    );

    // The shared cluster changes on the branch (a new Kubernetes version): the live preview
    // on it follows, without a push to the pull request.
    let work = remote.work();
    replace_in(
        &work,
        "projects/si/project.yaml",
        "params: {node_count: 3}",
        "params: {node_count: 3, version: \"1.32\"}",
    );
    crate::support::git(&work, &["commit", "-q", "-am", "Kubernetes 1.32"]);
    crate::support::git(&work, &["push", "-q", "origin", "master"]);
    let mut push = example("push", None);
    push["ref"] = "refs/heads/master".into();
    push["after"] = remote.head().into();
    assert_eq!(
        daemon.deliver("push", &serde_json::to_vec(&push).unwrap(), Some(SECRET)),
        202
    );
    daemon.wait_for("the preview on the upgraded cluster", || {
        store(&remote)
            .instance("ecomm-pr7-app")
            .unwrap()
            .is_some_and(|a| {
                a.inputs.connections["cluster"].data.as_ref().unwrap()["version"] == "1.32"
            })
    });

    // Closed without merging: the preview goes, dependants first, and nothing is left.
    fake.close_pull(7);
    deliver(&daemon, "closed", 7, |v| {
        v["pull_request"]["merged"] = json!(false)
    });
    daemon.wait_for("the preview destroyed", || {
        instances_of(&remote, "ecomm-pr7-").is_empty()
            && store(&remote).preview("ecomm", "pr7").unwrap().is_none()
    });
    assert_eq!(cloud_files(&remote, "ecomm-pr7-"), Vec::<String>::new());
    daemon.wait_for("the comment says so", || {
        comment(&fake, 7).contains("Destroyed when the pull request was closed: `ecomm-pr7`.")
    });
    let teardown = state
        .runs(20)
        .unwrap()
        .into_iter()
        .find(|r| r.commit == "preview pr7 of ecomm")
        .expect("the teardown run");
    let order: Vec<String> = state
        .steps_in(teardown.id)
        .unwrap()
        .into_iter()
        .map(|s| format!("{} {}", s.instance, s.action))
        .collect();
    assert_eq!(order, ["ecomm-pr7-app destroy", "ecomm-pr7-db destroy"]);

    // Merged: the same, and the comment says merged.
    let head3 = remote.push_pull(8, app_memory("1280"));
    fake.open_pull(8, &head3, "master", OWNER);
    deliver(&daemon, "opened", 8, |_| {});
    wait_preview(&daemon, &fake, &head3, "success");
    fake.merge_pull(8, &head3);
    deliver(&daemon, "closed", 8, |v| {
        v["pull_request"]["merged"] = json!(true);
        v["pull_request"]["merge_commit_sha"] = json!(head3);
    });
    daemon.wait_for("the merged pull request's preview destroyed", || {
        instances_of(&remote, "ecomm-pr8-").is_empty()
            && comment(&fake, 8).contains("Destroyed when the pull request was merged")
    });

    // The branch's instances were never touched by any of it.
    assert!(instances_of(&remote, "ecomm-staging-").len() >= 2);
    let (_, metrics) = daemon.get("/metrics");
    assert!(
        metrics.contains("capstan_previews{project=\"ecomm\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("capstan_preview_runs_total{outcome=\"succeeded\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("capstan_preview_runs_total{outcome=\"destroyed\"}"),
        "{metrics}"
    );
    daemon.stop();
    fake.assert_no_violations();
}

#[test]
fn previews_expire_after_their_ttl_and_wait_for_a_slot() {
    let remote = Remote::new_with(|work| {
        replace_in(work, "projects/ecomm/project.yaml", "ttl: 72h", "ttl: 4s");
        replace_in(work, "projects/ecomm/project.yaml", "max: 3", "max: 1");
    });
    let fake = FakeGitHub::start(OWNER, REPO, super::TOKEN);
    let daemon = Daemon::start(&write_config(&remote, &fake, &options()));
    branch_deployed(&daemon, &remote);

    let first = remote.push_pull(9, app_memory("1536"));
    fake.open_pull(9, &first, "master", OWNER);
    deliver(&daemon, "opened", 9, |_| {});
    wait_preview(&daemon, &fake, &first, "success");
    // A second pull request waits: ecomm allows one live preview.
    let second = remote.push_pull(10, app_memory("2048"));
    fake.open_pull(10, &second, "master", OWNER);
    deliver(&daemon, "opened", 10, |_| {});
    let waiting = wait_preview(&daemon, &fake, &second, "pending");
    assert_eq!(
        waiting,
        "waiting for a preview slot: ecomm-pr10 (slots held by #9)"
    );
    daemon.wait_for("the waiting section", || {
        comment(&fake, 10)
            .contains("is waiting for a slot: project `ecomm` has 1 live previews (#9)")
    });
    assert!(instances_of(&remote, "ecomm-pr10-").is_empty());

    // The first is idle past its TTL: it is destroyed, and the second takes the slot.
    daemon.wait_for("the first preview expired", || {
        store(&remote)
            .preview("ecomm", "pr9")
            .unwrap()
            .is_some_and(|p| p.status == PreviewStatus::Expired)
    });
    assert!(instances_of(&remote, "ecomm-pr9-").is_empty());
    wait_preview(&daemon, &fake, &second, "success");
    assert_eq!(instances_of(&remote, "ecomm-pr10-").len(), 2);
    daemon.wait_for("the expiry in the comment", || {
        comment(&fake, 9).contains("was destroyed at")
            && comment(&fake, 9).contains("after 4s without a push")
    });
    assert_eq!(
        preview_status(&fake, &first).map(|s| s.0).as_deref(),
        Some("success"),
        "an expired preview is no failure"
    );
    daemon.stop();
    fake.assert_no_violations();
}

#[test]
fn forks_never_run_and_outsiders_wait_for_someone_who_can_push() {
    let remote = Remote::new();
    let fake = FakeGitHub::start(OWNER, REPO, super::TOKEN);
    let daemon = Daemon::start(&write_config(&remote, &fake, &options()));
    branch_deployed(&daemon, &remote);

    // A pull request from a fork: no preview, whoever asks.
    let fork = "octocat/Hello-World";
    let head = remote.push_pull(11, app_memory("1536"));
    fake.open_pull(11, &head, "master", "octocat");
    fake.fork_pull(11, fork);
    deliver(&daemon, "opened", 11, |v| from_fork(v, fork, 11));
    let refused = wait_preview(&daemon, &fake, &head, "success");
    assert!(
        refused.starts_with("No preview: the head branch is in another repository"),
        "{refused}"
    );
    let asked = preview_command(11);
    assert_eq!(daemon.deliver("issue_comment", &asked, Some(SECRET)), 202);
    fake.settle();
    assert!(
        instances_of(&remote, "ecomm-pr11-").is_empty(),
        "never from a fork"
    );
    assert!(comment(&fake, 11).contains("capstan never runs code from forks"));

    // An author who cannot push: none until someone who can asks for it.
    fake.permission("outsider", "read");
    fake.permission("mallory", "read");
    let head = remote.push_pull(12, app_memory("2048"));
    fake.open_pull(12, &head, "master", "outsider");
    deliver(&daemon, "opened", 12, |_| {});
    let awaiting = wait_preview(&daemon, &fake, &head, "pending");
    assert!(awaiting.contains("@outsider cannot push"), "{awaiting}");
    let comment_by = |login: &str| {
        let mut v: Value = serde_json::from_slice(&preview_command(12)).unwrap();
        modernize(&mut v);
        v["comment"]["user"]["login"] = json!(login);
        let problems = spec().check_webhook("issue-comment-created", &v);
        assert!(problems.is_empty(), "{problems:?}");
        serde_json::to_vec(&v).unwrap()
    };
    assert_eq!(
        daemon.deliver("issue_comment", &comment_by("mallory"), Some(SECRET)),
        202
    );
    fake.settle();
    assert!(
        instances_of(&remote, "ecomm-pr12-").is_empty(),
        "mallory cannot push either"
    );
    assert_eq!(
        daemon.deliver("issue_comment", &comment_by(OWNER), Some(SECRET)),
        202
    );
    wait_preview(&daemon, &fake, &head, "success");
    assert_eq!(instances_of(&remote, "ecomm-pr12-").len(), 2);
    daemon.stop();
    fake.assert_no_violations();
}

#[test]
fn a_killed_preview_converges_and_a_pull_request_closed_while_down_loses_its_preview() {
    let remote = Remote::new();
    let fake = FakeGitHub::start(OWNER, REPO, super::TOKEN);
    let config = write_config(&remote, &fake, &options());
    let mut daemon = Daemon::start_with(
        &config,
        &[("CAPSTAN_TEST_PAUSE", "step-started:ecomm-pr13-app")],
    );
    branch_deployed(&daemon, &remote);
    let head = remote.push_pull(13, app_memory("1536"));
    fake.open_pull(13, &head, "master", OWNER);
    deliver(&daemon, "opened", 13, |_| {});
    daemon.wait_for("the app's step to start", || {
        daemon
            .logs()
            .contains("paused at step-started of ecomm-pr13-app")
    });
    daemon.child.kill().expect("kill -9");
    daemon.child.wait().unwrap();
    drop(daemon);

    // Restarted: the interrupted app is deployed again, nothing posted twice.
    let daemon = Daemon::start(&config);
    wait_preview(&daemon, &fake, &head, "success");
    let app = store(&remote).instance("ecomm-pr13-app").unwrap().unwrap();
    assert_eq!(app.status.name(), "deployed");
    fake.settle();
    assert_eq!(fake.capstan_comments(13).len(), 1);
    daemon.stop();

    // Closed while capstan was down: the preview goes at the next start.
    fake.close_pull(13);
    let daemon = Daemon::start(&config);
    daemon.wait_for("the closed pull request's preview destroyed", || {
        instances_of(&remote, "ecomm-pr13-").is_empty()
            && store(&remote).preview("ecomm", "pr13").unwrap().is_none()
    });
    assert_eq!(cloud_files(&remote, "ecomm-pr13-"), Vec::<String>::new());
    daemon.stop();
    fake.assert_no_violations();
}

#[test]
fn a_label_trigger_previews_only_labelled_pull_requests() {
    let remote = Remote::new_with(|work| {
        replace_in(
            work,
            "projects/ecomm/project.yaml",
            "  max: 3",
            "  trigger: label\n  max: 3",
        );
    });
    let fake = FakeGitHub::start(OWNER, REPO, super::TOKEN);
    let daemon = Daemon::start(&write_config(&remote, &fake, &options()));
    branch_deployed(&daemon, &remote);
    let head = remote.push_pull(14, app_memory("1536"));
    fake.open_pull(14, &head, "master", OWNER);
    deliver(&daemon, "opened", 14, |_| {});
    daemon.wait_statuses_then_settle(&fake, &head);
    assert_eq!(
        preview_status(&fake, &head),
        None,
        "not labelled: no preview"
    );
    assert!(instances_of(&remote, "ecomm-pr14-").is_empty());

    fake.label_pull(14, "capstan:preview");
    deliver(&daemon, "labeled", 14, |v| {
        v["label"]["name"] = json!("capstan:preview");
        v["pull_request"]["labels"][0]["name"] = json!("capstan:preview");
    });
    wait_preview(&daemon, &fake, &head, "success");
    assert_eq!(
        store(&remote)
            .deployed()
            .unwrap()
            .keys()
            .filter(|i| i.as_str().starts_with("ecomm-pr14-"))
            .cloned()
            .collect::<Vec<InstanceId>>()
            .len(),
        2
    );
    daemon.stop();
    fake.assert_no_violations();
}

impl Daemon {
    /// Waits for the plan statuses on `sha`, then for the daemon to stop calling GitHub.
    fn wait_statuses_then_settle(&self, fake: &FakeGitHub, sha: &str) {
        self.wait_for_statuses(fake, sha);
        fake.settle();
        std::thread::sleep(Duration::from_millis(200));
    }
}
