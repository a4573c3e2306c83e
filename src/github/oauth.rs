//! GitHub sign-in for the web view (docs/web.md#github-sign-in): the OAuth web flow's code
//! exchanged for a user token at GitHub's web host, then who the user is and which
//! organisations and teams they belong to, asked of the REST API with that token. The
//! token is used for these three requests only and never stored.

use std::time::Duration;

use http::StatusCode;
use http_body_util::BodyExt;
use octocrab::Octocrab;
use serde_json::{Value, json};

use super::GitHubError;
use crate::secret::Secret;

/// A GitHub OAuth app as the view uses it.
#[derive(Clone, Debug)]
pub struct OAuthApp {
    /// `https://github.com` (GitHub Enterprise: its host).
    pub web_url: String,
    /// The REST API base.
    pub api_url: String,
    pub client_id: String,
    pub client_secret: Secret,
}

/// Who signed in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedIn {
    pub login: String,
    /// Organisations, by login.
    pub orgs: Vec<String>,
    /// Teams, as `@org/team`.
    pub teams: Vec<String>,
}

impl OAuthApp {
    /// Where the browser is sent to sign in and consent.
    pub fn authorize_url(&self, redirect_uri: &str, state: &str) -> String {
        format!(
            "{}/login/oauth/authorize?client_id={}&redirect_uri={}&scope=read%3Aorg&state={}",
            self.web_url.trim_end_matches('/'),
            encode(&self.client_id),
            encode(redirect_uri),
            encode(state)
        )
    }

    /// The user token for the `code` GitHub sent back, then who it belongs to.
    pub async fn sign_in(&self, code: &str, redirect_uri: &str) -> Result<SignedIn, GitHubError> {
        let token = self.exchange(code, redirect_uri).await?;
        let api = client(&self.api_url, Some(token.expose()))?;
        let user = get(&api, "/user").await?;
        let login = user["login"]
            .as_str()
            .ok_or_else(|| failed("/user", "no login in the answer"))?
            .to_string();
        let orgs = get(&api, "/user/orgs?per_page=100").await?;
        let teams = get(&api, "/user/teams?per_page=100").await?;
        Ok(SignedIn {
            login,
            orgs: orgs
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| o["login"].as_str().map(str::to_string))
                .collect(),
            teams: teams
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| {
                    Some(format!(
                        "@{}/{}",
                        t["organization"]["login"].as_str()?,
                        t["slug"].as_str()?
                    ))
                })
                .collect(),
        })
    }

    async fn exchange(&self, code: &str, redirect_uri: &str) -> Result<Secret, GitHubError> {
        let web = client(&self.web_url, None)?;
        let body = json!({
            "client_id": self.client_id,
            "client_secret": self.client_secret.expose(),
            "code": code,
            "redirect_uri": redirect_uri,
        });
        let path = "/login/oauth/access_token";
        let request = http::Request::builder()
            .method(http::Method::POST)
            .uri(format!("{}{path}", self.web_url.trim_end_matches('/')))
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(octocrab::OctoBody::from(body.to_string()))
            .map_err(|e| failed(path, &e.to_string()))?;
        let response = web
            .execute(request)
            .await
            .map_err(|e| failed(path, &e.to_string()))?;
        let (status, answer) = read(response, path).await?;
        if status != StatusCode::OK {
            return Err(failed(path, &format!("answered {status}")));
        }
        match answer["access_token"].as_str() {
            Some(token) if !token.is_empty() => Ok(Secret::new(token)),
            // GitHub answers 200 with `error` for a bad or used code; its words name no secret.
            _ => Err(failed(
                path,
                answer["error"]
                    .as_str()
                    .unwrap_or("no access token in the answer"),
            )),
        }
    }
}

fn client(base: &str, token: Option<&str>) -> Result<Octocrab, GitHubError> {
    let setup = |e: octocrab::Error| GitHubError::Setup(e.to_string());
    let builder = Octocrab::builder()
        .base_uri(base)
        .map_err(setup)?
        .set_connect_timeout(Some(Duration::from_secs(10)))
        .set_read_timeout(Some(Duration::from_secs(30)));
    match token {
        Some(t) => builder.personal_token(t.to_string()).build(),
        None => builder.build(),
    }
    .map_err(setup)
}

async fn get(api: &Octocrab, path: &str) -> Result<Value, GitHubError> {
    let response = api
        ._get(path)
        .await
        .map_err(|e| failed(path, &e.to_string()))?;
    let (status, value) = read(response, path).await?;
    if !status.is_success() {
        return Err(failed(path, &format!("answered {status}")));
    }
    Ok(value)
}

async fn read<B>(
    response: http::Response<B>,
    path: &str,
) -> Result<(StatusCode, Value), GitHubError>
where
    B: http_body::Body,
    B::Error: std::fmt::Display,
{
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| failed(path, &e.to_string()))?
        .to_bytes();
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

fn failed(path: &str, message: &str) -> GitHubError {
    GitHubError::Status {
        method: http::Method::GET,
        path: path.to_string(),
        status: 0,
        message: format!("signing in: {message}"),
    }
}

fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
