//! The memory budget of one evaluation.
//!
//! regorus counts what the program allocates (it is built with `allocator-memory-limits`,
//! which makes its mimalloc the global allocator) and checks a process-wide ceiling as it
//! evaluates: at every step of a rule, while it builds values, and inside builtins. The
//! ceiling is one number for the whole process, so an evaluation sets it to what is in use
//! when it starts plus its budget, and evaluations take turns: two at once would move each
//! other's ceiling. Nothing else in capstan reads the ceiling, so other work is never
//! stopped by it; it can only make an evaluation that runs beside a large allocation
//! elsewhere stop early, which is an error, never "allowed".

use std::sync::{Mutex, MutexGuard, PoisonError};

use regorus::LimitError;

static TURN: Mutex<()> = Mutex::new(());

/// While alive, the process-wide ceiling is `in use at start + budget`.
pub(super) struct Ceiling {
    _turn: MutexGuard<'static, ()>,
}

impl Ceiling {
    pub(super) fn set(budget: u64) -> Ceiling {
        let turn = TURN.lock().unwrap_or_else(PoisonError::into_inner);
        regorus::flush_thread_memory_counters();
        let in_use = in_use();
        regorus::set_global_memory_limit(Some(in_use.saturating_add(budget)));
        Ceiling { _turn: turn }
    }
}

impl Drop for Ceiling {
    fn drop(&mut self) {
        regorus::set_global_memory_limit(None);
    }
}

/// What the allocator counts as in use: regorus has no reader for it, so ask with a
/// ceiling of zero, which every use exceeds and reports.
fn in_use() -> u64 {
    regorus::set_global_memory_limit(Some(0));
    let usage = match regorus::check_global_memory_limit() {
        Err(LimitError::MemoryLimitExceeded { usage, .. }) => usage,
        _ => 0,
    };
    regorus::set_global_memory_limit(None);
    usage
}
