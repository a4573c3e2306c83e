//! A bare mirror of a remote repository in the state directory, fetched with `git2`
//! (HTTPS with a token, SSH with a key, or a plain path). Pull-request heads are fetched
//! from `refs/pull/N/head`, as GitHub publishes them. Nothing is ever checked out, so no
//! code from the repository runs: files are read from the object database.

use std::path::{Path, PathBuf};

use git2::{Cred, FetchOptions, Oid, RemoteCallbacks, Repository};

use super::{GitError, Revisions, SourceError, as_base, read_at, read_from, root_tree};
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
    /// One fetch at a time: libgit2 takes lock files in the repository (`shallow.lock`,
    /// ref locks) and a second fetch meeting one fails instead of waiting.
    fetching: std::sync::Mutex<()>,
    /// Counts fetches inside the critical region, for the test that holds it to one.
    #[cfg(test)]
    probe: tests::Probe,
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
            fetching: std::sync::Mutex::new(()),
            #[cfg(test)]
            probe: tests::Probe::default(),
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
    /// Fetches wait for each other, so pull requests opened together never collide.
    pub fn fetch(&self, refs: &[(String, String)], creds: &Credentials) -> Result<(), MirrorError> {
        // A fetch that panicked cannot leave the mirror half-written for the next one:
        // libgit2 writes through lock files it rolls back.
        let _one_at_a_time = self.fetching.lock().unwrap_or_else(|p| p.into_inner());
        #[cfg(test)]
        let _inside = self.probe.enter();
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
        read_at(&self.bare()?, &self.path, sha, &self.root)
    }

    /// The repository at `sha`, read as `from` (the files at commit `from.0`) plus what
    /// changed since: only the blobs that differ are read.
    pub fn read_from(
        &self,
        from: (&str, &SourceTree),
        sha: &str,
    ) -> Result<SourceTree, SourceError> {
        let repo = self.bare()?;
        read_from(&repo, &self.path, &self.root, from, sha)
    }

    /// The id of the root's tree at `sha` (equal ids: equal files); `None` when there is none.
    pub fn tree_id(&self, sha: &str) -> Option<String> {
        root_tree(&self.bare().ok()?, sha, &self.root).map(|id| id.to_string())
    }

    fn bare(&self) -> Result<Repository, SourceError> {
        Repository::open_bare(&self.path).map_err(|e| SourceError::Git {
            path: self.path.clone(),
            source: e.into(),
        })
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
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};
    use std::time::Duration;

    use git2::{Repository, Signature};

    use super::{Credentials, Mirror, pull_ref, redact_url};

    /// How many fetches are inside the critical region at once, and the most ever; each
    /// stays inside for `hold`, so fetches that are not kept apart certainly overlap.
    #[derive(Default)]
    pub(super) struct Probe {
        inside: AtomicUsize,
        most: AtomicUsize,
        hold_ms: AtomicUsize,
    }

    pub(super) struct Inside<'a>(&'a Probe);

    impl Probe {
        pub(super) fn enter(&self) -> Inside<'_> {
            let now = self.inside.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(
                self.hold_ms.load(Ordering::SeqCst) as u64
            ));
            Inside(self)
        }
    }

    impl Drop for Inside<'_> {
        fn drop(&mut self) {
            self.0.inside.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Pull requests opened together make their workers fetch at the same moment; the
    /// mirror lets one fetch in at a time, so none meets another's lock files.
    #[test]
    fn fetches_started_together_never_overlap() {
        let remote_dir = tempfile::tempdir().unwrap();
        let remote = Repository::init_bare(remote_dir.path()).unwrap();
        let sig = Signature::now("capstan tests", "tests@capstan.invalid").unwrap();
        for n in 1..=4u64 {
            let blob = remote.blob(format!("change {n}\n").as_bytes()).unwrap();
            let mut tree = remote.treebuilder(None).unwrap();
            tree.insert("capstan.yaml", blob, 0o100644).unwrap();
            let tree = remote.find_tree(tree.write().unwrap()).unwrap();
            remote
                .commit(
                    Some(&format!("refs/pull/{n}/head")),
                    &sig,
                    &sig,
                    &format!("change {n}"),
                    &tree,
                    &[],
                )
                .unwrap();
        }
        let mirror_dir = tempfile::tempdir().unwrap();
        let mirror = Arc::new(
            Mirror::open(
                &mirror_dir.path().join("mirror.git"),
                &remote_dir.path().display().to_string(),
                "",
            )
            .unwrap(),
        );
        mirror.probe.hold_ms.store(150, Ordering::SeqCst);
        let start = Arc::new(Barrier::new(4));
        let workers: Vec<_> = (1..=4u64)
            .map(|n| {
                let (mirror, start) = (mirror.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    mirror.fetch(
                        &[(format!("refs/pull/{n}/head"), pull_ref(n))],
                        &Credentials::default(),
                    )
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap().expect("every fetch succeeds");
        }
        assert_eq!(
            mirror.probe.most.load(Ordering::SeqCst),
            1,
            "fetches overlapped"
        );
        for n in 1..=4 {
            assert!(mirror.resolve(&pull_ref(n)).unwrap().is_some());
        }
    }

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
