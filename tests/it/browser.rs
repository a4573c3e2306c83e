//! The web view in a real browser: Debian's headless Chromium, driven through
//! playwright-core (`tests/npm/browser.mjs`), through every page of the deployed example.
//! What a person would see is checked here; screenshots go to `target/web-screenshots/`.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::{Value, json};

use crate::support::{commit_all, root};
use crate::web::{Served, get};

/// One headless Chromium.
struct Browser {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    base: String,
}

impl Browser {
    fn start(base: &str) -> Browser {
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        assert!(
            std::path::Path::new(&chromium).exists(),
            "no Chromium at {chromium}: install Debian's chromium package (.ci/run does) or set CHROMIUM"
        );
        let script = root().join("tests/npm/browser.mjs");
        assert!(
            root()
                .join("tests/npm/node_modules/playwright-core")
                .exists(),
            "run `npm ci --prefix tests/npm` first (.ci/run does)"
        );
        let mut child = Command::new("node")
            .arg(script)
            .env("CHROMIUM", chromium)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("node runs");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Browser {
            child,
            stdin,
            stdout,
            base: format!("http://{base}"),
        }
    }

    fn call(&mut self, command: Value) -> Value {
        writeln!(self.stdin, "{command}").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let answer: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the driver answered {line:?} to {command}: {e}"));
        assert!(answer.get("error").is_none(), "{command}: {answer}");
        answer
    }

    fn goto(&mut self, path: &str) -> Value {
        let url = format!("{}{path}", self.base);
        let answer = self.call(json!({"cmd": "goto", "url": url}));
        assert_eq!(answer["status"], 200, "{path}: {answer}");
        answer
    }

    fn text(&mut self, selector: &str) -> String {
        let answer = self.call(json!({"cmd": "text", "selector": selector}));
        answer["text"].as_str().unwrap_or_default().to_string()
    }

    fn all(&mut self, selector: &str, attr: Option<&str>) -> Vec<String> {
        let answer = self.call(json!({"cmd": "all", "selector": selector, "attr": attr}));
        answer["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .collect()
    }

    fn screenshot(&mut self, name: &str) -> PathBuf {
        let path = screenshots().join(format!("{name}.png"));
        self.call(json!({"cmd": "screenshot", "path": path}));
        path
    }

    /// Tabs through the page and says which links and controls were never reached.
    fn unreachable_by_keyboard(&mut self) -> Vec<String> {
        let wanted = self.call(json!({"cmd": "focusables"}))["values"]
            .as_array()
            .unwrap()
            .clone();
        let mut reached = Vec::new();
        for _ in 0..wanted.len() + 5 {
            reached.push(self.call(json!({"cmd": "press", "key": "Tab"}))["focused"].clone());
        }
        wanted
            .iter()
            .filter(|w| !reached.contains(w))
            .map(Value::to_string)
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("web-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The container app's deploy, slowed to six lines a second apart (a rollout), and failing
/// for `fail` if given.
fn container_deploy(repo: &std::path::Path, fail: Option<&str>) {
    let path = repo.join("bundles/container-app/src/deploy.sh");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut head = String::from("#!/bin/sh\nset -eu\n");
    if let Some(instance) = fail {
        head.push_str(&format!(
            "if [ \"$CAPSTAN_INSTANCE\" = {instance} ]; then echo \"error: quota exceeded for {instance}: 0 of 2 vCPUs left\" >&2; exit 3; fi\n"
        ));
    }
    head.push_str("for i in 1 2 3 4 5 6; do echo \"rolling out replica $i of 6\"; sleep 1; done\n");
    let rest = text.strip_prefix("#!/bin/sh\n").unwrap_or(&text);
    std::fs::write(&path, format!("{head}{rest}")).unwrap();
}

/// The id of the first step of `run` with `status` (from the run's page).
fn step_of(addr: &str, run: u32, status: &str) -> Option<String> {
    let page = get(addr, &format!("/runs/{run}"), &[], None).body;
    page.split("<tr>").find_map(|row| {
        row.contains(&format!("status-{status}\""))
            .then(|| {
                let at = row.find("href=\"/steps/")? + "href=\"/steps/".len();
                Some(row[at..].split('"').next()?.to_string())
            })
            .flatten()
    })
}

fn wait_until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed().as_secs() < 60,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn a_person_sees_the_fleet_the_graph_the_logs_live_and_a_failure() {
    let s = Served::start(None);
    let mut b = Browser::start(&s.addr);

    // The fleet: 14 instances, all deployed, every link reachable by keyboard.
    let fleet = b.goto("/");
    assert_eq!(fleet["title"], "Fleet · capstan");
    let statuses = b.all("tbody td .status", None);
    assert_eq!(statuses.len(), 14, "{statuses:?}");
    assert!(statuses.iter().all(|s| s == "deployed"), "{statuses:?}");
    b.screenshot("fleet");
    let missed = b.unreachable_by_keyboard();
    assert!(missed.is_empty(), "not reachable by Tab: {missed:?}");

    // The graph: si's staging cluster feeds ecomm, api and billing, across projects.
    b.goto("/graph?project=si");
    let rows = b.all("table tbody tr", None);
    for consumer in [
        "ecomm-staging-app",
        "api-staging-app",
        "billing-staging-app",
    ] {
        assert!(
            rows.iter().any(|r| r.starts_with("si-staging-eks")
                && r.contains(consumer)
                && r.contains("cluster")
                && r.ends_with("yes")),
            "no edge si-staging-eks → {consumer} in {rows:?}"
        );
    }
    let nodes = b.all("svg a", Some("href"));
    assert!(
        nodes.contains(&"/instances/si-staging-eks".to_string()),
        "{nodes:?}"
    );
    assert!(b.all("svg path.cross", None).len() >= 3);
    b.screenshot("graph-si");
    let missed = b.unreachable_by_keyboard();
    assert!(
        missed.is_empty(),
        "not reachable by Tab on the graph: {missed:?}"
    );

    // An instance, and along its connection to the producer.
    b.goto("/instances/si-staging-eks");
    let consumers = b.all("a[href^='/instances/']", Some("href"));
    for c in [
        "ecomm-staging-app",
        "api-staging-app",
        "billing-staging-app",
        "si-staging-vpc",
    ] {
        assert!(
            consumers.contains(&format!("/instances/{c}")),
            "{c} in {consumers:?}"
        );
    }
    b.screenshot("instance-si-staging-eks");
    let producer =
        b.call(json!({"cmd": "click", "selector": "td a[href='/instances/si-staging-vpc']"}));
    assert_eq!(producer["title"], "si-staging-vpc · capstan");

    // The first run's steps and a log.
    b.goto("/runs/1");
    assert_eq!(b.all("tbody tr", None).len(), 14);
    b.goto("/steps/1");
    assert!(
        b.text("#log").contains("## deploy finished"),
        "{}",
        b.text("#log")
    );
    b.screenshot("step-log");
    for (path, name) in [
        ("/pulls", "pulls"),
        ("/previews", "previews"),
        ("/drift", "drift"),
        ("/runs", "runs"),
    ] {
        b.goto(path);
        b.screenshot(name);
        let missed = b.unreachable_by_keyboard();
        assert!(
            missed.is_empty(),
            "not reachable by Tab on {path}: {missed:?}"
        );
    }

    // A deploy's log grows in the page while it runs.
    container_deploy(&s.repo, None);
    commit_all(&s.repo, "slower rollouts");
    let step = wait_until("a running step of run 2", || step_of(&s.addr, 2, "running"));
    b.goto(&format!("/steps/{step}"));
    let first = b.text("#log");
    assert!(
        !first.contains("replica 6 of 6"),
        "the step was already over: {first}"
    );
    b.call(json!({"cmd": "wait", "selector": "#log", "contains": "replica 3 of 6"}));
    b.screenshot("step-live");
    b.call(json!({"cmd": "wait", "selector": "#log-state", "contains": "The step finished: succeeded"}));
    let last = b.text("#log");
    assert!(
        last.len() > first.len() && last.contains("replica 6 of 6"),
        "{last}"
    );
    assert_eq!(
        last.matches("rolling out replica 1 of 6").count(),
        1,
        "no line twice: {last}"
    );

    // A failing step's log says why.
    container_deploy(&s.repo, Some("billing-staging-app"));
    commit_all(&s.repo, "a failing rollout");
    let failed = wait_until("a failed step of run 3", || step_of(&s.addr, 3, "failed"));
    b.goto(&format!("/steps/{failed}"));
    let log = b.text("#log");
    assert!(
        log.contains("error: quota exceeded for billing-staging-app"),
        "{log}"
    );
    b.screenshot("step-failed");
    b.goto("/?status=failed");
    assert_eq!(b.all("tbody td .status", None), ["failed"]);

    // Without JavaScript, the log and the graph are still there.
    b.call(json!({"cmd": "scripts", "enabled": false}));
    b.goto(&format!("/steps/{failed}"));
    assert!(b.text("#log").contains("quota exceeded"));
    b.goto("/graph?project=si");
    assert!(b.all("svg a", Some("href")).len() >= 6);
    b.screenshot("graph-without-javascript");

    let problems = b.call(json!({"cmd": "problems"}));
    assert_eq!(
        problems["values"],
        json!([]),
        "console errors (a CSP violation is one)"
    );
}
