//! Deploying for real (docs/deploying.md): the built binary runs `capstan apply` on real
//! git repositories in temp dirs; the example's `exec` bundles simulate the cloud under
//! the state directory. After each run the state database is opened again and checked.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use capstan::core::deployed::{Deployed, Status};
use capstan::core::model::InstanceId;
use capstan::core::run::{RunStatus, StepStatus};
use capstan::state::Store;

use crate::support::{commit_all, copy_dir, example_repo, git_init};

/// A copy of the example in its own git repository, and a state directory beside it.
pub struct World {
    _dir: tempfile::TempDir,
    pub repo: PathBuf,
    pub state: PathBuf,
}

impl World {
    /// The example repository, without its deploy windows so that the tests do not depend
    /// on the date they run on (windows have their own test).
    pub fn example() -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("repo");
        copy_dir(&example_repo(), &repo);
        std::fs::write(repo.join("capstan.yaml"), "owners: [\"@acme/platform\"]\n").unwrap();
        git_init(&repo);
        commit_all(&repo, "the example");
        World {
            state: dir.path().join("state"),
            repo,
            _dir: dir,
        }
    }

    /// A repository of the given files (path, text), committed, and a state directory
    /// beside it.
    pub fn with_files(files: &[(&str, &str)]) -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("repo");
        for (path, text) in files {
            let p = repo.join(path);
            std::fs::create_dir_all(p.parent().expect("a folder")).expect("mkdir");
            std::fs::write(p, text).expect("write");
        }
        git_init(&repo);
        commit_all(&repo, "the repository");
        World {
            state: dir.path().join("state"),
            repo,
            _dir: dir,
        }
    }

    /// A folder beside the repository and the state, removed with them.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let dir = self.state.parent().expect("a parent").join(name);
        std::fs::create_dir_all(&dir).expect("mkdir");
        dir
    }

    pub fn db(&self) -> PathBuf {
        self.state.join("state.db")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("capstan"));
        cmd.args(args)
            .arg("--state")
            .arg(self.db())
            .env_remove("CAPSTAN_TEST_PAUSE")
            .env("NO_COLOR", "1");
        cmd
    }

    /// `capstan apply --yes` of HEAD.
    pub fn apply(&self) -> Output {
        let out = self
            .command(&["apply", "--yes"])
            .arg("--repo")
            .arg(&self.repo)
            .output()
            .expect("capstan runs");
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("panicked"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// The state, read by opening the database afresh.
    pub fn deployed(&self) -> BTreeMap<InstanceId, Deployed> {
        Store::open(&self.db())
            .expect("state opens")
            .deployed()
            .expect("state reads")
    }

    pub fn store(&self) -> Store {
        Store::open(&self.db()).expect("state opens")
    }

    pub fn edit(&self, path: &str, from: &str, to: &str) {
        let file = self.repo.join(path);
        let text = std::fs::read_to_string(&file).expect("read");
        assert!(text.contains(from), "{path} has no {from:?}");
        std::fs::write(&file, text.replacen(from, to, 1)).expect("write");
    }

    pub fn commit(&self, message: &str) {
        commit_all(&self.repo, message);
    }

    pub fn cloud(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.state.join("cloud").join(name)).ok()
    }

    /// Every log written so far, concatenated.
    pub fn logs(&self) -> String {
        let mut all = String::new();
        let Ok(runs) = std::fs::read_dir(self.state.join("logs")) else {
            return all;
        };
        for run in runs.flatten() {
            for log in std::fs::read_dir(run.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                all.push_str(&std::fs::read_to_string(log.path()).unwrap_or_default());
            }
        }
        all
    }

    /// (instance, action, status) of every step of the latest run, in order.
    pub fn last_run_steps(&self) -> Vec<(String, String, String)> {
        let store = self.store();
        let run = store.runs(1).expect("runs")[0].id;
        store
            .steps_in(run)
            .expect("steps")
            .into_iter()
            .map(|s| (s.instance, s.action.to_string(), s.status.to_string()))
            .collect()
    }
}

/// The binary run in `dir`, with no `--state`: the defaults as a user meets them.
pub fn capstan(dir: &Path) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("capstan"));
    cmd.current_dir(dir)
        .env_remove("CAPSTAN_TEST_PAUSE")
        .env_remove("CAPSTAN_LOG")
        .env("NO_COLOR", "1");
    cmd
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ran(steps: &[(String, String, String)], action: &str) -> Vec<String> {
    steps
        .iter()
        .filter(|(_, a, s)| a == action && s == "succeeded")
        .map(|(i, _, _)| i.clone())
        .collect()
}

const ALL: usize = 14;

#[test]
fn the_whole_example_deploys_and_artifacts_flow_across_projects() {
    let w = World::example();
    let out = w.apply();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("14 deployed, 0 destroyed; 0 unchanged"),
        "{}",
        text(&out)
    );
    let state = w.deployed();
    assert_eq!(state.len(), ALL);
    assert!(
        state
            .values()
            .all(|d| d.status == Status::Deployed && !d.digest.is_empty())
    );

    // si's staging cluster reaches ecomm, api and billing through environment defaults.
    let cluster = &state[&InstanceId("si-staging-eks".into())].artifacts["cluster"];
    for app in [
        "ecomm-staging-app",
        "api-staging-app",
        "billing-staging-app",
    ] {
        let input = &state[&InstanceId(app.into())].inputs.connections["cluster"];
        assert_eq!(input.source, "si-staging-eks.cluster");
        assert_eq!(input.data.as_ref(), Some(cluster), "{app}");
    }
    // The peering joins the two production VPCs of si by their generated ids, each in the
    // role the project wires it to: requester us (si-produs), accepter eu (si-prodeu).
    let vpc = |i: &str| state[&InstanceId(i.into())].artifacts["network"]["id"].clone();
    let peering = &state[&InstanceId("peering-production-link".into())].artifacts["peering"];
    assert_eq!(peering["requester"], vpc("si-produs-vpc"), "{peering}");
    assert_eq!(peering["accepter"], vpc("si-prodeu-vpc"), "{peering}");
    assert_ne!(peering["requester"], peering["accepter"]);
    assert!(vpc("si-produs-vpc").as_str().unwrap().starts_with("vpc-"));
    // The simulated cloud holds what the state says.
    let db = w.cloud("ecomm-staging-db.id").expect("the database exists");
    assert_eq!(
        state[&InstanceId("ecomm-staging-db".into())].artifacts["database"]["hostname"],
        format!("{}.cluster.local", db.trim())
    );
    assert!(
        w.cloud("ecomm-staging-app.json")
            .unwrap()
            .contains(cluster["endpoint"].as_str().unwrap())
    );

    // Secrets: the generated password is in the state (for consumers) but in no output or log.
    let password = state[&InstanceId("ecomm-staging-db".into())].artifacts["database"]["password"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!text(&out).contains(&password));
    assert!(!w.logs().contains(&password), "a log shows the password");
    assert!(w.logs().contains("(password [redacted])"));
    let show = w
        .command(&["state", "show", "ecomm-staging-app"])
        .output()
        .unwrap();
    assert!(show.status.success());
    assert!(!text(&show).contains(&password));
    assert!(
        text(&show).contains("\"password\": \"(sensitive)\""),
        "{}",
        text(&show)
    );
    let list = w.command(&["state", "list"]).output().unwrap();
    assert_eq!(
        text(&list)
            .lines()
            .filter(|l| l.contains(" deployed "))
            .count(),
        ALL,
        "{}",
        text(&list)
    );

    // Nothing changed: nothing runs.
    let again = w.apply();
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        text(&again).contains("No changes; 14 instances unchanged."),
        "{}",
        text(&again)
    );
    assert_eq!(w.store().runs(10).unwrap().len(), 1);
    assert_eq!(w.deployed(), state);
}

#[test]
fn a_change_deploys_only_what_changed_in_wave_order() {
    let w = World::example();
    assert!(w.apply().status.success());
    let before = w.deployed();

    // A new CIDR changes the VPC's artifact, so what is on it (the cluster, and ecomm's
    // database through its environment default) deploys again, after it; the cluster's own
    // artifact does not change, so the apps on it stay as they are.
    w.edit(
        "projects/si/environments/staging.yaml",
        "10.10.0.0/16",
        "10.11.0.0/16",
    );
    w.commit("a new staging CIDR");
    let plan = w
        .command(&["plan"])
        .arg("--repo")
        .arg(&w.repo)
        .output()
        .unwrap();
    let plan = text(&plan);
    assert!(
        plan.contains("Plan: 0 to create, 1 to update, 0 to destroy"),
        "{plan}"
    );
    assert!(plan.contains("params.cidr changed"), "{plan}");

    let out = w.apply();
    assert!(out.status.success(), "{}", text(&out));
    let steps = w.last_run_steps();
    let deployed = ran(&steps, "deploy");
    assert_eq!(deployed.len(), 3, "{steps:?}");
    assert_eq!(
        deployed[0], "si-staging-vpc",
        "the producer first: {steps:?}"
    );
    let rest: BTreeSet<&str> = deployed[1..].iter().map(String::as_str).collect();
    assert_eq!(rest, BTreeSet::from(["ecomm-staging-db", "si-staging-eks"]));
    let after = w.deployed();
    let vpc = &after[&InstanceId("si-staging-vpc".into())];
    assert_eq!(vpc.artifacts["network"]["cidr"], "10.11.0.0/16");
    // The id was generated once and kept.
    assert_eq!(
        vpc.artifacts["network"]["id"],
        before[&InstanceId("si-staging-vpc".into())].artifacts["network"]["id"]
    );
    assert_eq!(
        after[&InstanceId("si-staging-eks".into())]
            .inputs
            .connections["network"]
            .data,
        Some(vpc.artifacts["network"].clone())
    );
    for (id, d) in &after {
        if !["si-staging-vpc", "si-staging-eks", "ecomm-staging-db"].contains(&id.as_str()) {
            assert_eq!(Some(d), before.get(id), "{id} was not to change");
        }
    }
}

#[test]
fn a_failing_step_skips_only_its_dependants_and_the_next_apply_heals() {
    let w = World::example();
    // The database bundle fails; the peering writes an artifact its type does not allow.
    w.edit(
        "bundles/aws-aurora-postgresql/src/deploy.sh",
        "set -eu\n",
        "set -eu\n[ -e \"$CAPSTAN_STATE_DIR/fixed\" ] || { echo 'quota exceeded' >&2; exit 3; }\n",
    );
    w.edit(
        "bundles/aws-vpc-peering/src/deploy.sh",
        "accepter=$(vpc_of accepter)",
        "accepter=$(vpc_of accepter)\n[ -e \"$CAPSTAN_STATE_DIR/fixed\" ] || { echo '{\"peering\": {\"id\": \"x\"}}' > \"$CAPSTAN_ARTIFACTS\"; exit 0; }",
    );
    w.commit("flaky bundles");
    let out = w.apply();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = text(&out);
    assert!(
        report.contains("11 deployed, 0 destroyed, 2 failed, 1 skipped"),
        "{report}"
    );
    assert!(
        report.contains("ecomm-staging-db deploy failed"),
        "{report}"
    );
    assert!(report.contains("exited with status 3"), "{report}");
    assert!(
        report.contains("ecomm-staging-app deploy skipped: it takes artifacts from ecomm-staging-db, which failed"),
        "{report}"
    );
    assert!(
        report.contains(
            "artifact peering does not match type aws-vpc-peering: missing field requester"
        ),
        "{report}"
    );
    let state = w.deployed();
    assert_eq!(
        state[&InstanceId("ecomm-staging-db".into())].status,
        Status::Failed
    );
    assert_eq!(
        state[&InstanceId("peering-production-link".into())].status,
        Status::Failed
    );
    assert!(!state.contains_key(&InstanceId("ecomm-staging-app".into())));
    assert!(w.logs().contains("quota exceeded"));

    std::fs::write(w.state.join("fixed"), "").unwrap();
    let healed = w.apply();
    assert!(healed.status.success(), "{}", text(&healed));
    let mut redeployed = ran(&w.last_run_steps(), "deploy");
    redeployed.sort();
    assert_eq!(
        redeployed,
        [
            "ecomm-staging-app",
            "ecomm-staging-db",
            "peering-production-link"
        ]
    );
    assert!(w.deployed().values().all(|d| d.status == Status::Deployed));
}

#[test]
fn removing_a_package_destroys_it_after_its_consumers_moved_away() {
    let w = World::example();
    assert!(w.apply().status.success());
    assert!(w.cloud("ecomm-staging-db.json").is_some());
    // ecomm drops its database: the package, its wiring, and the environments' settings.
    let project = "projects/ecomm/project.yaml";
    w.edit(
        project,
        "  db:\n    bundle: aws-aurora-postgresql\n    params: {engine_version: \"16\"}\n",
        "",
    );
    w.edit(project, "      database: db.database\n", "");
    w.edit(project, "      database: db.database\n", "");
    let prod = "projects/ecomm/environments/production.yaml";
    let text_of = |p: &str| std::fs::read_to_string(w.repo.join(p)).unwrap();
    let start = text_of(prod).find("  db:\n").unwrap();
    let end = text_of(prod).find("  cluster:\n").unwrap();
    let block = text_of(prod)[start..end].to_string();
    w.edit(prod, &block, "");
    w.edit(
        "projects/ecomm/environments/staging.yaml",
        "  db:\n    params: {instance_class: db.t4g.small}\n",
        "",
    );
    w.edit(
        project,
        "  packages:\n    db:\n      params: {instance_class: db.t4g.micro, backup_retention_days: 1}\n",
        "",
    );
    w.commit("ecomm drops its database");

    let out = w.apply();
    assert!(out.status.success(), "{}", text(&out));
    let steps = w.last_run_steps();
    let app = steps
        .iter()
        .position(|(i, a, _)| i == "ecomm-staging-app" && a == "deploy")
        .expect("the app moves away first");
    let db = steps
        .iter()
        .position(|(i, a, _)| i == "ecomm-staging-db" && a == "destroy")
        .expect("the database is destroyed");
    assert!(app < db, "{steps:?}");
    let state = w.deployed();
    assert!(!state.contains_key(&InstanceId("ecomm-staging-db".into())));
    assert!(
        !state[&InstanceId("ecomm-staging-app".into())]
            .inputs
            .connections
            .contains_key("database")
    );
    assert_eq!(state.len(), ALL - 1);
    assert!(
        w.cloud("ecomm-staging-db.json").is_none(),
        "the database is gone"
    );
    assert!(w.cloud("ecomm-staging-db.password").is_none());
}

#[test]
fn a_destroy_waits_while_a_consumer_still_uses_the_instance() {
    let w = World::example();
    assert!(w.apply().status.success());
    // The database goes, but the app's move away from it fails: the database must stay.
    w.edit(
        "projects/ecomm/environments/staging.yaml",
        "  db:\n    params: {instance_class: db.t4g.small}\n",
        "  db:\n    remote:\n      database: {data: {hostname: legacy.internal, port: 5432, username: app}}\n",
    );
    w.edit(
        "bundles/container-app/src/deploy.sh",
        "set -eu\n",
        "set -eu\n[ \"$CAPSTAN_INSTANCE\" != ecomm-staging-app ] || exit 1\n",
    );
    w.commit("db becomes an import; app deploys break");
    let out = w.apply();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(
            "ecomm-staging-db destroy skipped: ecomm-staging-app still uses its artifacts"
        ),
        "{}",
        text(&out)
    );
    assert!(w.cloud("ecomm-staging-db.json").is_some());
    assert_eq!(
        w.deployed()[&InstanceId("ecomm-staging-db".into())].status,
        Status::Deployed
    );
}

/// Where a deploy is killed, and what the test waits for before killing it.
enum KillAt {
    /// Recorded as running, before the provisioner starts.
    StepStarted(&'static str),
    /// The provisioner has finished; nothing is recorded yet.
    StepFinished(&'static str),
    /// While the provisioner runs (it waits for the kill).
    DuringStep(&'static str),
}

fn killed_run(w: &World, at: &KillAt) {
    let mut cmd = w.command(&["apply", "--yes", "--parallel", "2"]);
    cmd.arg("--repo")
        .arg(&w.repo)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let marker = w.state.join("slow-started");
    match at {
        KillAt::StepStarted(i) => {
            cmd.env("CAPSTAN_TEST_PAUSE", format!("step-started:{i}"));
        }
        KillAt::StepFinished(i) => {
            cmd.env("CAPSTAN_TEST_PAUSE", format!("step-finished:{i}"));
        }
        KillAt::DuringStep(_) => {}
    }
    let mut child = cmd.spawn().expect("capstan starts");
    match at {
        KillAt::StepStarted(_) | KillAt::StepFinished(_) => {
            let stderr = BufReader::new(child.stderr.take().unwrap());
            let mut seen = String::new();
            for line in stderr.lines() {
                let line = line.unwrap();
                seen.push_str(&line);
                seen.push('\n');
                if line.contains("paused at") {
                    break;
                }
            }
            assert!(seen.contains("paused at"), "never paused: {seen}");
        }
        KillAt::DuringStep(_) => {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while !marker.exists() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the slow step never started"
                );
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    if let KillAt::DuringStep(_) = at {
        // The step's process group outlives capstan (as it would without systemd's
        // cgroup); end it like the service manager would.
        let pid = std::fs::read_to_string(&marker).unwrap();
        let _ = Command::new("kill")
            .args(["-9", "--", &format!("-{}", pid.trim())])
            .status();
    }
}

fn survive(at: KillAt) {
    let w = World::example();
    if let KillAt::DuringStep(instance) = at {
        // The step waits (once) to be killed; it writes its process group first.
        w.edit(
            "bundles/aws-eks-cluster/src/deploy.sh",
            "set -eu\n",
            &format!(
                "set -eu\nif [ \"$CAPSTAN_INSTANCE\" = {instance} ] && [ ! -e \"$CAPSTAN_STATE_DIR/slow-started\" ]; then\n  cut -d' ' -f5 /proc/$$/stat > \"$CAPSTAN_STATE_DIR/slow-started.tmp\"; mv \"$CAPSTAN_STATE_DIR/slow-started.tmp\" \"$CAPSTAN_STATE_DIR/slow-started\"; sleep 60\nfi\n"
            ),
        );
        w.commit("a slow cluster");
    }
    killed_run(&w, &at);

    // The database as the crash left it, opened afresh.
    let left = w.deployed();
    let finished: BTreeMap<InstanceId, Deployed> = left
        .iter()
        .filter(|(_, d)| d.status == Status::Deployed)
        .map(|(i, d)| (i.clone(), d.clone()))
        .collect();
    let victim = match at {
        KillAt::StepStarted(i) | KillAt::StepFinished(i) | KillAt::DuringStep(i) => i,
    };
    assert_eq!(
        left[&InstanceId(victim.into())].status,
        Status::Deploying,
        "the killed step's instance is recorded as deploying"
    );
    let runs = w.store().runs(10).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, RunStatus::Running);

    let out = w.apply();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("a previous deploy was interrupted"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains(victim));
    let state = w.deployed();
    assert_eq!(
        state.len(),
        ALL,
        "one row per instance, none lost or doubled"
    );
    assert!(state.values().all(|d| d.status == Status::Deployed));
    // Exactly what was not finished ran again; the finished kept their artifacts.
    let mut again = ran(&w.last_run_steps(), "deploy");
    again.sort();
    let expected: Vec<String> = state
        .keys()
        .filter(|i| !finished.contains_key(*i))
        .map(|i| i.to_string())
        .collect();
    assert_eq!(again, expected);
    for (id, d) in &finished {
        assert_eq!(state[id].artifacts, d.artifacts, "{id} kept its artifacts");
    }
    let store = w.store();
    let runs = store.runs(10).unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[1].status, RunStatus::Interrupted);
    let interrupted: Vec<String> = store
        .steps_in(runs[1].id)
        .unwrap()
        .into_iter()
        .filter(|s| s.status == StepStatus::Interrupted)
        .map(|s| s.instance)
        .collect();
    assert!(interrupted.contains(&victim.to_string()), "{interrupted:?}");
    // The simulated cloud agrees: the id the step made before the crash was kept.
    let id = w.cloud(&format!("{victim}.id"));
    if let (Some(id), Some(art)) = (
        id,
        state[&InstanceId(victim.into())].artifacts.values().next(),
    ) {
        let shown = serde_json::to_string(art).unwrap();
        assert!(shown.contains(id.trim()), "{shown} lacks {id}");
    }
    // A further apply has nothing to do.
    let quiet = w.apply();
    assert!(text(&quiet).contains("No changes"), "{}", text(&quiet));
}

#[test]
fn killed_after_a_step_was_recorded_as_started() {
    survive(KillAt::StepStarted("ecomm-staging-db"));
}

#[test]
fn killed_between_a_steps_end_and_its_recording() {
    survive(KillAt::StepFinished("si-staging-eks"));
}

#[test]
fn killed_during_a_step() {
    survive(KillAt::DuringStep("si-produs-eks"));
}

#[test]
fn killed_in_the_first_wave() {
    survive(KillAt::StepFinished("si-staging-vpc"));
}

#[test]
fn a_deploy_window_holds_production_back_and_says_until_when() {
    let w = World::example();
    // Deny every minute for two minutes: always in force, for production only.
    std::fs::write(
        w.repo.join("capstan.yaml"),
        "owners: [\"@acme/platform\"]\ndeploy_windows:\n  - name: change-freeze\n    action: deny\n    cron: \"* * * * *\"\n    duration: 2m\n    environments: {tier: [production]}\n",
    )
    .unwrap();
    w.commit("a freeze");
    let out = w.apply();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = text(&out);
    assert!(
        report.contains("si-produs-vpc deploy waiting: change-freeze is in force"),
        "{report}"
    );
    assert!(
        report.contains("peering-production-link deploy waiting: it takes artifacts from"),
        "{report}"
    );
    let state = w.deployed();
    assert!(state.contains_key(&InstanceId("si-staging-eks".into())));
    assert!(
        !state.keys().any(|i| i.as_str().contains("-prod")),
        "{:?}",
        state.keys()
    );
}

#[test]
fn plan_against_the_state_and_state_commands_without_a_database() {
    let w = World::example();
    // A named database that is not there is a mistake, said so, not an empty state.
    let plan = w
        .command(&["plan"])
        .arg("--repo")
        .arg(&w.repo)
        .output()
        .unwrap();
    assert_eq!(plan.status.code(), Some(2), "{}", text(&plan));
    assert!(
        text(&plan).contains(&format!(
            "no state database at {}; name the database `capstan apply` uses (by default .capstan/state.db in --repo), or pass --empty-state to plan against nothing deployed",
            w.db().display()
        )),
        "{}",
        text(&plan)
    );
    let empty = capstan(&w.repo)
        .args(["plan", "--empty-state"])
        .output()
        .unwrap();
    assert!(empty.status.success(), "{}", text(&empty));
    assert!(
        text(&empty).contains("Plan: 14 to create"),
        "{}",
        text(&empty)
    );
    assert!(!w.db().exists(), "planning creates no database");
    assert!(
        !w.repo.join(".capstan").exists(),
        "planning creates no state folder"
    );
    let list = w.command(&["state", "list"]).output().unwrap();
    assert_eq!(list.status.code(), Some(2));
    assert!(
        text(&list).contains("no state database at"),
        "{}",
        text(&list)
    );
    assert!(w.apply().status.success());
    let missing = w.command(&["state", "show", "nope-x-y"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing).contains("nope-x-y is not in the state database"));
    assert!(
        !text(&missing).contains("did you mean"),
        "{}",
        text(&missing)
    );
    let typo = w
        .command(&["state", "show", "ecomm-staging-ap"])
        .output()
        .unwrap();
    assert_eq!(typo.status.code(), Some(2));
    assert!(
        text(&typo).contains("(did you mean `ecomm-staging-app`?) (14 instances recorded;"),
        "{}",
        text(&typo)
    );
    let json = w
        .command(&["state", "show", "si-staging-vpc", "--format", "json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["status"], "deployed");
    assert_eq!(v["steps"][0]["status"], "succeeded");
    assert!(Path::new(v["steps"][0]["log"].as_str().unwrap()).exists());
}

#[test]
fn apply_refuses_without_a_terminal_or_yes() {
    let w = World::example();
    let out = w
        .command(&["apply"])
        .arg("--repo")
        .arg(&w.repo)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("pass --yes"));
    assert!(w.deployed().is_empty());
}

/// A fake `tofu`/`terraform`: records each call (arguments, the files in its folder and
/// the tfvars it was given) and answers `output -json` like the real one.
const FAKE_TF: &str = r#"#!/bin/sh
set -eu
name=$(basename "$0")
{
  echo "$name $*"
  ls | sort | sed 's/^/  file /'
} >> "$FAKE_TF_RECORD"
case "$1" in
  init)
    cp _params.auto.tfvars.json "$FAKE_TF_RECORD.$name.params"
    cp _connections.auto.tfvars.json "$FAKE_TF_RECORD.$name.connections"
    [ ! -e _capstan_backend.tf ] || cp _capstan_backend.tf "$FAKE_TF_RECORD.$name.backend"
    echo "Initializing the backend..." ;;
  apply)
    if [ -n "${FAKE_TF_LOCKED:-}" ]; then
      echo "Error: Error acquiring the state lock" >&2
      echo "Lock Info: ID: 6ba7b810-9dad-11d1-80b4-00c04fd430c8" >&2
      exit 1
    fi
    echo "Apply complete! Resources: 1 added, 0 changed, 0 destroyed." ;;
  output)
    printf '{"bucket": {"sensitive": false, "type": "object", "value": {"name": "b-%s", "key": "s3cr3t-key"}}, "extra": {"sensitive": false, "type": "string", "value": "not an artifact"}}\n' "$name" ;;
  destroy) echo "Destroy complete! Resources: 1 destroyed." ;;
  *) echo "unexpected $*" >&2; exit 1 ;;
esac
"#;

/// Two buckets deployed by a fake `tofu` and `terraform` (`FAKE_TF`), which record every
/// call in `record`. Returns the world, the PATH that finds them, and the record file.
fn fake_tf_world() -> (World, String, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let w = World::with_files(&[
        ("capstan.yaml", "owners: [\"@acme/platform\"]\n"),
        (
            "artifact-types/bucket.yaml",
            "schema:\n  type: object\n  required: [name]\n  properties:\n    name: {type: string}\n    key: {type: string, sensitive: true}\n",
        ),
        (
            "bundles/tf-bucket/bundle.yaml",
            "version: 1.0.0\nparams:\n  type: object\n  properties:\n    size: {type: integer, default: 5}\nconnections:\n  properties:\n    peer: {$ref: bucket}\nartifacts:\n  required: [bucket]\n  properties:\n    bucket: {$ref: bucket}\nsteps:\n  - path: tofu\n    provisioner: opentofu\n  - path: terraform\n    provisioner: terraform\n",
        ),
        ("bundles/tf-bucket/tofu/main.tf", "output \"bucket\" {}\n"),
        (
            "bundles/tf-bucket/terraform/main.tf",
            "output \"bucket\" {}\n",
        ),
        (
            "projects/data/project.yaml",
            "owners: [\"@acme/data\"]\npackages:\n  first:\n    bundle: tf-bucket\n  second:\n    bundle: tf-bucket\n    params: {size: 7}\n    connections:\n      peer: first.bucket\n",
        ),
        (
            "projects/data/environments/dev.yaml",
            "attributes: {tier: dev}\n",
        ),
    ]);
    let bin = w.scratch("bin");
    for name in ["tofu", "terraform"] {
        std::fs::write(bin.join(name), FAKE_TF).unwrap();
        std::fs::set_permissions(bin.join(name), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let record = w.state.parent().unwrap().join("record");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    (w, path, record)
}

#[test]
fn opentofu_and_terraform_steps_run_init_apply_output_and_destroy() {
    let (w, path, record) = fake_tf_world();
    let apply = || {
        let out = w
            .command(&["apply", "--yes"])
            .arg("--repo")
            .arg(&w.repo)
            .env("PATH", &path)
            .env("FAKE_TF_RECORD", &record)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        out
    };
    let out = apply();
    let calls = std::fs::read_to_string(&record).unwrap();
    let commands: Vec<&str> = calls.lines().filter(|l| !l.starts_with("  ")).collect();
    assert_eq!(
        commands,
        [
            "tofu init -input=false -no-color",
            "tofu apply -auto-approve -input=false -no-color -lock-timeout=300s",
            "tofu output -json",
            "terraform init -input=false -no-color",
            "terraform apply -auto-approve -input=false -no-color -lock-timeout=300s",
            "terraform output -json",
        ]
        .repeat(2),
        "{calls}"
    );
    for file in [
        "_params.auto.tfvars.json",
        "_connections.auto.tfvars.json",
        "_capstan_backend.tf",
        "main.tf",
        "params.json",
        "connections.json",
        "metadata.json",
    ] {
        assert!(
            calls.contains(&format!("  file {file}\n")),
            "{file} missing: {calls}"
        );
    }
    // The second bucket got its params and the first one's artifact as a connection.
    let params: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{}.tofu.params", record.display())).unwrap(),
    )
    .unwrap();
    assert_eq!(params, serde_json::json!({"size": 7}));
    let connections: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{}.tofu.connections", record.display())).unwrap(),
    )
    .unwrap();
    assert_eq!(connections["peer"]["name"], "b-terraform");
    let backend =
        std::fs::read_to_string(format!("{}.terraform.backend", record.display())).unwrap();
    assert!(backend.contains("backend \"local\""), "{backend}");
    assert!(
        backend.contains("tfstate/data-dev-second/step-2.tfstate"),
        "{backend}"
    );

    let state = w.deployed();
    let bucket = &state[&InstanceId("data-dev-first".into())].artifacts;
    assert_eq!(
        bucket.len(),
        1,
        "only declared outputs are artifacts: {bucket:?}"
    );
    assert_eq!(bucket["bucket"]["name"], "b-terraform");
    assert!(!text(&out).contains("s3cr3t-key"), "{}", text(&out));
    assert!(!w.logs().contains("s3cr3t-key"));
    assert!(w.logs().contains("Apply complete!"));

    // Removing the second package destroys it: init then destroy, steps in reverse order.
    std::fs::write(&record, "").unwrap();
    let project = w.repo.join("projects/data/project.yaml");
    let text_now = std::fs::read_to_string(&project).unwrap();
    let cut = text_now.find("  second:").unwrap();
    std::fs::write(&project, &text_now[..cut]).unwrap();
    w.commit("one bucket is enough");
    apply();
    let calls = std::fs::read_to_string(&record).unwrap();
    let commands: Vec<&str> = calls.lines().filter(|l| !l.starts_with("  ")).collect();
    assert_eq!(
        commands,
        [
            "terraform init -input=false -no-color",
            "terraform destroy -auto-approve -input=false -no-color -lock-timeout=300s",
            "tofu init -input=false -no-color",
            "tofu destroy -auto-approve -input=false -no-color -lock-timeout=300s",
        ],
        "{calls}"
    );
    assert_eq!(w.deployed().len(), 1);
}

#[test]
fn a_held_state_lock_is_reported_plainly() {
    let (w, path, record) = fake_tf_world();
    let out = w
        .command(&["apply", "--yes"])
        .arg("--repo")
        .arg(&w.repo)
        .env("PATH", &path)
        .env("FAKE_TF_RECORD", &record)
        .env("FAKE_TF_LOCKED", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let step = &w.store().steps_of("data-dev-first", 1).unwrap()[0];
    assert_eq!(
        step.message,
        "`tofu apply -auto-approve -input=false -no-color -lock-timeout=300s` could not take the state lock of data-dev-first: another tofu holds it (one a killed capstan left running finishes on its own, then the lock is free); deploy again once it has ended"
    );
    assert!(
        text(&out).contains("could not take the state lock"),
        "{}",
        text(&out)
    );
}

/// The example with the database's deploy script made to stop after it printed its new
/// password: it waits while `<state>/hold` exists, and fails when `<state>/fail` does.
fn example_with_a_pausing_database() -> World {
    let w = World::example();
    let script = w.repo.join("bundles/aws-aurora-postgresql/src/deploy.sh");
    let mut text = std::fs::read_to_string(&script).unwrap();
    text.push_str("while [ -e \"$CAPSTAN_STATE_DIR/hold\" ]; do sleep 0.05; done\n[ ! -e \"$CAPSTAN_STATE_DIR/fail\" ] || exit 1\n");
    std::fs::write(&script, text).unwrap();
    w.commit("a database that can be held");
    w
}

/// Every file below `dir`.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(files_in(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_kill_during_a_step_leaves_no_work_folder_and_no_secret_behind() {
    let w = example_with_a_pausing_database();
    std::fs::create_dir_all(&w.state).unwrap();
    let hold = w.state.join("hold");
    std::fs::write(&hold, "").unwrap();
    let mut child = w
        .command(&["apply", "--yes", "--parallel", "2"])
        .arg("--repo")
        .arg(&w.repo)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let log = w.state.join("logs/run-1/ecomm-staging-db.deploy.log");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !std::fs::read_to_string(&log).is_ok_and(|l| l.contains("is up for ecomm-staging-db")) {
        assert!(
            std::time::Instant::now() < deadline,
            "the database step never printed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    std::fs::remove_file(&hold).unwrap();
    let password = w
        .cloud("ecomm-staging-db.password")
        .expect("the step made a password");
    assert!(
        w.state.join("work/run-1-ecomm-staging-db").exists(),
        "the killed step's folder is there before recovery"
    );

    let out = w.apply();
    assert!(out.status.success(), "{}", text(&out));
    let left: Vec<_> = std::fs::read_dir(w.state.join("work")).unwrap().collect();
    assert!(
        left.is_empty(),
        "recovery removes every work folder: {left:?}"
    );
    for file in files_in(&w.state.join("logs")) {
        let content = std::fs::read_to_string(&file).unwrap();
        assert!(
            !content.contains(password.trim()),
            "{} keeps the password",
            file.display()
        );
    }
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("(password [redacted])"),
        "the killed step's log is scrubbed"
    );
    // Only the owner may read what holds secrets.
    assert_eq!(mode(&w.db()), 0o600, "state.db");
    assert_eq!(mode(&w.state.join("work")), 0o700, "work");
    assert_eq!(mode(&w.state.join("logs")), 0o700, "logs");
    for file in files_in(&w.state.join("logs")) {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
        assert_eq!(mode(file.parent().unwrap()), 0o700, "{}", file.display());
    }
}

#[test]
fn a_failing_step_never_leaves_its_new_secret_in_the_log() {
    let w = example_with_a_pausing_database();
    std::fs::create_dir_all(&w.state).unwrap();
    std::fs::write(w.state.join("fail"), "").unwrap();
    let out = w.apply();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let password = w
        .cloud("ecomm-staging-db.password")
        .expect("the step made a password");
    let log =
        std::fs::read_to_string(w.state.join("logs/run-1/ecomm-staging-db.deploy.log")).unwrap();
    assert!(log.contains("exited with status 1"), "{log}");
    assert!(log.contains("(password [redacted])"), "{log}");
    assert!(!log.contains(password.trim()), "{log}");
}

/// The synthetic repositories of the benchmarks deploy: their bundles' scripts keep the run
/// bit they have in `example-repo` (`100755` in git), so `apply` runs every instance.
#[test]
fn a_synthetic_repository_keeps_its_scripts_runnable_and_deploys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("repo");
    let base = capstan::source::read_dir(&example_repo()).expect("example-repo reads");
    let shape = capstan::synth::Shape {
        projects: 3,
        environments: 1,
        packages: 3,
    };
    capstan::synth::write_git(&repo, &base, shape, capstan::synth::BENCH_CHANGE)
        .expect("synthetic repository");
    let tree = Command::new("git")
        .args(["ls-tree", "-r", "HEAD", "bundles/aws-vpc/src/deploy.sh"])
        .current_dir(&repo)
        .output()
        .expect("git runs");
    assert!(
        String::from_utf8_lossy(&tree.stdout).starts_with("100755 "),
        "{}",
        String::from_utf8_lossy(&tree.stdout)
    );
    let w = World {
        state: dir.path().join("state"),
        repo,
        _dir: dir,
    };
    let out = w.apply();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("9 deployed, 0 destroyed; 0 unchanged"),
        "{}",
        text(&out)
    );
}
