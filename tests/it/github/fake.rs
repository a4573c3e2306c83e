//! A fake GitHub for end-to-end tests: an HTTP server keeping pull requests, comments,
//! statuses, reviews and team memberships, answering with bodies built from GitHub's own
//! OpenAPI examples, and checking every request and answer against the OpenAPI description
//! ([`super::openapi`]). Failures (502s, rate limits) are injected per request.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::openapi::spec;

#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub status: u16,
    /// When the fake received it.
    pub at: std::time::Instant,
}

#[derive(Clone, Debug)]
struct Failure {
    method: Method,
    path_contains: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

#[derive(Clone, Debug)]
struct Pull {
    head: String,
    base: String,
    author: String,
    open: bool,
    /// Set when merged: the commit the merge made on the base branch.
    merge_commit: Option<String>,
    labels: Vec<String>,
    /// `owner/name` of the repository the head branch is in (another one for a fork).
    head_repo: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Comment {
    pub id: u64,
    pub issue: u64,
    pub body: String,
    pub user: String,
}

/// An issue (not a pull request) of the repository.
#[derive(Clone, Debug)]
pub struct Issue {
    pub number: u64,
    pub title: String,
    pub body: String,
    pub open: bool,
}

#[derive(Clone, Debug)]
pub struct Status {
    pub sha: String,
    pub context: String,
    pub state: String,
    pub description: String,
}

struct Inner {
    /// With a GitHub App: its id, which the JWT minting installation tokens must carry.
    app_id: Option<u64>,
    owner: String,
    repo: String,
    token: String,
    next_id: u64,
    page_size: usize,
    pulls: BTreeMap<u64, Pull>,
    comments: Vec<Comment>,
    issues: Vec<Issue>,
    statuses: Vec<Status>,
    /// (user, state, the head it was given on).
    reviews: BTreeMap<u64, Vec<(String, String, String)>>,
    teams: BTreeSet<(String, String, String)>,
    /// Repository permission by login; the owner is `admin`, anyone else `read` unless set.
    permissions: BTreeMap<String, String>,
    failures: VecDeque<Failure>,
    requests: Vec<Recorded>,
    violations: Vec<String>,
    /// Written into `Link` headers instead of the host a request came to, as a GitHub
    /// Enterprise reached by an alias writes its canonical name.
    canonical_host: Option<String>,
    /// Pull requests answered with another number (a misbehaving proxy or cache).
    renumbered: BTreeMap<u64, u64>,
    /// OAuth sign-in (GitHub's web host, not its REST API): the app's client id and
    /// secret, who signs in at the authorize page, the codes and user tokens handed out,
    /// and organisation memberships by login.
    oauth_app: Option<(String, String)>,
    oauth_login: Option<String>,
    oauth_codes: BTreeMap<String, String>,
    user_tokens: BTreeMap<String, String>,
    orgs: BTreeMap<String, Vec<String>>,
    /// The user a user token belongs to, for the request being answered.
    caller: Option<String>,
}

pub struct FakeGitHub {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    stop: Arc<tokio::sync::Notify>,
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        self.stop.notify_one();
    }
}

const NOW: &str = "2026-11-21T09:00:00Z";

impl FakeGitHub {
    /// Starts the fake on a free port of 127.0.0.1, on its own thread.
    pub fn start(owner: &str, repo: &str, token: &str) -> FakeGitHub {
        // Load and check the description before taking requests.
        let _ = &spec().example("issue-comment");
        let inner = Arc::new(Mutex::new(Inner {
            app_id: None,
            owner: owner.into(),
            repo: repo.into(),
            token: token.into(),
            next_id: 1000,
            page_size: 2,
            pulls: BTreeMap::new(),
            comments: Vec::new(),
            issues: Vec::new(),
            statuses: Vec::new(),
            reviews: BTreeMap::new(),
            teams: BTreeSet::new(),
            permissions: BTreeMap::new(),
            failures: VecDeque::new(),
            requests: Vec::new(),
            violations: Vec::new(),
            canonical_host: None,
            renumbered: BTreeMap::new(),
            oauth_app: None,
            oauth_login: None,
            oauth_codes: BTreeMap::new(),
            user_tokens: BTreeMap::new(),
            orgs: BTreeMap::new(),
            caller: None,
        }));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = Arc::new(tokio::sync::Notify::new());
        let (state, stopped) = (inner.clone(), stop.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = axum::Router::new().fallback(handle).with_state(state);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move { stopped.notified().await })
                    .await
                    .unwrap();
            });
        });
        FakeGitHub { url, inner, stop }
    }

    /// Pages link to `host` (`name:port`) whatever host a request came to.
    pub fn canonical_host(&self, host: &str) {
        self.lock().canonical_host = Some(host.into());
    }

    /// `GET /pulls/{from}` answers with `number: to`.
    pub fn renumber(&self, from: u64, to: u64) {
        self.lock().renumbered.insert(from, to);
    }

    /// Installation tokens (the fake's token) are minted for a JWT issued by App `id`.
    pub fn accept_app(&self, id: u64) {
        self.lock().app_id = Some(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }

    pub fn open_pull(&self, number: u64, head: &str, base: &str, author: &str) {
        let mut inner = self.lock();
        let same = format!("{}/{}", inner.owner, inner.repo);
        inner.pulls.insert(
            number,
            Pull {
                head: head.into(),
                base: base.into(),
                author: author.into(),
                open: true,
                merge_commit: None,
                labels: Vec::new(),
                head_repo: Some(same),
            },
        );
    }

    /// The pull request's head branch lives in `repository` (a fork).
    pub fn fork_pull(&self, number: u64, repository: &str) {
        self.lock().pulls.get_mut(&number).unwrap().head_repo = Some(repository.into());
    }

    pub fn label_pull(&self, number: u64, label: &str) {
        self.lock()
            .pulls
            .get_mut(&number)
            .unwrap()
            .labels
            .push(label.into());
    }

    /// `login`'s permission on the repository: `admin`, `write`, `read` or `none`.
    pub fn permission(&self, login: &str, permission: &str) {
        self.lock()
            .permissions
            .insert(login.into(), permission.into());
    }

    pub fn set_head(&self, number: u64, head: &str) {
        self.lock().pulls.get_mut(&number).unwrap().head = head.into();
    }

    pub fn close_pull(&self, number: u64) {
        self.lock().pulls.get_mut(&number).unwrap().open = false;
    }

    /// Closes a pull request as merged into commit `sha` of its base branch.
    pub fn merge_pull(&self, number: u64, sha: &str) {
        let mut inner = self.lock();
        let pull = inner.pulls.get_mut(&number).unwrap();
        pull.open = false;
        pull.merge_commit = Some(sha.into());
    }

    /// A review of pull request `number`'s current head.
    pub fn review(&self, number: u64, user: &str, state: &str) {
        let mut inner = self.lock();
        let head = inner
            .pulls
            .get(&number)
            .map(|p| p.head.clone())
            .unwrap_or_default();
        inner
            .reviews
            .entry(number)
            .or_default()
            .push((user.into(), state.into(), head));
    }

    pub fn team_member(&self, org: &str, team: &str, user: &str) {
        self.lock()
            .teams
            .insert((org.into(), team.into(), user.into()));
    }

    /// An OAuth app with this client id and secret, for sign-in.
    pub fn oauth_app(&self, client_id: &str, secret: &str) {
        self.lock().oauth_app = Some((client_id.into(), secret.into()));
    }

    /// Who signs in (and consents) at the authorize page from now on.
    pub fn signs_in(&self, login: &str) {
        self.lock().oauth_login = Some(login.into());
    }

    pub fn org_member(&self, org: &str, login: &str) {
        self.lock()
            .orgs
            .entry(login.into())
            .or_default()
            .push(org.into());
    }

    /// A comment by someone else, e.g. to make capstan page through the list.
    pub fn human_comment(&self, issue: u64, body: &str) {
        let mut inner = self.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        inner.comments.push(Comment {
            id,
            issue,
            body: body.into(),
            user: "reviewer".into(),
        });
    }

    /// The next `times` requests of `method` whose path contains `path_contains` fail.
    pub fn fail(
        &self,
        method: Method,
        path_contains: &str,
        status: u16,
        headers: &[(&str, &str)],
        times: usize,
    ) {
        let mut inner = self.lock();
        for _ in 0..times {
            inner.failures.push_back(Failure {
                method: method.clone(),
                path_contains: path_contains.into(),
                status,
                headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                body: json!({"message": format!("injected {status}"), "documentation_url": "https://docs.github.com/rest"}),
            });
        }
    }

    pub fn comments(&self, issue: u64) -> Vec<Comment> {
        self.lock()
            .comments
            .iter()
            .filter(|c| c.issue == issue)
            .cloned()
            .collect()
    }

    /// Capstan's comments on `issue` (those starting with its marker).
    pub fn capstan_comments(&self, issue: u64) -> Vec<Comment> {
        self.comments(issue)
            .into_iter()
            .filter(|c| c.body.starts_with(capstan::core::render::markdown::MARKER))
            .collect()
    }

    /// The repository's issues (not pull requests).
    pub fn issues(&self) -> Vec<Issue> {
        self.lock().issues.clone()
    }

    pub fn statuses(&self, sha: &str) -> Vec<Status> {
        self.lock()
            .statuses
            .iter()
            .filter(|s| s.sha == sha)
            .cloned()
            .collect()
    }

    /// The latest status per context on `sha`: context -> (state, description).
    pub fn latest_statuses(&self, sha: &str) -> BTreeMap<String, (String, String)> {
        self.statuses(sha)
            .into_iter()
            .map(|s| (s.context, (s.state, s.description)))
            .collect()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// Waits until no request has come for a while: the daemon's background work (plans,
    /// previews) is done.
    pub fn settle(&self) {
        let quiet = std::time::Duration::from_millis(800);
        let start = std::time::Instant::now();
        loop {
            let last = self.lock().requests.last().map(|r| r.at);
            if last.is_none_or(|at| at.elapsed() >= quiet) {
                return;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(60),
                "GitHub kept being called for a minute"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// How many requests changed something (not GET) and succeeded.
    pub fn writes(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method != "GET" && r.status < 300)
            .count()
    }

    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    pub fn assert_no_violations(&self) {
        let v = self.violations();
        assert!(
            v.is_empty(),
            "requests or answers that break GitHub's OpenAPI description:\n{}",
            v.join("\n")
        );
    }
}

/// The `iss` claim of a `Bearer <JWT>` header (the signature is octocrab's business; the
/// fake checks who claims to be asking).
fn jwt_issuer(auth: &str) -> Option<u64> {
    use base64::Engine;
    let jwt = auth.strip_prefix("Bearer ")?;
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims["iss"]
        .as_u64()
        .or_else(|| claims["iss"].as_str()?.parse().ok())
}

impl Inner {
    /// GitHub's OAuth web flow (docs.github.com, "Authorizing OAuth apps"): the authorize
    /// page consents at once for whoever `signs_in` and sends the browser back with a code;
    /// the token endpoint trades a code, once, for a user token. Not part of the REST
    /// API's description, so not checked against it.
    fn oauth(
        &mut self,
        method: &Method,
        path: &str,
        query: &[(String, String)],
        body: &[u8],
    ) -> Response {
        let param = |name: &str| {
            query.iter().find(|(k, _)| k == name).map(|(_, v)| {
                percent_encoding::percent_decode_str(v)
                    .decode_utf8_lossy()
                    .into_owned()
            })
        };
        let Some((client_id, secret)) = self.oauth_app.clone() else {
            return (StatusCode::NOT_FOUND, "no OAuth app").into_response();
        };
        match (method.as_str(), path) {
            ("GET", "/login/oauth/authorize") => {
                let (Some(redirect), Some(state), Some(login)) = (
                    param("redirect_uri"),
                    param("state"),
                    self.oauth_login.clone(),
                ) else {
                    return (
                        StatusCode::BAD_REQUEST,
                        "redirect_uri and state are required",
                    )
                        .into_response();
                };
                if param("client_id").as_deref() != Some(client_id.as_str()) {
                    return (StatusCode::NOT_FOUND, "no such application").into_response();
                }
                self.next_id += 1;
                let code = format!("code{}", self.next_id);
                self.oauth_codes.insert(code.clone(), login);
                let to = format!("{redirect}?code={code}&state={state}");
                (StatusCode::FOUND, [("location", to)]).into_response()
            }
            ("POST", "/login/oauth/access_token") => {
                let asked: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
                let good = asked["client_id"] == json!(client_id)
                    && asked["client_secret"] == json!(secret);
                let login = asked["code"]
                    .as_str()
                    .and_then(|c| self.oauth_codes.remove(c));
                let answer = match (good, login) {
                    (true, Some(login)) => {
                        self.next_id += 1;
                        let token = format!("gho_user{}", self.next_id);
                        self.user_tokens.insert(token.clone(), login);
                        json!({"access_token": token, "token_type": "bearer", "scope": "read:org"})
                    }
                    (false, _) => json!({"error": "incorrect_client_credentials"}),
                    (true, None) => json!({"error": "bad_verification_code"}),
                };
                (
                    StatusCode::OK,
                    [("content-type", "application/json; charset=utf-8")],
                    answer.to_string(),
                )
                    .into_response()
            }
            _ => (StatusCode::NOT_FOUND, "Not Found").into_response(),
        }
    }
}

fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn user(login: &str) -> Value {
    let mut u = spec().example("simple-user");
    if u.is_null() {
        u = json!({
            "login": login, "id": 1, "node_id": "MDQ6VXNlcjE=",
            "avatar_url": "https://github.com/images/error/octocat_happy.gif", "gravatar_id": "",
            "url": "https://api.github.com/users/octocat", "html_url": "https://github.com/octocat",
            "followers_url": "https://api.github.com/users/octocat/followers",
            "following_url": "https://api.github.com/users/octocat/following{/other_user}",
            "gists_url": "https://api.github.com/users/octocat/gists{/gist_id}",
            "starred_url": "https://api.github.com/users/octocat/starred{/owner}{/repo}",
            "subscriptions_url": "https://api.github.com/users/octocat/subscriptions",
            "organizations_url": "https://api.github.com/users/octocat/orgs",
            "repos_url": "https://api.github.com/users/octocat/repos",
            "events_url": "https://api.github.com/users/octocat/events{/privacy}",
            "received_events_url": "https://api.github.com/users/octocat/received_events",
            "type": "User", "site_admin": false
        });
    }
    u["login"] = json!(login);
    u
}

impl Inner {
    fn take_failure(&mut self, method: &Method, path: &str) -> Option<Failure> {
        let i = self
            .failures
            .iter()
            .position(|f| f.method == method && path.contains(&f.path_contains))?;
        self.failures.remove(i)
    }

    fn comment_json(&self, c: &Comment) -> Value {
        let mut v = spec().example("issue-comment");
        let base = format!("https://api.github.com/repos/{}/{}", self.owner, self.repo);
        v["id"] = json!(c.id);
        v["body"] = json!(c.body);
        v["user"] = user(&c.user);
        v["url"] = json!(format!("{base}/issues/comments/{}", c.id));
        v["issue_url"] = json!(format!("{base}/issues/{}", c.issue));
        v["html_url"] = json!(format!(
            "https://github.com/{}/{}/pull/{}#issuecomment-{}",
            self.owner, self.repo, c.issue, c.id
        ));
        v["created_at"] = json!(NOW);
        v["updated_at"] = json!(NOW);
        v
    }

    fn issue_json(&self, i: &Issue) -> Value {
        let mut v = spec().example("issue");
        let base = format!("https://api.github.com/repos/{}/{}", self.owner, self.repo);
        v["number"] = json!(i.number);
        v["title"] = json!(i.title);
        v["body"] = json!(i.body);
        v["state"] = json!(if i.open { "open" } else { "closed" });
        v["url"] = json!(format!("{base}/issues/{}", i.number));
        v["html_url"] = json!(format!(
            "https://github.com/{}/{}/issues/{}",
            self.owner, self.repo, i.number
        ));
        if let Some(map) = v.as_object_mut() {
            // An issue, not a pull request.
            map.remove("pull_request");
        }
        v
    }

    fn pull_json(&self, example: &str, number: u64, p: &Pull) -> Value {
        let mut v = spec().example(example);
        if v.is_array() {
            v = v[0].clone();
        }
        // The fake models no review requests (and GitHub's own example of one lacks a
        // required `type`, which the checker caught).
        v["requested_teams"] = json!([]);
        v["requested_reviewers"] = json!([]);
        v["number"] = json!(self.renumbered.get(&number).copied().unwrap_or(number));
        v["state"] = json!(if p.open { "open" } else { "closed" });
        v["user"] = user(&p.author);
        v["head"]["sha"] = json!(p.head);
        v["head"]["ref"] = json!(format!("change-{number}"));
        v["base"]["ref"] = json!(p.base);
        v["base"]["repo"]["full_name"] = json!(format!("{}/{}", self.owner, self.repo));
        v["base"]["repo"]["html_url"] =
            json!(format!("https://github.com/{}/{}", self.owner, self.repo));
        v["html_url"] = json!(format!(
            "https://github.com/{}/{}/pull/{number}",
            self.owner, self.repo
        ));
        v["merge_commit_sha"] = json!(p.merge_commit);
        v["merged_at"] = json!(p.merge_commit.as_ref().map(|_| NOW));
        let label = v["labels"][0].clone();
        v["labels"] = p
            .labels
            .iter()
            .map(|name| {
                let mut l = label.clone();
                l["name"] = json!(name);
                l
            })
            .collect();
        match &p.head_repo {
            Some(full) => {
                v["head"]["repo"] = v["base"]["repo"].clone();
                v["head"]["repo"]["full_name"] = json!(full);
            }
            None => v["head"]["repo"] = Value::Null,
        }
        v
    }

    /// A page of `items` with GitHub's Link header.
    fn page(
        &self,
        items: Vec<Value>,
        query: &[(String, String)],
        base: &str,
    ) -> (u16, Value, Vec<(String, String)>) {
        let page: usize = query
            .iter()
            .find(|(k, _)| k == "page")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(1);
        let size = self.page_size;
        let pages = items.len().div_ceil(size).max(1);
        let chunk: Vec<Value> = items
            .into_iter()
            .skip((page - 1) * size)
            .take(size)
            .collect();
        let mut headers = Vec::new();
        if page < pages {
            let rest: Vec<String> = query
                .iter()
                .filter(|(k, _)| k != "page")
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            headers.push((
                "link".to_string(),
                format!(
                    "<{base}?{}&page={}>; rel=\"next\", <{base}?{}&page={pages}>; rel=\"last\"",
                    rest.join("&"),
                    page + 1,
                    rest.join("&")
                ),
            ));
        }
        (200, Value::Array(chunk), headers)
    }

    fn route(
        &mut self,
        method: &Method,
        segments: &[&str],
        query: &[(String, String)],
        body: Option<&Value>,
        url: &str,
    ) -> (u16, Value, Vec<(String, String)>) {
        let not_found = || {
            (
                404,
                json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}),
                Vec::new(),
            )
        };
        let param = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        match (method.as_str(), segments) {
            ("GET", ["user"]) => match self.caller.clone() {
                Some(login) => {
                    let mut v = spec().example(
                        "private-user-response-with-public-and-private-profile-information",
                    );
                    v["login"] = json!(login);
                    (200, v, Vec::new())
                }
                None => not_found(),
            },
            ("GET", ["user", "orgs"]) => {
                let login = self.caller.clone().unwrap_or_default();
                let template = spec().example("organization-simple-items")[0].clone();
                let orgs: Vec<Value> = self
                    .orgs
                    .get(&login)
                    .into_iter()
                    .flatten()
                    .map(|org| {
                        let mut v = template.clone();
                        v["login"] = json!(org);
                        v
                    })
                    .collect();
                (200, Value::Array(orgs), Vec::new())
            }
            ("GET", ["user", "teams"]) => {
                let login = self.caller.clone().unwrap_or_default();
                let template = spec().example("team-full-items")[0].clone();
                let teams: Vec<Value> = self
                    .teams
                    .iter()
                    .filter(|(_, _, user)| *user == login)
                    .map(|(org, team, _)| {
                        let mut v = template.clone();
                        v["slug"] = json!(team);
                        v["organization"]["login"] = json!(org);
                        // Required by the schema, missing from GitHub's own example.
                        v["type"] = json!("organization");
                        v["organization"]["archived_at"] = Value::Null;
                        v
                    })
                    .collect();
                (200, Value::Array(teams), Vec::new())
            }
            ("POST", ["app", "installations", _, "access_tokens"]) => {
                let mut v = spec().example("installation-token");
                v["token"] = json!(self.token);
                v["expires_at"] = json!("2099-01-01T00:00:00Z");
                (201, v, Vec::new())
            }
            ("GET", ["orgs", org, "teams", team, "memberships", login]) => {
                if self
                    .teams
                    .contains(&(org.to_string(), team.to_string(), login.to_string()))
                {
                    let mut v =
                        spec().example("team-membership-response-if-user-is-a-team-maintainer");
                    v["state"] = json!("active");
                    v["role"] = json!("member");
                    (200, v, Vec::new())
                } else {
                    not_found()
                }
            }
            (_, ["repos", owner, repo, rest @ ..]) => {
                if *owner != self.owner || *repo != self.repo {
                    return not_found();
                }
                match (method.as_str(), rest) {
                    ("GET", ["collaborators", login, "permission"]) => {
                        let permission = if *login == self.owner {
                            "admin".to_string()
                        } else {
                            self.permissions
                                .get(*login)
                                .cloned()
                                .unwrap_or_else(|| "read".into())
                        };
                        let mut v = spec().example(
                            "repository-collaborator-permission-response-if-user-has-admin-permissions",
                        );
                        v["permission"] = json!(permission);
                        v["role_name"] = json!(permission);
                        v["user"]["login"] = json!(login);
                        // GitHub's own example lacks it; its schema requires it.
                        v["user"]["role_name"] = json!(permission);
                        (200, v, Vec::new())
                    }
                    ("GET", ["pulls"]) => {
                        let items: Vec<Value> = self
                            .pulls
                            .iter()
                            .filter(|(_, p)| p.open || param("state") == Some("all"))
                            .filter(|(_, p)| param("base").is_none_or(|b| b == p.base))
                            .map(|(n, p)| self.pull_json("pull-request-simple-items", *n, p))
                            .collect();
                        self.page(items, query, url)
                    }
                    ("GET", ["pulls", n]) => match n
                        .parse()
                        .ok()
                        .and_then(|n| self.pulls.get(&n).map(|p| (n, p)))
                    {
                        Some((n, p)) => (200, self.pull_json("pull-request", n, p), Vec::new()),
                        None => not_found(),
                    },
                    ("GET", ["pulls", n, "reviews"]) => {
                        let n: u64 = n.parse().unwrap_or(0);
                        let example = spec().example("pull-request-review-items")[0].clone();
                        let items: Vec<Value> = self
                            .reviews
                            .get(&n)
                            .into_iter()
                            .flatten()
                            .enumerate()
                            .map(|(i, (login, state, head))| {
                                let mut v = example.clone();
                                v["id"] = json!(80 + i);
                                v["user"] = user(login);
                                v["state"] = json!(state);
                                v["commit_id"] = json!(head);
                                v
                            })
                            .collect();
                        self.page(items, query, url)
                    }
                    ("GET", ["commits", sha, "pulls"]) => {
                        let items: Vec<Value> = self
                            .pulls
                            .iter()
                            .filter(|(_, p)| {
                                p.merge_commit.as_deref() == Some(*sha) || p.head == *sha
                            })
                            .map(|(n, p)| self.pull_json("pull-request-simple-items", *n, p))
                            .collect();
                        self.page(items, query, url)
                    }
                    ("GET", ["issues", n, "comments"]) => {
                        let n: u64 = n.parse().unwrap_or(0);
                        let items: Vec<Value> = self
                            .comments
                            .iter()
                            .filter(|c| c.issue == n)
                            .map(|c| self.comment_json(c))
                            .collect();
                        self.page(items, query, url)
                    }
                    ("GET", ["issues"]) => {
                        let want = param("state").unwrap_or("open");
                        let items: Vec<Value> = self
                            .issues
                            .iter()
                            .filter(|i| match want {
                                "all" => true,
                                "closed" => !i.open,
                                _ => i.open,
                            })
                            .map(|i| self.issue_json(i))
                            .collect();
                        self.page(items, query, url)
                    }
                    ("POST", ["issues"]) => {
                        let (Some(title), text) = (
                            body.and_then(|b| b["title"].as_str()),
                            body.and_then(|b| b["body"].as_str()).unwrap_or(""),
                        ) else {
                            return (
                                422,
                                json!({"message": "Validation Failed", "documentation_url": "https://docs.github.com/rest"}),
                                Vec::new(),
                            );
                        };
                        // Issues and pull requests share their numbers.
                        let number = 100 + self.issues.len() as u64;
                        let issue = Issue {
                            number,
                            title: title.into(),
                            body: text.into(),
                            open: true,
                        };
                        let v = self.issue_json(&issue);
                        self.issues.push(issue);
                        (201, v, Vec::new())
                    }
                    ("PATCH", ["issues", n]) => {
                        let number: u64 = n.parse().unwrap_or(0);
                        let b = body.cloned().unwrap_or(Value::Null);
                        match self.issues.iter_mut().find(|i| i.number == number) {
                            Some(i) => {
                                if let Some(text) = b["body"].as_str() {
                                    i.body = text.into();
                                }
                                match b["state"].as_str() {
                                    Some("open") => i.open = true,
                                    Some("closed") => i.open = false,
                                    _ => {}
                                }
                                let i = i.clone();
                                (200, self.issue_json(&i), Vec::new())
                            }
                            None => not_found(),
                        }
                    }
                    ("POST", ["issues", n, "comments"]) => {
                        let Some(text) = body.and_then(|b| b["body"].as_str()) else {
                            return (
                                422,
                                json!({"message": "Validation Failed", "documentation_url": "https://docs.github.com/rest"}),
                                Vec::new(),
                            );
                        };
                        let id = self.next_id;
                        self.next_id += 1;
                        let c = Comment {
                            id,
                            issue: n.parse().unwrap_or(0),
                            body: text.to_string(),
                            user: "capstan[bot]".into(),
                        };
                        let v = self.comment_json(&c);
                        self.comments.push(c);
                        (201, v, Vec::new())
                    }
                    ("PATCH", ["issues", "comments", id]) => {
                        let id: u64 = id.parse().unwrap_or(0);
                        let text = body
                            .and_then(|b| b["body"].as_str())
                            .unwrap_or("")
                            .to_string();
                        match self.comments.iter_mut().find(|c| c.id == id) {
                            Some(c) => {
                                c.body = text;
                                let c = c.clone();
                                (200, self.comment_json(&c), Vec::new())
                            }
                            None => not_found(),
                        }
                    }
                    ("POST", ["statuses", sha]) => {
                        let b = body.cloned().unwrap_or(Value::Null);
                        let s = Status {
                            sha: sha.to_string(),
                            context: b["context"].as_str().unwrap_or("default").into(),
                            state: b["state"].as_str().unwrap_or("").into(),
                            description: b["description"].as_str().unwrap_or("").into(),
                        };
                        let mut v = spec().example("status");
                        v["state"] = json!(s.state);
                        v["context"] = json!(s.context);
                        v["description"] = json!(s.description);
                        v["id"] = json!(self.statuses.len() + 1);
                        self.statuses.push(s);
                        (201, v, Vec::new())
                    }
                    _ => not_found(),
                }
            }
            _ => not_found(),
        }
    }
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query = query_pairs(&uri);
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    let mut inner = inner.lock().unwrap();
    if path.starts_with("/login/oauth/") {
        return inner.oauth(&method, &path, &query, &body);
    }
    let url = format!(
        "http://{}{path}",
        inner.canonical_host.clone().unwrap_or(host)
    );
    let body_json: Option<Value> = if body.is_empty() {
        None
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => Some(v),
            Err(e) => {
                inner
                    .violations
                    .push(format!("{method} {path}: the body is not JSON: {e}"));
                None
            }
        }
    };
    let auth = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let minting = method == Method::POST
        && path.starts_with("/app/installations/")
        && path.ends_with("/access_tokens");
    let given = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("token "))
        .unwrap_or("");
    inner.caller = inner.user_tokens.get(given).cloned();
    let authorized = if minting {
        inner.app_id.is_some() && jwt_issuer(auth) == inner.app_id
    } else {
        given == inner.token || inner.caller.is_some()
    };
    let (status, value, extra) = if !authorized {
        inner
            .violations
            .push(format!("{method} {path}: without valid credentials"));
        (
            401,
            json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}),
            Vec::new(),
        )
    } else {
        match spec().find(method.as_str(), &path) {
            None => {
                inner.violations.push(format!(
                    "{method} {path}: no such operation in GitHub's API"
                ));
                (404, json!({"message": "Not Found"}), Vec::new())
            }
            Some(op) => {
                let problems = spec().check_request(&op, &query, body_json.as_ref());
                inner.violations.extend(problems);
                if let Some(f) = inner.take_failure(&method, &path) {
                    // Outages are not in the description; injected answers are not checked.
                    (f.status, f.body, f.headers)
                } else {
                    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
                    let (status, value, extra) =
                        inner.route(&method, &segments, &query, body_json.as_ref(), &url);
                    // GitHub's description leaves out many 404s; those are checked by tests instead.
                    if status != 404 {
                        let problems = spec().check_response(&op, status, Some(&value));
                        inner.violations.extend(problems);
                    }
                    (status, value, extra)
                }
            }
        }
    };
    inner.requests.push(Recorded {
        method: method.to_string(),
        path: path.clone(),
        status,
        at: std::time::Instant::now(),
    });
    let mut response = (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json; charset=utf-8")],
        value.to_string(),
    )
        .into_response();
    for (k, v) in extra {
        response.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    response
}
