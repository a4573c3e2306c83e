//! `capstan drift` with the built binary: the example's `exec` bundles have `check` scripts
//! comparing each simulated cloud resource with its recorded inputs, so deleting or editing
//! one is drift, and `capstan apply` heals it. Checks change nothing, and a check that
//! cannot tell is a failed check, never drift.

use std::process::Output;

use serde_json::Value;

use capstan::core::drift::DriftStatus;
use capstan::core::model::InstanceId;

use crate::deploy::{World, text};

impl World {
    fn drift(&self, args: &[&str]) -> Output {
        let full: Vec<&str> = std::iter::once("drift")
            .chain(args.iter().copied())
            .collect();
        self.command(&full)
            .arg("--repo")
            .arg(&self.repo)
            .output()
            .expect("capstan runs")
    }

    fn drift_of(&self, instance: &str) -> Option<DriftStatus> {
        self.deployed()[&InstanceId(instance.into())]
            .drift
            .as_ref()
            .map(|c| c.status)
    }
}

#[test]
fn a_deleted_resource_is_drift_and_apply_heals_it() {
    let w = World::example();
    assert!(w.apply().status.success());
    let clean = w.drift(&["--detailed-exitcode"]);
    assert_eq!(clean.status.code(), Some(0), "{}", text(&clean));
    assert!(
        text(&clean).contains("14 instances checked in"),
        "{}",
        text(&clean)
    );
    assert!(
        text(&clean).contains("14 in sync, 0 drifted"),
        "{}",
        text(&clean)
    );
    let before: Vec<(String, Option<String>)> = ["ecomm-staging-db.json", "si-staging-vpc.json"]
        .iter()
        .map(|f| (f.to_string(), w.cloud(f)))
        .collect();

    // Someone deletes a database and edits a network behind capstan's back.
    std::fs::remove_file(w.state.join("cloud/ecomm-staging-db.json")).unwrap();
    let vpc = w.state.join("cloud/si-prodeu-vpc.json");
    let edited = std::fs::read_to_string(&vpc)
        .unwrap()
        .replace("10.30.0.0/16", "10.99.0.0/16");
    std::fs::write(&vpc, edited).unwrap();
    let found = w.drift(&["--detailed-exitcode"]);
    assert_eq!(found.status.code(), Some(2), "{}", text(&found));
    let out = text(&found);
    assert!(
        out.contains("~ ecomm-staging-db") && out.contains("ecomm-staging-db is gone: its simulated resource cloud/ecomm-staging-db.json does not exist"),
        "{out}"
    );
    assert!(
        out.contains("si-prodeu-vpc was changed outside capstan"),
        "{out}"
    );
    assert!(out.contains("12 in sync, 2 drifted"), "{out}");
    // Checking changed nothing.
    assert!(w.cloud("ecomm-staging-db.json").is_none());
    assert_eq!(before[1].1, w.cloud("si-staging-vpc.json"));
    assert_eq!(w.drift_of("ecomm-staging-db"), Some(DriftStatus::Drifted));
    let list = w.command(&["state", "list"]).output().unwrap();
    assert!(text(&list).contains("drifted"), "{}", text(&list));
    let show = w
        .command(&["state", "show", "ecomm-staging-db"])
        .output()
        .unwrap();
    assert!(
        text(&show).contains("drift:       drifted since"),
        "{}",
        text(&show)
    );

    // JSON says the same.
    let json = w.drift(&["--format", "json", "--instance", "ecomm-staging-db"]);
    let rows: Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(rows[0]["status"], "drifted");

    // apply redeploys the drifted instances, and says why.
    let apply = w.apply();
    assert!(apply.status.success(), "{}", text(&apply));
    let out = text(&apply);
    assert!(out.contains("because it drifted since"), "{out}");
    assert!(out.contains("2 deployed, 0 destroyed"), "{out}");
    assert!(w.cloud("ecomm-staging-db.json").is_some(), "restored");
    assert_eq!(
        w.drift_of("ecomm-staging-db"),
        None,
        "a deploy resets the check"
    );
    let healed = w.drift(&["--detailed-exitcode"]);
    assert_eq!(healed.status.code(), Some(0), "{}", text(&healed));
    assert_eq!(w.drift_of("ecomm-staging-db"), Some(DriftStatus::InSync));
}

/// A check that exits 1 cannot tell: a failed check, reported with its log, never drift.
/// A check that hangs is killed after the timeout. Unknown instances are refused.
#[test]
fn noisy_and_hanging_checks_fail_and_are_not_drift() {
    let w = World::example();
    let check = w.repo.join("bundles/container-app/src/check.sh");
    std::fs::write(
        &check,
        "#!/bin/sh\necho 'cannot reach the API' >&2\nexit 1\n",
    )
    .unwrap();
    let vpc_check = w.repo.join("bundles/aws-vpc/src/check.sh");
    std::fs::write(&vpc_check, "#!/bin/sh\nsleep 30\n").unwrap();
    w.commit("checks that cannot tell");
    assert!(w.apply().status.success());
    let out = w
        .command(&["drift", "--detailed-exitcode", "--timeout", "1s"])
        .arg("--repo")
        .arg(&w.repo)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let printed = text(&out);
    assert!(
        printed.contains("✗ api-staging-app")
            && printed.contains("`./check.sh` exited with status 1 (0: in sync, 2: drifted)"),
        "{printed}"
    );
    assert!(printed.contains("timed out after 1s"), "{printed}");
    assert!(printed.contains("0 drifted"), "{printed}");
    assert_eq!(
        w.drift_of("api-staging-app"),
        Some(DriftStatus::CheckFailed)
    );
    let log =
        std::fs::read_to_string(w.state.join("logs/drift/api-staging-app.check.log")).unwrap();
    assert!(log.contains("cannot reach the API"), "{log}");
    assert!(
        std::fs::read_dir(w.state.join("work"))
            .unwrap()
            .next()
            .is_none(),
        "no work folder left behind"
    );
    // A failed check is no reason to redeploy.
    let apply = w.apply();
    assert!(text(&apply).contains("No changes"), "{}", text(&apply));

    let unknown = w.drift(&["--instance", "nope-nope-nope"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(text(&unknown).contains("nope-nope-nope is not deployed"));
}

/// Counts are worded for their number: one instance is `1 instance`, everywhere it is counted.
#[test]
fn one_instance_is_counted_as_one() {
    let w = World::with_files(&[
        ("capstan.yaml", "owners: [\"@acme/platform\"]\n"),
        (
            "bundles/one/bundle.yaml",
            "version: 1.0.0\nsteps:\n  - {path: src, provisioner: exec, deploy: \"true\", check: \"true\"}\n",
        ),
        ("bundles/one/src/README.md", "nothing to deploy\n"),
        (
            "projects/solo/project.yaml",
            "packages: {a: {bundle: one}}\n",
        ),
        ("projects/solo/environments/dev.yaml", ""),
    ]);
    let first = w.apply();
    assert!(first.status.success(), "{}", text(&first));
    let again = w.apply();
    assert!(
        text(&again).contains("No changes; 1 instance unchanged."),
        "{}",
        text(&again)
    );
    let checked = w.drift(&[]);
    assert!(
        text(&checked).contains("1 instance checked in"),
        "{}",
        text(&checked)
    );
}
