//! [`CommitId`]: the git commit a plan, a deploy, a status or a preview is about.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A git commit's full hexadecimal id, as git and GitHub spell it.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CommitId(String);

impl CommitId {
    pub fn new(id: impl Into<String>) -> CommitId {
        CommitId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first ten characters, as people quote a commit: `1a2b3c4d5e`.
    pub fn short(&self) -> &str {
        short(&self.0)
    }
}

impl fmt::Display for CommitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// A commit id reads as the text git and GitHub take.
impl std::ops::Deref for CommitId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for CommitId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<String> for CommitId {
    fn from(id: String) -> CommitId {
        CommitId(id)
    }
}

impl From<&str> for CommitId {
    fn from(id: &str) -> CommitId {
        CommitId(id.to_string())
    }
}

impl PartialEq<str> for CommitId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for CommitId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for CommitId {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

/// The first ten characters of a commit id (or of a run's label), as people quote it.
pub fn short(id: &str) -> &str {
    id.get(..10).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_is_quoted_by_its_first_ten_characters() {
        let id = CommitId::new("1a2b3c4d5e6f7a8b9c0d1a2b3c4d5e6f7a8b9c0d");
        assert_eq!(id.short(), "1a2b3c4d5e");
        assert_eq!(CommitId::from("abc").short(), "abc");
        assert_eq!(id.to_string().len(), 40);
    }
}
