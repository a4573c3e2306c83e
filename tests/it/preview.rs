//! `capstan preview up|down|list` with the built binary on the example, whose `ecomm`
//! previews fork `staging` onto `si`'s shared staging cluster: the newcomer's walk-through
//! of the README, and what must never happen between a preview and the branch.

use serde_json::Value;

use capstan::core::model::InstanceId;

use crate::deploy::{World, text};

impl World {
    fn preview(&self, args: &[&str]) -> std::process::Output {
        let full: Vec<&str> = std::iter::once("preview")
            .chain(args.iter().copied())
            .collect();
        let mut cmd = self.command(&full);
        if args.first().is_some_and(|a| *a == "up" || *a == "down") {
            cmd.arg("--repo").arg(&self.repo);
        }
        cmd.output().expect("capstan runs")
    }

    fn with_prefix(&self, prefix: &str) -> Vec<String> {
        self.deployed()
            .into_keys()
            .map(|i| i.to_string())
            .filter(|i| i.starts_with(prefix))
            .collect()
    }
}

#[test]
fn a_preview_runs_on_the_shared_cluster_and_leaves_nothing_behind() {
    let w = World::example();
    // Before the branch is deployed there is no shared cluster to run on: nothing deploys.
    let early = w.preview(&["up", "pr1", "--project", "ecomm", "--yes"]);
    assert_eq!(early.status.code(), Some(1), "{}", text(&early));
    assert!(
        text(&early).contains("it takes artifacts from si-staging-vpc, which is not deployed"),
        "{}",
        text(&early)
    );
    assert!(w.with_prefix("ecomm-pr1-").is_empty());

    assert!(w.apply().status.success());
    let up = w.preview(&["up", "pr1", "--project", "ecomm", "--yes"]);
    assert!(up.status.success(), "{}", text(&up));
    assert!(
        text(&up).contains("Preview pr1 of ecomm: ecomm-pr1-app, ecomm-pr1-db; expires"),
        "{}",
        text(&up)
    );
    let state = w.deployed();
    let app = &state[&InstanceId("ecomm-pr1-app".into())];
    let eks = &state[&InstanceId("si-staging-eks".into())];
    assert_eq!(
        app.inputs.connections["cluster"].data.as_ref().unwrap()["endpoint"],
        eks.artifacts["cluster"]["endpoint"],
        "the preview's app runs on si's shared staging cluster"
    );
    assert_eq!(
        state[&InstanceId("ecomm-pr1-db".into())].inputs.params["instance_class"],
        "db.t4g.micro",
        "the preview block's params over staging's"
    );
    assert!(w.cloud("ecomm-pr1-app.json").is_some());

    // The branch's deploy leaves the preview alone.
    let apply = w.apply();
    assert!(apply.status.success(), "{}", text(&apply));
    assert!(text(&apply).contains("No changes"), "{}", text(&apply));
    assert_eq!(w.with_prefix("ecomm-pr1-").len(), 2);

    // Listed, as text and JSON.
    let list = w.preview(&["list", "--format", "json"]);
    let rows: Value = serde_json::from_slice(&list.stdout).expect("JSON");
    assert_eq!(rows[0]["project"], "ecomm");
    assert_eq!(rows[0]["name"], "pr1");
    assert_eq!(rows[0]["status"], "live");
    assert_eq!(
        rows[0]["instances"],
        serde_json::json!(["ecomm-pr1-app", "ecomm-pr1-db"])
    );
    let list = w.preview(&["list"]);
    assert!(text(&list).contains("pr1      ecomm"), "{}", text(&list));

    // Up again with nothing changed: nothing runs.
    let again = w.preview(&["up", "pr1", "--project", "ecomm", "--yes"]);
    assert!(text(&again).contains("No changes"), "{}", text(&again));

    // Down: dependants first, and nothing is left: no rows, no simulated resources.
    let down = w.preview(&["down", "pr1", "--yes"]);
    assert!(down.status.success(), "{}", text(&down));
    let out = text(&down);
    let app_at = out
        .find("ecomm-pr1-app destroyed")
        .expect("the app destroyed");
    let db_at = out
        .find("ecomm-pr1-db destroyed")
        .expect("the database destroyed");
    assert!(app_at < db_at, "dependants first: {out}");
    assert!(w.with_prefix("ecomm-pr1-").is_empty());
    assert!(w.cloud("ecomm-pr1-app.json").is_none());
    assert!(w.cloud("ecomm-pr1-db.json").is_none());
    assert!(text(&w.preview(&["list"])).contains("No previews."));
    let gone = w.preview(&["down", "pr1", "--yes"]);
    assert_eq!(gone.status.code(), Some(2), "{}", text(&gone));
    assert!(
        text(&gone).contains("no preview named pr1"),
        "{}",
        text(&gone)
    );
}

#[test]
fn a_shared_producer_outlives_the_previews_on_it_and_names_are_checked() {
    let w = World::example();
    assert!(w.apply().status.success());
    let up = w.preview(&["up", "pr2", "--project", "ecomm", "--yes"]);
    assert!(up.status.success(), "{}", text(&up));

    // The branch drops si's staging cluster and moves its own users off it; the preview
    // still runs on it, so it is not destroyed.
    w.edit(
        "projects/si/environments/staging.yaml",
        "    params: {region: us-east-1, cidr: 10.10.0.0/16}\n",
        "    params: {region: us-east-1, cidr: 10.10.0.0/16}\n  eks:\n    enabled: false\n",
    );
    for (file, from, to) in [
        (
            "projects/api/environments/staging.yaml",
            "      cluster: si-staging-eks.cluster   # a remote reference for one slot, in this environment only\n",
            "      cluster: si-produs-eks.cluster\n",
        ),
        (
            "projects/billing/environments/staging.yaml",
            "  kubernetes-cluster: si-staging-eks.cluster\n",
            "  kubernetes-cluster: si-produs-eks.cluster\n",
        ),
    ] {
        w.edit(file, from, to);
    }
    let ecomm = "projects/ecomm/environments/staging.yaml";
    w.edit(ecomm, "  kubernetes-cluster: si-staging-eks.cluster\n", "");
    w.edit(
        ecomm,
        "      cluster: si-staging-eks.cluster\n",
        "      cluster: si-produs-eks.cluster\n",
    );
    std::fs::write(
        w.repo.join("projects/si/project.yaml"),
        std::fs::read_to_string(w.repo.join("projects/si/project.yaml"))
            .unwrap()
            .replace(
                "    environments: [produs, prodeu]\n    to: {tier: [production]}\n",
                "    to: \"*\"\n",
            ),
    )
    .unwrap();
    w.commit("si's staging cluster goes");
    let validate = std::process::Command::new(assert_cmd::cargo::cargo_bin("capstan"))
        .args(["validate", "--repo"])
        .arg(&w.repo)
        .output()
        .unwrap();
    assert!(validate.status.success(), "{}", text(&validate));
    let apply = w.apply();
    assert_eq!(apply.status.code(), Some(1), "{}", text(&apply));
    assert!(
        text(&apply)
            .contains("si-staging-eks destroy skipped: ecomm-pr2-app still uses its artifacts"),
        "{}",
        text(&apply)
    );
    assert!(
        w.deployed()
            .contains_key(&InstanceId("si-staging-eks".into()))
    );

    // Once the preview is down, the next deploy of the branch destroys it.
    assert!(
        w.preview(&["down", "pr2", "--project", "ecomm", "--yes"])
            .status
            .success()
    );
    let apply = w.apply();
    assert!(apply.status.success(), "{}", text(&apply));
    assert!(
        !w.deployed()
            .contains_key(&InstanceId("si-staging-eks".into()))
    );

    // A preview cannot take an environment's name, nor exist without a preview: block.
    let staging = w.preview(&["up", "staging", "--project", "ecomm", "--yes"]);
    assert_eq!(staging.status.code(), Some(2));
    assert!(
        text(&staging).contains("cannot name a preview"),
        "{}",
        text(&staging)
    );
    let none = w.preview(&["up", "pr3", "--project", "si", "--yes"]);
    assert_eq!(none.status.code(), Some(2));
    assert!(
        text(&none).contains("project si has no preview: block"),
        "{}",
        text(&none)
    );
}

#[test]
fn a_project_runs_at_most_max_previews() {
    let w = World::example();
    w.edit("projects/ecomm/project.yaml", "max: 3", "max: 1");
    w.commit("one preview at a time");
    assert!(w.apply().status.success());
    assert!(
        w.preview(&["up", "pr4", "--project", "ecomm", "--yes"])
            .status
            .success()
    );
    let second = w.preview(&["up", "pr5", "--project", "ecomm", "--yes"]);
    assert_eq!(second.status.code(), Some(2), "{}", text(&second));
    assert!(
        text(&second)
            .contains("project ecomm has 1 live previews (pr4), as many as its preview max allows"),
        "{}",
        text(&second)
    );
    assert!(w.with_prefix("ecomm-pr5-").is_empty());
}
