//! How capstan talks to GitHub: one request at a time through octocrab, retried with
//! jittered exponential backoff on 5xx and network errors when that is safe, rate limits
//! waited out for every clone of the client, and list endpoints paged through `Link`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, Method, StatusCode};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::Value;

use super::{Client, GitHubError};

/// Whether a request may be sent again after an answer that leaves it unknown whether it
/// took effect (5xx, a dropped connection).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Repeat {
    Safe,
    /// Only after answers that guarantee nothing happened (rate limits).
    Unsafe,
}

pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) body: Vec<u8>,
}

fn jitter(d: Duration) -> Duration {
    // No RNG dependency for this: the clock's nanoseconds spread retries well enough.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    d + d.mul_f64(f64::from(nanos % 1000) / 4000.0)
}

/// How long a rate-limited answer asks us to wait, or `None` when it is not a rate limit
/// (a plain 403 is a permission problem and retrying won't help).
fn rate_limit_wait(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Option<Duration> {
    if status != StatusCode::FORBIDDEN && status != StatusCode::TOO_MANY_REQUESTS {
        return None;
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(secs) = header("retry-after").and_then(|v| v.parse::<u64>().ok()) {
        return Some(Duration::from_secs(secs));
    }
    if header("x-ratelimit-remaining") == Some("0")
        && let Some(reset) = header("x-ratelimit-reset").and_then(|v| v.parse::<u64>().ok())
    {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        return Some(Duration::from_secs(reset.saturating_sub(now).max(1)));
    }
    let text = String::from_utf8_lossy(body).to_ascii_lowercase();
    if status == StatusCode::TOO_MANY_REQUESTS || text.contains("secondary rate limit") {
        // GitHub's advice for a secondary limit without Retry-After: wait at least a minute.
        return Some(Duration::from_secs(60));
    }
    None
}

fn next_link(headers: &HeaderMap) -> Option<String> {
    let link = headers.get("link")?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (url, rel) = part.split_once(';')?;
        rel.contains("rel=\"next\"").then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

fn message_of(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            text.chars().take(200).collect()
        })
}

impl Client {
    /// Waits while a rate limit one of the clones saw is in force; refuses when it lasts
    /// longer than capstan waits.
    async fn wait_out_limit(&self, method: &Method, path: &str) -> Result<(), GitHubError> {
        let until = *self.limited_until.lock().unwrap_or_else(|p| p.into_inner());
        let Some(until) = until else { return Ok(()) };
        let wait = until.saturating_duration_since(tokio::time::Instant::now());
        if wait.is_zero() {
            return Ok(());
        }
        if wait > self.retry.max_wait {
            return Err(GitHubError::RateLimited {
                method: method.clone(),
                path: path.to_string(),
                wait,
                max: self.retry.max_wait,
            });
        }
        tracing::info!(%method, path, ?wait, "waiting out GitHub's rate limit before sending");
        tokio::time::sleep_until(until).await;
        Ok(())
    }

    /// Notes a rate limit for every clone of this client.
    fn limited_for(&self, wait: Duration) {
        let until = tokio::time::Instant::now() + wait;
        let mut current = self.limited_until.lock().unwrap_or_else(|p| p.into_inner());
        if current.is_none_or(|c| c < until) {
            *current = Some(until);
        }
    }

    /// A next-page link as a path under the configured API: GitHub (Enterprise, reached by
    /// an alias) may write another host into `Link`, and the token goes to the configured
    /// host only.
    fn under_api(&self, link: &str) -> String {
        let host_of = |url: &str| {
            url.split_once("://")
                .map(|(_, rest)| rest.split('/').next().unwrap_or(rest).to_string())
        };
        let Some((_, rest)) = link.split_once("://") else {
            return link.to_string();
        };
        let path = rest.find('/').map_or("/", |i| &rest[i..]);
        if host_of(link) != host_of(&self.api_url) {
            tracing::debug!(link, "following a next page under the configured API");
        }
        path.to_string()
    }

    pub(super) fn repo_path(&self, rest: &str) -> String {
        format!("/repos/{}/{}{rest}", self.owner, self.name)
    }

    async fn once(
        &self,
        method: &Method,
        uri: &str,
        body: Option<&Value>,
    ) -> Result<Answer, String> {
        let response = match *method {
            Method::GET => self.octo._get(uri).await,
            Method::POST => self.octo._post(uri, body).await,
            Method::PATCH => self.octo._patch(uri, body).await,
            _ => return Err(format!("method {method} is not used by capstan")),
        }
        .map_err(|e| e.to_string())?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes()
            .to_vec();
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    pub(super) async fn send(
        &self,
        method: Method,
        uri: &str,
        body: Option<&Value>,
        repeat: Repeat,
    ) -> Result<Answer, GitHubError> {
        let path = uri.to_string();
        let mut backoff = self.retry.backoff;
        let mut failures = 0;
        let mut rate_limited = 0;
        loop {
            self.wait_out_limit(&method, &path).await?;
            let answer = self.once(&method, uri, body).await;
            if let Some(observe) = &self.observer {
                observe(&method, answer.as_ref().map_or(0, |a| a.status.as_u16()));
            }
            let transient = match answer {
                Ok(a) if a.status.is_success() => return Ok(a),
                Ok(a) => {
                    if let Some(wait) = rate_limit_wait(a.status, &a.headers, &a.body) {
                        rate_limited += 1;
                        if wait > self.retry.max_wait || rate_limited > self.retry.attempts {
                            return Err(GitHubError::RateLimited {
                                method,
                                path,
                                wait,
                                max: self.retry.max_wait,
                            });
                        }
                        tracing::warn!(%method, path, ?wait, "GitHub rate limit; waiting");
                        self.limited_for(wait);
                        continue;
                    }
                    let err = GitHubError::Status {
                        method: method.clone(),
                        path: path.clone(),
                        status: a.status.as_u16(),
                        message: message_of(&a.body),
                    };
                    if !a.status.is_server_error() {
                        return Err(err);
                    }
                    err
                }
                Err(message) => GitHubError::Network {
                    method: method.clone(),
                    path: path.clone(),
                    message,
                },
            };
            failures += 1;
            if repeat == Repeat::Unsafe || failures >= self.retry.attempts {
                return Err(transient);
            }
            tracing::warn!(error = %transient, attempt = failures, "GitHub request failed; retrying");
            tokio::time::sleep(jitter(backoff)).await;
            backoff = (backoff * 2).min(Duration::from_secs(60));
        }
    }

    pub(super) fn decode<T: for<'de> Deserialize<'de>>(
        method: Method,
        path: &str,
        body: &[u8],
    ) -> Result<T, GitHubError> {
        serde_json::from_slice(body).map_err(|e| GitHubError::Decode {
            method,
            path: path.to_string(),
            message: e.to_string(),
        })
    }

    /// Every page of a list endpoint.
    pub(super) async fn list<T: for<'de> Deserialize<'de>>(
        &self,
        first: String,
    ) -> Result<Vec<T>, GitHubError> {
        let mut out = Vec::new();
        let mut next = Some(first);
        let mut pages = 0;
        while let Some(uri) = next.take() {
            let answer = self.send(Method::GET, &uri, None, Repeat::Safe).await?;
            let items: Vec<T> = Self::decode(Method::GET, &uri, &answer.body)?;
            out.extend(items);
            pages += 1;
            // A misbehaving server must not keep us paging forever.
            if pages < 1000 {
                next = next_link(&answer.headers).map(|link| self.under_api(&link));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn rate_limits_are_told_apart_from_permission_errors() {
        let retry_after = headers(&[("retry-after", "7")]);
        assert_eq!(
            rate_limit_wait(StatusCode::FORBIDDEN, &retry_after, b"{}"),
            Some(Duration::from_secs(7))
        );
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let primary = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", &(now + 30).to_string()),
        ]);
        let wait = rate_limit_wait(StatusCode::FORBIDDEN, &primary, b"{}").unwrap();
        assert!(
            wait <= Duration::from_secs(30) && wait >= Duration::from_secs(28),
            "{wait:?}"
        );
        let secondary = br#"{"message":"You have exceeded a secondary rate limit."}"#;
        assert_eq!(
            rate_limit_wait(StatusCode::FORBIDDEN, &HeaderMap::new(), secondary),
            Some(Duration::from_secs(60))
        );
        let forbidden = br#"{"message":"Resource not accessible by integration"}"#;
        assert_eq!(
            rate_limit_wait(StatusCode::FORBIDDEN, &HeaderMap::new(), forbidden),
            None
        );
        assert_eq!(
            rate_limit_wait(StatusCode::BAD_GATEWAY, &retry_after, b""),
            None
        );
    }

    #[test]
    fn next_page_comes_from_the_link_header() {
        let h = headers(&[(
            "link",
            "<https://api.github.com/x?page=2>; rel=\"next\", <https://api.github.com/x?page=5>; rel=\"last\"",
        )]);
        assert_eq!(
            next_link(&h).as_deref(),
            Some("https://api.github.com/x?page=2")
        );
        let last = headers(&[("link", "<https://api.github.com/x?page=1>; rel=\"prev\"")]);
        assert_eq!(next_link(&last), None);
    }
}
