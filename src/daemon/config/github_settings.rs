//! `github:`: the repository on GitHub, the credentials, polling and retries.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::{Credential, Environment, GitHubConfig, Overrides, Problems};
use crate::github::{self, Auth, Retry};

#[derive(Deserialize)]
pub(super) struct FileGitHub {
    api_url: Option<String>,
    repository: String,
    token_file: Option<String>,
    app: Option<FileApp>,
    webhook_secret_file: Option<String>,
    poll_interval: Option<String>,
    #[serde(default)]
    retry: FileRetry,
}

impl FileGitHub {
    /// `--github-repository` and `--github-token-file` without a `github:` section.
    pub(super) fn from_flags(repository: String, token_file: String) -> FileGitHub {
        FileGitHub {
            api_url: None,
            repository,
            token_file: Some(token_file),
            app: None,
            webhook_secret_file: None,
            poll_interval: None,
            retry: FileRetry::default(),
        }
    }
}

#[derive(Deserialize)]
struct FileApp {
    id: u64,
    installation_id: u64,
    private_key_file: String,
}

#[derive(Deserialize, Default)]
struct FileRetry {
    attempts: Option<u32>,
    backoff: Option<String>,
    max_wait: Option<String>,
}

/// Whether GitHub was asked for (even if its settings had problems).
pub(super) fn file_has_github(o: &Overrides, github: &Option<GitHubConfig>) -> bool {
    github.is_some() || o.github_repository.is_some() || o.github_token_file.is_some()
}

pub(super) fn github(
    gh: FileGitHub,
    o: &Overrides,
    env: &Environment,
    base_dir: &Path,
    problems: &mut Problems,
) -> Option<GitHubConfig> {
    let repository = o.github_repository.clone().unwrap_or(gh.repository);
    let split = problems.take(
        repository
            .split_once('/')
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .ok_or_else(|| format!("github.repository: `{repository}` is not owner/name")),
    );
    let secret = |what, name: &str, problems: &mut Problems| {
        problems.take(Credential::new(name, env, base_dir).read(what))
    };
    let auth = match (&o.github_token_file, gh.token_file, gh.app) {
        (Some(path), _, _) => {
            secret("GitHub token", &path.display().to_string(), problems).map(Auth::Token)
        }
        (None, Some(file), _) => secret("GitHub token", &file, problems).map(Auth::Token),
        (None, None, Some(app)) => {
            secret("GitHub App private key", &app.private_key_file, problems).map(|key| Auth::App {
                id: app.id,
                installation_id: app.installation_id,
                private_key: key,
            })
        }
        (None, None, None) => {
            problems.0.push("github needs token_file or app".into());
            None
        }
    };
    let webhook_file = o
        .webhook_secret_file
        .as_ref()
        .map(|p| p.display().to_string())
        .or(gh.webhook_secret_file);
    let webhook_secret = webhook_file.and_then(|f| secret("webhook secret", &f, problems));
    let poll = o.poll_interval.clone().or(gh.poll_interval);
    let poll = match poll {
        Some(text) => problems.duration("github.poll_interval", Some(&text), Duration::ZERO),
        None if webhook_secret.is_some() => Duration::ZERO,
        None => Duration::from_secs(60),
    };
    let retry = Retry {
        attempts: gh.retry.attempts.unwrap_or(5),
        backoff: problems.duration(
            "github.retry.backoff",
            gh.retry.backoff.as_deref(),
            Duration::from_secs(1),
        ),
        max_wait: problems.duration(
            "github.retry.max_wait",
            gh.retry.max_wait.as_deref(),
            Duration::from_secs(15 * 60),
        ),
    };
    let (owner, name) = split?;
    Some(GitHubConfig {
        api: github::Settings {
            api_url: o
                .github_api_url
                .clone()
                .or(gh.api_url)
                .unwrap_or_else(|| "https://api.github.com".into())
                .trim_end_matches('/')
                .to_string(),
            owner,
            name,
            auth: auth?,
            retry,
        },
        webhook_secret,
        poll_interval: (!poll.is_zero()).then_some(poll),
    })
}
