//! GitHub's REST API through `octocrab`, reduced to the calls capstan makes, with the
//! failure handling GitHub asks of integrations: 5xx and network errors retried with
//! jittered exponential backoff, primary and secondary rate limits waited out
//! (`Retry-After`, `x-ratelimit-reset`), and non-idempotent requests never blindly
//! repeated (the caller looks first: the daemon's publisher finds comments by marker).
//!
//! There is no trait in front of this: the tests run a fake GitHub over HTTP, so octocrab's
//! own wire behaviour is exercised too. A leaf: it knows nothing of the daemon that uses it
//! (its [`Settings`] are built by the daemon's configuration).

pub mod oauth;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, Method, StatusCode};
use http_body_util::BodyExt;
use octocrab::Octocrab;
use octocrab::secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::secret::Secret;

/// Where GitHub is and how capstan talks to it.
#[derive(Clone, Debug)]
pub struct Settings {
    /// REST API base, without a trailing slash: `https://api.github.com`, or
    /// `https://HOST/api/v3` for GitHub Enterprise Server.
    pub api_url: String,
    pub owner: String,
    pub name: String,
    pub auth: Auth,
    pub retry: Retry,
}

#[derive(Clone, Debug)]
pub enum Auth {
    Token(Secret),
    App {
        id: u64,
        installation_id: u64,
        private_key: Secret,
    },
}

#[derive(Clone, Debug)]
pub struct Retry {
    pub attempts: u32,
    pub backoff: Duration,
    pub max_wait: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum GitHubError {
    #[error("GitHub answered {status} to {method} {path}: {message}")]
    Status {
        method: Method,
        path: String,
        status: u16,
        message: String,
    },
    #[error(
        "GitHub rate limit on {method} {path}: the reset is {wait:?} away, more than the {max:?} capstan waits"
    )]
    RateLimited {
        method: Method,
        path: String,
        wait: Duration,
        max: Duration,
    },
    #[error("{method} {path} failed: {message}")]
    Network {
        method: Method,
        path: String,
        message: String,
    },
    #[error("unexpected answer to {method} {path}: {message}")]
    Decode {
        method: Method,
        path: String,
        message: String,
    },
    #[error("setting up the GitHub client: {0}")]
    Setup(String),
}

impl GitHubError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            GitHubError::Status { status, .. } => *status >= 500,
            GitHubError::RateLimited { .. } | GitHubError::Network { .. } => true,
            GitHubError::Decode { .. } | GitHubError::Setup(_) => false,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            GitHubError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Called after every HTTP answer (or network failure, status 0), for metrics.
pub type Observer = Arc<dyn Fn(&Method, u16) + Send + Sync>;

#[derive(Clone)]
pub struct Client {
    octo: Octocrab,
    /// The App-level client, to mint installation tokens for git; `None` with a token.
    token: Option<Secret>,
    owner: String,
    name: String,
    retry: Retry,
    observer: Option<Observer>,
    /// The configured API base, e.g. `https://api.github.com`.
    api_url: String,
    /// Until when GitHub asked us to send nothing (a rate limit), for every clone of this
    /// client: one worker's 403 holds all of them, instead of each sending one more.
    limited_until: Arc<std::sync::Mutex<Option<tokio::time::Instant>>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullRequest {
    pub number: u64,
    pub open: bool,
    pub head_sha: String,
    pub base_ref: String,
    pub author: String,
    /// e.g. `https://github.com/acme/infra`, for links to files.
    pub repo_html_url: String,
    /// The commit its merge made on the base branch, once merged.
    pub merge_commit: Option<String>,
    pub labels: Vec<String>,
    /// `owner/name` of the repository its head branch is in; `None` when that repository
    /// is gone (a deleted fork).
    pub head_repo: Option<String>,
    /// `owner/name` of the repository it targets.
    pub base_repo: String,
}

impl PullRequest {
    /// Whether its head branch is in the repository it targets (not a fork).
    pub fn from_same_repository(&self) -> bool {
        self.head_repo
            .as_deref()
            .is_some_and(|h| !self.base_repo.is_empty() && h.eq_ignore_ascii_case(&self.base_repo))
    }
}

#[derive(Clone, Debug)]
pub struct Comment {
    pub id: u64,
    pub body: String,
}

#[derive(Clone, Debug)]
pub struct Issue {
    pub number: u64,
    pub open: bool,
    pub body: String,
}

#[derive(Clone, Debug)]
pub struct Review {
    pub user: String,
    /// `APPROVED`, `CHANGES_REQUESTED`, `COMMENTED`, `DISMISSED`, `PENDING`.
    pub state: String,
    /// The head commit the review was given on.
    pub commit: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusState {
    Pending,
    Success,
    Failure,
    Error,
}

impl StatusState {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusState::Pending => "pending",
            StatusState::Success => "success",
            StatusState::Failure => "failure",
            StatusState::Error => "error",
        }
    }

    pub fn parse(text: &str) -> Option<StatusState> {
        [
            StatusState::Pending,
            StatusState::Success,
            StatusState::Failure,
            StatusState::Error,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// Whether a request may be sent again after an answer that leaves it unknown whether it
/// took effect (5xx, a dropped connection).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Repeat {
    Safe,
    /// Only after answers that guarantee nothing happened (rate limits).
    Unsafe,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

// ---- wire types ----------------------------------------------------------------------

#[derive(Deserialize)]
struct WireUser {
    login: String,
}

#[derive(Deserialize)]
struct WireRepo {
    html_url: String,
    #[serde(default)]
    full_name: String,
}

#[derive(Deserialize)]
struct WireLabel {
    name: String,
}

#[derive(Deserialize)]
struct WirePermission {
    permission: String,
}

#[derive(Deserialize)]
struct WireRef {
    sha: String,
    #[serde(rename = "ref")]
    name: String,
    repo: Option<WireRepo>,
}

#[derive(Deserialize)]
struct WirePull {
    number: u64,
    state: String,
    merged_at: Option<String>,
    merge_commit_sha: Option<String>,
    head: WireRef,
    base: WireRef,
    user: Option<WireUser>,
    #[serde(default)]
    labels: Vec<WireLabel>,
}

#[derive(Deserialize)]
struct WireComment {
    id: u64,
    body: Option<String>,
}

#[derive(Deserialize)]
struct WireIssue {
    number: u64,
    state: String,
    body: Option<String>,
    /// Present when the "issue" is a pull request.
    pull_request: Option<Value>,
}

#[derive(Deserialize)]
struct WireReview {
    user: Option<WireUser>,
    state: String,
    commit_id: Option<String>,
}

#[derive(Deserialize)]
struct WireMembership {
    state: String,
}

impl From<WirePull> for PullRequest {
    fn from(p: WirePull) -> PullRequest {
        PullRequest {
            number: p.number,
            open: p.state == "open",
            head_sha: p.head.sha,
            base_ref: p.base.name,
            author: p.user.map(|u| u.login).unwrap_or_default(),
            repo_html_url: p
                .base
                .repo
                .as_ref()
                .map(|r| r.html_url.clone())
                .unwrap_or_default(),
            merge_commit: p.merged_at.and(p.merge_commit_sha),
            labels: p.labels.into_iter().map(|l| l.name).collect(),
            head_repo: p.head.repo.map(|r| r.full_name),
            base_repo: p.base.repo.map(|r| r.full_name).unwrap_or_default(),
        }
    }
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
    pub fn new(config: &Settings, observer: Option<Observer>) -> Result<Client, GitHubError> {
        let setup = |e: octocrab::Error| GitHubError::Setup(e.to_string());
        let builder = Octocrab::builder()
            .base_uri(config.api_url.as_str())
            .map_err(setup)?
            .set_connect_timeout(Some(Duration::from_secs(10)))
            .set_read_timeout(Some(Duration::from_secs(60)));
        let (octo, token) = match &config.auth {
            Auth::Token(token) => (
                builder
                    .personal_token(token.expose().to_string())
                    .build()
                    .map_err(setup)?,
                Some(token.clone()),
            ),
            Auth::App {
                id,
                installation_id,
                private_key,
            } => {
                let key = octocrab::EncodingKey::from_rsa_pem(private_key.expose().as_bytes())
                    .map_err(|_| {
                        GitHubError::Setup(
                            "the GitHub App private key is not an RSA PEM key".into(),
                        )
                    })?;
                let app = builder
                    .app(octocrab::models::AppId(*id), key)
                    .build()
                    .map_err(setup)?;
                (
                    app.installation(octocrab::models::InstallationId(*installation_id))
                        .map_err(setup)?,
                    None,
                )
            }
        };
        Ok(Client {
            octo,
            token,
            owner: config.owner.clone(),
            name: config.name.clone(),
            retry: config.retry.clone(),
            observer,
            api_url: config.api_url.clone(),
            limited_until: Arc::default(),
        })
    }

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

    /// A token for HTTPS git access to the repository: the personal token, or a fresh
    /// installation token of the App.
    pub async fn git_token(&self) -> Result<Secret, GitHubError> {
        if let Some(t) = &self.token {
            return Ok(t.clone());
        }
        let token = self
            .octo
            .installation_token()
            .await
            .map_err(|e| GitHubError::Setup(format!("minting an installation token: {e}")))?;
        Ok(Secret::new(token.expose_secret()))
    }

    fn repo_path(&self, rest: &str) -> String {
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

    async fn send(
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

    fn decode<T: for<'de> Deserialize<'de>>(
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
    async fn list<T: for<'de> Deserialize<'de>>(
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

    pub async fn pull(&self, number: u64) -> Result<PullRequest, GitHubError> {
        let path = self.repo_path(&format!("/pulls/{number}"));
        let answer = self.send(Method::GET, &path, None, Repeat::Safe).await?;
        Ok(Self::decode::<WirePull>(Method::GET, &path, &answer.body)?.into())
    }

    /// Open pull requests targeting `base`.
    pub async fn open_pulls(&self, base: &str) -> Result<Vec<PullRequest>, GitHubError> {
        let path = self.repo_path(&format!("/pulls?state=open&base={base}&per_page=100"));
        let pulls: Vec<WirePull> = self.list(path).await?;
        Ok(pulls.into_iter().map(PullRequest::from).collect())
    }

    /// Pull requests whose head or merge is commit `sha`.
    pub async fn pulls_of_commit(&self, sha: &str) -> Result<Vec<PullRequest>, GitHubError> {
        let path = self.repo_path(&format!("/commits/{sha}/pulls?per_page=100"));
        let pulls: Vec<WirePull> = self.list(path).await?;
        Ok(pulls.into_iter().map(PullRequest::from).collect())
    }

    pub async fn comments(&self, number: u64) -> Result<Vec<Comment>, GitHubError> {
        let path = self.repo_path(&format!("/issues/{number}/comments?per_page=100"));
        let comments: Vec<WireComment> = self.list(path).await?;
        Ok(comments
            .into_iter()
            .map(|c| Comment {
                id: c.id,
                body: c.body.unwrap_or_default(),
            })
            .collect())
    }

    /// Not repeated on an unclear answer: the caller lists the comments again first.
    pub async fn create_comment(&self, number: u64, body: &str) -> Result<u64, GitHubError> {
        let path = self.repo_path(&format!("/issues/{number}/comments"));
        let answer = self
            .send(
                Method::POST,
                &path,
                Some(&json!({ "body": body })),
                Repeat::Unsafe,
            )
            .await?;
        Ok(Self::decode::<WireComment>(Method::POST, &path, &answer.body)?.id)
    }

    /// The repository's issues (open and closed, not pull requests): number, open, body.
    pub async fn issues(&self) -> Result<Vec<Issue>, GitHubError> {
        let path = self.repo_path("/issues?state=all&per_page=100");
        let issues: Vec<WireIssue> = self.list(path).await?;
        Ok(issues
            .into_iter()
            .filter(|i| i.pull_request.is_none())
            .map(|i| Issue {
                number: i.number,
                open: i.state == "open",
                body: i.body.unwrap_or_default(),
            })
            .collect())
    }

    /// Not repeated on an unclear answer: the caller lists the issues again first.
    pub async fn create_issue(&self, title: &str, body: &str) -> Result<u64, GitHubError> {
        let path = self.repo_path("/issues");
        let answer = self
            .send(
                Method::POST,
                &path,
                Some(&json!({ "title": title, "body": body })),
                Repeat::Unsafe,
            )
            .await?;
        Ok(Self::decode::<WireIssue>(Method::POST, &path, &answer.body)?.number)
    }

    /// Edits an issue's body and whether it is open; the same edit twice is harmless.
    pub async fn update_issue(
        &self,
        number: u64,
        body: &str,
        open: bool,
    ) -> Result<(), GitHubError> {
        let path = self.repo_path(&format!("/issues/{number}"));
        let state = if open { "open" } else { "closed" };
        self.send(
            Method::PATCH,
            &path,
            Some(&json!({ "body": body, "state": state })),
            Repeat::Safe,
        )
        .await
        .map(drop)
    }

    /// Editing a comment to the same body twice is harmless, so this one is retried.
    pub async fn update_comment(&self, id: u64, body: &str) -> Result<(), GitHubError> {
        let path = self.repo_path(&format!("/issues/comments/{id}"));
        self.send(
            Method::PATCH,
            &path,
            Some(&json!({ "body": body })),
            Repeat::Safe,
        )
        .await
        .map(drop)
    }

    /// A commit status; GitHub keeps the latest per context, so a repeat is harmless.
    pub async fn set_status(
        &self,
        sha: &str,
        context: &str,
        state: StatusState,
        description: &str,
        target_url: Option<&str>,
    ) -> Result<(), GitHubError> {
        let path = self.repo_path(&format!("/statuses/{sha}"));
        let mut body = json!({
            "state": state.as_str(),
            "context": context,
            "description": truncate(description, 140),
        });
        if let Some(url) = target_url {
            body["target_url"] = json!(url);
        }
        self.send(Method::POST, &path, Some(&body), Repeat::Safe)
            .await
            .map(drop)
    }

    pub async fn reviews(&self, number: u64) -> Result<Vec<Review>, GitHubError> {
        let path = self.repo_path(&format!("/pulls/{number}/reviews?per_page=100"));
        let reviews: Vec<WireReview> = self.list(path).await?;
        Ok(reviews
            .into_iter()
            .filter_map(|r| {
                Some(Review {
                    user: r.user?.login,
                    state: r.state,
                    commit: r.commit_id,
                })
            })
            .collect())
    }

    /// Whether `user` is an active member of `org/team`.
    /// Whether `user` may push to the repository (permission `admin` or `write`; GitHub
    /// reports `maintain` as `write` there). Someone who is no collaborator may not.
    pub async fn can_write(&self, user: &str) -> Result<bool, GitHubError> {
        let path = self.repo_path(&format!("/collaborators/{user}/permission"));
        match self.send(Method::GET, &path, None, Repeat::Safe).await {
            Ok(answer) => {
                let p: WirePermission = Self::decode(Method::GET, &path, &answer.body)?;
                Ok(matches!(p.permission.as_str(), "admin" | "write"))
            }
            Err(e) if e.status() == Some(404) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub async fn team_member(
        &self,
        org: &str,
        team: &str,
        user: &str,
    ) -> Result<bool, GitHubError> {
        let path = format!("/orgs/{org}/teams/{team}/memberships/{user}");
        match self.send(Method::GET, &path, None, Repeat::Safe).await {
            Ok(answer) => {
                let m: WireMembership = Self::decode(Method::GET, &path, &answer.body)?;
                Ok(m.state == "active")
            }
            Err(e) if e.status() == Some(404) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// At most `max` characters, cut at a character boundary with an ellipsis.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
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

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("äöüß", 3), "äö…");
    }
}
