//! Deploying the synthetic repository: what capstan adds to the bundles' own `deploy.sh`,
//! and what PostgreSQL and replicas change. Every instance is created, `parallel` at once:
//!
//! - `directly`: each instance's `deploy.sh` run by this program in a folder of its own,
//!   with its params, `parallel` at once, wave by wave (no capstan at all);
//! - `capstan apply` on SQLite, and on PostgreSQL (a server started for the run, fsync on);
//! - `capstan serve` replicas on PostgreSQL, 1 and 3 of them, timed from their start to
//!   the start-up deploy's `capstan/deploy` success on the branch's commit.
//!
//! Shape from `CAPSTAN_BENCH_SHAPE` (this benchmark's default 50,4,10: 2,000 instances).
//! Without `--bench` (as `cargo test --all-targets` runs it) the shape is always 3,2,4 and
//! the replicas are 1 and 2. See BENCHMARKS.md.

mod common;

#[allow(dead_code)]
#[path = "../tests/it/support.rs"]
mod support;

#[allow(dead_code)]
#[path = "../tests/it/github/fake.rs"]
mod fake;
#[allow(dead_code)]
#[path = "../tests/it/github/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "../tests/it/github/openapi.rs"]
mod openapi;
#[allow(dead_code, unused_imports)]
#[path = "../tests/it/github/webhooks.rs"]
mod webhooks;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use capstan::state::test_server::PgServer;
use capstan::synth::Shape;
use common::synthetic;
use fake::FakeGitHub;
use harness::{Daemon, OWNER, Options, REPO, Remote, TOKEN, write_config};

const PARALLEL: usize = 4;

/// Runs every instance's `deploy.sh` of the repository at `repo` without capstan: wave by
/// wave, `PARALLEL` at once, each in a folder of its own with its params and no
/// connection data (the scripts only copy it). Returns the time taken.
fn directly(repo: &Path, scratch: &Path) -> Duration {
    let checked = capstan::core::check(&capstan::source::read(repo, None).expect("reads"));
    assert!(!checked.has_errors());
    let started = Instant::now();
    for wave in &checked.resolved.waves {
        for chunk in wave.chunks(PARALLEL) {
            let children: Vec<_> = chunk
                .iter()
                .map(|id| {
                    let instance = &checked.resolved.instances[id];
                    let dir = scratch.join("direct").join(id.as_str());
                    std::fs::create_dir_all(&dir).unwrap();
                    std::fs::write(
                        dir.join("params.json"),
                        serde_json::to_string_pretty(&*instance.params).unwrap(),
                    )
                    .unwrap();
                    std::fs::write(dir.join("connections.json"), "{}\n").unwrap();
                    let script = repo
                        .join("bundles")
                        .join(instance.bundle.as_str())
                        .join("src/deploy.sh");
                    Command::new("sh")
                        .arg(script)
                        .current_dir(&dir)
                        .env("CAPSTAN_INSTANCE", id.as_str())
                        .env("CAPSTAN_ARTIFACTS", dir.join("artifacts.json"))
                        .env("CAPSTAN_CLOUD_DIR", scratch.join("direct-cloud"))
                        .stdout(std::process::Stdio::null())
                        .spawn()
                        .expect("sh runs")
                })
                .collect();
            for mut child in children {
                assert!(child.wait().unwrap().success());
            }
        }
    }
    started.elapsed()
}

/// `capstan apply --yes` of the repository's HEAD against `state`, timed.
fn apply(repo: &Path, state: &str, scratch: &Path) -> Duration {
    let started = Instant::now();
    let out = Command::new(assert_cmd::cargo::cargo_bin("capstan"))
        .args([
            "apply",
            "--yes",
            "--parallel",
            &PARALLEL.to_string(),
            "--repo",
        ])
        .arg(repo)
        .args(["--state", state])
        .env(
            "CAPSTAN_CLOUD_DIR",
            scratch.join(format!("cloud-{}", state.len())),
        )
        .env("NO_COLOR", "1")
        .output()
        .expect("capstan runs");
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

/// `replicas` replicas of `capstan serve` on a new database of `server`, timed from their
/// start to the start-up deploy's success on the branch's commit.
fn replicas(remote: &Remote, server: &PgServer, replicas: usize) -> Duration {
    let fake = FakeGitHub::start(OWNER, REPO, TOKEN);
    let url = server.create_database().unwrap_or_else(|e| panic!("{e}"));
    let head = remote.head();
    let started = Instant::now();
    let daemons: Vec<Daemon> = (0..replicas)
        .map(|i| {
            let state: &'static str =
                Box::leak(format!("state-{replicas}-{i}").into_boxed_str());
            let extra: &'static str = Box::leak(
                format!(
                    "state: {url}\ndeploy: {{enabled: true, parallel: {PARALLEL}}}\npreviews: {{enabled: false}}\n"
                )
                .into_boxed_str(),
            );
            let config = write_config(
                remote,
                &fake,
                &Options {
                    state,
                    extra,
                    ..Options::default()
                },
            );
            let own = remote.path(&format!("capstan-{replicas}-{i}.yaml"));
            std::fs::rename(config, &own).unwrap();
            let cloud = remote.path(&format!("cloud-{replicas}"));
            Daemon::start_with(&own, &[("CAPSTAN_CLOUD_DIR", cloud.to_str().unwrap())])
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let status = fake.latest_statuses(&head).get("capstan/deploy").cloned();
        match status {
            Some((state, text)) if state == "success" => {
                eprintln!("  {replicas} replicas: {text}");
                break;
            }
            Some((state, text)) if state == "failure" || state == "error" => {
                panic!("the deploy failed: {text}\n{}", daemons[0].logs())
            }
            _ => {}
        }
        assert!(Instant::now() < deadline, "no deploy within an hour");
        std::thread::sleep(Duration::from_millis(100));
    }
    started.elapsed()
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    // Run as a test, it deploys 24 instances whatever the shape asked of the others.
    let shape = match std::env::var("CAPSTAN_BENCH_SHAPE") {
        _ if !bench => Shape {
            projects: 3,
            environments: 2,
            packages: 4,
        },
        Ok(_) => Shape::from_env(),
        Err(_) => Shape {
            projects: 50,
            environments: 4,
            packages: 10,
        },
    };
    let remote = Remote::new_with(synthetic(shape));
    let repo = remote.work();
    let scratch: PathBuf = remote.path("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let server = PgServer::start(true).unwrap_or_else(|e| panic!("{e}"));
    println!(
        "deploying {} instances ({} projects x {} environments x {} packages), {PARALLEL} at once",
        shape.instances(),
        shape.projects,
        shape.environments,
        shape.packages
    );
    let secs = |d: Duration| d.as_secs_f64();
    let direct = directly(&repo, &scratch);
    println!("deploy.sh run directly: {:.1} s", secs(direct));
    let sqlite = apply(
        &repo,
        scratch.join("sqlite/state.db").to_str().unwrap(),
        &scratch,
    );
    println!("capstan apply, SQLite: {:.1} s", secs(sqlite));
    let url = server.create_database().unwrap_or_else(|e| panic!("{e}"));
    let postgres = apply(&repo, &url, &scratch);
    println!("capstan apply, PostgreSQL: {:.1} s", secs(postgres));
    let counts: &[usize] = if bench { &[1, 3] } else { &[1, 2] };
    for &n in counts {
        let took = replicas(&remote, &server, n);
        println!(
            "capstan serve, PostgreSQL, {n} replica{}: start to deployed {:.1} s",
            if n == 1 { "" } else { "s" },
            secs(took)
        );
    }
}
