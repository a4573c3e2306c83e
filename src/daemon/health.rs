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
}

impl Health {
    pub fn new(waits: &'static str) -> Health {
        Health {
            ready: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            waits,
        }
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
