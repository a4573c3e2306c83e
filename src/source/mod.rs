//! Reading a repository into the core's [`SourceTree`]: from a working directory, or
//! straight from git's object database at a revision. Both report links, oversized and
//! unreadable files as content kinds for the core to diagnose, so neither loses a file.

mod dir;
mod git;
pub mod mirror;

use std::path::{Path, PathBuf};

pub use dir::read_dir;
pub use git::{
    branch_or_head, commit_subject, git_dir, read_at, read_from, read_rev, resolve_commit,
    root_tree,
};

use crate::core::source::SourceTree;

/// Reads the repository as it is at a commit, from git (never from a working tree): what
/// the deployer runs bundles from. A local checkout ([`Checkout`]) or the daemon's mirror.
pub trait Revisions: Send + Sync {
    fn read(&self, commit: &str) -> Result<SourceTree, SourceError>;
}

/// The git repository enclosing a local path; the repository root is that path.
pub struct Checkout {
    pub path: PathBuf,
}

impl Revisions for Checkout {
    fn read(&self, commit: &str) -> Result<SourceTree, SourceError> {
        read(&self.path, Some(commit))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path} does not exist")]
    NotFound { path: PathBuf },
    #[error(
        "no capstan.yaml in {root}: the repository root is the folder that holds capstan.yaml (pass it with --repo)"
    )]
    NoConfig { root: String },
    #[error("{path} is not inside a git repository, so revision {rev} cannot be read")]
    NotGit { path: PathBuf, rev: String },
    #[error("{path} is not inside a git repository: a local checkout is watched for commits")]
    NotACheckout { path: PathBuf },
    #[error("the git repository at {path} has no commits yet, so there is no revision {rev}")]
    NoCommits { path: PathBuf, rev: String },
    #[error(
        "revision {rev:?} is not known to the git repository at {path}: give a branch, a tag or a commit id (e.g. HEAD, main, HEAD~1)"
    )]
    UnknownRev { path: PathBuf, rev: String },
    #[error("revision {rev:?} cannot be read from the git repository at {path}")]
    BadRev {
        path: PathBuf,
        rev: String,
        source: GitError,
    },
    #[error("{prefix} does not exist at revision {rev}")]
    NotAtRev { prefix: String, rev: String },
    #[error("reading git objects of {path}")]
    Git { path: PathBuf, source: GitError },
    #[error("reading {path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A libgit2 error as people read it: its message, without libgit2's class and code
/// (`class=Reference (4); code=NotFound (-3)`).
#[derive(Debug)]
pub struct GitError(pub git2::Error);

impl std::fmt::Display for GitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.message())
    }
}

impl std::error::Error for GitError {}

impl From<git2::Error> for GitError {
    fn from(e: git2::Error) -> GitError {
        GitError(e)
    }
}

/// The old side of a plan: like [`read`] at `rev`, but a revision from before capstan was set
/// up (no repository root, or no `capstan.yaml` in it) is an empty desired state, so the pull
/// request that introduces capstan plans everything as created.
pub fn read_base(path: &Path, rev: &str) -> Result<SourceTree, SourceError> {
    as_base(read_rev(path, rev))
}

/// A base read that found no capstan repository is the empty desired state.
pub fn as_base(read: Result<SourceTree, SourceError>) -> Result<SourceTree, SourceError> {
    match read {
        Ok(tree) if tree.get("capstan.yaml").is_some() => Ok(tree),
        Ok(_) | Err(SourceError::NotAtRev { .. }) => Ok(SourceTree::default()),
        Err(e) => Err(e),
    }
}

/// Fails unless `path` is a repository root: an existing folder that holds `capstan.yaml`.
pub fn require_root(path: &Path) -> Result<(), SourceError> {
    if !path.is_dir() {
        return Err(SourceError::NotFound {
            path: path.to_path_buf(),
        });
    }
    if !path.join("capstan.yaml").is_file() {
        return Err(SourceError::NoConfig {
            root: path.display().to_string(),
        });
    }
    Ok(())
}

/// Reads the repository at `path`, from the working tree or from git at `rev`, and checks
/// that it is a capstan repository at all.
pub fn read(path: &Path, rev: Option<&str>) -> Result<SourceTree, SourceError> {
    let tree = match rev {
        Some(rev) => read_rev(path, rev)?,
        None => read_dir(path)?,
    };
    if tree.get("capstan.yaml").is_none() {
        let root = match rev {
            Some(rev) => format!("{} at revision {rev}", path.display()),
            None => path.display().to_string(),
        };
        return Err(SourceError::NoConfig { root });
    }
    Ok(tree)
}
