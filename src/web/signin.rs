//! GitHub sign-in (`ui.auth: github`, docs/web.md#github-sign-in): `/auth/login` sends the
//! browser to GitHub with a one-time `state`, `/auth/callback` takes GitHub's code, asks
//! who the user is and where they belong, and admits a member of the configured
//! organisations or teams with a signed session cookie; `/auth/logout` ends it.
//!
//! Sessions are HMAC-SHA256-signed `login|expiry` values under a key made at start, so a
//! restart signs everyone out and nothing about sessions is stored.

use std::io::Read;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::access::{self, Auth, GitHubAuth};
use super::{View, layout};
use crate::github::oauth::OAuthApp;

const SESSION: &str = "capstan_session";
const STATE: &str = "capstan_oauth_state";
/// How long a sign-in lasts.
const HOURS: i64 = 8;

pub(super) struct Sessions {
    key: [u8; 32],
}

impl Sessions {
    pub(super) fn new() -> Sessions {
        Sessions { key: random() }
    }

    fn sign(&self, value: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(value.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    fn verify(&self, value: &str, signature: &str) -> bool {
        let Ok(given) = hex::decode(signature) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(value.as_bytes());
        mac.verify_slice(&given).is_ok()
    }

    /// A session cookie's value for `login`.
    fn issue(&self, login: &str, now: i64) -> String {
        let value = format!("{login}|{}", now + HOURS * 3600);
        format!("{value}|{}", self.sign(&value))
    }

    /// The signed-in user of a request, if its session cookie is good and current.
    pub(super) fn user(&self, headers: &HeaderMap) -> Option<String> {
        self.user_at(cookie(headers, SESSION)?, chrono::Utc::now().timestamp())
    }

    fn user_at(&self, cookie: &str, now: i64) -> Option<String> {
        let (value, signature) = cookie.rsplit_once('|')?;
        let (login, expiry) = value.split_once('|')?;
        (self.verify(value, signature) && expiry.parse::<i64>().ok()? > now)
            .then(|| login.to_string())
    }
}

fn random() -> [u8; 32] {
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .expect("the system's random source is readable");
    key
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub(super) fn routes() -> Router<Arc<View>> {
    Router::new()
        .route("/auth/login", get(login))
        .route("/auth/callback", get(callback))
        .route("/auth/logout", get(logout))
}

fn github(view: &View) -> Option<&GitHubAuth> {
    match &view.auth {
        Auth::GitHub(g) => Some(g),
        _ => None,
    }
}

fn app(g: &GitHubAuth) -> OAuthApp {
    OAuthApp {
        web_url: g.web_url.clone(),
        api_url: g.api_url.clone(),
        client_id: g.client_id.clone(),
        client_secret: g.client_secret.clone(),
    }
}

fn redirect_uri(g: &GitHubAuth) -> String {
    format!("{}/auth/callback", g.public_url.trim_end_matches('/'))
}

fn set_cookie(response: &mut Response, name: &str, value: &str, max_age: i64, path: &str) {
    let text = format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax");
    if let Ok(v) = HeaderValue::from_str(&text) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}

async fn login(State(view): State<Arc<View>>) -> Response {
    let Some(g) = github(&view) else {
        return (
            StatusCode::NOT_FOUND,
            "sign-in is not configured (ui.auth: github)\n",
        )
            .into_response();
    };
    let state = hex::encode(&random()[..16]);
    let mut response =
        Redirect::to(&app(g).authorize_url(&redirect_uri(g), &state)).into_response();
    set_cookie(&mut response, STATE, &state, 600, "/auth");
    response
}

#[derive(serde::Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
}

async fn callback(
    State(view): State<Arc<View>>,
    headers: HeaderMap,
    Query(back): Query<Callback>,
) -> Response {
    let Some(g) = github(&view) else {
        return (
            StatusCode::NOT_FOUND,
            "sign-in is not configured (ui.auth: github)\n",
        )
            .into_response();
    };
    let expected = cookie(&headers, STATE);
    let (Some(code), Some(state)) = (back.code.as_deref(), back.state.as_deref()) else {
        return refuse("GitHub sent no code back; sign in again.");
    };
    if expected != Some(state) {
        return refuse(
            "This sign-in was not started here (its state does not match); sign in again.",
        );
    }
    let who = match app(g).sign_in(code, &redirect_uri(g)).await {
        Ok(who) => who,
        Err(e) => {
            tracing::warn!(error = %crate::error::chain(&e), "GitHub sign-in failed");
            return (
                StatusCode::BAD_GATEWAY,
                "GitHub sign-in failed; the daemon's log says why.\n",
            )
                .into_response();
        }
    };
    if !access::member(g, &who.orgs, &who.teams) {
        tracing::warn!(user = who.login, "GitHub sign-in refused: not a member");
        return refuse(&format!(
            "{} is not a member of the organisations or teams this view admits.",
            who.login
        ));
    }
    tracing::info!(user = who.login, "signed in to the web view");
    let mut response = Redirect::to("/").into_response();
    let now = chrono::Utc::now().timestamp();
    set_cookie(
        &mut response,
        SESSION,
        &view.sessions.issue(&who.login, now),
        HOURS * 3600,
        "/",
    );
    set_cookie(&mut response, STATE, "", 0, "/auth");
    response
}

async fn logout() -> Response {
    let ctx = layout::Context::default();
    let body =
        maud::html! { p { "You are signed out. " a href="/auth/login" { "Sign in again" } } };
    let mut response = layout::page(&ctx, "", "Signed out", body).into_response();
    set_cookie(&mut response, SESSION, "", 0, "/");
    response
}

fn refuse(why: &str) -> Response {
    let ctx = layout::Context::default();
    let body = maud::html! { p { (why) } p { a href="/auth/login" { "Sign in" } } };
    (
        StatusCode::FORBIDDEN,
        layout::page(&ctx, "", "Not signed in", body),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_good_only_signed_and_current() {
        let sessions = Sessions::new();
        let cookie = sessions.issue("alice", 1_000);
        assert_eq!(sessions.user_at(&cookie, 1_001), Some("alice".into()));
        assert_eq!(sessions.user_at(&cookie, 1_000 + HOURS * 3600 + 1), None);
        let forged = cookie.replace("alice", "mallory");
        assert_eq!(sessions.user_at(&forged, 1_001), None);
        let other = Sessions::new();
        assert_eq!(other.user_at(&cookie, 1_001), None, "a restart signs out");
    }
}
