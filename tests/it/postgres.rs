//! The state in PostgreSQL (docs/replicas.md), on a real server the tests start in a
//! temporary folder: an installation moved from SQLite redeploys nothing, and two
//! machines on one database take turns deploying.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Output, Stdio};

use capstan::core::model::InstanceId;
use capstan::state::test_server::PgServer;
use capstan::state::{Location, Store};

use crate::deploy::{World, capstan, text};

/// A new database on this process's server: (its address, the server kept running).
pub fn database() -> (String, std::sync::Arc<PgServer>) {
    let server = PgServer::shared().unwrap_or_else(|e| panic!("{e}"));
    let url = server.create_database().unwrap_or_else(|e| panic!("{e}"));
    (url, server)
}

pub fn open(url: &str) -> Store {
    Store::open_at(&Location::parse(url).expect("an address")).expect("the store opens")
}

/// `capstan state migrate` of `w`'s SQLite state into the database at `url`.
pub fn migrate(w: &World, url: &str) -> Output {
    capstan(&w.repo)
        .args(["state", "migrate", "--repo"])
        .arg(&w.repo)
        .arg("--from")
        .arg(w.db())
        .args(["--to", url])
        .output()
        .expect("capstan runs")
}

/// `capstan apply --yes` of the checkout at `dir` against the database at `url`.
pub fn apply(dir: &Path, url: &str) -> Output {
    capstan(dir)
        .args(["apply", "--yes", "--state", url])
        .env_remove("TF_CLI_CONFIG_FILE")
        .output()
        .expect("capstan runs")
}

/// Artifact `field` of `instance` as recorded in the database at `url`.
pub fn artifact(url: &str, instance: &str, field: &str) -> serde_json::Value {
    open(url).deployed().expect("the state reads")[&InstanceId(instance.into())].artifacts[field]
        .clone()
}

fn digests(store: &Store) -> BTreeMap<String, (String, String)> {
    store
        .deployed()
        .expect("the state reads")
        .into_values()
        .map(|d| {
            (
                d.instance.as_str().to_string(),
                (d.digest, d.status.name().to_string()),
            )
        })
        .collect()
}

#[test]
fn moving_to_postgres_redeploys_nothing() {
    let (url, _server) = database();
    let w = World::example();
    assert!(w.apply().status.success());
    let before = digests(&w.store());
    assert_eq!(before.len(), 14);

    let moved = migrate(&w, &url);
    let said = text(&moved);
    assert!(moved.status.success(), "{said}");
    assert!(said.contains("14 instances with their digests"), "{said}");
    assert!(said.contains("postgres://capstan@127.0.0.1:"), "{said}");
    assert_eq!(digests(&open(&url)), before);

    // The next apply against PostgreSQL finds nothing to do, and both stores list alike.
    let again = apply(&w.repo, &url);
    assert!(
        text(&again).contains("No changes; 14 instances unchanged."),
        "{}",
        text(&again)
    );
    let list = |state: &str| {
        let out = capstan(&w.repo)
            .args(["state", "list", "--format", "json", "--repo"])
            .arg(&w.repo)
            .args(["--state", state])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(rows.as_array().map(Vec::len), Some(14));
        rows
    };
    assert_eq!(list(&url), list(w.db().to_str().unwrap()));

    // A second migration into the filled database is refused and changes nothing.
    let twice = migrate(&w, &url);
    assert!(!twice.status.success());
    assert!(text(&twice).contains("must be empty"), "{}", text(&twice));
    assert_eq!(digests(&open(&url)), before);
}

/// Two machines (two state folders, one database): while one deploys, the other is
/// refused and told who holds the lock; when the first dies mid-step, the second takes
/// over, finds the interrupted step, and runs it again.
#[test]
fn two_machines_on_one_database_take_turns() {
    let (url, _server) = database();
    let w = World::example();
    let cloud = w.scratch("cloud");
    for name in ["a", "b"] {
        let cloned = std::process::Command::new("git")
            .args(["clone", "--quiet"])
            .arg(&w.repo)
            .arg(w.scratch("machines").join(name))
            .status()
            .unwrap();
        assert!(cloned.success());
    }
    // Each machine has its own checkout (and so its own `.capstan` folder of logs and
    // working folders); the cloud the example's bundles stand in for is one.
    let machine = |name: &str| {
        let checkout = w.scratch("machines").join(name);
        let mut cmd = capstan(&checkout);
        cmd.args(["apply", "--yes", "--state", &url])
            .env("CAPSTAN_CLOUD_DIR", &cloud);
        cmd
    };
    let mut first = machine("a")
        .env("CAPSTAN_TEST_PAUSE", "step-started:si-staging-vpc")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = String::new();
    for line in BufReader::new(first.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        seen.push_str(&line);
        if line.contains("paused at") {
            break;
        }
    }
    assert!(seen.contains("paused at"), "never paused: {seen}");

    let refused = machine("b").output().unwrap();
    assert!(!refused.status.success());
    let said = text(&refused);
    assert!(
        said.contains("capstan apply pid ") && said.contains("holds the deploy lock"),
        "{said}"
    );

    first.kill().unwrap();
    first.wait().unwrap();
    let second = machine("b").output().unwrap();
    let said = text(&second);
    assert!(second.status.success(), "{said}");
    assert!(said.contains("a previous deploy was interrupted"), "{said}");
    let store = open(&url);
    assert_eq!(store.deployed().unwrap().len(), 14);
    assert!(
        store
            .deployed()
            .unwrap()
            .values()
            .all(|d| d.status.name() == "deployed")
    );
}
