//! The web view (docs/web.md): a read-only view of what the daemon knows, served as HTML
//! that works without JavaScript. The fleet, an instance, runs and their steps' logs (live
//! while a step runs), pull requests, previews, drift and the graph.
//!
//! Shape: pure pieces decide (`access`, `fleet`, `graph`, `log`), page modules turn what
//! the state and the branch's model say into markup, and this module wires them to routes
//! behind the access check and the security headers. Nothing here writes the state.
//!
//! Secrets: pages show what the CLI's `state show` shows, with the same redaction; logs are
//! the deployer's, already scrubbed; nothing reads a secret file but GitHub sign-in's.

pub mod access;
mod assets;
pub mod fleet;
pub mod graph;
mod layout;
mod log;
mod pages;
mod signin;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use tokio::sync::watch;

use crate::core::Checked;
use crate::core::commit::CommitId;
use crate::core::model::InstanceId;
use crate::state::Store;
pub use access::{Auth, GitHubAuth};
use layout::Context;

/// The deploy branch as last read: its commit and its checked model.
pub struct Branch {
    pub commit: CommitId,
    pub checked: Arc<Checked>,
}

/// Everything the view reads.
pub struct View {
    pub store: Arc<Store>,
    /// The branch's model, updated by the daemon each time it reads the branch.
    pub branch: watch::Receiver<Option<Arc<Branch>>>,
    /// `https://github.com/acme/infra`, for links to commits and pull requests.
    pub github: Option<String>,
    pub auth: Auth,
    sessions: signin::Sessions,
    fleet: Mutex<Option<pages::fleet::Cached>>,
    /// The deployed state as last read, and the state's change sequence then (-1: never
    /// read).
    deployed: Mutex<(i64, Arc<Deployed>)>,
}

type Deployed = BTreeMap<InstanceId, crate::core::deployed::Deployed>;

impl View {
    pub fn new(
        store: Arc<Store>,
        branch: watch::Receiver<Option<Arc<Branch>>>,
        github: Option<String>,
        auth: Auth,
    ) -> View {
        View {
            store,
            branch,
            github,
            auth,
            sessions: signin::Sessions::new(),
            fleet: Mutex::new(None),
            deployed: Mutex::new((-1, Arc::new(BTreeMap::new()))),
        }
    }

    /// Every deployed record now. Only what changed since the last call is read (a
    /// change sequence the state keeps), so a page after one deploy of 40,000 instances
    /// reads one row, not 40,000; a removal the count reveals reads everything again.
    pub(crate) fn deployed(&self) -> Result<Arc<Deployed>, WebError> {
        let mut held = self.deployed.lock().unwrap_or_else(|p| p.into_inner());
        let changed = self.store.deployed_since(held.0)?;
        if changed.seq == held.0 && changed.rows.is_empty() && held.1.len() == changed.count {
            return Ok(held.1.clone());
        }
        let mut map = Arc::clone(&held.1);
        let records = Arc::make_mut(&mut map);
        for record in changed.rows {
            records.insert(record.instance.clone(), record);
        }
        if records.len() != changed.count {
            let all = self.store.deployed_since(-1)?;
            *records = all
                .rows
                .into_iter()
                .map(|d| (d.instance.clone(), d))
                .collect();
            *held = (all.seq, map);
        } else {
            *held = (changed.seq, map);
        }
        Ok(held.1.clone())
    }

    fn branch(&self) -> Option<Arc<Branch>> {
        self.branch.borrow().clone()
    }
}

/// Keeps the fleet's rows current in the background, so a person opening the view does
/// not wait for them: at once when the branch's model changes (a deploy read the branch),
/// and within a second of a change to the state (a step, a drift check, a preview). A
/// second with no change costs one small query. Ends with `stop`.
pub async fn keep_warm(view: Arc<View>, stop: tokio_util::sync::CancellationToken) {
    let mut branch = view.branch.clone();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            changed = branch.changed() => if changed.is_err() { return },
            _ = tick.tick() => {}
        }
        let warm = view.clone();
        let filled =
            tokio::task::spawn_blocking(move || pages::fleet::rows(&warm).map(|_| ())).await;
        if let Ok(Err(WebError::Internal(why))) = filled {
            tracing::warn!(error = why, "the web view could not fill its fleet");
        }
    }
}

/// What a handler returns when it cannot show its page.
#[derive(Debug)]
pub(crate) enum WebError {
    NotFound(String),
    /// The state could not be read; the page says so without the details (they are logged).
    Internal(String),
}

impl From<crate::state::StateError> for WebError {
    fn from(e: crate::state::StateError) -> WebError {
        WebError::Internal(crate::error::chain(&e))
    }
}

impl From<tokio::task::JoinError> for WebError {
    fn from(e: tokio::task::JoinError) -> WebError {
        WebError::Internal(e.to_string())
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (code, text) = match self {
            WebError::NotFound(what) => (StatusCode::NOT_FOUND, what),
            WebError::Internal(why) => {
                tracing::error!(error = why, "the web view could not read the state");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "capstan could not read its state; the daemon's log says why".to_string(),
                )
            }
        };
        let ctx = Context::default();
        (code, layout::page(&ctx, "", "Not shown", html_text(&text))).into_response()
    }
}

fn html_text(text: &str) -> maud::Markup {
    maud::html! { p { (text) } }
}

/// Runs `read` on the blocking pool (SQLite and the model are synchronous).
pub(crate) async fn blocking<T: Send + 'static>(
    view: &Arc<View>,
    read: impl FnOnce(&View) -> Result<T, WebError> + Send + 'static,
) -> Result<T, WebError> {
    let view = view.clone();
    tokio::task::spawn_blocking(move || read(&view)).await?
}

/// The view's routes, behind the access check and the security headers. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()`: the access check needs the peer.
pub fn router(view: Arc<View>) -> Router {
    let pages = pages::routes()
        .route_layer(middleware::from_fn_with_state(view.clone(), admit))
        .merge(signin::routes())
        .route("/assets/{name}", get(assets::serve));
    pages
        .fallback(not_found)
        .with_state(view)
        .layer(middleware::from_fn(headers))
}

async fn not_found() -> WebError {
    WebError::NotFound("There is no such page.".into())
}

/// The user a request was admitted as, for the page header.
#[derive(Clone, Debug)]
pub(crate) struct Admitted(pub Option<String>);

/// The access check: admits, refuses (403, saying what is missing), or sends to sign-in.
async fn admit(
    State(view): State<Arc<View>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let forwarded = match &view.auth {
        Auth::Proxy { header, .. } => request
            .headers()
            .get(header.as_str())
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        _ => None,
    };
    let session = view.sessions.user(request.headers());
    let proxied = ["forwarded", "x-forwarded-for", "x-real-ip"]
        .iter()
        .any(|h| request.headers().contains_key(*h));
    let asked = access::Request {
        forwarded_user: forwarded.as_deref(),
        proxied,
        session: session.as_deref(),
    };
    match access::decide(&view.auth, peer.ip(), asked) {
        access::Decision::Admit(user) => {
            request.extensions_mut().insert(Admitted(user));
            next.run(request).await
        }
        access::Decision::Refuse(why) => {
            tracing::warn!(%peer, why, "web view request refused");
            (StatusCode::FORBIDDEN, format!("{why}\n")).into_response()
        }
        access::Decision::SignIn => Redirect::to("/auth/login").into_response(),
    }
}

/// The Content-Security-Policy of every response: only this origin's own stylesheet and
/// scripts, no inline script or style, no frames, nothing fetched from elsewhere.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

async fn headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// A page of an admitted request: `build` runs on the blocking pool with the request's
/// context (who is looking, where GitHub is).
pub(crate) async fn render(
    view: &Arc<View>,
    admitted: &Admitted,
    build: impl FnOnce(&View, &Context) -> Result<maud::Markup, WebError> + Send + 'static,
) -> Result<maud::Markup, WebError> {
    let ctx = context(view, admitted);
    blocking(view, move |view| build(view, &ctx)).await
}

/// The page context of an admitted request.
pub(crate) fn context(view: &View, admitted: &Admitted) -> Context {
    Context {
        user: admitted.0.clone(),
        github: view.github.clone(),
        signed_in: matches!(view.auth, Auth::GitHub(_)),
    }
}

/// `https://github.com/acme/infra` from the API address GitHub mode talks to:
/// `api.github.com` is `github.com`, GitHub Enterprise's `host/api/v3` is `host`, and
/// anything else (a test's fake) is taken as both.
pub fn github_web_url(api_url: &str, repository: &str) -> String {
    let api = api_url.trim_end_matches('/');
    let web = if let Some(rest) = api.strip_prefix("https://api.") {
        format!("https://{rest}")
    } else if let Some(host) = api.strip_suffix("/api/v3") {
        host.to_string()
    } else {
        api.to_string()
    };
    format!("{web}/{repository}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_links_go_to_the_web_host() {
        assert_eq!(
            github_web_url("https://api.github.com", "acme/infra"),
            "https://github.com/acme/infra"
        );
        assert_eq!(
            github_web_url("https://ghe.example.com/api/v3/", "acme/infra"),
            "https://ghe.example.com/acme/infra"
        );
        assert_eq!(
            github_web_url("http://127.0.0.1:9000", "acme/infra"),
            "http://127.0.0.1:9000/acme/infra"
        );
    }
}
