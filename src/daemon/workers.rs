//! Taking durable work (replicas on PostgreSQL, `durable.rs`): this replica's Graphile
//! Worker, which leases tasks, renews the leases with heartbeats and takes back the tasks
//! of replicas that went silent, and [`carry_out`], which runs one: an event through the one
//! dispatch, a job through the one job runner, a deploy-lane job under the deploy lock.

use std::sync::Arc;
use std::time::Duration;

use graphile_worker::{IntoTaskHandlerResult, TaskHandler, WorkerContext};
use tokio_util::sync::CancellationToken;

use super::context::Shared;
use super::dispatch;
use super::durable::{Lease, TASK, Task, Unit};
use super::error::DaemonError;
use super::job::Job;
use super::jobs::{self, Action};

/// The extension the worker hands each task: the daemon's shared state.
#[derive(Clone)]
struct Daemon(Arc<Shared>, CancellationToken);

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Daemon")
    }
}

impl TaskHandler for Task {
    const IDENTIFIER: &'static str = TASK;

    fn run(
        self,
        ctx: WorkerContext,
    ) -> impl Future<Output = impl IntoTaskHandlerResult> + Send + 'static {
        let daemon = ctx.get_ext::<Daemon>().cloned();
        async move {
            let Some(Daemon(shared, stop)) = daemon else {
                return Err("no daemon state in the worker".to_string());
            };
            carry_out(&shared, &self, &stop).await
        }
    }
}

/// Takes one task: an event is dispatched; a job runs, a deploy-lane job under the deploy
/// lock. An error makes the queue try it again later, as its attempts allow.
async fn carry_out(
    shared: &Arc<Shared>,
    task: &Task,
    stop: &CancellationToken,
) -> Result<(), String> {
    // A task of a newer capstan (a rolling upgrade) fails here and is tried again, so a
    // replica that knows it can take it; it is never dropped.
    let Some(unit) = task.unit() else {
        tracing::warn!(task = ?task, "a task this capstan does not know; left for a newer one");
        return Err(format!("unknown task {task:?}"));
    };
    match unit {
        Unit::Event(event) => {
            dispatch::dispatch(shared, event).await;
            Ok(())
        }
        Unit::Job(job) => {
            let _held = match job {
                Job::Deploy(_) | Job::Drift | Job::Preview(_) | Job::Sweep => shared
                    .deploys
                    .hold()
                    .await
                    .map_err(|e| crate::error::chain(&e).to_string())?,
                Job::Plan(_) | Job::Resources(_) => None,
            };
            match jobs::run_one(shared, &job, &stop.child_token()).await {
                Action::Done => Ok(()),
                Action::Retry => Err(format!("{} failed; tried again later", job.key())),
            }
        }
    }
}

/// Runs this replica's worker until `stop`: `concurrency` tasks at once, leased for `lease`.
pub(super) async fn work(
    shared: Arc<Shared>,
    concurrency: usize,
    lease: Lease,
    stop: CancellationToken,
) -> Result<(), DaemonError> {
    // A small local queue keeps the worker busy: without it, each of its slots takes one
    // job per wake-up (a poll, or a notification), so 50 queued plans wait on the poll
    // interval. It holds no more than a job per slot, so replicas still share the work.
    let worker = options(&shared)?
        .concurrency(concurrency.max(1))
        .local_queue(
            graphile_worker::LocalQueueConfig::default()
                .with_size(concurrency.max(1))
                .with_ttl(lease.threshold()),
        )
        .define_job::<Task>()
        .add_extension(Daemon(shared.clone(), stop.clone()))
        .worker_recovery(
            graphile_worker::WorkerRecoveryConfig::default()
                .enabled(true)
                .heartbeat_interval(lease.heartbeat())
                .sweep_interval(lease.sweep_interval())
                .sweep_threshold(lease.threshold())
                .recovery_delay(Duration::ZERO),
        )
        .on(graphile_worker::WorkerStart, |ctx| async move {
            tracing::info!(worker = %ctx.worker_id, "taking jobs");
        })
        .on(graphile_worker::WorkerRecovered, |ctx| async move {
            if ctx.jobs_recovered > 0 {
                tracing::warn!(
                    dead = ?ctx.dead_worker_ids,
                    jobs = ctx.jobs_recovered,
                    "took back the jobs of replicas that stopped renewing their leases"
                );
            }
        })
        .shutdown_signal(async move { stop.cancelled().await })
        .init()
        .await
        .map_err(|e| queue_error(&shared, e))?;
    worker.run().await.map_err(|e| queue_error(&shared, e))
}

/// The queue's error, with the database password (which its driver was given in an
/// address) taken out should it appear.
fn queue_error(shared: &Shared, e: impl std::fmt::Display) -> DaemonError {
    let mut text = e.to_string();
    if let Some(password) = shared
        .store
        .location()
        .terraform_pg()
        .and_then(|t| t.password())
        .filter(|p| !p.is_empty())
    {
        text = text.replace(&password, "(password)");
    }
    DaemonError::Queue(text)
}

/// Creates (or migrates) the queue's tables, so that events can be queued before any
/// worker runs (a replica with `--role web`).
pub(super) async fn prepare(shared: &Arc<Shared>) -> Result<(), DaemonError> {
    options(shared)?
        .define_job::<Task>()
        .init()
        .await
        .map(drop)
        .map_err(|e| queue_error(shared, e))
}

fn options(shared: &Shared) -> Result<graphile_worker::WorkerOptions, DaemonError> {
    let Some(target) = shared.store.location().terraform_pg() else {
        return Err(DaemonError::Queue(
            "durable jobs need the state in PostgreSQL".into(),
        ));
    };
    Ok(graphile_worker::WorkerOptions::default()
        .database_url(&target.url_with_password())
        .max_pg_conn(8)
        .listen_os_shutdown_signals(false)
        .poll_interval(Duration::from_millis(500)))
}
