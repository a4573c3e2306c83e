//! `capstan serve` outside GitHub: configuration checks, the systemd unit, and watching a
//! local checkout (the README's first run), all through the built binary.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{commit_all, copy_dir, example_repo, git_init, root};

pub(crate) fn capstan(dir: &Path) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("capstan"));
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("NO_COLOR", "1");
    cmd
}

fn output(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().expect("capstan runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_accepts_the_shipped_example_and_never_prints_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("github-token"), "ghp_secret_value_123\n").unwrap();
    std::fs::write(tmp.path().join("webhook-secret"), "hook_secret_value_456").unwrap();
    std::fs::write(tmp.path().join("plan-aws-key-id"), "AKIA_plan_key_id").unwrap();
    std::fs::write(tmp.path().join("plan-aws-secret"), "plan_secret_value_789").unwrap();
    let (code, stdout, stderr) = output(
        capstan(tmp.path())
            .args(["serve", "--check-config", "--config"])
            .arg(root().join("systemd/capstan.yaml"))
            .env("CREDENTIALS_DIRECTORY", tmp.path())
            .env("STATE_DIRECTORY", "/var/lib/capstan"),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("github:      acme/infra at https://api.github.com"),
        "{stdout}"
    );
    assert!(stdout.contains("state dir:   /var/lib/capstan"), "{stdout}");
    assert!(
        stdout.contains("schedule:    nightly-replan `0 3 * * *`"),
        "{stdout}"
    );
    // Provisioner plans' environment: names only.
    assert!(
        stdout.contains("provisioner plans: on, 2 at once, each at most 10m, environment: AWS_ACCESS_KEY_ID, AWS_REGION, AWS_SECRET_ACCESS_KEY and PATH (values not shown)"),
        "{stdout}"
    );
    for secret in [
        "ghp_secret_value_123",
        "hook_secret_value_456",
        "plan_secret_value_789",
        "AKIA_plan_key_id",
        "eu-west-1",
    ] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret}"
        );
    }
    // Flags and CAPSTAN_* variables win over the file.
    let (code, stdout, _) = output(
        capstan(tmp.path())
            .args([
                "serve",
                "--check-config",
                "--poll-interval",
                "30s",
                "--config",
            ])
            .arg(root().join("systemd/capstan.yaml"))
            .env("CREDENTIALS_DIRECTORY", tmp.path())
            .env("CAPSTAN_BRANCH", "release")
            .env("CAPSTAN_LISTEN", "0.0.0.0:9000"),
    );
    assert_eq!(code, 0);
    assert!(stdout.contains("branch:      release"), "{stdout}");
    assert!(stdout.contains("listen:      0.0.0.0:9000"), "{stdout}");
    assert!(stdout.contains("polling:     30s"), "{stdout}");
}

/// `capstan serve --check-config` on a configuration file written with `text`.
fn check_config(dir: &Path, text: &str) -> (i32, String) {
    let config = dir.join("capstan.yaml");
    std::fs::write(&config, text).unwrap();
    let (code, _, stderr) = output(
        capstan(dir)
            .args(["serve", "--check-config", "--config"])
            .arg(&config),
    );
    (code, stderr)
}

#[test]
fn check_config_reports_every_problem_at_its_place() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("capstan.yaml");
    std::fs::write(
        &config,
        "repository:\n  url: https://github.com/acme/infra.git\n  branchh: main\ngithub:\n  repository: acme/infra\n  token_file: token\n  poll_interval: often\nworkers: 0\n",
    )
    .unwrap();
    let (code, stdout, stderr) = output(
        capstan(tmp.path())
            .args(["serve", "--check-config", "--config"])
            .arg(&config),
    );
    assert_eq!(code, 2, "{stdout}{stderr}");
    let name = config.display().to_string();
    assert!(
        stderr.contains(&format!(
            "{name}:3:3: error[schema.invalid]: unknown key `branchh` in repository"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{name}:7:18: error[schema.invalid]: github.poll_interval"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{name}:8:10: error[schema.invalid]: workers")),
        "{stderr}"
    );

    // A secret file that is missing is named, and its would-be content never shown.
    let (code, stderr) = check_config(
        tmp.path(),
        "repository: {url: https://github.com/acme/infra.git}\ngithub: {repository: acme/infra, token_file: missing-token}\n",
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("the secret file missing-token (GitHub token) is in none of: "),
        "{stderr}"
    );

    // GitHub with a local path is refused with the reason.
    std::fs::write(tmp.path().join("token"), "t").unwrap();
    let (code, stderr) = check_config(
        tmp.path(),
        "repository: {path: .}\ngithub: {repository: acme/infra, token_file: token}\n",
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("repository.url is required"), "{stderr}");

    let (code, _, stderr) =
        output(capstan(tmp.path()).args(["serve", "--check-config", "--config", "nope.yaml"]));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("reading the configuration file nope.yaml"),
        "{stderr}"
    );
}

#[test]
fn the_systemd_units_verify() {
    for name in ["capstan.service", "capstan-worker.service"] {
        verify_unit(name);
    }
}

fn verify_unit(name: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(root().join("systemd").join(name)).unwrap();
    assert!(
        unit.contains("Type=notify")
            && unit.contains("StateDirectory=capstan")
            && unit.contains("LoadCredential=")
    );
    // verify checks that ExecStart exists: point it at the built binary.
    let bin = assert_cmd::cargo::cargo_bin("capstan");
    let path = tmp.path().join(name);
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/capstan", &bin.display().to_string()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze is installed (.ci/run installs systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify:\n{stderr}"
    );

    // The sandbox's rating (docs/security.md says why each finding left stays).
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&path)
        .output()
        .expect("systemd-analyze runs");
    let report = String::from_utf8_lossy(&out.stdout);
    let level: f64 = report
        .lines()
        .find_map(|l| l.split_once(&format!("Overall exposure level for {name}: ")))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{report}"));
    assert!(level <= 1.5, "exposure {level}:\n{report}");
}

/// `capstan serve` on a local checkout, its stdout collected.
pub(crate) struct Watching {
    child: std::process::Child,
    pub(crate) stdout: Arc<Mutex<String>>,
    pub(crate) stderr: Arc<Mutex<String>>,
}

impl Watching {
    pub(crate) fn start(cmd: &mut Command) -> Watching {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let collect = |stream: Box<dyn std::io::Read + Send>| {
            let sink = Arc::new(Mutex::new(String::new()));
            let s = sink.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut s = s.lock().unwrap();
                    s.push_str(&line);
                    s.push('\n');
                }
            });
            sink
        };
        let stdout = collect(Box::new(child.stdout.take().unwrap()));
        let stderr = collect(Box::new(child.stderr.take().unwrap()));
        Watching {
            child,
            stdout,
            stderr,
        }
    }

    pub(crate) fn wait_for(&self, what: &str, needle: &str, after: usize) -> usize {
        let start = Instant::now();
        loop {
            let out = self.stdout.lock().unwrap().clone();
            if let Some(i) = out[after.min(out.len())..].find(needle) {
                return after + i + needle.len();
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "timed out waiting for {what}:\nstdout:\n{out}\nstderr:\n{}",
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, sig: &str) {
        assert!(
            Command::new("kill")
                .args([sig, &self.child.id().to_string()])
                .status()
                .unwrap()
                .success()
        );
    }

    fn wait_stderr(&self, needle: &str) {
        let start = Instant::now();
        while !self.stderr.lock().unwrap().contains(needle) {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no {needle:?} in:\n{}",
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_watched_checkout_deploys_each_commit_and_plans_each_edit() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("infra");
    git_init(&repo);
    copy_dir(&example_repo(), &repo);
    // Without the example's year-end freeze, so the test does not depend on the date.
    std::fs::write(repo.join("capstan.yaml"), "owners: [\"@acme/platform\"]\n").unwrap();
    commit_all(&repo, "infrastructure");
    let config = tmp.path().join("serve.yaml");
    std::fs::write(
        &config,
        "repository: {path: infra, watch_debounce: 100ms}\nstate_dir: state\n",
    )
    .unwrap();
    let w = Watching::start(
        capstan(tmp.path())
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config),
    );
    // Start-up deploys the branch, then plans the working tree against what is deployed.
    let at = w.wait_for(
        "the first deploy",
        "14 deployed, 0 destroyed; 0 unchanged",
        0,
    );
    let at = w.wait_for(
        "the working tree",
        "No changes; 14 instances unchanged.",
        at,
    );
    assert!(tmp.path().join("state/cloud/si-staging-vpc.json").exists());

    let project = repo.join("projects/si/project.yaml");
    let text = std::fs::read_to_string(&project).unwrap();
    std::fs::write(
        &project,
        text.replace("high_availability: true", "high_availability: false"),
    )
    .unwrap();
    let at = w.wait_for(
        "the edit's plan",
        "Plan: 0 to create, 3 to update, 0 to destroy",
        at,
    );

    // An edit that breaks the repository prints its diagnostics, not a plan.
    std::fs::write(repo.join("projects/api/project.yaml"), "owners: [\n").unwrap();
    let at = w.wait_for("the diagnostics", "projects/api/project.yaml:", at);
    crate::support::git(
        &repo,
        &["checkout", "-q", "--", "projects/api/project.yaml"],
    );
    let at = w.wait_for("the plan again", "Plan: 0 to create, 3 to update", at);

    // A commit deploys exactly the three VPCs; the working tree then matches again.
    crate::support::git(&repo, &["commit", "-q", "-am", "no HA"]);
    let at = w.wait_for("the commit's deploy", ": deploying", at);
    let at = w.wait_for("the deploy", "3 deployed, 0 destroyed; 11 unchanged", at);
    w.wait_for(
        "the working tree",
        "No changes; 14 instances unchanged.",
        at,
    );
    let state = capstan(tmp.path())
        .args([
            "state",
            "show",
            "si-staging-vpc",
            "--format",
            "json",
            "--state",
            "state/state.db",
        ])
        .output()
        .unwrap();
    let shown: serde_json::Value = serde_json::from_slice(&state.stdout).unwrap();
    assert_eq!(shown["params"]["high_availability"], false);

    // SIGHUP reloads; a broken file keeps the old configuration.
    std::fs::write(
        &config,
        "repository: {path: infra, watch_debounce: 50ms}\nstate_dir: state\n",
    )
    .unwrap();
    w.signal("-HUP");
    w.wait_stderr("configuration reloaded");
    std::fs::write(&config, "repository: {path: infra, nonsense: 1}\n").unwrap();
    w.signal("-HUP");
    w.wait_stderr("keeping the old configuration");

    // notify's bookkeeping stays below the default level.
    assert!(
        !w.stderr.lock().unwrap().contains("watch descriptor"),
        "{}",
        w.stderr.lock().unwrap()
    );
    w.signal("-TERM");
    let mut w = w;
    let start = Instant::now();
    let status = loop {
        if let Some(s) = w.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "SIGTERM did not stop it"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}

/// Waits for `child` to exit within `limit`; kills it and says so otherwise.
fn exits_within(child: &mut std::process::Child, limit: Duration) -> Option<i32> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn serve_on_a_folder_without_capstan_yaml_exits_2_like_validate() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("notes");
    git_init(&repo);
    std::fs::write(repo.join("README.md"), "not infrastructure\n").unwrap();
    commit_all(&repo, "notes");
    let mut child = capstan(tmp.path())
        .args(["serve", "--state-dir", "state", "--repo"])
        .arg(&repo)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let code = exits_within(&mut child, Duration::from_secs(20));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(code, Some(2), "it must exit, not keep watching: {stderr}");
    assert!(
        stderr.contains(&format!(
            "capstan: error: no capstan.yaml in {}: the repository root is the folder that holds capstan.yaml",
            repo.display()
        )),
        "{stderr}"
    );
}

#[test]
fn check_config_lists_every_problem_with_every_place_looked() {
    let tmp = tempfile::tempdir().unwrap();
    let creds = tmp.path().join("creds");
    std::fs::create_dir_all(&creds).unwrap();
    let config = tmp.path().join("capstan.yaml");
    std::fs::write(
        &config,
        "repository: {url: https://github.com/acme/infra.git}\ngithub: {repository: acme/infra, token_file: github-token, webhook_secret_file: webhook-secret}\nlisten: not-an-address\n",
    )
    .unwrap();
    let (code, stdout, stderr) = output(
        capstan(tmp.path())
            .args(["serve", "--check-config", "--config"])
            .arg(&config)
            .env("CREDENTIALS_DIRECTORY", &creds),
    );
    assert_eq!(code, 2, "{stdout}{stderr}");
    for (file, what) in [
        ("github-token", "GitHub token"),
        ("webhook-secret", "webhook secret"),
    ] {
        assert!(
            stderr.contains(&format!(
                "the secret file {file} ({what}) is in none of: {}, {}",
                creds.join(file).display(),
                tmp.path().join(file).display()
            )),
            "{file}: {stderr}"
        );
    }
    assert!(
        stderr.contains("listen: `not-an-address` is not an address such as 127.0.0.1:8080"),
        "{stderr}"
    );
}

#[test]
fn check_config_prints_every_effective_setting() {
    let tmp = tempfile::tempdir().unwrap();
    for file in [
        "github-token",
        "webhook-secret",
        "plan-aws-key-id",
        "plan-aws-secret",
    ] {
        std::fs::write(tmp.path().join(file), "t\n").unwrap();
    }
    let (code, stdout, stderr) = output(
        capstan(tmp.path())
            .args(["serve", "--check-config", "--config"])
            .arg(root().join("systemd/capstan.yaml"))
            .env("CREDENTIALS_DIRECTORY", tmp.path()),
    );
    assert_eq!(code, 0, "{stderr}");
    for line in [
        "deploy:      on, 4 instances of a wave at once, each step at most 30m",
        "log:         json, level info",
        "schedule:    nightly-replan `0 3 * * *` -> replan",
        "schedule:    hourly-reconcile `17 * * * *` -> reconcile",
        "retry:       5 attempts, backoff 1s, rate limits waited out up to 15m",
        "workers:     2",
        "shutdown:    30s",
    ] {
        assert!(stdout.contains(line), "{line:?} in:\n{stdout}");
    }
}

#[test]
fn apply_beside_a_running_daemon_names_it_and_how_to_deploy_through_it() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = example_checkout(tmp.path());
    // Both with their default state: the daemon's and apply's are the same, in the
    // repository, so apply meets the daemon instead of deploying a second time.
    let w = Watching::start(
        capstan(tmp.path())
            .args(["serve", "--listen", "127.0.0.1:0", "--repo"])
            .arg(&repo),
    );
    w.wait_for("the first deploy", "14 deployed", 0);
    let (code, _, stderr) = output(
        capstan(tmp.path())
            .args(["apply", "--yes", "--repo"])
            .arg(&repo),
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "capstan serve (pid {}) holds the state in {}",
            w.child.id(),
            repo.join(".capstan").display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("commit to the branch it watches to deploy through it"),
        "{stderr}"
    );
    assert!(
        stderr.contains("or stop the daemon before running capstan apply"),
        "{stderr}"
    );

    // Each refused command is named as typed, not as apply.
    let (code, _, stderr) = output(capstan(tmp.path()).args(["drift", "--repo"]).arg(&repo));
    assert_ne!(code, 0, "{stderr}");
    assert!(
        stderr.contains("or stop the daemon before running capstan drift"),
        "{stderr}"
    );
}

/// `GET path` on `addr`: the status code and the body.
pub(crate) fn get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("the daemon listens");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn local_mode_serves_the_operations_endpoints_and_prints_where() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = example_checkout(tmp.path());
    let w = Watching::start(
        capstan(tmp.path())
            .args(["serve", "--listen", "127.0.0.1:0", "--repo"])
            .arg(&repo),
    );
    let prefix = "── serving /healthz, /readyz and /metrics on http://";
    let at = w.wait_for("the address", prefix, 0);
    let out = w.stdout.lock().unwrap().clone();
    let addr = out[at..].lines().next().unwrap().trim().to_string();
    assert!(
        addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
        "{addr}"
    );
    assert_eq!(get(&addr, "/healthz"), (200, "ok\n".to_string()));
    w.wait_for(
        "the first deploy",
        "14 deployed, 0 destroyed; 0 unchanged",
        at,
    );
    w.wait_for(
        "the working tree",
        "No changes; 14 instances unchanged.",
        at,
    );
    assert_eq!(
        get(&addr, "/readyz"),
        (200, "ready\nrole: all\nleader: yes\n".to_string())
    );
    let (status, metrics) = get(&addr, "/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("capstan_deploys_total{result=\"succeeded\"} 1"),
        "{metrics}"
    );
    // The default state is the repository's, kept out of git.
    assert!(repo.join(".capstan/state.db").exists());
    let status = Command::new("git")
        .args(["status", "--porcelain"])
        .current_dir(&repo)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&status.stdout), "");

    w.signal("-TERM");
    let mut w = w;
    assert_eq!(exits_within(&mut w.child, Duration::from_secs(10)), Some(0));
}

#[test]
fn check_config_in_local_mode_shows_the_address_and_refuses_what_would_not_run() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = example_checkout(tmp.path());
    let (code, stdout, stderr) = output(
        capstan(tmp.path())
            .args([
                "serve",
                "--check-config",
                "--listen",
                "127.0.0.1:18080",
                "--repo",
            ])
            .arg(&repo),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("  listen:      127.0.0.1:18080 (/healthz, /readyz, /metrics)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "  state dir:   {}\n",
            repo.join(".capstan").display()
        )),
        "{stdout}"
    );

    // GitHub-only flags do nothing without GitHub: refused, each named.
    let (code, _, stderr) = output(
        capstan(tmp.path())
            .args([
                "serve",
                "--check-config",
                "--poll-interval",
                "banana",
                "--repo",
            ])
            .arg(&repo),
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--poll-interval is for GitHub mode, and github is not configured"),
        "{stderr}"
    );

    // A folder serve would refuse is no valid configuration either.
    let notes = tmp.path().join("notes");
    std::fs::create_dir_all(&notes).unwrap();
    let (code, stdout, stderr) = output(
        capstan(tmp.path())
            .args(["serve", "--check-config", "--repo"])
            .arg(&notes),
    );
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(!stdout.contains("configuration ok"), "{stdout}");
    assert!(
        stderr.contains(&format!("no capstan.yaml in {}", notes.display())),
        "{stderr}"
    );
}

#[test]
fn the_daemon_deploys_nothing_while_a_commit_changes_an_immutable_param() {
    let w = crate::massdriver_newer::world();
    let tmp = tempfile::tempdir().unwrap();
    let watching = Watching::start(
        capstan(tmp.path())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--state-dir",
                "state",
                "--repo",
            ])
            .arg(&w.repo),
    );
    let at = watching.wait_for(
        "the first deploy",
        "3 deployed, 0 destroyed; 0 unchanged",
        0,
    );
    w.edit("projects/ops/project.yaml", "{name: jobs,", "{name: tasks,");
    w.commit("rename the queue");
    let at = watching.wait_for("the refusal", "does not validate; nothing deployed", at);
    watching.wait_for(
        "the immutable param",
        "error[params.immutable]: ops-dev-queue: params.name is immutable",
        at,
    );
    let store = capstan::state::Store::open(&tmp.path().join("state/state.db")).unwrap();
    assert_eq!(
        store.deployed().unwrap()[&capstan::core::model::InstanceId("ops-dev-queue".into())]
            .inputs
            .params["name"],
        "jobs"
    );
}

/// The example, without its deploy windows (so no test depends on the date), committed in
/// `dir/infra`.
pub(crate) fn example_checkout(dir: &Path) -> std::path::PathBuf {
    let repo = dir.join("infra");
    git_init(&repo);
    copy_dir(&example_repo(), &repo);
    std::fs::write(repo.join("capstan.yaml"), "owners: [\"@acme/platform\"]\n").unwrap();
    commit_all(&repo, "infrastructure");
    repo
}

/// The replica settings: a role needs a PostgreSQL state, and the state's password comes
/// from a credential file, never shown.
#[test]
fn replica_settings_are_checked_and_the_password_never_shown() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, stderr) = check_config(
        tmp.path(),
        "repository:\n  path: .\nrole: worker\nstate_password_file: pw\n",
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("role: `worker` needs the state in PostgreSQL"),
        "{stderr}"
    );
    assert!(
        stderr.contains("state_password_file: the state is not in PostgreSQL"),
        "{stderr}"
    );

    std::fs::write(tmp.path().join("pw"), "s3cret-state-password\n").unwrap();
    let config = tmp.path().join("capstan.yaml");
    std::fs::write(
        &config,
        "repository:\n  path: .\nstate: postgres://capstan@db.internal:5432/infra\nstate_password_file: pw\nrole: worker\nlease: 12s\n",
    )
    .unwrap();
    let (code, stdout, stderr) = output(
        capstan(tmp.path())
            .args(["serve", "--check-config", "--config"])
            .arg(&config),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("  state:       postgres://capstan@db.internal:5432/infra\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  role:        worker (jobs leased for 12s)\n"),
        "{stdout}"
    );
    assert!(!stdout.contains("s3cret") && !stderr.contains("s3cret"));
}
