//! The REST calls capstan makes: pull requests, comments, issues, statuses, reviews,
//! permissions and team memberships, each decoded from GitHub's wire shape into the
//! types capstan uses.

use http::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::transport::Repeat;
use super::{Client, Comment, GitHubError, Issue, PullRequest, Review, StatusState, truncate};

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

impl Client {
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
