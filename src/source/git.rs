//! A git revision -> [`SourceTree`], read from the object database through `git2`: no
//! checkout, no temporary worktree. The repository root may be a subfolder of the git
//! repository; it is found from where `--repo` points inside the work tree.

use std::path::{Path, PathBuf};

use git2::{ObjectType, Oid, Repository};

use super::{GitError, SourceError};
use crate::core::source::{Content, MAX_FILE_BYTES, SourceFile, SourceTree};

pub fn read_rev(path: &Path, rev: &str) -> Result<SourceTree, SourceError> {
    if !path.exists() {
        return Err(SourceError::NotFound {
            path: path.to_path_buf(),
        });
    }
    let repo = Repository::discover(path).map_err(|_| SourceError::NotGit {
        path: path.to_path_buf(),
        rev: rev.to_string(),
    })?;
    let prefix = prefix_in(&repo, path);
    // `Repository::is_empty` only knows an unborn `master`; an unborn HEAD of any name means no commits.
    if repo
        .head()
        .is_err_and(|e| e.code() == git2::ErrorCode::UnbornBranch)
    {
        return Err(SourceError::NoCommits {
            path: path.to_path_buf(),
            rev: rev.to_string(),
        });
    }
    read_at(&repo, path, rev, &prefix)
}

/// Reads revision `rev` of an open repository, below `prefix` (`/`-separated, empty: the
/// top). `path` only names the repository in errors.
pub fn read_at(
    repo: &Repository,
    path: &Path,
    rev: &str,
    prefix: &str,
) -> Result<SourceTree, SourceError> {
    let git_err = |e: git2::Error| SourceError::Git {
        path: path.to_path_buf(),
        source: e.into(),
    };
    let commit_tree = repo
        .revparse_single(rev)
        .and_then(|o| o.peel_to_tree())
        .map_err(|e| rev_error(path, rev, e))?;
    let root_id = if prefix.is_empty() {
        commit_tree.id()
    } else {
        match commit_tree.get_path(Path::new(prefix)) {
            Ok(entry) if entry.kind() == Some(ObjectType::Tree) => entry.id(),
            _ => {
                return Err(SourceError::NotAtRev {
                    prefix: prefix.to_string(),
                    rev: rev.to_string(),
                });
            }
        }
    };
    let odb = repo.odb().map_err(git_err)?;
    let mut files = Vec::new();
    let mut pending: Vec<(String, Oid)> = vec![(String::new(), root_id)];
    while let Some((dir, id)) = pending.pop() {
        let tree = repo.find_tree(id).map_err(git_err)?;
        for entry in tree.iter() {
            let (name, name_ok) = match entry.name() {
                Ok(n) => (n.to_string(), true),
                Err(_) => (
                    String::from_utf8_lossy(entry.name_bytes()).into_owned(),
                    false,
                ),
            };
            let path = if dir.is_empty() {
                name
            } else {
                format!("{dir}/{name}")
            };
            if entry.filemode() == 0o040000 {
                pending.push((path, entry.id()));
                continue;
            }
            files.push(
                file(repo, &odb, path, name_ok, entry.filemode(), entry.id()).map_err(git_err)?,
            );
        }
    }
    Ok(SourceTree::new(files))
}

/// One entry of a git tree that is not a folder, as the core sees it: its bytes, or why
/// they are not read.
fn file(
    repo: &Repository,
    odb: &git2::Odb<'_>,
    path: String,
    name_ok: bool,
    mode: i32,
    id: Oid,
) -> Result<SourceFile, git2::Error> {
    let content = match mode {
        _ if !name_ok => Content::Unreadable("the file name is not valid UTF-8".into()),
        0o120000 => Content::Symlink,
        0o160000 => Content::Submodule,
        _ => {
            let (size, _) = odb.read_header(id)?;
            if size as u64 > MAX_FILE_BYTES {
                Content::TooLarge { size: size as u64 }
            } else {
                Content::Bytes(repo.find_blob(id)?.content().into())
            }
        }
    };
    Ok(SourceFile {
        path,
        executable: mode == 0o100755,
        content,
    })
}

/// The tree id of the repository root (`prefix`) at commit `rev`: equal ids, equal files.
pub fn root_tree(repo: &Repository, rev: &str, prefix: &str) -> Option<Oid> {
    let tree = repo.revparse_single(rev).ok()?.peel_to_tree().ok()?;
    if prefix.is_empty() {
        return Some(tree.id());
    }
    let entry = tree.get_path(Path::new(prefix)).ok()?;
    (entry.kind() == Some(ObjectType::Tree)).then(|| entry.id())
}

/// Revision `to` read as `from` (revision `from_rev`'s files) plus what changed between the
/// two: only the blobs that differ are read, so a revision next to one already read costs
/// what its changes cost. Gives what [`read_at`] gives for `to`.
pub fn read_from(
    repo: &Repository,
    path: &Path,
    prefix: &str,
    (from_rev, from): (&str, &SourceTree),
    to: &str,
) -> Result<SourceTree, SourceError> {
    let (Some(old), Some(new)) = (
        root_tree(repo, from_rev, prefix),
        root_tree(repo, to, prefix),
    ) else {
        return read_at(repo, path, to, prefix);
    };
    let git_err = |e: git2::Error| SourceError::Git {
        path: path.to_path_buf(),
        source: e.into(),
    };
    let (old, new) = (
        repo.find_tree(old).map_err(git_err)?,
        repo.find_tree(new).map_err(git_err)?,
    );
    let diff = repo
        .diff_tree_to_tree(Some(&old), Some(&new), None)
        .map_err(git_err)?;
    let odb = repo.odb().map_err(git_err)?;
    let mut gone = std::collections::HashSet::new();
    let mut added = Vec::new();
    for delta in diff.deltas() {
        let (old_file, new_file) = (delta.old_file(), delta.new_file());
        if let Some(old_path) = old_file.path_bytes() {
            gone.insert(String::from_utf8_lossy(old_path).into_owned());
        }
        if !new_file.exists() {
            continue;
        }
        let Some(bytes) = new_file.path_bytes() else {
            continue;
        };
        let (name, name_ok) = match std::str::from_utf8(bytes) {
            Ok(n) => (n.to_string(), true),
            Err(_) => (String::from_utf8_lossy(bytes).into_owned(), false),
        };
        let mode = i32::from(new_file.mode());
        added.push(file(repo, &odb, name, name_ok, mode, new_file.id()).map_err(git_err)?);
    }
    let mut files: Vec<SourceFile> = from
        .files()
        .iter()
        .filter(|f| !gone.contains(&f.path))
        .cloned()
        .collect();
    files.extend(added);
    Ok(SourceTree::new(files))
}

/// The files git tracks below `path` (the index's entries, gitlinks left out), relative to
/// `path`; `None` when `path` is not inside a work tree with an index. A working-tree read
/// adds these even where an ignore rule names them: ignore rules only keep *untracked* files
/// out of a commit, so the working tree is read as a commit of it would be.
pub(super) fn tracked_below(path: &Path) -> Option<Vec<String>> {
    let repo = Repository::discover(path).ok()?;
    repo.workdir()?;
    let prefix = prefix_in(&repo, path);
    let index = repo.index().ok()?;
    let below = |p: &str| -> Option<String> {
        if prefix.is_empty() {
            return Some(p.to_string());
        }
        p.strip_prefix(prefix.as_str())?
            .strip_prefix('/')
            .map(str::to_string)
    };
    const GITLINK: u32 = 0o160000;
    Some(
        index
            .iter()
            .filter(|e| e.mode & 0o170000 != GITLINK)
            .filter_map(|e| below(std::str::from_utf8(&e.path).ok()?))
            .collect(),
    )
}

/// Where `path` lies inside the work tree, `/`-separated; empty at the top or for a bare repository.
fn prefix_in(repo: &Repository, path: &Path) -> String {
    let Some(workdir) = repo.workdir() else {
        return String::new();
    };
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let rel: PathBuf = canon(path)
        .strip_prefix(canon(workdir))
        .map(Path::to_path_buf)
        .unwrap_or_default();
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// The git directory of the repository enclosing `path` (what moves when a branch does).
pub fn git_dir(path: &Path) -> Result<PathBuf, SourceError> {
    let repo = Repository::discover(path).map_err(|_| SourceError::NotACheckout {
        path: path.to_path_buf(),
    })?;
    Ok(repo.path().to_path_buf())
}

/// A revision that cannot be read: unknown (the common case, said in people's words), or
/// something else libgit2 explains.
fn rev_error(path: &Path, rev: &str, e: git2::Error) -> SourceError {
    if e.code() == git2::ErrorCode::NotFound || e.class() == git2::ErrorClass::Reference {
        SourceError::UnknownRev {
            path: path.to_path_buf(),
            rev: rev.to_string(),
        }
    } else {
        SourceError::BadRev {
            path: path.to_path_buf(),
            rev: rev.to_string(),
            source: GitError(e),
        }
    }
}

/// The commit of `branch` in the repository enclosing `path`, or `HEAD`'s when there is no
/// such branch; `None` before the first commit.
pub fn branch_or_head(path: &Path, branch: &str) -> Option<String> {
    let repo = Repository::discover(path).ok()?;
    let id = repo
        .refname_to_id(&format!("refs/heads/{branch}"))
        .or_else(|_| repo.refname_to_id("HEAD"))
        .ok()?;
    Some(id.to_string())
}

/// The full commit id `rev` names in the git repository enclosing `path`.
pub fn resolve_commit(path: &Path, rev: &str) -> Result<String, SourceError> {
    let repo = Repository::discover(path).map_err(|_| SourceError::NotGit {
        path: path.to_path_buf(),
        rev: rev.to_string(),
    })?;
    if repo
        .head()
        .is_err_and(|e| e.code() == git2::ErrorCode::UnbornBranch)
    {
        return Err(SourceError::NoCommits {
            path: path.to_path_buf(),
            rev: rev.to_string(),
        });
    }
    repo.revparse_single(rev)
        .and_then(|o| o.peel_to_commit())
        .map(|c| c.id().to_string())
        .map_err(|e| rev_error(path, rev, e))
}

/// The first line of commit `sha`'s message in the repository enclosing `path`.
pub fn commit_subject(path: &Path, sha: &str) -> Option<String> {
    let repo = Repository::discover(path).ok()?;
    let commit = repo.find_commit(git2::Oid::from_str(sha).ok()?).ok()?;
    let bytes = commit.summary_bytes()?;
    Some(String::from_utf8_lossy(bytes).into_owned())
}
