//! A working directory -> [`SourceTree`], honouring `.gitignore` the way git would (so the
//! working tree and a commit of it agree: ignore rules keep out untracked files only, a
//! tracked file is read wherever it is), never following links.

use std::io::Read;
use std::path::Path;

use ignore::WalkBuilder;

use super::SourceError;
use crate::core::source::{Content, MAX_FILE_BYTES, SourceFile, SourceTree};

pub fn read_dir(root: &Path) -> Result<SourceTree, SourceError> {
    if !root.is_dir() {
        return Err(SourceError::NotFound {
            path: root.to_path_buf(),
        });
    }
    let mut files = Vec::new();
    let walker = WalkBuilder::new(root)
        .hidden(false)
        .ignore(false)
        .git_global(false)
        .git_ignore(true)
        .git_exclude(true)
        .require_git(false)
        .parents(true)
        .follow_links(false)
        .filter_entry(|e| e.file_name() != ".git")
        .build();
    for item in walker {
        match item {
            Ok(entry) => {
                let Some(file_type) = entry.file_type() else {
                    continue;
                };
                if file_type.is_dir() {
                    continue;
                }
                let Ok(rel) = entry.path().strip_prefix(root) else {
                    continue;
                };
                let (path, name_ok) = relative(rel);
                let content = if !name_ok {
                    Content::Unreadable("the file name is not valid UTF-8".into())
                } else if file_type.is_symlink() {
                    Content::Symlink
                } else if file_type.is_file() {
                    read_file(entry.path())
                } else {
                    Content::Unreadable("not a regular file".into())
                };
                files.push(SourceFile {
                    path,
                    executable: executable(entry.path()),
                    content,
                });
            }
            Err(e) => {
                // A folder that cannot be listed still has a name: report it as a file that
                // could not be read rather than dropping it.
                if let Some(path) = error_path(&e)
                    && let Ok(rel) = path.strip_prefix(root)
                {
                    let (path, _) = relative(rel);
                    files.push(SourceFile {
                        path,
                        executable: false,
                        content: Content::Unreadable(e.to_string()),
                    });
                } else {
                    return Err(SourceError::Io {
                        path: root.to_path_buf(),
                        source: std::io::Error::other(e.to_string()),
                    });
                }
            }
        }
    }
    add_tracked(root, &mut files);
    Ok(SourceTree::new(files))
}

/// Adds the files git tracks that the walk left out because an ignore rule names them (a
/// `.gitignore` listing `projects/si/` while `projects/si/` is committed): `git commit -a`
/// would keep them, so the check of the working tree sees them too. A tracked file deleted
/// from the working tree stays out, as in the commit.
fn add_tracked(root: &Path, files: &mut Vec<SourceFile>) {
    let Some(tracked) = super::git::tracked_below(root) else {
        return;
    };
    let seen: std::collections::HashSet<String> = files.iter().map(|f| f.path.clone()).collect();
    for path in tracked {
        if seen.contains(&path) {
            continue;
        }
        let full = root.join(&path);
        let Ok(meta) = std::fs::symlink_metadata(&full) else {
            continue;
        };
        let content = if meta.file_type().is_symlink() {
            Content::Symlink
        } else if meta.is_file() {
            read_file(&full)
        } else {
            continue;
        };
        files.push(SourceFile {
            executable: executable(&full),
            path,
            content,
        });
    }
}

fn relative(rel: &Path) -> (String, bool) {
    let mut ok = true;
    let parts: Vec<String> = rel
        .components()
        .map(|c| {
            let s = c.as_os_str();
            s.to_str().map(str::to_string).unwrap_or_else(|| {
                ok = false;
                s.to_string_lossy().into_owned()
            })
        })
        .collect();
    (parts.join("/"), ok)
}

fn read_file(path: &Path) -> Content {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return Content::Unreadable(e.to_string()),
    };
    match file.metadata() {
        Ok(m) if m.len() > MAX_FILE_BYTES => return Content::TooLarge { size: m.len() },
        Ok(_) => {}
        Err(e) => return Content::Unreadable(e.to_string()),
    }
    // Read at most one byte past the limit: a file that grows while read is still caught.
    let mut bytes = Vec::new();
    match file
        .by_ref()
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
    {
        Ok(n) if n as u64 > MAX_FILE_BYTES => Content::TooLarge { size: n as u64 },
        Ok(_) => Content::Bytes(bytes.into()),
        Err(e) => Content::Unreadable(e.to_string()),
    }
}

#[cfg(unix)]
fn executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn executable(_: &Path) -> bool {
    false
}

fn error_path(e: &ignore::Error) -> Option<&Path> {
    match e {
        ignore::Error::WithPath { path, .. } => Some(path),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            error_path(err)
        }
        _ => None,
    }
}
