//! Webhook deliveries, mutated: the shapes GitHub sends for the events capstan acts on,
//! with keys deleted, types changed, values grown, nesting deepened, and the raw bytes cut
//! or made invalid UTF-8. Each is verified and mapped as the daemon would.

use serde_json::{Value, json};

use crate::rng::Rng;

/// The repository the daemon is configured for, as the seeds name it.
pub const REPOSITORY: &str = "acme/infra";
pub const BRANCH: &str = "main";
pub const SECRET: &[u8] = b"fuzz-webhook-secret";

fn seeds() -> Vec<(&'static str, Value)> {
    let repository = json!({"full_name": REPOSITORY, "name": "infra", "owner": {"login": "acme"}});
    let pull = json!({
        "number": 7,
        "head": {"sha": "0123456789abcdef0123456789abcdef01234567", "ref": "feature", "repo": {"full_name": REPOSITORY}},
        "base": {"ref": BRANCH},
        "user": {"login": "alice"},
        "labels": [{"name": "capstan:preview"}],
        "draft": false
    });
    vec![
        (
            "pull_request",
            json!({"action": "opened", "number": 7, "pull_request": pull, "repository": repository}),
        ),
        (
            "pull_request",
            json!({"action": "closed", "number": 7, "pull_request": pull, "repository": repository}),
        ),
        (
            "pull_request_review",
            json!({"action": "submitted", "review": {"state": "approved", "user": {"login": "bob"}}, "pull_request": pull, "repository": repository}),
        ),
        (
            "issue_comment",
            json!({"action": "created", "issue": {"number": 7, "pull_request": {"url": "x"}}, "comment": {"body": "capstan preview\nplease", "user": {"login": "carol"}}, "repository": repository}),
        ),
        (
            "push",
            json!({"ref": "refs/heads/main", "after": "0123456789abcdef0123456789abcdef01234567", "repository": repository}),
        ),
        (
            "ping",
            json!({"zen": "Keep it logically awesome.", "hook_id": 1}),
        ),
    ]
}

/// Every JSON pointer inside `v`.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                pointers(
                    child,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn odd_value(rng: &mut Rng) -> Value {
    match rng.below(12) {
        0 => Value::Null,
        1 => json!(u64::MAX),
        2 => json!(-1),
        3 => json!(1.5e300),
        4 => json!(true),
        5 => json!("x".repeat(rng.below(100_000))),
        6 => json!("\u{202e}\u{0}\u{feff}日本"),
        7 => json!([]),
        8 => json!({}),
        9 => {
            let mut v = json!(1);
            for _ in 0..rng.below(300) {
                v = json!([v]);
            }
            v
        }
        10 => json!("capstan preview"),
        _ => json!("refs/heads/main"),
    }
}

/// One mutated delivery: (event header, body, signature header).
pub fn delivery(rng: &mut Rng) -> (String, Vec<u8>, Option<String>) {
    let all = seeds();
    let (event, mut payload) = all[rng.below(all.len())].clone();
    for _ in 0..1 + rng.below(4) {
        let mut ptrs = Vec::new();
        pointers(&payload, String::new(), &mut ptrs);
        let target = ptrs[rng.below(ptrs.len())].clone();
        if target.is_empty() {
            if rng.chance(4) {
                payload = odd_value(rng);
            }
            continue;
        }
        let (parent, key) = target.rsplit_once('/').expect("a pointer below the root");
        let value = odd_value(rng);
        match payload.pointer_mut(parent) {
            Some(Value::Object(m)) => {
                let key = key.replace("~1", "/").replace("~0", "~");
                if rng.chance(2) {
                    m.remove(&key);
                } else {
                    m.insert(key, value);
                }
            }
            Some(Value::Array(items)) => {
                if let Ok(i) = key.parse::<usize>()
                    && i < items.len()
                {
                    items[i] = value;
                }
            }
            _ => {}
        }
    }
    let mut body = serde_json::to_vec(&payload).expect("a JSON value serialises");
    match rng.below(6) {
        0 => {
            let at = rng.below(body.len() + 1);
            body.truncate(at);
        }
        1 => {
            let at = rng.below(body.len() + 1);
            body.insert(at, 0xC0 | (rng.next() as u8 & 0x1F));
        }
        2 => body = format!("{}{}", "[".repeat(rng.below(200_000)), "1").into_bytes(),
        _ => {}
    }
    let event = match rng.below(10) {
        0 => [
            "",
            "PULL_REQUEST",
            "pull_request_review_comment",
            "installation",
            "\u{0}",
        ][rng.below(5)]
        .to_string(),
        _ => event.to_string(),
    };
    let signature = match rng.below(5) {
        0 => None,
        1 => Some("sha256=zz".to_string()),
        2 => Some(format!("sha1={}", "0".repeat(40))),
        _ => Some(capstan::daemon::webhook::sign(SECRET, &body)),
    };
    (event, body, signature)
}
