//! Several `capstan serve` replicas on one PostgreSQL (docs/replicas.md), against the fake
//! GitHub, on loopback: the roles, and the chaos test, in which replicas are killed with
//! SIGKILL at random moments of a sequence of pull requests, pushes, comments and merges,
//! and restarted, and nothing may be lost, done twice, or done at once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::fake::FakeGitHub;
use super::harness::{Daemon, OWNER, Options, REPO, Remote, SECRET, TOKEN, payload, write_config};
use super::webhooks;
use crate::support::git;

/// One replica: its configuration, and its process while it runs.
struct Replica {
    name: &'static str,
    config: PathBuf,
    daemon: Option<Daemon>,
}

impl Replica {
    fn new(
        remote: &Remote,
        fake: &FakeGitHub,
        url: &str,
        name: &'static str,
        role: &str,
    ) -> Replica {
        let extra: &'static str =
            Box::leak(format!("state: {url}\nrole: {role}\n").into_boxed_str());
        let state: &'static str = Box::leak(format!("state-{name}").into_boxed_str());
        let written = write_config(
            remote,
            fake,
            &Options {
                state,
                extra,
                ..Options::default()
            },
        );
        let config = remote.path(&format!("capstan-{name}.yaml"));
        std::fs::rename(written, &config).unwrap();
        Replica {
            name,
            config,
            daemon: None,
        }
    }

    /// Starts it. The example's bundles stand in for one cloud, so every replica is given
    /// the same folder for it.
    fn start(&mut self) {
        let cloud = self.config.parent().unwrap().join("cloud");
        let cloud = cloud.to_str().unwrap().to_string();
        self.daemon = Some(Daemon::start_with(
            &self.config,
            &[("CAPSTAN_CLOUD_DIR", cloud.as_str())],
        ));
    }

    fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("running")
    }

    /// Whether `/readyz` says this replica leads.
    fn leads(&self) -> bool {
        self.daemon
            .as_ref()
            .is_some_and(|d| d.get("/readyz").1.contains("leader: yes"))
    }

    /// The id its job worker registered under, from its log.
    fn worker_id(&self) -> Option<String> {
        let daemon = self.daemon.as_ref()?;
        daemon
            .logs
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["fields"]["message"] == "taking jobs")
            .and_then(|v| v["fields"]["worker"].as_str().map(str::to_string))
    }
}

fn deploy_status(fake: &FakeGitHub, sha: &str) -> (String, String) {
    fake.latest_statuses(sha)
        .get("capstan/deploy")
        .cloned()
        .unwrap_or_default()
}

/// Waits up to `limit` for `done`, failing with `what` and every replica's log.
fn wait(replicas: &[Replica], limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > limit {
            let logs: Vec<String> = replicas
                .iter()
                .filter_map(|r| {
                    r.daemon
                        .as_ref()
                        .map(|d| format!("── {}:\n{}", r.name, d.logs()))
                })
                .collect();
            panic!("timed out waiting for {what}\n{}", logs.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_web_replica_queues_and_a_worker_replica_works() {
    let (url, _server) = crate::postgres::database();
    let remote = Remote::new();
    let fake = FakeGitHub::start(OWNER, REPO, TOKEN);
    let mut web = Replica::new(&remote, &fake, &url, "web", "web");
    let mut worker = Replica::new(&remote, &fake, &url, "worker", "worker");
    web.start();
    worker.start();
    let first = remote.head();
    let both = [web, worker];
    wait(
        &both,
        Duration::from_secs(120),
        "the start-up deploy",
        || deploy_status(&fake, &first).0 == "success",
    );
    let [web, worker] = both;
    assert_eq!(
        web.daemon().get("/readyz").1,
        "ready\nrole: web\nleader: no\n"
    );
    assert_eq!(
        worker.daemon().get("/readyz").1,
        "ready\nrole: worker\nleader: yes\n"
    );
    let metrics = worker.daemon().get("/metrics").1;
    assert!(metrics.contains("capstan_leader 1"), "{metrics}");
    assert!(
        metrics.contains("capstan_role{role=\"worker\"} 1"),
        "{metrics}"
    );
    assert_eq!(
        worker.daemon().pull_event("opened", 2),
        404,
        "a worker takes no webhooks"
    );

    let head = remote.push_pull(2, super::harness::vpc_change);
    fake.open_pull(2, &head, "master", "Codertocat");
    assert_eq!(web.daemon().pull_event("opened", 2), 202);
    worker.daemon().wait_for_statuses(&fake, &head);
    assert_eq!(fake.capstan_comments(2).len(), 1);
    let worked = worker.daemon().logs();
    assert!(worked.contains("\"pr\":2"), "the worker planned it");
    assert!(
        !web.daemon().logs().contains("taking jobs"),
        "the web replica runs no jobs"
    );
    fake.assert_no_violations();
}

/// A small deterministic generator, seeded from the clock (the seed is printed, and
/// `CAPSTAN_CHAOS_SEED` replays a run).
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let seed = std::env::var("CAPSTAN_CHAOS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("chaos: seed {seed} (CAPSTAN_CHAOS_SEED={seed} replays it)");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A kill and how long its work took to be taken over.
struct Kill {
    replica: &'static str,
    at: Instant,
    was_leader: bool,
    /// Jobs the killed replica held, by id.
    held: Vec<String>,
    /// From the kill until another replica led (if it led).
    leader_after: Option<Duration>,
    /// From the kill until none of its jobs was held by it any more.
    jobs_after: Option<Duration>,
}

/// Sets the `memory:` of the api app to `memory` (MiB) in the work tree `dir`.
fn set_memory(dir: &Path, memory: u32) {
    let file = dir.join("projects/api/project.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let text = match text.find("memory: ") {
        Some(at) => {
            let at = at + "memory: ".len();
            let end = at + text[at..].find('}').unwrap();
            format!("{}{memory}{}", &text[..at], &text[end..])
        }
        None => text.replacen("cpu: 512}", &format!("cpu: 512, memory: {memory}}}"), 1),
    };
    std::fs::write(&file, text).unwrap();
}

/// Sets the api image tag to `4.<minor>`.
fn set_image(dir: &Path, minor: u32) {
    let file = dir.join("projects/api/project.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let at = text.find("ghcr.io/acme/api:").expect("an image") + "ghcr.io/acme/api:".len();
    let end = at + text[at..].find(',').unwrap();
    std::fs::write(&file, format!("{}4.{minor}{}", &text[..at], &text[end..])).unwrap();
}

struct Chaos {
    replicas: Vec<Replica>,
    rng: Rng,
    kills: Vec<Kill>,
    server: std::sync::Arc<capstan::state::test_server::PgServer>,
    url: String,
    /// Deliveries answered 2xx, by kind.
    accepted: BTreeMap<&'static str, usize>,
}

impl Chaos {
    /// Delivers a webhook to a running replica chosen at random; it must be accepted.
    fn deliver(&mut self, kind: &'static str, event: &str, body: &[u8]) {
        let running: Vec<usize> = (0..self.replicas.len())
            .filter(|i| self.replicas[*i].daemon.is_some())
            .collect();
        let pick = running[self.rng.below(running.len() as u64) as usize];
        let status = self.replicas[pick]
            .daemon()
            .deliver(event, body, Some(SECRET));
        assert_eq!(status, 202, "{kind} to {}", self.replicas[pick].name);
        *self.accepted.entry(kind).or_default() += 1;
    }

    /// Now and then, after a random pause, SIGKILLs a running replica (never the last
    /// one running) and starts it again, as systemd would.
    fn maybe_kill(&mut self, chance_in_4: u64) {
        if self.rng.below(4) >= chance_in_4 {
            return;
        }
        std::thread::sleep(Duration::from_millis(self.rng.below(1500)));
        let running: Vec<usize> = (0..self.replicas.len())
            .filter(|i| self.replicas[*i].daemon.is_some())
            .collect();
        if running.len() < 2 {
            return;
        }
        let victim = running[self.rng.below(running.len() as u64) as usize];
        let replica = &mut self.replicas[victim];
        let was_leader = replica.leads();
        let held = match replica.worker_id() {
            Some(id) => self
                .server
                .psql(
                    &self.url,
                    &format!(
                        "SELECT id FROM graphile_worker._private_jobs WHERE locked_by = '{id}'"
                    ),
                )
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .filter(|l| !l.is_empty())
                .collect(),
            None => Vec::new(),
        };
        let worker = replica.worker_id();
        let mut daemon = replica.daemon.take().unwrap();
        daemon.child.kill().unwrap();
        daemon.child.wait().unwrap();
        let at = Instant::now();
        eprintln!(
            "chaos: killed {} (leader: {was_leader}, holding jobs {held:?})",
            replica.name
        );
        drop(daemon);
        let mut kill = Kill {
            replica: replica.name,
            at,
            was_leader,
            held: held.clone(),
            leader_after: None,
            jobs_after: None,
        };
        // Restarted after a moment; its old worker's leases run out on their own.
        std::thread::sleep(Duration::from_millis(self.rng.below(3000)));
        self.replicas[victim].start();
        self.measure(&mut kill, worker.as_deref());
        self.kills.push(kill);
    }

    /// Waits (bounded) until another replica leads, if the killed one did, and until the
    /// killed worker holds none of the jobs it held; records how long each took.
    fn measure(&mut self, kill: &mut Kill, worker: Option<&str>) {
        let limit = Duration::from_secs(90);
        if kill.was_leader {
            wait(&self.replicas, limit, "a new leader", || {
                self.replicas.iter().any(Replica::leads)
            });
            kill.leader_after = Some(kill.at.elapsed());
        }
        if let (Some(worker), false) = (worker, kill.held.is_empty()) {
            let ids = kill.held.join(",");
            let (server, url) = (self.server.clone(), self.url.clone());
            wait(
                &self.replicas,
                limit,
                "the killed replica's jobs taken back",
                || {
                    server
                    .psql(
                        &url,
                        &format!(
                            "SELECT count(*) FROM graphile_worker._private_jobs WHERE id IN ({ids}) AND locked_by = '{worker}'"
                        ),
                    )
                    .is_ok_and(|n| n.trim() == "0")
                },
            );
            kill.jobs_after = Some(kill.at.elapsed());
        }
    }
}

/// The proof of docs/replicas.md's promises (issue: a webhook answered 2xx is never
/// lost; each merge deploys exactly once, in order; a pull request keeps one comment with
/// its last head's plan; one instance's steps never run at once; every replica sees one
/// state), with the number of kills and the longest takeover printed.
#[test]
fn replicas_killed_at_random_lose_nothing_and_do_nothing_twice() {
    let began = Instant::now();
    let (url, server) = crate::postgres::database();
    // Rollouts take two seconds, so that kills land in the middle of deploys too.
    let remote = Remote::new_with(|work| {
        let path = work.join("bundles/container-app/src/deploy.sh");
        let text = std::fs::read_to_string(&path).unwrap();
        let rest = text.strip_prefix("#!/bin/sh\n").unwrap_or(&text);
        std::fs::write(&path, format!("#!/bin/sh\nsleep 2\n{rest}")).unwrap();
    });
    let fake = FakeGitHub::start(OWNER, REPO, TOKEN);
    let mut replicas: Vec<Replica> = ["a", "b", "c"]
        .into_iter()
        .map(|name| Replica::new(&remote, &fake, &url, name, "all"))
        .collect();
    for r in &mut replicas {
        r.start();
    }
    let mut chaos = Chaos {
        replicas,
        rng: Rng::seeded(),
        kills: Vec::new(),
        server,
        url: url.clone(),
        accepted: BTreeMap::new(),
    };
    let limit = Duration::from_secs(150);
    let first = remote.head();
    wait(&chaos.replicas, limit, "the start-up deploy", || {
        deploy_status(&fake, &first).0 == "success"
    });

    let work = remote.work();
    let mut merges = Vec::new();
    let mut last_heads = BTreeMap::new();
    for round in 1..=4u32 {
        let n = u64::from(100 + round);
        // Opened, then pushed to again: the plan of the second head is the one that counts.
        let head = remote.push_pull(n, |dir| set_image(dir, 10 + round));
        fake.open_pull(n, &head, "master", "Codertocat");
        chaos.deliver(
            "pull_request",
            "pull_request",
            &payload("pull_request", Some("opened"), n),
        );
        chaos.maybe_kill(2);
        let head = remote.push_pull(n, |dir| set_memory(dir, 512 + round));
        fake.set_head(n, &head);
        chaos.deliver(
            "pull_request",
            "pull_request",
            &payload("pull_request", Some("synchronize"), n),
        );
        // A comment asking for a plan again.
        let mut comment = webhooks::example("issue_comment", Some("created"));
        comment["issue"]["number"] = n.into();
        comment["issue"]["pull_request"] = serde_json::json!({"url": "https://api.github.com"});
        comment["comment"]["body"] = "capstan plan".into();
        chaos.deliver(
            "issue_comment",
            "issue_comment",
            &serde_json::to_vec(&comment).unwrap(),
        );
        chaos.maybe_kill(2);
        wait(&chaos.replicas, limit, "the plan of the last head", || {
            fake.latest_statuses(&head)
                .get("capstan/plan")
                .is_some_and(|p| p.0 != "pending")
        });
        last_heads.insert(n, head);

        // Merged, and the push arrives.
        git(
            &work,
            &[
                "merge",
                "-q",
                "--no-ff",
                &format!("change-{n}"),
                "-m",
                &format!("Merge pull request #{n}"),
            ],
        );
        git(&work, &["push", "-q", "origin", "master"]);
        let merge = remote.head();
        fake.merge_pull(n, &merge);
        let mut push = webhooks::example("push", None);
        push["ref"] = "refs/heads/master".into();
        push["after"] = merge.clone().into();
        chaos.deliver("push", "push", &serde_json::to_vec(&push).unwrap());
        chaos.maybe_kill(3);
        wait(&chaos.replicas, limit, "the merge's deploy", || {
            deploy_status(&fake, &merge).0 == "success"
        });
        merges.push(merge);
    }
    let store = crate::postgres::open(&url);

    // Every accepted webhook was acted on: each pull request's last head was planned and
    // each merge deployed (waited for above); each pull request has exactly one plan
    // comment, of its last head.
    for (n, head) in &last_heads {
        let plans: Vec<_> = fake
            .capstan_comments(*n)
            .into_iter()
            .filter(|c| !c.body.contains("capstan:deploy"))
            .collect();
        assert_eq!(plans.len(), 1, "pull request {n}: {plans:?}");
        assert_eq!(
            store.pull(*n).unwrap().and_then(|p| p.head).as_deref(),
            Some(head.as_str()),
            "pull request {n} was last planned at its last head"
        );
    }

    // Each merge deployed exactly once (one succeeded run of its commit), in order.
    let runs = store.runs(1000).unwrap();
    let succeeded: Vec<&str> = runs
        .iter()
        .rev()
        .filter(|r| r.status.name() == "succeeded" && merges.contains(&r.commit))
        .map(|r| r.commit.as_str())
        .collect();
    let wanted: Vec<&str> = merges.iter().map(String::as_str).collect();
    assert_eq!(succeeded, wanted, "each merge once, in order");

    // No instance's steps overlapped in time.
    let mut by_instance: BTreeMap<String, Vec<(i64, i64, i64)>> = BTreeMap::new();
    for run in &runs {
        for step in store.steps_in(run.id).unwrap() {
            if let Some(end) = step.finished_at {
                by_instance.entry(step.instance.clone()).or_default().push((
                    step.started_at.secs(),
                    end.secs(),
                    step.id,
                ));
            }
        }
    }
    for (instance, mut steps) in by_instance {
        steps.sort();
        for pair in steps.windows(2) {
            assert!(
                pair[1].0 >= pair[0].1,
                "{instance}: step {} started before step {} ended",
                pair[1].2,
                pair[0].2
            );
        }
    }

    // Every replica sees the same state, everything deployed.
    let lists: Vec<String> = chaos
        .replicas
        .iter()
        .map(|r| {
            let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("capstan"))
                .args([
                    "state", "list", "--format", "json", "--state", &url, "--repo",
                ])
                .arg(r.config.parent().unwrap().join(format!("state-{}", r.name)))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        })
        .collect();
    assert!(lists.windows(2).all(|w| w[0] == w[1]));
    let rows: serde_json::Value = serde_json::from_str(&lists[0]).unwrap();
    assert_eq!(rows.as_array().map(Vec::len), Some(14));
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "deployed"),
        "{rows}"
    );
    // Nothing is left in the queue that could still run, nor a task that failed. One kind of
    // row may stay: a job replaced by a newer one of its key while it ran (the queue marks
    // it spent) and then interrupted by a kill; the newer job did its work.
    let left = || {
        chaos
            .server
            .psql(
                &url,
                "SELECT id, key, attempts, max_attempts, locked_by, last_error, payload
                 FROM graphile_worker._private_jobs
                 WHERE NOT (key IS NULL AND attempts >= max_attempts AND locked_by IS NULL
                            AND payload->>'what' NOT LIKE 'event:%'
                            AND last_error = 'Job recovered after worker interruption')",
            )
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let start = Instant::now();
    while !left().trim().is_empty() && start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(left().trim(), "", "tasks left in the queue");
    let spent = chaos
        .server
        .psql(&url, "SELECT count(*) FROM graphile_worker._private_jobs")
        .unwrap_or_default();
    fake.assert_no_violations();

    let interrupted = runs
        .iter()
        .filter(|r| r.status.name() == "interrupted")
        .count();
    let longest_leader = chaos.kills.iter().filter_map(|k| k.leader_after).max();
    let longest_jobs = chaos.kills.iter().filter_map(|k| k.jobs_after).max();
    eprintln!(
        "chaos: {} kills ({} of the leader, {} holding jobs), {} runs interrupted, accepted {:?}, {} replaced jobs left spent; longest leader takeover {:?}, longest job takeover {:?}; {:?} in all",
        chaos.kills.len(),
        chaos.kills.iter().filter(|k| k.was_leader).count(),
        chaos.kills.iter().filter(|k| !k.held.is_empty()).count(),
        interrupted,
        chaos.accepted,
        spent.trim(),
        longest_leader,
        longest_jobs,
        began.elapsed()
    );
    for k in &chaos.kills {
        eprintln!(
            "chaos:   {} killed at +{:?}: leader {:?}, jobs {:?}",
            k.replica,
            k.at - began,
            k.leader_after,
            k.jobs_after
        );
    }
}
