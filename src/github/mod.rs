//! GitHub's REST API through `octocrab`, reduced to the calls capstan makes, with the
//! failure handling GitHub asks of integrations: 5xx and network errors retried with
//! jittered exponential backoff, primary and secondary rate limits waited out
//! (`Retry-After`, `x-ratelimit-reset`), and non-idempotent requests never blindly
//! repeated (the caller looks first: the daemon's publisher finds comments by marker).
//!
//! There is no trait in front of this: the tests run a fake GitHub over HTTP, so octocrab's
//! own wire behaviour is exercised too. A leaf: it knows nothing of the daemon that uses it
//! (its [`Settings`] are built by the daemon's configuration).

mod endpoints;
pub mod oauth;
mod transport;

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use octocrab::Octocrab;
use octocrab::secrecy::ExposeSecret;

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

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("äöüß", 3), "äö…");
    }
}
