//! Drift in the daemon end to end: the `drift` schedule checks what is deployed, heals it
//! where `capstan.yaml` says so, and keeps one issue on the fake GitHub (checked against
//! GitHub's OpenAPI description) that is edited, closed and reopened, never duplicated.

use super::fake::FakeGitHub;
use super::{Daemon, OWNER, Options, REPO, Remote, write_config};
use capstan::state::Store;

fn store(remote: &Remote) -> Store {
    Store::open(&remote.path("state").join("state.db")).expect("the state opens")
}

fn cloud(remote: &Remote, file: &str) -> std::path::PathBuf {
    remote.path("state").join("cloud").join(file)
}

#[test]
fn drift_is_healed_where_allowed_and_reported_in_one_issue_elsewhere() {
    let remote = Remote::new_with(|work| {
        std::fs::write(
            work.join("capstan.yaml"),
            "owners: [\"@acme/platform\"]\ndrift:\n  remediate:\n    - environments: {tier: [staging]}\n",
        )
        .unwrap();
    });
    let fake = FakeGitHub::start(OWNER, REPO, super::TOKEN);
    let options = Options {
        extra: "schedules:\n  - {name: drift-check, cron: \"* * * * * *\", job: drift}\n",
        ..Options::default()
    };
    let daemon = Daemon::start(&write_config(&remote, &fake, &options));
    daemon.wait_for("the branch deployed and checked", || {
        store(&remote)
            .instance("si-prodeu-vpc")
            .ok()
            .flatten()
            .is_some_and(|d| d.drift.is_some())
    });
    assert!(fake.issues().is_empty(), "no drift, no issue");

    // Drift in staging (healed by capstan) and in production (reported only).
    let vpc = cloud(&remote, "si-prodeu-vpc.json");
    let original = std::fs::read_to_string(&vpc).unwrap();
    std::fs::write(&vpc, original.replace("10.30.0.0/16", "10.99.0.0/16")).unwrap();
    std::fs::remove_file(cloud(&remote, "ecomm-staging-db.json")).unwrap();
    daemon.wait_for("the staging database healed", || {
        cloud(&remote, "ecomm-staging-db.json").exists()
    });
    daemon.wait_for("the issue listing only production", || {
        fake.issues().first().is_some_and(|i| {
            i.open && i.body.contains("`si-prodeu-vpc`") && !i.body.contains("`ecomm-staging-db`")
        })
    });
    let issue = fake.issues()[0].clone();
    assert_eq!(issue.title, "capstan: drift detected");
    assert!(
        issue
            .body
            .contains("**1 instance no longer matches what capstan last deployed.**"),
        "{}",
        issue.body
    );
    assert!(
        issue
            .body
            .contains("reported only: `capstan apply` redeploys it"),
        "{}",
        issue.body
    );
    assert!(
        issue
            .body
            .contains("si-prodeu-vpc was changed outside capstan"),
        "{}",
        issue.body
    );
    assert!(
        std::fs::read_to_string(&vpc)
            .unwrap()
            .contains("10.99.0.0/16"),
        "production is left as it is"
    );
    let run = store(&remote)
        .runs(20)
        .unwrap()
        .into_iter()
        .find(|r| r.trigger.name() == "drift")
        .expect("a deploy triggered by drift");
    let healed: Vec<String> = store(&remote)
        .steps_in(run.id)
        .unwrap()
        .into_iter()
        .map(|s| s.instance)
        .collect();
    assert_eq!(healed, ["ecomm-staging-db"]);

    // Back in sync: the issue is closed. Drift again: the same issue is reopened.
    std::fs::write(&vpc, &original).unwrap();
    daemon.wait_for("the issue closed", || {
        fake.issues().first().is_some_and(|i| !i.open)
    });
    assert!(
        fake.issues()[0]
            .body
            .starts_with("<!-- capstan:drift -->\n**No drift")
    );
    std::fs::write(&vpc, original.replace("10.30.0.0/16", "10.98.0.0/16")).unwrap();
    daemon.wait_for("the issue reopened", || {
        fake.issues().first().is_some_and(|i| i.open)
    });
    assert_eq!(fake.issues().len(), 1, "one issue, never two");
    assert_eq!(fake.issues()[0].number, issue.number);

    let (_, metrics) = daemon.get("/metrics");
    assert!(metrics.contains("capstan_drifted_instances 1"), "{metrics}");
    assert!(
        metrics.contains("capstan_drift_checks_total{result=\"drifted\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("capstan_drift_checks_total{result=\"in_sync\"}"),
        "{metrics}"
    );
    daemon.stop();
    fake.assert_no_violations();
}
