//! A bare mirror of a remote repository in the state directory, fetched with `git2`
//! (HTTPS with a token, SSH with a key, or a plain path). Pull-request heads are fetched
//! from `refs/pull/N/head`, as GitHub publishes them. Nothing is ever checked out, so no
//! code from the repository runs: files are read from the object database.

use std::path::{Path, PathBuf};

use git2::{Cred, FetchOptions, Oid, RemoteCallbacks, Repository};

use super::{GitError, Revisions, SourceError, as_base, read_at};
use crate::core::source::SourceTree;
use crate::secret::Secret;

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("creating the mirror {path}")]
    Init { path: PathBuf, source: GitError },
    #[error("fetching {refspecs} from {url}")]
    Fetch {
        url: String,
        refspecs: String,
        source: GitError,
    },
    #[error("{what} in the mirror {path}")]
    Git {
        what: String,
        path: PathBuf,
        source: GitError,
    },
    #[error(transparent)]
    Read(#[from] SourceError),
}

/// How to authenticate to the remote.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    /// For HTTPS: sent as user `x-access-token` (a personal or installation token).
    pub token: Option<Secret>,
    pub ssh_key: Option<PathBuf>,
}

pub struct Mirror {
    path: PathBuf,
    url: String,
    /// The folder holding capstan.yaml inside the repository.
    root: String,
}

/// Where a pull request's head is kept in the mirror.
pub fn pull_ref(number: u64) -> String {
    format!("refs/capstan/pull/{number}/head")
}

/// Where the remote's branch is kept in the mirror.
pub fn branch_ref(branch: &str) -> String {
    format!("refs/capstan/heads/{branch}")
}

impl Mirror {
    /// Opens the mirror at `path`, creating a bare repository there first if needed.
    pub fn open(path: &Path, url: &str, root: &str) -> Result<Mirror, MirrorError> {
        if !path.join("HEAD").exists() {
            Repository::init_bare(path).map_err(|e| MirrorError::Init {
                path: path.to_path_buf(),
                source: e.into(),
            })?;
        }
        Ok(Mirror {
            path: path.to_path_buf(),
            url: url.to_string(),
            root: root.to_string(),
        })
    }

    fn repo(&self) -> Result<Repository, MirrorError> {
        Repository::open_bare(&self.path).map_err(|source| self.git("opening", source))
    }

    fn git(&self, what: &str, source: git2::Error) -> MirrorError {
        MirrorError::Git {
            what: what.to_string(),
            path: self.path.clone(),
            source: source.into(),
        }
    }

    /// Fetches `(remote ref, local ref)` pairs, forced (pull-request heads get rewritten).
    /// A remote ref that does not exist is an error for the whole fetch.
    pub fn fetch(&self, refs: &[(String, String)], creds: &Credentials) -> Result<(), MirrorError> {
        let repo = self.repo()?;
        let mut remote = repo
            .remote_anonymous(&self.url)
            .map_err(|source| self.git("setting up the remote", source))?;
        let mut callbacks = RemoteCallbacks::new();
        let creds = creds.clone();
        let mut tries = 0;
        callbacks.credentials(move |_url, username, allowed| {
            // libgit2 asks again after a refusal; give up instead of looping.
            tries += 1;
            if tries > 3 {
                return Err(git2::Error::from_str("the remote refused the credentials"));
            }
            if allowed.contains(git2::CredentialType::SSH_KEY)
                && let Some(key) = &creds.ssh_key
            {
                return Cred::ssh_key(username.unwrap_or("git"), None, key, None);
            }
            if allowed.contains(git2::CredentialType::USER_PASS_PLAINTEXT)
                && let Some(token) = &creds.token
            {
                return Cred::userpass_plaintext("x-access-token", token.expose());
            }
            Err(git2::Error::from_str(
                "the remote wants credentials and none are configured",
            ))
        });
        let mut options = FetchOptions::new();
        options.remote_callbacks(callbacks);
        options.download_tags(git2::AutotagOption::None);
        let refspecs: Vec<String> = refs
            .iter()
            .map(|(from, to)| format!("+{from}:{to}"))
            .collect();
        remote
            .fetch(&refspecs, Some(&mut options), None)
            .map_err(|e| MirrorError::Fetch {
                // The URL may carry credentials (https://user:token@host); never show them.
                url: redact_url(&self.url),
                refspecs: refspecs.join(" "),
                source: e.into(),
            })
    }

    /// The commit a local ref points at.
    pub fn resolve(&self, reference: &str) -> Result<Option<String>, MirrorError> {
        let repo = self.repo()?;
        match repo.refname_to_id(reference) {
            Ok(id) => Ok(Some(id.to_string())),
            Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
            Err(source) => Err(self.git(&format!("resolving {reference}"), source)),
        }
    }

    pub fn has_commit(&self, sha: &str) -> bool {
        self.repo()
            .ok()
            .and_then(|r| Oid::from_str(sha).ok().map(|id| r.find_commit(id).is_ok()))
            .unwrap_or(false)
    }

    pub fn merge_base(&self, a: &str, b: &str) -> Result<String, MirrorError> {
        let repo = self.repo()?;
        let oid =
            |s: &str| Oid::from_str(s).map_err(|source| self.git("parsing a commit id", source));
        repo.merge_base(oid(a)?, oid(b)?)
            .map(|id| id.to_string())
            .map_err(|source| self.git(&format!("finding the merge base of {a} and {b}"), source))
    }

    /// Files changed between two commits below the root, relative to it (both sides of a
    /// rename), sorted.
    pub fn changed_files(&self, base: &str, head: &str) -> Result<Vec<String>, MirrorError> {
        let repo = self.repo()?;
        let tree = |sha: &str| {
            Oid::from_str(sha)
                .and_then(|id| repo.find_commit(id))
                .and_then(|c| c.tree())
                .map_err(|source| self.git(&format!("reading commit {sha}"), source))
        };
        let (old, new) = (tree(base)?, tree(head)?);
        let diff = repo
            .diff_tree_to_tree(Some(&old), Some(&new), None)
            .map_err(|source| self.git("comparing trees", source))?;
        let prefix = if self.root.is_empty() {
            String::new()
        } else {
            format!("{}/", self.root)
        };
        let mut out = Vec::new();
        for delta in diff.deltas() {
            for file in [delta.old_file().path(), delta.new_file().path()]
                .into_iter()
                .flatten()
            {
                let p = file.to_string_lossy().replace('\\', "/");
                if let Some(rel) = p.strip_prefix(&prefix) {
                    out.push(rel.to_string());
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn read_at(&self, sha: &str) -> Result<SourceTree, SourceError> {
        let repo = Repository::open_bare(&self.path).map_err(|e| SourceError::Git {
            path: self.path.clone(),
            source: e.into(),
        })?;
        read_at(&repo, &self.path, sha, &self.root)
    }

    /// The old side of a plan at a commit: from before capstan was set up, empty.
    pub fn read_base(&self, sha: &str) -> Result<SourceTree, SourceError> {
        as_base(self.read_at(sha))
    }
}

impl Revisions for Mirror {
    /// The repository at a commit (the folder holding capstan.yaml below the mirror's root).
    fn read(&self, sha: &str) -> Result<SourceTree, SourceError> {
        self.read_at(sha)
    }
}

/// `https://user:secret@host/x` -> `https://***@host/x`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn credentials_in_urls_are_hidden() {
        assert_eq!(
            redact_url("https://x-access-token:ghp_abc@github.com/acme/infra.git"),
            "https://***@github.com/acme/infra.git"
        );
        assert_eq!(
            redact_url("git@github.com:acme/infra.git"),
            "git@github.com:acme/infra.git"
        );
        assert_eq!(redact_url("/srv/infra.git"), "/srv/infra.git");
    }
}
