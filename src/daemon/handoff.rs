//! What the plan job hands to the `resources` lane (`resource_plans.rs`): each pull
//! request's provisioner plans still to run, and the outcomes kept for reuse by their key
//! (bundle, inputs, deployed state). In memory: after a restart, the next plan of each pull
//! request decides again.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::core::commit::CommitId;
use crate::core::deep::Outcome;
use crate::deploy::deep::Work;

/// The most reusable outcomes kept; past it, the oldest half goes.
const CACHE_ENTRIES: usize = 20_000;

#[derive(Default)]
pub(super) struct Handoff {
    pending: Mutex<HashMap<u64, Pending>>,
    /// Outcomes by reuse key (`Request::key`), and the keys oldest first.
    reused: Mutex<(HashMap<String, Outcome>, VecDeque<String>)>,
}

/// A pull request's provisioner plans to run for its head.
pub(super) struct Pending {
    pub head: CommitId,
    pub work: Vec<Work>,
}

impl Handoff {
    /// Replaces what pull request `pr` had waiting.
    pub fn hand(&self, pr: u64, pending: Pending) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pr, pending);
    }

    pub fn take(&self, pr: u64) -> Option<Pending> {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&pr)
    }

    pub fn reused(&self, key: &str) -> Option<Outcome> {
        let held = self.reused.lock().unwrap_or_else(|p| p.into_inner());
        held.0.get(key).cloned()
    }

    pub fn keep(&self, key: String, outcome: Outcome) {
        let mut held = self.reused.lock().unwrap_or_else(|p| p.into_inner());
        let (map, order) = &mut *held;
        if map.insert(key.clone(), outcome).is_none() {
            order.push_back(key);
        }
        if order.len() > CACHE_ENTRIES {
            for old in order.drain(..CACHE_ENTRIES / 2) {
                map.remove(&old);
            }
        }
    }
}
