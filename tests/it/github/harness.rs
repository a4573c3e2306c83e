//! The end-to-end harness: a bare git remote with a work clone, the daemon's configuration
//! file, the built `capstan serve` with its JSON log, signed webhook deliveries and a
//! minimal HTTP client. Used by the GitHub tests and by `benches/daemon.rs`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::fake::FakeGitHub;
use super::webhooks;
use crate::support::{copy_dir, example_repo, git};

pub const OWNER: &str = "Codertocat";
pub const REPO: &str = "Hello-World";
pub const TOKEN: &str = "ghp_test_token_never_logged_0123456789";
pub const SECRET: &str = "webhook-secret-never-logged";

/// A bare remote with `master`, a work clone to make changes in, and a state directory.
pub struct Remote {
    pub dir: tempfile::TempDir,
}

impl Remote {
    pub fn new() -> Remote {
        Remote::new_with(|_| {})
    }

    /// The example on `master`, edited by `edit` first.
    pub fn new_with(edit: impl FnOnce(&Path)) -> Remote {
        let dir = tempfile::tempdir().unwrap();
        let bare = dir.path().join("remote.git");
        std::fs::create_dir_all(&bare).unwrap();
        git(&bare, &["init", "-q", "--bare", "-b", "master"]);
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        git(&work, &["init", "-q", "-b", "master"]);
        copy_dir(&example_repo(), &work);
        // Without the example's year-end freeze: deploys must not depend on the date.
        std::fs::write(work.join("capstan.yaml"), "owners: [\"@acme/platform\"]\n").unwrap();
        edit(&work);
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", "infrastructure"]);
        git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
        git(&work, &["push", "-q", "origin", "master"]);
        Remote { dir }
    }

    pub fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn head(&self) -> String {
        let out = Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(self.work())
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// Commits an edit on a branch off master and publishes it as GitHub does, at
    /// `refs/pull/N/head`. Returns the head commit.
    pub fn push_pull(&self, number: u64, edit: impl FnOnce(&Path)) -> String {
        let work = self.work();
        let branch = format!("change-{number}");
        let exists = Command::new("git")
            .args(["rev-parse", "--verify", "-q", &branch])
            .current_dir(&work)
            .output()
            .unwrap()
            .status
            .success();
        if exists {
            git(&work, &["checkout", "-q", &branch]);
        } else {
            git(&work, &["checkout", "-q", "-b", &branch, "master"]);
        }
        edit(&work);
        git(&work, &["commit", "-q", "-am", &format!("change {number}")]);
        git(
            &work,
            &[
                "push",
                "-q",
                "-f",
                "origin",
                &format!("HEAD:refs/pull/{number}/head"),
            ],
        );
        let head = self.head();
        git(&work, &["checkout", "-q", "master"]);
        head
    }
}

pub fn replace_in(dir: &Path, file: &str, from: &str, to: &str) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{file} lacks {from:?}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

/// The shared-VPC change of the plan tests: updates three si VPCs.
pub fn vpc_change(dir: &Path) {
    replace_in(
        dir,
        "projects/si/project.yaml",
        "high_availability: true",
        "high_availability: false",
    );
}

pub struct Options {
    /// Authenticate as GitHub App 42, installation 7, instead of with a token.
    pub app: bool,
    pub webhooks: bool,
    pub poll: &'static str,
    pub state: &'static str,
    /// More of the configuration file, appended as written.
    pub extra: &'static str,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            app: false,
            webhooks: true,
            poll: "0s",
            state: "state",
            extra: "",
        }
    }
}

pub fn write_config(remote: &Remote, fake: &FakeGitHub, o: &Options) -> PathBuf {
    std::fs::write(remote.path("token"), format!("{TOKEN}\n")).unwrap();
    std::fs::write(remote.path("webhook-secret"), SECRET).unwrap();
    let config = format!(
        "repository:\n  url: {}\n  branch: master\nstate_dir: {}\nlisten: 127.0.0.1:0\ngithub:\n  api_url: {}\n  repository: {OWNER}/{REPO}\n{}{}  poll_interval: {}\n  retry: {{attempts: 4, backoff: 50ms, max_wait: 10s}}\nworkers: 2\nshutdown_timeout: 10s\nlog: {{format: json, level: \"capstan=debug,info\"}}\n{}",
        remote.path("remote.git").display(),
        remote.path(o.state).display(),
        fake.url,
        if o.app {
            "  app: {id: 42, installation_id: 7, private_key_file: app.pem}\n"
        } else {
            "  token_file: token\n"
        },
        if o.webhooks {
            "  webhook_secret_file: webhook-secret\n"
        } else {
            ""
        },
        o.poll,
        o.extra,
    );
    let path = remote.path("capstan-serve.yaml");
    std::fs::write(&path, config).unwrap();
    path
}

/// The built `capstan serve`, with its JSON log lines collected.
pub struct Daemon {
    pub child: Child,
    pub addr: String,
    pub logs: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    pub fn start(config: &Path) -> Daemon {
        Daemon::start_with(config, &[])
    }

    /// Starts it with these variables set too.
    pub fn start_with(config: &Path, env: &[(&str, &str)]) -> Daemon {
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("capstan"))
            .args(["serve", "--config"])
            .arg(config)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", config.parent().unwrap())
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("capstan starts");
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && v["fields"]["message"] == "listening"
                {
                    let _ = tx.send(v["fields"]["addr"].as_str().unwrap_or_default().to_string());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                panic!(
                    "the daemon did not start:\n{}",
                    logs.lock().unwrap().join("\n")
                )
            });
        let daemon = Daemon { child, addr, logs };
        daemon.wait_for("ready", || daemon.get("/readyz").0 == 200);
        daemon
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// Where the web view listens (with `ui:` in the configuration).
    pub fn view_addr(&self) -> String {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|v| v["fields"]["message"] == "web view listening")
            .and_then(|v| v["fields"]["addr"].as_str().map(str::to_string))
            .expect("the web view is on (ui: in the configuration)")
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> (u16, String) {
        http(&self.addr, method, path, headers, body)
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        self.request("GET", path, &[], b"")
    }

    /// Delivers a webhook as GitHub does, signed with `secret`.
    pub fn deliver(&self, event: &str, body: &[u8], secret: Option<&str>) -> u16 {
        let mut headers = vec![
            ("X-GitHub-Event", event.to_string()),
            (
                "X-GitHub-Delivery",
                "72d3162e-cc78-11e3-81ab-4c9367dc0958".to_string(),
            ),
            ("Content-Type", "application/json".to_string()),
        ];
        if let Some(s) = secret {
            headers.push((
                "X-Hub-Signature-256",
                capstan::daemon::webhook::sign(s.as_bytes(), body),
            ));
        }
        self.request("POST", "/webhook", &headers, body).0
    }

    /// A real `pull_request` payload with `action` for pull request `n`, correctly signed.
    pub fn pull_event(&self, action: &str, n: u64) -> u16 {
        self.deliver(
            "pull_request",
            &payload("pull_request", Some(action), n),
            Some(SECRET),
        )
    }

    /// Waits until `sha` carries both of capstan's plan statuses.
    /// Waits for `capstan/plan` (settled: not pending while provisioner plans run) and
    /// `capstan/ownership` on `sha`.
    pub fn wait_for_statuses(&self, fake: &FakeGitHub, sha: &str) {
        self.wait_for(&format!("the statuses on {sha}"), || {
            let s = fake.latest_statuses(sha);
            s.get("capstan/plan").is_some_and(|p| p.0 != "pending")
                && s.contains_key("capstan/ownership")
        });
    }

    pub fn wait_for(&self, what: &str, mut done: impl FnMut() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "timed out waiting for {what}; daemon log:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then the exit status within the drain bound.
    pub fn stop(mut self) -> String {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "capstan serve exited with {status}:\n{}",
                    self.logs()
                );
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "SIGTERM did not stop the daemon"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(100));
        self.logs()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 client: enough for webhooks and probes, with no extra dependency.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    // A server may answer (413) before reading a huge body; that is fine.
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer from {method} {path}: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A real payload of `event` with `action`, its pull request renumbered to `number`.
pub fn payload(event: &str, action: Option<&str>, number: u64) -> Vec<u8> {
    let mut v = webhooks::example(event, action);
    if v.pointer("/pull_request/number").is_some() {
        v["pull_request"]["number"] = number.into();
    }
    if v.get("number").is_some() {
        v["number"] = number.into();
    }
    serde_json::to_vec(&v).unwrap()
}

pub fn no_secret_in(text: &str) {
    assert!(!text.contains(TOKEN), "the token leaked");
    assert!(!text.contains(SECRET), "the webhook secret leaked");
}
