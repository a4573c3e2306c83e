//! What `/readyz` says: not ready while the daemon waits for something (its first fetch,
//! its first deploy), ready until it drains.

use std::sync::atomic::{AtomicBool, Ordering};

/// What `/readyz` answers: not ready while the daemon `waits` (e.g. for its first fetch),
/// then ready until it drains.
pub(super) struct Health {
    ready: AtomicBool,
    draining: AtomicBool,
    /// Why the daemon is not ready yet, as `/readyz` says it.
    waits: &'static str,
    /// What this process does (`all`, `web`, `worker`), as `/readyz` says it.
    role: std::sync::OnceLock<&'static str>,
    /// Whether this process runs the schedules and polling (always, on one machine).
    leader: AtomicBool,
}

impl Health {
    pub fn new(waits: &'static str) -> Health {
        Health {
            ready: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            waits,
            role: std::sync::OnceLock::new(),
            leader: AtomicBool::new(false),
        }
    }

    pub fn set_role(&self, role: &'static str) {
        let _ = self.role.set(role);
    }

    pub fn role(&self) -> &'static str {
        self.role.get().copied().unwrap_or("all")
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::SeqCst);
    }

    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::SeqCst)
    }

    /// `/readyz`'s body when ready: `ready`, then the role and leadership.
    pub fn ready_text(&self) -> String {
        format!(
            "ready\nrole: {}\nleader: {}\n",
            self.role(),
            if self.is_leader() { "yes" } else { "no" }
        )
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }

    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// What `/readyz` answers: `Ok` when ready, else why not.
    pub fn readiness(&self) -> Result<(), &'static str> {
        if self.is_draining() {
            Err("draining")
        } else if self.ready.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(self.waits)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_then_ready_then_draining() {
        let h = Health::new("fetching the repository");
        assert_eq!(h.readiness(), Err("fetching the repository"));
        h.set_ready();
        assert_eq!(h.readiness(), Ok(()));
        h.set_draining();
        assert_eq!(h.readiness(), Err("draining"));
    }
}
