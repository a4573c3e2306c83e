//! `capstan serve` end to end: the built binary, a real bare git "remote" in a temp dir with
//! real pushes, real webhook payloads from `@octokit/webhooks-examples`, and a fake GitHub
//! checked against GitHub's OpenAPI description.

mod drift;
mod fake;
mod harness;
mod openapi;
mod policies;
mod previews;
mod replicas;
mod resource_plans;
mod signin;
mod webhooks;

use std::process::{Command, Stdio};
use std::time::Duration;

use axum::http::Method;

use crate::support::git;
use capstan::state::Store;
use fake::FakeGitHub;
pub use harness::*;

#[test]
fn a_pull_request_gets_one_living_comment_and_two_statuses() {
    let remote = Remote::new();
    let fake = FakeGitHub::start(OWNER, REPO, TOKEN);
    let daemon = Daemon::start(&write_config(&remote, &fake, &Options::default()));

    let head1 = remote.push_pull(2, vpc_change);
    fake.open_pull(2, &head1, "master", "Codertocat");
    assert_eq!(daemon.pull_event("opened", 2), 202);
    daemon.wait_for_statuses(&fake, &head1);
    let comments = fake.capstan_comments(2);
    assert_eq!(comments.len(), 1, "exactly one comment");
    let first = comments[0].clone();
    assert!(
        first
            .body
            .contains("Plan: 0 to create, 3 to update, 0 to destroy"),
        "{}",
        first.body
    );
    assert!(
        first
            .body
            .contains("needs an approving review from one of @acme/platform"),
        "{}",
        first.body
    );
    assert!(
        first
            .body
            .contains(&format!("https://github.com/{OWNER}/{REPO}/blob/{head1}/"))
            || !first.body.contains("](https://"),
        "links point at the head commit"
    );
    let statuses = fake.latest_statuses(&head1);
    assert_eq!(statuses["capstan/plan"].0, "success");
    assert!(
        statuses["capstan/plan"]
            .1
            .starts_with("Plan: 0 to create, 3 to update"),
        "{statuses:?}"
    );
    assert_eq!(statuses["capstan/ownership"].0, "pending");

    // A new push: the same comment is edited in place.
    let head2 = remote.push_pull(2, |dir| {
        replace_in(
            dir,
            "projects/ecomm/project.yaml",
            "memory: 1024",
            "memory: 2048",
        );
    });
    fake.set_head(2, &head2);
    assert_eq!(daemon.pull_event("synchronize", 2), 202);
    daemon.wait_for_statuses(&fake, &head2);
    let comments = fake.capstan_comments(2);
    assert_eq!(comments.len(), 1, "still exactly one comment");
    assert_eq!(comments[0].id, first.id, "the same comment, edited");
    assert_ne!(comments[0].body, first.body);
    assert!(
        comments[0].body.contains("projects/ecomm/**"),
        "{}",
        comments[0].body
    );

    // An owner approves (through team membership): ownership turns green.
    fake.team_member("acme", "platform", "hubot");
    fake.team_member("acme", "ecomm", "hubot");
    fake.review(2, "hubot", "APPROVED");
    assert_eq!(
        daemon.deliver(
            "pull_request_review",
            &payload("pull_request_review", Some("submitted"), 2),
            Some(SECRET)
        ),
        202
    );
    daemon.wait_for("ownership approved", || {
        fake.latest_statuses(&head2)
            .get("capstan/ownership")
            .map(|s| s.0.as_str())
            == Some("success")
    });
    assert!(
        fake.capstan_comments(2)[0]
            .body
            .contains("approved by @hubot")
    );

    // Wrong or missing signatures and oversized bodies: refused, and GitHub is not called.
    fake.settle();
    let before = fake.requests().len();
    let body = payload("pull_request", Some("opened"), 2);
    assert_eq!(
        daemon.deliver("pull_request", &body, Some("not-the-secret")),
        401
    );
    assert_eq!(daemon.deliver("pull_request", &body, None), 401);
    let huge = vec![b' '; 26 * 1024 * 1024];
    assert_eq!(daemon.deliver("pull_request", &huge, Some(SECRET)), 413);
    assert_eq!(
        daemon.deliver("pull_request", b"{not json", Some(SECRET)),
        400
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        fake.requests().len(),
        before,
        "a refused delivery made GitHub calls"
    );

    let (status, metrics) = daemon.get("/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("capstan_plans_total{outcome=\"planned\"}"),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("capstan_webhooks_total{event=\"pull_request\",result=\"unauthorized\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("capstan_github_requests_total{method=\"POST\",status=\"201\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("capstan_queue_depth"), "{metrics}");
    assert_eq!(daemon.get("/healthz").0, 200);

    let logs = daemon.stop();
    assert!(logs.contains("draining"), "{logs}");
    no_secret_in(&logs);
    no_secret_in(&fake.capstan_comments(2)[0].body);
    fake.assert_no_violations();
}

#[test]
fn github_failures_and_restarts_never_duplicate_the_comment() {
    let remote = Remote::new();
    let fake = FakeGitHub::start(OWNER, REPO, TOKEN);
    let config = write_config(&remote, &fake, &Options::default());
    let daemon = Daemon::start(&config);
    // Someone else's comments come first, so capstan has to page to find its own.
    for i in 0..5 {
        fake.human_comment(2, &format!("looks good {i}"));
    }
    let head = remote.push_pull(2, vpc_change);
    fake.open_pull(2, &head, "master", "Codertocat");
    // GitHub fails the first create with 502 and rate-limits a read once.
    fake.fail(Method::POST, "/issues/2/comments", 502, &[], 1);
    let reset = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1)
    .to_string();
    fake.fail(
        Method::GET,
        "/pulls/2/reviews",
        403,
        &[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", &reset),
        ],
        1,
    );
    assert_eq!(daemon.pull_event("opened", 2), 202);
    daemon.wait_for_statuses(&fake, &head);
    assert_eq!(fake.capstan_comments(2).len(), 1);
    let requests = fake.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.method == "POST" && r.status == 502)
    );
    assert!(
        requests
            .iter()
            .any(|r| r.path.ends_with("/reviews") && r.status == 403)
    );
    assert!(daemon.logs().contains("rate limit"));
    daemon.stop();

    // Restart with the same state: nothing is posted again.
    let before = fake.writes();
    let daemon = Daemon::start(&config);
    assert_eq!(
        daemon.deliver("issue_comment", &webhooks::plan_command(2), Some(SECRET)),
        202
    );
    let planned = |d: &Daemon| d.logs().matches("\"outcome\":\"planned\"").count();
    daemon.wait_for("the re-plan", || planned(&daemon) >= 1);
    assert_eq!(
        fake.writes(),
        before,
        "a restart posted again what GitHub already shows"
    );
    daemon.stop();

    // Restart with the state lost: the comment is found again by its marker, across pages.
    let lost = write_config(
        &remote,
        &fake,
        &Options {
            state: "state-lost",
            ..Options::default()
        },
    );
    let daemon = Daemon::start(&lost);
    daemon.wait_for("the catch-up plan", || planned(&daemon) >= 1);
    assert_eq!(
        fake.capstan_comments(2).len(),
        1,
        "no duplicate after losing the state"
    );
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.path.ends_with("/issues/2/comments") && r.method == "GET")
    );
    daemon.stop();
    fake.assert_no_violations();
}

#[test]
fn polling_finds_pull_requests_and_overlapping_ones_name_each_other() {
    let remote = Remote::new();
    let fake = FakeGitHub::start(OWNER, REPO, TOKEN);
    let config = write_config(
        &remote,
        &fake,
        &Options {
            webhooks: false,
            poll: "200ms",
            ..Options::default()
        },
    );
    let daemon = Daemon::start(&config);
    let a = remote.push_pull(2, vpc_change);
    fake.open_pull(2, &a, "master", "Codertocat");
    daemon.wait_for_statuses(&fake, &a);
    let b = remote.push_pull(3, |dir| {
        replace_in(
            dir,
            "projects/si/project.yaml",
            "high_availability: true",
            "high_availability: false",
        );
        replace_in(
            dir,
            "projects/ecomm/project.yaml",
            "memory: 1024",
            "memory: 4096",
        );
    });
    fake.open_pull(3, &b, "master", "alice");
    daemon.wait_for("both comments naming each other", || {
        let c2 = fake.capstan_comments(2);
        let c3 = fake.capstan_comments(3);
        c2.len() == 1
            && c3.len() == 1
            && c2[0].body.contains("#3 also changes")
            && c3[0].body.contains("#2 also changes")
    });
    assert!(
        fake.capstan_comments(3)[0]
            .body
            .contains("`si-staging-vpc`")
    );
    // Webhooks are off: a delivery is refused.
    assert_eq!(
        daemon.deliver(
            "pull_request",
            &payload("pull_request", Some("opened"), 2),
            Some(SECRET)
        ),
        401
    );

    // The deploy branch moves: open pull requests are planned again against it.
    let work = remote.work();
    replace_in(
        &work,
        "projects/billing/project.yaml",
        "billing:2.0",
        "billing:2.1",
    );
    git(&work, &["commit", "-q", "-am", "billing"]);
    git(&work, &["push", "-q", "origin", "master"]);
    let planned = |d: &Daemon| d.logs().matches("\"outcome\":\"planned\"").count();
    let now = planned(&daemon);
    daemon.wait_for("re-plans after the branch moved", || {
        planned(&daemon) >= now + 2
    });

    // A closed pull request stops overlapping.
    fake.close_pull(3);
    daemon.wait_for("#2 no longer names #3", || {
        daemon.logs().contains("\"outcome\":\"planned\"")
            && !fake.capstan_comments(2)[0].body.contains("#3 also changes")
    });
    assert_eq!(fake.capstan_comments(2).len(), 1);
    daemon.stop();
    fake.assert_no_violations();
}

#[test]
fn a_github_app_mints_installation_tokens() {
    let remote = Remote::new();
    let key = remote.path("app.pem");
    let status = Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(&key)
        .arg("2048")
        .stderr(Stdio::null())
        .status()
        .expect("openssl makes an RSA key");
    assert!(status.success());
    let fake = FakeGitHub::start(OWNER, REPO, TOKEN);
    fake.accept_app(42);
    let config = write_config(
        &remote,
        &fake,
        &Options {
            app: true,
            ..Options::default()
        },
    );
    let daemon = Daemon::start(&config);
    let head = remote.push_pull(4, vpc_change);
    fake.open_pull(4, &head, "master", "Codertocat");
    assert_eq!(daemon.pull_event("opened", 4), 202);
    daemon.wait_for_statuses(&fake, &head);
    assert_eq!(fake.capstan_comments(4).len(), 1);
    let minted = fake
        .requests()
        .iter()
        .filter(|r| r.path == "/app/installations/7/access_tokens" && r.status == 201)
        .count();
    assert!(minted >= 1, "no installation token was minted");
    let logs = daemon.stop();
    assert!(!logs.contains("BEGIN RSA PRIVATE KEY"));
    no_secret_in(&logs);
    fake.assert_no_violations();
}

#[test]
fn a_merge_deploys_the_branch_and_reports_on_the_commit_and_the_pull_request() {
    let remote = Remote::new();
    let fake = FakeGitHub::start(OWNER, REPO, TOKEN);
    let config = write_config(&remote, &fake, &Options::default());
    let daemon = Daemon::start(&config);
    let deploy_status = |sha: &str| {
        fake.latest_statuses(sha)
            .get("capstan/deploy")
            .cloned()
            .unwrap_or_default()
    };
    // Start-up deploys the branch as it is.
    let first = remote.head();
    daemon.wait_for("the first deploy", || deploy_status(&first).0 == "success");
    assert!(
        deploy_status(&first).1.contains("14 deployed"),
        "{:?}",
        deploy_status(&first)
    );

    // A pull request is merged and the push arrives: exactly the VPCs deploy.
    let head = remote.push_pull(5, vpc_change);
    fake.open_pull(5, &head, "master", "Codertocat");
    let work = remote.work();
    git(
        &work,
        &[
            "merge",
            "-q",
            "--no-ff",
            "change-5",
            "-m",
            "Merge pull request #5",
        ],
    );
    git(&work, &["push", "-q", "origin", "master"]);
    let merge = remote.head();
    fake.merge_pull(5, &merge);
    let mut push = webhooks::example("push", None);
    push["ref"] = "refs/heads/master".into();
    push["after"] = merge.clone().into();
    assert_eq!(
        daemon.deliver("push", &serde_json::to_vec(&push).unwrap(), Some(SECRET)),
        202
    );
    daemon.wait_for("the merge's deploy", || {
        deploy_status(&merge).0 == "success"
    });
    assert_eq!(
        deploy_status(&merge).1,
        "deployed: 3 deployed, 0 destroyed; 11 unchanged"
    );
    let states: Vec<String> = fake
        .statuses(&merge)
        .into_iter()
        .filter(|s| s.context == "capstan/deploy")
        .map(|s| s.state)
        .collect();
    assert_eq!(states, ["pending", "success"]);
    daemon.wait_for("the comment on the merged pull request", || {
        fake.comments(5)
            .iter()
            .any(|c| c.body.contains("capstan deploy of"))
    });
    let deployed: Vec<_> = fake
        .comments(5)
        .into_iter()
        .filter(|c| {
            c.body
                .starts_with(&format!("<!-- capstan:deploy {merge} -->"))
        })
        .collect();
    assert_eq!(deployed.len(), 1);
    let body = &deployed[0].body;
    assert!(
        body.contains("| `si-staging-vpc` | deploy | succeeded |"),
        "{body}"
    );
    assert!(body.contains("`network`"), "artifacts are listed: {body}");
    assert!(body.contains("vpc-"), "{body}");

    // A reconcile with nothing to do posts nothing; the state survives a restart.
    let logs = daemon.stop();
    no_secret_in(&logs);
    let before = fake.writes();
    let daemon = Daemon::start(&config);
    daemon.wait_for("the start-up pass", || {
        daemon.logs().contains("nothing to deploy")
    });
    assert_eq!(fake.writes(), before, "a restart posted again");
    let metrics = daemon.get("/metrics").1;
    assert!(
        metrics.contains("capstan_deploys_total{result=\"nothing\"} 1"),
        "{metrics}"
    );
    daemon.stop();
    let state = Store::open(&remote.path("state").join("state.db")).unwrap();
    assert_eq!(state.deployed().unwrap().len(), 14);
    assert_eq!(state.runs(10).unwrap().len(), 2);
    fake.assert_no_violations();
}

#[test]
fn next_pages_on_another_host_are_followed_under_the_configured_api() {
    let remote = Remote::new();
    let fake = FakeGitHub::start(OWNER, REPO, TOKEN);
    // GitHub Enterprise reached by an alias writes its canonical name into Link headers.
    let port = fake.url.rsplit(':').next().unwrap().to_string();
    fake.canonical_host(&format!("localhost:{port}"));
    for i in 0..5 {
        fake.human_comment(2, &format!("looks good {i}"));
    }
    let daemon = Daemon::start(&write_config(&remote, &fake, &Options::default()));
    let head = remote.push_pull(2, vpc_change);
    fake.open_pull(2, &head, "master", "Codertocat");
    assert_eq!(daemon.pull_event("opened", 2), 202);
    daemon.wait_for_statuses(&fake, &head);
    assert_eq!(fake.capstan_comments(2).len(), 1);
    let unauthorized = fake.requests().iter().filter(|r| r.status == 401).count();
    assert_eq!(unauthorized, 0, "a page was fetched without the token");
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.path.ends_with("/issues/2/comments") && r.method == "GET"),
        "the comments were paged"
    );
    daemon.stop();
    fake.assert_no_violations();
}

#[test]
fn a_rate_limit_seen_by_one_worker_holds_every_worker() {
    let remote = Remote::new();
    let fake = FakeGitHub::start(OWNER, REPO, TOKEN);
    let daemon = Daemon::start(&write_config(&remote, &fake, &Options::default()));
    let a = remote.push_pull(2, vpc_change);
    let b = remote.push_pull(3, |dir| {
        replace_in(
            dir,
            "projects/billing/project.yaml",
            "billing:2.0",
            "billing:2.1",
        )
    });
    fake.open_pull(2, &a, "master", "Codertocat");
    fake.open_pull(3, &b, "master", "Codertocat");
    fake.fail(Method::GET, "/pulls/2", 403, &[("retry-after", "3")], 1);
    assert_eq!(daemon.pull_event("opened", 2), 202);
    daemon.wait_for("the rate-limited answer", || {
        fake.requests().iter().any(|r| r.status == 403)
    });
    let limited = fake
        .requests()
        .into_iter()
        .find(|r| r.status == 403)
        .unwrap()
        .at;
    // The other worker starts while the limit is in force: it must not send anything.
    assert_eq!(daemon.pull_event("opened", 3), 202);
    daemon.wait_for_statuses(&fake, &a);
    daemon.wait_for_statuses(&fake, &b);
    // A request another task had already sent when the 403 came back may land just after
    // it (the fake stamps requests as they arrive); from then on, nothing until the reset.
    let learnt = limited + Duration::from_millis(250);
    let early: Vec<String> = fake
        .requests()
        .iter()
        .filter(|r| r.at > learnt && r.at < limited + Duration::from_millis(2_500))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        early.is_empty(),
        "requests went out during the rate limit: {early:?}"
    );
    daemon.stop();
    fake.assert_no_violations();
}

#[test]
fn a_pull_request_is_known_by_one_number() {
    let remote = Remote::new();
    let fake = FakeGitHub::start(OWNER, REPO, TOKEN);
    let daemon = Daemon::start(&write_config(&remote, &fake, &Options::default()));
    let head = remote.push_pull(7, vpc_change);
    fake.open_pull(7, &head, "master", "Codertocat");
    fake.renumber(7, 8);
    assert_eq!(daemon.pull_event("opened", 7), 202);
    daemon.wait_for("the refusal", || {
        daemon
            .logs()
            .contains("GitHub answered pull request 8 when asked for 7")
    });
    assert!(fake.comments(7).is_empty() && fake.comments(8).is_empty());
    assert!(fake.latest_statuses(&head).is_empty());
    daemon.stop();
}
