//! GitHub webhook deliveries: the `X-Hub-Signature-256` check (HMAC-SHA256, compared in
//! constant time) and the mapping of payloads to the daemon's events. Pure apart from the
//! HMAC, so real payloads from `@octokit/webhooks-examples` test it directly.

use hmac::{KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::Event;

/// The largest body accepted; GitHub caps payloads at 25 MB.
pub const MAX_BODY: usize = 25 * 1024 * 1024;

/// Whether `signature` (`sha256=<hex>`) is the HMAC of `body` under `secret`.
pub fn verify(secret: &[u8], body: &[u8], signature: Option<&str>) -> bool {
    let Some(hex_sig) = signature.and_then(|s| s.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = hmac::Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// The signature header GitHub would send, for tests and tools.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac =
        hmac::Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Why a delivery leads to no work.
#[derive(Debug, PartialEq, Eq)]
pub enum Ignored {
    OtherRepository(String),
    Uninteresting(String),
}

/// Maps a verified delivery to an event for `repository` (`owner/name`) and its deploy
/// `branch`. Errors name what is wrong with the payload, never its content.
pub fn parse(
    event: &str,
    body: &[u8],
    repository: &str,
    branch: &str,
) -> Result<Result<Event, Ignored>, String> {
    let payload: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let str_at = |ptr: &str| payload.pointer(ptr).and_then(Value::as_str);
    let num_at = |ptr: &str| payload.pointer(ptr).and_then(Value::as_u64);
    if event == "ping" {
        return Ok(Err(Ignored::Uninteresting("ping".into())));
    }
    let full_name = str_at("/repository/full_name")
        .ok_or_else(|| format!("a {event} event without repository.full_name"))?;
    if !full_name.eq_ignore_ascii_case(repository) {
        return Ok(Err(Ignored::OtherRepository(full_name.to_string())));
    }
    let action = str_at("/action").unwrap_or("");
    let uninteresting = || Ok(Err(Ignored::Uninteresting(format!("{event}.{action}"))));
    match event {
        "pull_request" => {
            let number = num_at("/pull_request/number")
                .or_else(|| num_at("/number"))
                .ok_or("a pull_request event without a number")?;
            match action {
                "opened" | "reopened" | "synchronize" | "ready_for_review" | "edited"
                | "labeled" | "unlabeled" => Ok(Ok(Event::Pull(number))),
                "closed" => Ok(Ok(Event::PullClosed(number))),
                _ => uninteresting(),
            }
        }
        "pull_request_review" => {
            let number = num_at("/pull_request/number")
                .ok_or("a pull_request_review event without a number")?;
            match action {
                "submitted" | "edited" | "dismissed" => Ok(Ok(Event::Pull(number))),
                _ => uninteresting(),
            }
        }
        "issue_comment" => {
            let number =
                num_at("/issue/number").ok_or("an issue_comment event without an issue number")?;
            let on_pull = payload.pointer("/issue/pull_request").is_some();
            let body = str_at("/comment/body").unwrap_or("");
            let first = body.lines().next().map(str::trim);
            match (action == "created" && on_pull, first) {
                (true, Some("capstan plan")) => Ok(Ok(Event::Pull(number))),
                (true, Some("capstan plan --deep")) => {
                    let by = str_at("/comment/user/login")
                        .ok_or("an issue_comment event without comment.user.login")?;
                    Ok(Ok(Event::DeepAsked {
                        pr: number,
                        by: by.to_string(),
                    }))
                }
                (true, Some("capstan preview")) => {
                    let by = str_at("/comment/user/login")
                        .ok_or("an issue_comment event without comment.user.login")?;
                    Ok(Ok(Event::PreviewAsked {
                        pr: number,
                        by: by.to_string(),
                    }))
                }
                _ => uninteresting(),
            }
        }
        "push" => {
            let reference = str_at("/ref").ok_or("a push event without ref")?;
            if reference == format!("refs/heads/{branch}") {
                Ok(Ok(Event::BranchMoved))
            } else {
                Ok(Err(Ignored::Uninteresting(format!("push to {reference}"))))
            }
        }
        _ => uninteresting(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked() {
        let body = br#"{"zen":"Keep it logically awesome."}"#;
        let good = sign(b"s3cret", body);
        assert!(verify(b"s3cret", body, Some(&good)));
        assert!(!verify(b"other", body, Some(&good)));
        assert!(!verify(b"s3cret", b"{}", Some(&good)));
        assert!(!verify(b"s3cret", body, None));
        assert!(!verify(b"s3cret", body, Some("sha1=abc")));
        assert!(!verify(b"s3cret", body, Some("sha256=zz")));
        assert!(!verify(b"s3cret", body, Some(&good[..good.len() - 2])));
    }

    #[test]
    fn hostile_bodies_are_errors_not_panics() {
        for body in [&b""[..], b"[", b"null", b"\xff\xfe", b"{\"repository\":7}"] {
            let _ = parse("pull_request", body, "a/b", "main");
        }
        let deep = "[".repeat(100_000);
        assert!(parse("push", deep.as_bytes(), "a/b", "main").is_err());
    }
}
