//! The core's input: files as `(path, content)` pairs, wherever they came from.
//!
//! A directory walk and a git tree both produce a [`SourceTree`]; the core cannot tell them
//! apart, which is what makes `--rev` and the working tree give identical answers.

use std::sync::Arc;

/// Largest file a reader loads at all; bigger ones arrive as [`Content::TooLarge`].
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// Largest YAML file the core parses.
pub const MAX_YAML_BYTES: usize = 1024 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// Shared: revisions read next to each other hold one copy of what they have in common.
    Bytes(Arc<[u8]>),
    TooLarge {
        size: u64,
    },
    /// A symbolic link; never followed.
    Symlink,
    /// A git submodule (a commit inside a tree).
    Submodule,
    /// The reader could not read it (e.g. permission denied); the text says why.
    Unreadable(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    /// Relative to the repository root, `/`-separated.
    pub path: String,
    pub executable: bool,
    pub content: Content,
}

/// All files below the repository root, sorted by path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceTree {
    files: Vec<SourceFile>,
}

impl SourceTree {
    pub fn new(mut files: Vec<SourceFile>) -> SourceTree {
        files.sort_by(|a, b| a.path.cmp(&b.path));
        files.dedup_by(|a, b| a.path == b.path);
        SourceTree { files }
    }

    pub fn files(&self) -> &[SourceFile] {
        &self.files
    }

    pub fn get(&self, path: &str) -> Option<&SourceFile> {
        self.files
            .binary_search_by(|f| f.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.files[i])
    }

    /// The paths whose file differs between the two trees (added, removed, edited or made
    /// executable), sorted: e.g. the working tree's edits a commit does not have.
    pub fn differing<'a>(&'a self, other: &'a SourceTree) -> Vec<&'a str> {
        let (mut a, mut b) = (self.files.iter().peekable(), other.files.iter().peekable());
        let mut out = Vec::new();
        loop {
            match (a.peek(), b.peek()) {
                (None, None) => return out,
                (Some(x), Some(y)) if x.path == y.path => {
                    if x != y {
                        out.push(x.path.as_str());
                    }
                    a.next();
                    b.next();
                }
                (Some(x), Some(y)) if x.path < y.path => {
                    out.push(x.path.as_str());
                    a.next();
                }
                (Some(x), None) => {
                    out.push(x.path.as_str());
                    a.next();
                }
                (_, Some(y)) => {
                    out.push(y.path.as_str());
                    b.next();
                }
            }
        }
    }
}

#[cfg(test)]
impl SourceTree {
    /// For tests: the tree with the first `from` in file `path` replaced by `to` (which must
    /// be there).
    pub fn edited(&self, path: &str, from: &str, to: &str) -> SourceTree {
        let files = self
            .files()
            .iter()
            .map(|f| match (&f.content, f.path == path) {
                (Content::Bytes(b), true) => {
                    let text = String::from_utf8_lossy(b);
                    assert!(text.contains(from), "{path} has no {from:?}");
                    SourceFile {
                        content: Content::Bytes(text.replacen(from, to, 1).into_bytes().into()),
                        ..f.clone()
                    }
                }
                _ => f.clone(),
            })
            .collect();
        SourceTree::new(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, text: &str) -> SourceFile {
        SourceFile {
            path: path.into(),
            executable: false,
            content: Content::Bytes(text.as_bytes().into()),
        }
    }

    #[test]
    fn differing_names_added_removed_and_edited_files_once_each() {
        let old = SourceTree::new(vec![file("a", "1"), file("b", "1"), file("d", "1")]);
        let mut run = file("d", "1");
        run.executable = true;
        let new = SourceTree::new(vec![file("b", "2"), file("c", "1"), run]);
        assert_eq!(old.differing(&new), ["a", "b", "c", "d"]);
        assert_eq!(new.differing(&old), ["a", "b", "c", "d"]);
        assert!(old.differing(&old.clone()).is_empty());
    }
}
