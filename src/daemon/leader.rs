//! Leadership (docs/replicas.md): one replica at a time runs the cron schedules, the
//! polling and the preview sweeps, and catches up at the start of its term. It holds the
//! store's leader lock, a PostgreSQL session advisory lock on a connection of its own, and
//! checks that connection every sixth of the lease; when it fails (the server restarted,
//! the network broke) the term ends and another replica takes the lock. With SQLite there
//! is one process, which leads for as long as it runs.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::context::Shared;
use crate::state::{Lock, LockError};

/// What a leader does during its term, until `term` is cancelled.
pub(super) type Duties = Arc<dyn Fn(CancellationToken) + Send + Sync>;

/// Runs for leadership until `stop`; `duties` start at each term.
pub(super) async fn lead(shared: Arc<Shared>, duties: Duties, stop: CancellationToken) {
    let check = shared.config().lease / 6;
    let name = format!("capstan serve pid {} (leader)", std::process::id());
    loop {
        let store = shared.store.clone();
        let lock_name = name.clone();
        let taken =
            tokio::task::spawn_blocking(move || store.try_lock(Lock::Leader, &lock_name)).await;
        match taken {
            Ok(Ok(None)) => {
                // One machine: leader for life.
                set(&shared, true);
                duties(stop.clone());
                stop.cancelled().await;
                return;
            }
            Ok(Ok(Some(lock))) => {
                let lock = Arc::new(std::sync::Mutex::new(lock));
                tracing::info!("leading: schedules, polling and sweeps run here");
                set(&shared, true);
                let term = stop.child_token();
                duties(term.clone());
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(check) => {}
                    }
                    let held = lock.clone();
                    let alive = tokio::task::spawn_blocking(move || {
                        held.lock().unwrap_or_else(|p| p.into_inner()).alive()
                    })
                    .await
                    .unwrap_or(false);
                    if !alive {
                        tracing::warn!("the leader lock's connection failed; no longer leading");
                        break;
                    }
                }
                term.cancel();
                set(&shared, false);
                drop(lock);
            }
            Ok(Err(LockError::Busy(holder))) => {
                tracing::debug!(%holder, "another replica leads");
            }
            Ok(Err(LockError::State(e))) => {
                tracing::warn!(error = %crate::error::chain(&e), "asking for leadership");
            }
            Err(e) => tracing::error!(error = %e, "asking for leadership"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(check.max(Duration::from_secs(1))) => {}
        }
    }
}

fn set(shared: &Shared, leader: bool) {
    shared.health.set_leader(leader);
    shared.metrics.leader.set(i64::from(leader));
}
