//! Real webhook payloads (npm `@octokit/webhooks-examples`) through capstan's signature
//! check and event mapping.

use std::sync::LazyLock;

use capstan::daemon::Event;
use capstan::daemon::webhook::{Ignored, parse, sign, verify};
use serde_json::Value;

use crate::support::npm_file;

static EXAMPLES: LazyLock<Result<Vec<Value>, String>> = LazyLock::new(|| {
    let path = npm_file(
        "@octokit/webhooks-examples/api.github.com/index.json",
        "GitHub's real webhook payloads",
    )?;
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(serde_json::from_str(&text).expect("the examples are JSON"))
});

/// Every real example of `event`.
pub fn examples(event: &str) -> Vec<Value> {
    EXAMPLES
        .as_ref()
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .find(|e| e["name"] == event)
        .and_then(|e| e["examples"].as_array())
        .unwrap_or_else(|| panic!("no examples of {event}"))
        .clone()
}

/// The first real example of `event` with `action`.
pub fn example(event: &str, action: Option<&str>) -> Value {
    examples(event)
        .into_iter()
        .find(|e| e.get("action").and_then(Value::as_str) == action)
        .unwrap_or_else(|| panic!("no {event} example with action {action:?}"))
}

/// Adds to a real example what GitHub has sent since it was recorded (fields its current
/// webhook schemas require): `auto_merge` of pull requests, `has_discussions` of
/// repositories, label descriptions, and comments' and issues' `reactions`,
/// `performed_via_github_app` and `active_lock_reason`.
pub fn modernize(v: &mut Value) {
    let reactions = |url: &Value| {
        serde_json::json!({
            "url": format!("{}/reactions", url.as_str().unwrap_or_default()),
            "total_count": 0, "+1": 0, "-1": 0, "laugh": 0, "confused": 0,
            "heart": 0, "hooray": 0, "eyes": 0, "rocket": 0
        })
    };
    fn walk(v: &mut Value, visit: &mut dyn FnMut(&mut serde_json::Map<String, Value>)) {
        match v {
            Value::Object(map) => {
                visit(map);
                map.values_mut().for_each(|c| walk(c, visit));
            }
            Value::Array(items) => items.iter_mut().for_each(|c| walk(c, visit)),
            _ => {}
        }
    }
    walk(v, &mut |map| {
        if map.contains_key("full_name") && map.contains_key("forks_count") {
            map.entry("has_discussions").or_insert(Value::Bool(false));
        }
        if map.contains_key("color") && map.contains_key("default") {
            map.entry("description").or_insert(Value::Null);
        }
    });
    if let Some(pr) = v.get_mut("pull_request")
        && pr.get("head").is_some()
    {
        pr.as_object_mut()
            .map(|m| m.entry("auto_merge").or_insert(Value::Null));
    }
    for key in ["comment", "issue"] {
        if let Some(Value::Object(m)) = v.get_mut(key) {
            let url = m.get("url").cloned().unwrap_or_default();
            m.entry("reactions").or_insert_with(|| reactions(&url));
            if key == "comment" {
                m.entry("performed_via_github_app").or_insert(Value::Null);
            } else {
                m.entry("active_lock_reason").or_insert(Value::Null);
            }
        }
    }
}

/// A real `issue_comment.created` payload turned into `capstan plan` on pull request
/// `number` (GitHub marks comments on pull requests with `issue.pull_request`).
pub fn plan_command(number: u64) -> Vec<u8> {
    let mut v = example("issue_comment", Some("created"));
    v["issue"]["number"] = number.into();
    v["issue"]["pull_request"] = serde_json::json!({
        "url": format!("https://api.github.com/repos/Codertocat/Hello-World/pulls/{number}")
    });
    v["comment"]["body"] = "capstan plan\nplease".into();
    serde_json::to_vec(&v).unwrap()
}

/// A real `issue_comment.created` payload turned into `capstan preview` on pull request
/// `number`, by the real payload's commenter.
pub fn preview_command(number: u64) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&plan_command(number)).unwrap();
    v["comment"]["body"] = "capstan preview".into();
    serde_json::to_vec(&v).unwrap()
}

const REPO: &str = "Codertocat/Hello-World";

fn map(event: &str, v: &Value) -> Result<Event, Ignored> {
    parse(event, &serde_json::to_vec(v).unwrap(), REPO, "master").expect("a real payload parses")
}

#[test]
fn every_real_payload_of_the_events_capstan_reads_maps_as_documented() {
    for v in examples("pull_request") {
        let action = v["action"].as_str().unwrap();
        let n = v["pull_request"]["number"].as_u64().unwrap();
        let got = map("pull_request", &v);
        match action {
            "opened" | "reopened" | "synchronize" | "ready_for_review" | "edited" | "labeled"
            | "unlabeled" => assert_eq!(got, Ok(Event::Pull(n)), "{action}"),
            "closed" => assert_eq!(got, Ok(Event::PullClosed(n))),
            _ => assert!(
                matches!(got, Err(Ignored::Uninteresting(_))),
                "{action}: {got:?}"
            ),
        }
    }
    for v in examples("pull_request_review") {
        let n = v["pull_request"]["number"].as_u64().unwrap();
        assert_eq!(map("pull_request_review", &v), Ok(Event::Pull(n)));
    }
    for v in examples("push") {
        let got = map("push", &v);
        if v["ref"] == "refs/heads/master" {
            assert_eq!(got, Ok(Event::BranchMoved));
        } else {
            assert!(matches!(got, Err(Ignored::Uninteresting(_))), "{got:?}");
        }
    }
    // The real issue comments are on issues, not pull requests, and say something else.
    for v in examples("issue_comment") {
        assert!(matches!(
            map("issue_comment", &v),
            Err(Ignored::Uninteresting(_))
        ));
    }
    let command: Value = serde_json::from_slice(&plan_command(7)).unwrap();
    assert_eq!(map("issue_comment", &command), Ok(Event::Pull(7)));
    let asked: Value = serde_json::from_slice(&preview_command(7)).unwrap();
    assert_eq!(
        map("issue_comment", &asked),
        Ok(Event::PreviewAsked {
            pr: 7,
            by: asked["comment"]["user"]["login"].as_str().unwrap().into()
        })
    );
    for v in examples("ping") {
        assert!(matches!(map("ping", &v), Err(Ignored::Uninteresting(_))));
    }
}

#[test]
fn payloads_of_other_repositories_are_ignored() {
    let v = example("pull_request", Some("opened"));
    let got = parse(
        "pull_request",
        &serde_json::to_vec(&v).unwrap(),
        "acme/infra",
        "main",
    )
    .unwrap();
    assert_eq!(got, Err(Ignored::OtherRepository(REPO.into())));
}

#[test]
fn a_real_payload_signed_by_github_verifies_and_a_tampered_one_does_not() {
    let body = serde_json::to_vec(&example("push", None)).unwrap();
    let signature = sign(b"It's a Secret to Everybody", &body);
    assert!(verify(
        b"It's a Secret to Everybody",
        &body,
        Some(&signature)
    ));
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    assert!(!verify(
        b"It's a Secret to Everybody",
        &tampered,
        Some(&signature)
    ));
    // GitHub's documented test vector.
    assert_eq!(
        sign(b"It's a Secret to Everybody", b"Hello, World!"),
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    );
}
