//! The plan cache: checked revisions kept by the id of the repository root's tree, so an
//! unchanged merge base is never read, parsed or resolved twice, and a head is read and
//! checked next to a revision already checked (only its changed blobs are read, only its
//! changed project folders parsed, only what they affect resolved again; see
//! `core::incremental`). Bounded by `plan_cache_mib`: after each plan is posted, the least
//! recently used revisions go until the rest fit (instances shared by several revisions
//! count once), and the newest always stays.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::core::incremental::{Reuse, Revision};
use crate::source::SourceError;
use crate::source::mirror::Mirror;

/// Which side of a plan a revision is: a base from before capstan was set up is empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Side {
    Base,
    Head,
}

/// A checked revision and the commit it was read at.
#[derive(Clone)]
pub(super) struct CachedRevision {
    pub commit: String,
    pub revision: Arc<Revision>,
}

pub(super) struct RevisionCache {
    budget: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// By (root tree id, side).
    entries: HashMap<(String, Side), Entry>,
    clock: u64,
    /// The estimate of what `entries` hold, until they change: a plan that found both its
    /// revisions here does not weigh the whole cache again.
    weight: Option<usize>,
}

struct Entry {
    checked: CachedRevision,
    used: u64,
}

impl RevisionCache {
    pub fn new(budget: usize) -> RevisionCache {
        RevisionCache {
            budget,
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The checked revision at `commit`: kept, when a commit with the same tree was checked
    /// as the same side; otherwise read and checked next to `near` (or the revision used
    /// last), and kept. Also says what the check kept and computed (`None`: all kept).
    pub fn check(
        &self,
        mirror: &Mirror,
        commit: &str,
        side: Side,
        near: Option<&CachedRevision>,
    ) -> Result<(CachedRevision, Option<Reuse>), SourceError> {
        let tree = mirror.tree_id(commit);
        if let Some(tree) = &tree
            && let Some(found) = self.get(tree, side)
        {
            return Ok((found, None));
        }
        let near = near.cloned().or_else(|| self.last_used());
        // A neighbour read as an empty base has no files to start from.
        let from = near
            .as_ref()
            .filter(|n| n.revision.tree().get("capstan.yaml").is_some());
        let read = match from {
            Some(n) => mirror.read_from((&n.commit, n.revision.tree()), commit),
            None => crate::source::Revisions::read(mirror, commit),
        };
        let files = match side {
            Side::Base => crate::source::as_base(read)?,
            Side::Head => read?,
        };
        let (revision, reuse) = Revision::check(files, near.as_ref().map(|n| n.revision.as_ref()));
        let checked = CachedRevision {
            commit: commit.to_string(),
            revision: Arc::new(revision),
        };
        if let Some(tree) = tree {
            self.put(tree, side, checked.clone());
        }
        Ok((checked, Some(reuse)))
    }

    fn get(&self, tree: &str, side: Side) -> Option<CachedRevision> {
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        let entry = inner.entries.get_mut(&(tree.to_string(), side))?;
        entry.used = now;
        Some(entry.checked.clone())
    }

    fn last_used(&self) -> Option<CachedRevision> {
        let inner = self.lock();
        inner
            .entries
            .values()
            .max_by_key(|e| e.used)
            .map(|e| e.checked.clone())
    }

    fn put(&self, tree: String, side: Side, checked: CachedRevision) {
        let mut inner = self.lock();
        inner.clock += 1;
        let used = inner.clock;
        inner.entries.insert((tree, side), Entry { checked, used });
        inner.weight = None;
    }

    /// Drops the least recently used revisions until the rest fit the budget (the newest
    /// stays, whatever it weighs); returns the estimated bytes held. Run after a plan is
    /// posted, so it never delays one.
    pub fn trim(&self) -> usize {
        let mut inner = self.lock();
        loop {
            let bytes = inner.bytes();
            if bytes <= self.budget || inner.entries.len() <= 1 {
                return bytes;
            }
            let oldest = inner
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone());
            if let Some(key) = oldest {
                inner.entries.remove(&key);
                inner.weight = None;
            }
        }
    }
}

/// Hands the allocators' free memory back to the system, so an idle daemon does not hold
/// the peak of its last plans: Rust's allocations are mimalloc's (regorus's, which counts
/// them for the policies' memory budget), and the C libraries' (libgit2, SQLite) glibc's,
/// which keeps freed memory in its arenas until trimmed.
pub(super) fn release_free_memory() {
    unsafe extern "C" {
        /// mimalloc's: frees what this thread's heap holds unused, and with `force`
        /// purges the free pages of every segment it can reach.
        fn mi_collect(force: bool);
    }
    // SAFETY: mi_collect only releases memory mimalloc holds unused; it is safe to call
    // from any thread at any time.
    unsafe {
        mi_collect(true);
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns unused pages of the allocator's own heap.
    unsafe {
        libc::malloc_trim(0);
    }
}

impl Inner {
    fn bytes(&mut self) -> usize {
        if let Some(weight) = self.weight {
            return weight;
        }
        let weight = Revision::weight(self.entries.values().map(|e| e.checked.revision.as_ref()));
        self.weight = Some(weight);
        weight
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::source::{Content, SourceFile, SourceTree};

    fn checked(commit: &str) -> CachedRevision {
        let tree = SourceTree::new(vec![SourceFile {
            path: "capstan.yaml".into(),
            executable: false,
            content: Content::Bytes(format!("# {commit}\n").into_bytes().into()),
        }]);
        CachedRevision {
            commit: commit.into(),
            revision: Arc::new(Revision::check(tree, None).0),
        }
    }

    fn held(cache: &RevisionCache) -> Vec<String> {
        let mut held: Vec<String> = cache
            .lock()
            .entries
            .values()
            .map(|e| e.checked.commit.clone())
            .collect();
        held.sort();
        held
    }

    #[test]
    fn the_least_recently_used_go_first_and_the_newest_stays() {
        let one = Revision::weight([checked("a").revision.as_ref()]);
        let cache = RevisionCache::new(2 * one);
        cache.put("ta".into(), Side::Base, checked("a"));
        cache.put("tb".into(), Side::Head, checked("b"));
        cache.trim();
        assert_eq!(held(&cache), ["a", "b"]);
        // a is used again, so b is the one to go.
        assert_eq!(
            cache.get("ta", Side::Base).map(|c| c.commit),
            Some("a".into())
        );
        assert!(
            cache.get("ta", Side::Head).is_none(),
            "a base is not a head"
        );
        cache.put("tc".into(), Side::Head, checked("c"));
        assert_eq!(cache.trim(), 2 * one);
        assert_eq!(held(&cache), ["a", "c"]);
        assert_eq!(cache.last_used().map(|c| c.commit), Some("c".into()));

        let none = RevisionCache::new(0);
        none.put("ta".into(), Side::Base, checked("a"));
        none.put("tb".into(), Side::Base, checked("b"));
        none.trim();
        assert_eq!(held(&none), ["b"], "the newest stays over budget");
    }
}
