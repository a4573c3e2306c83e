//! The web view over HTTP, on the real binary in local mode with the example deployed:
//! every page reachable from the fleet answers, carries the strict Content-Security-Policy,
//! has no inline script or style and never a secret; and who may look (docs/web.md#access).

use std::collections::{BTreeSet, VecDeque};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::serve::{Watching, capstan, example_checkout};

/// The example deployed by `capstan serve` with the view on; `config` is a configuration
/// file's text (its `ui:`), else `--ui` alone.
pub(crate) struct Served {
    pub _tmp: tempfile::TempDir,
    pub repo: PathBuf,
    /// The daemon; stopped when dropped.
    pub daemon: Watching,
    /// The view's `host:port`.
    pub addr: String,
}

impl Served {
    pub(crate) fn start(config: Option<&str>) -> Served {
        let tmp = tempfile::tempdir().unwrap();
        let repo = example_checkout(tmp.path());
        let mut cmd = capstan(tmp.path());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--repo"])
            .arg(&repo);
        match config {
            Some(text) => {
                let file = tmp.path().join("serve.yaml");
                std::fs::write(&file, text).unwrap();
                cmd.arg("--config").arg(file);
            }
            None => {
                cmd.args(["--ui", "127.0.0.1:0"]);
            }
        }
        let w = Watching::start(&mut cmd);
        let at = w.wait_for("the view's address", "── the web view is on http://", 0);
        let out = w.stdout.lock().unwrap().clone();
        let addr = out[at..]
            .lines()
            .next()
            .unwrap()
            .trim_end_matches('/')
            .to_string();
        w.wait_for("the first deploy", "14 deployed, 0 destroyed", at);
        Served {
            _tmp: tmp,
            repo,
            daemon: w,
            addr,
        }
    }

    pub(crate) fn state(&self) -> PathBuf {
        self.repo.join(".capstan/state.db")
    }
}

/// An HTTP/1.1 answer.
pub(crate) struct Answer {
    pub status: u16,
    /// The status line and header lines, as sent.
    pub head: String,
    pub body: String,
}

impl Answer {
    /// The first header `name` (any case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The value of cookie `name` this answer sets.
    pub(crate) fn cookie(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            let (cookie, value) = v.trim().split(';').next()?.split_once('=')?;
            (k.eq_ignore_ascii_case("set-cookie") && cookie == name).then(|| value.to_string())
        })
    }
}

/// `GET path` with extra `headers`, from `source` (an address of this machine) if given.
pub(crate) fn get(
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
    source: Option<IpAddr>,
) -> Answer {
    let target: SocketAddr = addr.parse().unwrap();
    let mut stream = match source {
        None => std::net::TcpStream::connect(target).unwrap(),
        Some(ip) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let socket = tokio::net::TcpSocket::new_v4().unwrap();
                socket.bind(SocketAddr::new(ip, 0)).unwrap();
                socket.connect(target).await.unwrap().into_std().unwrap()
            })
        }
    };
    stream.set_nonblocking(false).unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    Answer {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// Every secret value the deployed state holds: sensitive params, connection data and
/// artifact fields, as deployed.
pub(crate) fn secrets(state: &Path) -> Vec<String> {
    let store = capstan::state::Store::open(state).unwrap();
    let mut out = Vec::new();
    for d in store.deployed().unwrap().values() {
        let artifacts = serde_json::to_value(&d.artifacts).unwrap();
        capstan::core::sensitive::secrets_in("artifacts", &artifacts, &d.sensitive, &mut out);
        capstan::core::sensitive::secrets_in("params", &d.inputs.params, &d.sensitive, &mut out);
        let connections: serde_json::Map<String, serde_json::Value> = d
            .inputs
            .connections
            .iter()
            .map(|(slot, i)| (slot.clone(), serde_json::json!({"data": i.data})))
            .collect();
        capstan::core::sensitive::secrets_in(
            "connections",
            &connections.into(),
            &d.sensitive,
            &mut out,
        );
    }
    out.retain(|s| s.len() >= 6);
    out.sort();
    out.dedup();
    out
}

/// The same-origin links of a page, `&amp;` undone; sign-out and event streams left out.
fn links(body: &str) -> Vec<String> {
    let re = regex::Regex::new(r#"href="(/[^"]*)""#).unwrap();
    re.captures_iter(body)
        .map(|c| c[1].replace("&amp;", "&"))
        .filter(|l| !l.starts_with("/auth/") && !l.ends_with("/events"))
        .collect()
}

#[test]
fn every_page_answers_with_a_strict_policy_and_never_a_secret() {
    let s = Served::start(None);
    let secrets = secrets(&s.state());
    assert!(
        secrets.len() >= 3,
        "the example deploys cluster tokens and database passwords: {}",
        secrets.len()
    );
    let fleet = get(&s.addr, "/", &[], None);
    assert_eq!(fleet.status, 200, "{}", fleet.body);
    assert!(fleet.body.contains("14 instances"), "{}", fleet.body);
    assert_eq!(
        fleet
            .body
            .matches("status status-deployed\">deployed</span></td>")
            .count(),
        14,
        "{}",
        fleet.body
    );

    let mut seen = BTreeSet::new();
    let mut queue: VecDeque<String> =
        ["/".to_string(), "/steps/1/events?from=0".to_string()].into();
    let inline = regex::Regex::new(r#"<script(?:\s[^>]*)?>"#).unwrap();
    let handlers = regex::Regex::new(r#"\s(?:on[a-z]+|style)="#).unwrap();
    while let Some(path) = queue.pop_front() {
        if !seen.insert(path.clone()) || seen.len() > 300 {
            continue;
        }
        let a = get(&s.addr, &path, &[], None);
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        assert_eq!(
            a.header("content-security-policy"),
            Some(capstan::web::CSP),
            "{path}"
        );
        for tag in inline.find_iter(&a.body) {
            assert!(
                tag.as_str().contains(" src=\"/assets/"),
                "{path}: inline script {tag:?}"
            );
        }
        assert!(
            !handlers.is_match(&a.body),
            "{path}: inline style or handler"
        );
        for secret in &secrets {
            assert!(!a.body.contains(secret.as_str()), "{path} shows a secret");
        }
        queue.extend(links(&a.body));
    }
    for page in [
        "/runs",
        "/runs/1",
        "/steps/1",
        "/pulls",
        "/previews",
        "/drift",
        "/graph",
        "/instances/si-staging-eks",
        "/assets/app.css",
    ] {
        assert!(
            seen.contains(page),
            "{page} is linked from the fleet: {seen:?}"
        );
    }
    let events = get(&s.addr, "/steps/1/events?from=0", &[], None);
    assert_eq!(events.header("content-type"), Some("text/event-stream"));
    assert!(
        events.body.contains("event: append") && events.body.contains("event: end"),
        "{}",
        events.body
    );
    let missing = get(&s.addr, "/instances/nothing-here", &[], None);
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("No instance nothing-here"));
}

#[test]
fn without_sign_in_only_requests_made_on_the_machine_are_admitted() {
    let s = Served::start(None);
    assert_eq!(get(&s.addr, "/", &[], None).status, 200);
    // A proxy on this machine passing on a request from elsewhere.
    let forwarded = get(&s.addr, "/", &[("X-Forwarded-For", "203.0.113.9")], None);
    assert_eq!(forwarded.status, 403, "{}", forwarded.body);
    assert!(forwarded.body.contains("not forwarded ones"));
    // The refusal says nothing of what the view holds.
    assert!(!forwarded.body.contains("instances"));
    // And the view cannot be put on another address without sign-in.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("serve.yaml");
    std::fs::write(&file, "ui:\n  listen: 0.0.0.0:8081\n").unwrap();
    let out = capstan(tmp.path())
        .args(["serve", "--check-config", "--config"])
        .arg(&file)
        .arg("--repo")
        .arg(&s.repo)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr.contains("ui.listen: `0.0.0.0:8081` is not loopback"),
        "{stderr}"
    );
}

#[test]
fn a_proxy_header_is_believed_only_from_the_proxy() {
    let s = Served::start(Some(
        "ui:\n  listen: 127.0.0.1:0\n  auth: proxy\n  proxy:\n    header: X-Forwarded-User\n    from: [127.0.0.2]\n",
    ));
    let proxy: IpAddr = "127.0.0.2".parse().unwrap();
    let user = [
        ("X-Forwarded-User", "alice"),
        ("X-Forwarded-For", "10.1.2.3"),
    ];
    let through = get(&s.addr, "/", &user, Some(proxy));
    assert_eq!(through.status, 200, "{}", through.body);
    assert!(through.body.contains("Signed in as <strong>alice</strong>"));
    // The same header from anywhere else is forged.
    let forged = get(&s.addr, "/", &user, None);
    assert_eq!(forged.status, 403, "{}", forged.body);
    // The proxy must say who.
    assert_eq!(get(&s.addr, "/", &[], Some(proxy)).status, 403);
}
