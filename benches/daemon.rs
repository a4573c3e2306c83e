//! The daemon's plan latency end to end: the built `capstan serve` beside a bare git remote
//! holding a synthetic monorepo, the fake GitHub of the end-to-end tests, real signed
//! webhook payloads. Measured from the moment a webhook is delivered to the moment the fake
//! GitHub receives the comment's PATCH (or, for the branch push, until every open pull
//! request is planned again):
//!
//! - `cold`: the first plan of a pull request (nothing checked yet);
//! - `one-file push`: a new head of the same pull request, one environment file changed;
//! - `50 PRs after a branch push`: the branch moves, every open pull request is planned again.
//!
//! Shape from `CAPSTAN_BENCH_SHAPE=PROJECTS,ENVIRONMENTS,PACKAGES` (default 1000,4,10:
//! 40,000 instances). `CAPSTAN_BENCH_STATE=postgres` keeps the state in a PostgreSQL server
//! started for the run (fsync on), so every event and job goes through the durable queue. Without `--bench` (as `cargo test --all-targets` runs it) it does
//! each step once, with 3 pull requests instead of 50. See BENCHMARKS.md.

mod common;

#[allow(dead_code)]
#[path = "../tests/it/support.rs"]
mod support;

// The end-to-end tests' harness and fake GitHub, as they are (siblings there, so here too).
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

use std::path::Path;
use std::time::{Duration, Instant};

use capstan::synth::Shape;
use common::synthetic;
use fake::FakeGitHub;
use harness::{Daemon, OWNER, Options, REPO, Remote, SECRET, TOKEN, payload, write_config};

/// Project `p`'s first environment with app memory `memory`: a one-file change.
fn memory(p: usize, memory: u32) -> impl FnOnce(&Path) {
    move |work: &Path| {
        let path = work.join(format!("projects/p{p}/environments/e0.yaml"));
        let text = std::fs::read_to_string(&path).expect("reads");
        let line = text
            .lines()
            .find(|l| l.contains("memory:"))
            .expect("an app memory line")
            .to_string();
        std::fs::write(
            &path,
            text.replace(&line, &format!("    params: {{memory: {memory}}}")),
        )
        .expect("writes");
    }
}

/// Milliseconds from `since` to the first request after it matching `method` and `path`.
fn first_after(fake: &FakeGitHub, since: Instant, method: &str, path: &str) -> Option<f64> {
    fake.requests()
        .iter()
        .filter(|r| r.at > since && r.method == method && r.path.contains(path))
        .map(|r| (r.at - since).as_secs_f64() * 1000.0)
        .reduce(f64::min)
}

fn wait(what: &str, daemon: &Daemon, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "timed out waiting for {what}:\n{}",
            daemon.logs()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Plans the daemon has finished, from its metrics.
fn plans_done(daemon: &Daemon) -> u64 {
    let (_, metrics) = daemon.get("/metrics");
    metrics
        .lines()
        .filter(|l| l.starts_with("capstan_plans_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let shape = Shape::from_env();
    let (pushes, pulls) = if bench { (10, 50) } else { (1, 3) };

    let remote = Remote::new_with(synthetic(shape));
    let fake = FakeGitHub::start(OWNER, REPO, TOKEN);
    let postgres = std::env::var("CAPSTAN_BENCH_STATE").is_ok_and(|s| s == "postgres");
    let server = postgres.then(|| {
        capstan::state::test_server::PgServer::start(true).unwrap_or_else(|e| panic!("{e}"))
    });
    let state = match &server {
        Some(server) => {
            let url = server.create_database().unwrap_or_else(|e| panic!("{e}"));
            format!("state: {url}\n")
        }
        None => String::new(),
    };
    let extra: &'static str = Box::leak(
        format!("deploy: {{enabled: false}}\npreviews: {{enabled: false}}\n{state}")
            .into_boxed_str(),
    );
    let options = Options {
        extra,
        ..Options::default()
    };
    let daemon = Daemon::start(&write_config(&remote, &fake, &options));
    println!(
        "capstan serve on {}, {} instances ({} projects x {} environments x {} packages)",
        if postgres { "PostgreSQL" } else { "SQLite" },
        shape.instances(),
        shape.projects,
        shape.environments,
        shape.packages
    );

    // Cold: the first plan checks the merge base and the head.
    let head = remote.push_pull(1, memory(0, 1536));
    fake.open_pull(1, &head, "master", "Codertocat");
    let since = Instant::now();
    assert_eq!(daemon.pull_event("opened", 1), 202);
    wait("the first comment", &daemon, || {
        first_after(&fake, since, "POST", "/issues/1/comments").is_some()
    });
    let cold = first_after(&fake, since, "POST", "/issues/1/comments").unwrap_or_default();
    println!("cold: webhook -> comment posted: {cold:.0} ms");
    daemon.wait_for_statuses(&fake, &head);

    // One-file pushes to the same pull request.
    let mut latencies = Vec::new();
    for i in 0..pushes {
        let head = remote.push_pull(1, memory(i % shape.projects, 2048 + 64 * i as u32));
        fake.set_head(1, &head);
        let since = Instant::now();
        assert_eq!(
            daemon.deliver(
                "pull_request",
                &payload("pull_request", Some("synchronize"), 1),
                Some(SECRET)
            ),
            202
        );
        wait("the comment's edit", &daemon, || {
            first_after(&fake, since, "PATCH", "/issues/comments/").is_some()
        });
        latencies.push(first_after(&fake, since, "PATCH", "/issues/comments/").unwrap_or_default());
        daemon.wait_for_statuses(&fake, &head);
    }
    println!(
        "one-file push: webhook -> comment PATCH: median {:.0} ms, min {:.0}, max {:.0} ({} pushes)",
        median(latencies.clone()),
        latencies.iter().copied().fold(f64::INFINITY, f64::min),
        latencies.iter().copied().fold(0.0, f64::max),
        latencies.len()
    );

    // More open pull requests, each changing one file.
    for n in 2..=pulls as u64 {
        let head = remote.push_pull(n, memory(n as usize % shape.projects, 3072));
        fake.open_pull(n, &head, "master", "Codertocat");
        assert_eq!(daemon.pull_event("opened", n), 202);
        daemon.wait_for_statuses(&fake, &head);
    }

    // The branch moves: every open pull request is planned again.
    let work = remote.work();
    memory(shape.projects - 1, 4096)(&work);
    support::git(&work, &["commit", "-q", "-am", "branch change"]);
    support::git(&work, &["push", "-q", "origin", "master"]);
    let before = plans_done(&daemon);
    let since = Instant::now();
    let push = webhooks::examples("push")
        .into_iter()
        .find(|v| v["ref"] == "refs/heads/master")
        .expect("a push to master");
    let push = serde_json::to_vec(&push).expect("JSON");
    assert_eq!(daemon.deliver("push", &push, Some(SECRET)), 202);
    wait("every pull request planned again", &daemon, || {
        plans_done(&daemon) >= before + pulls as u64
    });
    println!(
        "{pulls} open pull requests after a branch push: webhook -> all planned again: {:.0} ms",
        since.elapsed().as_secs_f64() * 1000.0
    );
    // Idle: what it holds now, against its peak and the cache's own estimate.
    std::thread::sleep(Duration::from_secs(if bench { 5 } else { 1 }));
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", daemon.child.id())).unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or_default()
    };
    let (_, metrics) = daemon.get("/metrics");
    let cache = metrics
        .lines()
        .find(|l| l.starts_with("capstan_plan_cache_bytes "))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or_default();
    println!(
        "idle: RSS {} MiB (peak {} MiB); plan cache estimate {:.0} MiB",
        kib("VmRSS:") / 1024,
        kib("VmHWM:") / 1024,
        cache / 1048576.0
    );
    if std::env::var_os("CAPSTAN_BENCH_LOG").is_some() {
        println!("{}", daemon.logs());
    }
    fake.assert_no_violations();
    drop(daemon);
}
