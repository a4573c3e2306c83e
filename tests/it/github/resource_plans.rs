//! Provisioner plans on pull requests end to end: the built `capstan serve` on the example
//! (whose Aurora bundle has an exec `plan:` command), real git pushes, real webhook
//! payloads and the fake GitHub. The instance plan is posted first; each instance's
//! resources are added to the same comment as they finish; unchanged plans are reused; a
//! newer head cancels the older head's plans; a fork's changed bundle never runs.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::previews::{app_memory, deliver, from_fork};
use super::webhooks::{example, plan_command};
use super::{Daemon, OWNER, Options, REPO, Remote, SECRET, replace_in, write_config};
use crate::github::fake::FakeGitHub;
use capstan::state::Store;

const PLAN: &str = "bundles/aws-aurora-postgresql/src/plan.sh";

/// Provisioner plans get this environment, and nothing of the daemon's own.
const CONFIG: &str = "provisioner_plans: {parallel: 2, env: {PLAN_ROLE: read-only}}\n";

/// The example with the Aurora `plan:` wrapped: the wrapper notes the environment it got
/// (beside the state), and takes its time for engine 15, so a newer head can overtake it.
fn remote() -> Remote {
    Remote::new_with(|dir| {
        std::fs::rename(
            dir.join(PLAN),
            dir.join("bundles/aws-aurora-postgresql/src/plan-real.sh"),
        )
        .unwrap();
        let wrapper = "#!/bin/sh\nset -eu\n\
            echo \"role=${PLAN_ROLE:-none} deploy=${DEPLOY_SECRET:-none}\" > \"$CAPSTAN_STATE_DIR/plan-env\"\n\
            if grep -q '\"engine_version\": \"15\"' params.json; then sleep 60; fi\n\
            exec ./plan-real.sh\n";
        write_executable(&dir.join(PLAN), wrapper);
    })
}

fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn store(remote: &Remote) -> Store {
    Store::open(&remote.path("state").join("state.db")).expect("the state opens beside the daemon")
}

fn branch_deployed(daemon: &Daemon, remote: &Remote) {
    daemon.wait_for("the branch deployed", || {
        store(remote)
            .instance("ecomm-staging-db")
            .ok()
            .flatten()
            .is_some()
    });
}

fn comment(fake: &FakeGitHub, pr: u64) -> String {
    let comments = fake.capstan_comments(pr);
    assert!(comments.len() <= 1, "one living comment");
    comments.first().map(|c| c.body.clone()).unwrap_or_default()
}

fn metric(daemon: &Daemon, result: &str) -> u64 {
    let (_, text) = daemon.get("/metrics");
    let name = format!("capstan_provisioner_plans_total{{result=\"{result}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&name))
        .map_or(0, |n| n.trim().parse().unwrap())
}

fn engine(to: &'static str) -> impl FnOnce(&Path) {
    move |dir| {
        let file = dir.join("projects/ecomm/project.yaml");
        let text = std::fs::read_to_string(&file).unwrap();
        let from = text
            .lines()
            .find(|l| l.contains("engine_version"))
            .expect("the database's engine")
            .to_string();
        let to_line = from
            .split("engine_version")
            .next()
            .map(|indent| format!("{indent}engine_version: \"{to}\", backup_retention_days: 14}}"))
            .unwrap();
        std::fs::write(&file, text.replacen(&from, &to_line, 1)).unwrap();
    }
}

fn plan_status(fake: &FakeGitHub, sha: &str) -> Option<(String, String)> {
    fake.latest_statuses(sha).get("capstan/plan").cloned()
}

#[test]
fn resources_are_added_as_they_finish_reused_while_unchanged_and_a_newer_head_cancels() {
    let remote = remote();
    let fake = FakeGitHub::start(OWNER, REPO, super::TOKEN);
    let config = write_config(
        &remote,
        &fake,
        &Options {
            extra: CONFIG,
            ..Options::default()
        },
    );
    // The daemon's own environment holds what deploys use; plans must not see it.
    let daemon = Daemon::start_with(&config, &[("DEPLOY_SECRET", "deploy-credential")]);
    branch_deployed(&daemon, &remote);

    // Head 1 replaces the database (engine 16 -> 15, the slow plan) and resizes the app.
    let head1 = remote.push_pull(21, |dir| {
        engine("15")(dir);
        app_memory("1536")(dir);
    });
    fake.open_pull(21, &head1, "master", OWNER);
    deliver(&daemon, "opened", 21, |_| {});
    // capstan/plan waits for the provisioner plans.
    daemon.wait_for("the instance plan of head 1, pending", || {
        comment(&fake, 21).contains("still planning 1 instance")
            && plan_status(&fake, &head1).is_some_and(|s| s.0 == "pending")
    });
    assert!(
        comment(&fake, 21).contains("`ecomm-staging-app`: not plannable"),
        "{}",
        comment(&fake, 21)
    );

    // Head 2 goes back to engine 16 before head 1's database plan ended: that plan is
    // cancelled, its process group killed and its work folder removed.
    let pushed = Instant::now();
    let head2 = remote.push_pull(21, engine("16"));
    fake.set_head(21, &head2);
    deliver(&daemon, "synchronize", 21, |_| {});
    daemon.wait_for("the instance plan of head 2", || {
        plan_status(&fake, &head2).is_some()
    });
    let instance_plan = pushed.elapsed();
    daemon.wait_for("the resources of head 2", || {
        plan_status(&fake, &head2).is_some_and(|s| s.0 == "success")
            && !comment(&fake, 21).contains("still planning")
    });
    let resources = pushed.elapsed();
    eprintln!(
        "one push: instance plan posted after {instance_plan:?}, resource section after {resources:?}"
    );
    let body = comment(&fake, 21);
    assert!(
        body.contains("**Resources: 0 to add, 1 to change, 0 to destroy, 0 to replace**"),
        "{body}"
    );
    assert!(
        body.contains("~ `aws_rds_cluster.main` **update**; changes `backup_retention_period`"),
        "{body}"
    );
    assert!(!body.contains("still planning"), "{body}");
    daemon.wait_for("head 1's plan cancelled", || {
        metric(&daemon, "cancelled") == 1
    });
    let work = remote.path("state").join("work").join("plans");
    daemon.wait_for("no work folder left", || {
        std::fs::read_dir(&work).map_or(true, |d| d.count() == 0)
    });
    assert_eq!(
        std::fs::read_to_string(remote.path("state").join("plan-env"))
            .unwrap()
            .trim(),
        "role=read-only deploy=none",
        "a plan gets provisioner_plans.env and nothing of the daemon's"
    );
    assert_eq!(
        metric(&daemon, "planned"),
        1,
        "{}",
        daemon
            .logs()
            .lines()
            .filter(|l| l.contains("provisioner plans") || l.contains("resources"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    assert_eq!(
        metric(&daemon, "reused"),
        1,
        "head 2 left the app as head 1 had it: its plan was reused"
    );

    // Head 3 only resizes the app: the database's plan is reused, only the app runs.
    let not_plannable = metric(&daemon, "not_plannable");
    let head3 = remote.push_pull(21, app_memory("2048"));
    fake.set_head(21, &head3);
    deliver(&daemon, "synchronize", 21, |_| {});
    daemon.wait_for("head 3 planned", || {
        plan_status(&fake, &head3).is_some_and(|s| s.0 == "success")
            && comment(&fake, 21).contains("2048")
    });
    assert_eq!(
        metric(&daemon, "planned"),
        1,
        "the database was not planned again"
    );
    assert_eq!(metric(&daemon, "reused"), 2);
    assert_eq!(metric(&daemon, "not_plannable"), not_plannable + 1);
    let body = comment(&fake, 21);
    assert!(body.contains("`aws_rds_cluster.main` **update**"), "{body}");
    eprintln!("{body}");
    daemon.stop();
    fake.assert_no_violations();
}

#[test]
fn a_forks_changed_bundle_never_runs_and_an_outsiders_waits_for_capstan_plan_deep() {
    let remote = Remote::new();
    let fake = FakeGitHub::start(OWNER, REPO, super::TOKEN);
    let daemon = Daemon::start(&write_config(&remote, &fake, &Options::default()));
    branch_deployed(&daemon, &remote);

    // The fork changes the database's params and its bundle's plan and deploy commands,
    // which would leave a marker.
    let marker = remote.path("marker");
    let head = remote.push_pull(31, |dir| {
        engine("15")(dir);
        for script in ["plan.sh", "deploy.sh"] {
            replace_in(
                dir,
                &format!("bundles/aws-aurora-postgresql/src/{script}"),
                "set -eu\n",
                &format!("set -eu\ntouch {}\n", marker.display()),
            );
        }
    });
    let fork = "octocat/Hello-World";
    fake.open_pull(31, &head, "master", "octocat");
    fake.fork_pull(31, fork);
    deliver(&daemon, "opened", 31, |v| from_fork(v, fork, 31));
    daemon.wait_for("the fork planned", || plan_status(&fake, &head).is_some());
    // Someone who can push asks for a deep plan: a fork's code still never runs.
    let mut asked: Value = serde_json::from_slice(&plan_command(31)).unwrap();
    asked["comment"]["body"] = json!("capstan plan --deep");
    asked["comment"]["user"]["login"] = json!(OWNER);
    assert_eq!(
        daemon.deliver(
            "issue_comment",
            &serde_json::to_vec(&asked).unwrap(),
            Some(SECRET)
        ),
        202
    );
    fake.settle();
    std::thread::sleep(Duration::from_millis(500));
    let body = comment(&fake, 31);
    assert!(
        body.contains("- `ecomm-staging-db`: **not planned**: the pull request changes this bundle's code and comes from another repository (octocat/Hello-World); capstan never runs a fork's code"),
        "{body}"
    );
    assert_eq!(
        plan_status(&fake, &head).unwrap().0,
        "success",
        "what was not planned is said, not failed"
    );
    assert!(!marker.exists(), "the fork's code ran");
    // Counted once for the head, however often it is planned again.
    assert_eq!(metric(&daemon, "not_run"), 1, "{}", daemon.logs());

    // From this repository, by someone who cannot push: the changed bundle waits until
    // someone who can asks, and then runs for that head.
    fake.permission("outsider", "read");
    let head = remote.push_pull(32, |dir| {
        engine("15")(dir);
        replace_in(dir, PLAN, "set -eu\n", "set -eu\n# reviewed\n");
    });
    fake.open_pull(32, &head, "master", "outsider");
    deliver(&daemon, "opened", 32, |_| {});
    daemon.wait_for("the outsider's pull request planned", || {
        comment(&fake, 32).contains("@outsider cannot push here; someone who can may comment `capstan plan --deep` to plan this head")
    });
    asked["issue"]["number"] = json!(32);
    assert_eq!(
        daemon.deliver(
            "issue_comment",
            &serde_json::to_vec(&asked).unwrap(),
            Some(SECRET)
        ),
        202
    );
    daemon.wait_for("the deep plan", || {
        comment(&fake, 32).contains("⚠ `aws_rds_cluster.main` **replace**")
    });
    daemon.stop();
    fake.assert_no_violations();
}

#[test]
fn a_merge_says_when_its_deploy_changed_other_resources_than_the_plan_showed() {
    let remote = Remote::new();
    let fake = FakeGitHub::start(OWNER, REPO, super::TOKEN);
    let daemon = Daemon::start(&write_config(&remote, &fake, &Options::default()));
    branch_deployed(&daemon, &remote);
    let deployed = |sha: &str| {
        fake.latest_statuses(sha)
            .get("capstan/deploy")
            .is_some_and(|s| s.0 == "success")
    };
    daemon.wait_for("the start-up deploy", || deployed(&remote.head()));

    // The pull request's plan: the cluster is updated in place.
    let head = remote.push_pull(41, engine("16"));
    fake.open_pull(41, &head, "master", OWNER);
    deliver(&daemon, "opened", 41, |_| {});
    daemon.wait_for("the provisioner plan", || {
        plan_status(&fake, &head).is_some_and(|s| s.0 == "success")
            && comment(&fake, 41)
                .contains("**Resources: 0 to add, 1 to change, 0 to destroy, 0 to replace**")
    });

    // Meanwhile the simulated database disappears: the deploy creates it again.
    let cloud = remote.path("state").join("cloud");
    for entry in std::fs::read_dir(&cloud).unwrap().flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("ecomm-staging-db.")
        {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
    let work = remote.work();
    crate::support::git(
        &work,
        &[
            "merge",
            "-q",
            "--no-ff",
            "change-41",
            "-m",
            "Merge pull request #41",
        ],
    );
    crate::support::git(&work, &["push", "-q", "origin", "master"]);
    let merge = remote.head();
    fake.merge_pull(41, &merge);
    let mut push = example("push", None);
    push["ref"] = "refs/heads/master".into();
    push["after"] = merge.clone().into();
    assert_eq!(
        daemon.deliver("push", &serde_json::to_vec(&push).unwrap(), Some(SECRET)),
        202
    );
    daemon.wait_for("the comment on the merged pull request", || {
        fake.comments(41).iter().any(|c| {
            c.body
                .starts_with(&format!("<!-- capstan:deploy {merge} -->"))
        })
    });
    let body = fake
        .comments(41)
        .into_iter()
        .find(|c| {
            c.body
                .starts_with(&format!("<!-- capstan:deploy {merge} -->"))
        })
        .unwrap()
        .body;
    assert!(
        body.contains("- `ecomm-staging-db`: the deploy 2 added, 0 changed, 0 destroyed, where the pull request's provisioner plan showed 0 added, 1 changed, 0 destroyed"),
        "{body}"
    );
    daemon.stop();
    fake.assert_no_violations();
}
