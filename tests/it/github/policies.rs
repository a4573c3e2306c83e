//! Policies on pull requests end to end: the built `capstan serve` on the example (whose
//! policies/databases.rego denies an engine downgrade and asks @acme/dba to approve
//! database changes), the fake GitHub and real webhook payloads. A pull request is judged by
//! the deploy branch's policies, never its own; an approval counts for the head it was
//! given on.

use super::previews::deliver;
use super::{Daemon, OWNER, Options, REPO, Remote, SECRET, payload, replace_in, write_config};
use crate::github::fake::FakeGitHub;

fn policy_status(fake: &FakeGitHub, sha: &str) -> Option<(String, String)> {
    fake.latest_statuses(sha).get("capstan/policy").cloned()
}

fn comment(fake: &FakeGitHub, pr: u64) -> String {
    fake.capstan_comments(pr)
        .first()
        .map(|c| c.body.clone())
        .unwrap_or_default()
}

#[test]
fn the_branchs_policies_judge_and_approvals_count_for_their_head() {
    let remote = Remote::new();
    let fake = FakeGitHub::start(OWNER, REPO, super::TOKEN);
    let options = Options {
        extra: "ui: {listen: \"127.0.0.1:0\"}\n",
        ..Options::default()
    };
    let daemon = Daemon::start(&write_config(&remote, &fake, &options));

    // An engine downgrade that also deletes the rule denying it: still denied.
    let head = remote.push_pull(51, |dir| {
        replace_in(
            dir,
            "projects/ecomm/project.yaml",
            "engine_version: \"16\"",
            "engine_version: \"15\"",
        );
        std::fs::remove_file(dir.join("policies/databases.rego")).unwrap();
        std::fs::remove_file(dir.join("policies/databases_test.rego")).unwrap();
    });
    fake.open_pull(51, &head, "master", OWNER);
    deliver(&daemon, "opened", 51, |_| {});
    daemon.wait_for("capstan/policy on the downgrade", || {
        policy_status(&fake, &head).is_some()
    });
    let (state, description) = policy_status(&fake, &head).unwrap();
    assert_eq!(state, "failure");
    assert!(
        description.starts_with("denied: ecomm-staging-db would go from engine 16 back to 15"),
        "{description}"
    );
    let body = comment(&fake, 51);
    assert!(
        body.contains("**Policies** (of the deploy branch at `"),
        "{body}"
    );
    assert!(
        body.contains("- ❌ **deny** `ecomm-staging-db` (`projects/ecomm/project.yaml:9`): ecomm-staging-db would go from engine 16 back to 15; restore a dump into a new database instead (rule `policies/databases.rego:31:1`)"),
        "{body}"
    );

    // The web view shows the same verdict on the pull request's page, linked to GitHub
    // (the statuses are recorded as they are posted, just after the comment).
    let failure =
        "<code>capstan/policy</code></td><td><span class=\"status status-failure\">failure</span>";
    daemon.wait_for("the pull request's page with its statuses", || {
        crate::web::get(&daemon.view_addr(), "/pulls/51", &[], None)
            .body
            .contains(failure)
    });
    let page = crate::web::get(&daemon.view_addr(), "/pulls/51", &[], None);
    assert_eq!(page.status, 200, "{}", page.body);
    for expected in [
        format!("href=\"{}/{OWNER}/{REPO}/pull/51\"", fake.url),
        failure.to_string(),
        "href=\"/instances/ecomm-staging-db\"".to_string(),
        "href=\"/graph?pull=51\"".to_string(),
    ] {
        assert!(page.body.contains(&expected), "{expected} in {}", page.body);
    }

    // Once its provisioner plan is in, the policies judge again with it: a replacement.
    daemon.wait_for("the policies on the provisioner plan", || {
        comment(&fake, 51).contains("would replace aws_rds_cluster.main, losing its data; change it in place or migrate (rule `policies/databases.rego:19:1`)")
    });

    // A change in place waits for the data team, approved on its head.
    let head = remote.push_pull(52, |dir| {
        replace_in(
            dir,
            "projects/ecomm/project.yaml",
            "engine_version: \"16\"",
            "engine_version: \"16\", backup_retention_days: 14",
        );
    });
    fake.open_pull(52, &head, "master", OWNER);
    deliver(&daemon, "opened", 52, |_| {});
    daemon.wait_for("capstan/policy pending", || {
        policy_status(&fake, &head).is_some_and(|s| s.0 == "pending")
    });
    assert_eq!(
        policy_status(&fake, &head).unwrap().1,
        "needs approval from @acme/dba"
    );
    assert!(
        comment(&fake, 52).contains(
            "- ⏳ **needs an approving review of this head** from @acme/dba `ecomm-staging-db`"
        ),
        "{}",
        comment(&fake, 52)
    );
    fake.team_member("acme", "dba", "hubot");
    fake.review(52, "hubot", "APPROVED");
    assert_eq!(
        daemon.deliver(
            "pull_request_review",
            &payload("pull_request_review", Some("submitted"), 52),
            Some(SECRET)
        ),
        202
    );
    daemon.wait_for("capstan/policy approved", || {
        policy_status(&fake, &head).is_some_and(|s| s.0 == "success")
    });
    assert!(
        comment(&fake, 52).contains("- ✅ **approved** for @acme/dba by @hubot `ecomm-staging-db`"),
        "{}",
        comment(&fake, 52)
    );

    // A push after the approval asks again.
    let head2 = remote.push_pull(52, |dir| {
        replace_in(
            dir,
            "projects/ecomm/project.yaml",
            "backup_retention_days: 14",
            "backup_retention_days: 21",
        );
    });
    fake.set_head(52, &head2);
    deliver(&daemon, "synchronize", 52, |_| {});
    daemon.wait_for("capstan/policy pending again", || {
        policy_status(&fake, &head2).is_some_and(|s| s.0 == "pending")
    });
    daemon.stop();
    fake.assert_no_violations();
}

#[test]
fn a_pull_request_changing_policies_names_the_open_ones_they_would_newly_deny() {
    let remote = Remote::new();
    let fake = FakeGitHub::start(OWNER, REPO, super::TOKEN);
    let daemon = Daemon::start(&write_config(&remote, &fake, &Options::default()));

    let resize = remote.push_pull(62, |dir| {
        replace_in(
            dir,
            "projects/ecomm/project.yaml",
            "memory: 1024",
            "memory: 2048",
        );
    });
    fake.open_pull(62, &resize, "master", OWNER);
    deliver(&daemon, "opened", 62, |_| {});
    daemon.wait_for_statuses(&fake, &resize);

    let rule = remote.push_pull(61, |dir| {
        std::fs::write(
            dir.join("policies/memory.rego"),
            "package capstan\n\ndeny contains sprintf(\"%s changes memory\", [c.instance]) if {\n\tsome c in input.plan.changes\n\tsome d in c.diffs\n\td.path == [\"memory\"]\n}\n",
        )
        .unwrap();
        crate::support::git(dir, &["add", "-A"]);
    });
    fake.open_pull(61, &rule, "master", OWNER);
    deliver(&daemon, "opened", 61, |_| {});
    daemon.wait_for_statuses(&fake, &rule);
    let body = comment(&fake, 61);
    assert!(
        body.contains("**Policies changed here** would newly deny these open pull requests:\n\n- #62: ecomm-staging-app changes memory (rule `policies/memory.rego:3:1`)"),
        "{body}"
    );
    // The pull request it would deny is judged by the branch's policies: not denied yet.
    assert_ne!(
        policy_status(&fake, &resize).map(|s| s.0).as_deref(),
        Some("failure")
    );
    daemon.stop();
    fake.assert_no_violations();
}
