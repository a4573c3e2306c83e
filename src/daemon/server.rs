//! The HTTP side. In both modes, the operations endpoints: `/healthz`, `/readyz` and
//! `/metrics` ([`operations`]); with GitHub also `POST /webhook` (signature first, then
//! the event; nothing is done for a delivery that fails the check).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;

use super::context::Shared;
use super::error::DaemonError;
use super::health::Health;
use super::metrics::{Metrics, WebhookResult};
use super::webhook::{self, Ignored, MAX_BODY};
use crate::error::chain;

/// Binds `addr`, saying which address it took (a `:0` port is chosen by the system).
pub(super) async fn bind(
    addr: SocketAddr,
) -> Result<(tokio::net::TcpListener, SocketAddr), DaemonError> {
    let error = |source| DaemonError::Listen { addr, source };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(error)?;
    let local = listener.local_addr().map_err(error)?;
    Ok((listener, local))
}

/// Serves `app` on `listener` until `stop`.
pub(super) async fn serve(listener: tokio::net::TcpListener, app: Router, stop: CancellationToken) {
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %chain(&e), "the HTTP server failed");
    }
}

/// What the operations endpoints read.
#[derive(Clone)]
struct Operations {
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    before_scrape: Arc<dyn Fn() + Send + Sync>,
}

/// `/healthz`, `/readyz` and `/metrics`; `before_scrape` brings gauges up to date.
pub(super) fn operations(
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    before_scrape: impl Fn() + Send + Sync + 'static,
) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(Operations {
            health,
            metrics,
            before_scrape: Arc::new(before_scrape),
        })
}

async fn readyz(State(ops): State<Operations>) -> (StatusCode, String) {
    match ops.health.readiness() {
        Ok(()) => (StatusCode::OK, ops.health.ready_text()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}

async fn metrics_text(State(ops): State<Operations>) -> impl IntoResponse {
    (ops.before_scrape)();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        ops.metrics.render(),
    )
}

/// GitHub mode's routes: the webhook and the operations endpoints.
pub(super) fn github(shared: Arc<Shared>) -> Router {
    let scrape = shared.clone();
    let ops = operations(shared.health.clone(), shared.metrics.clone(), move || {
        scrape.metrics.queue_depth.set(scrape.plans.depth() as i64);
    });
    Router::new()
        .route("/webhook", post(webhook))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(shared)
        .merge(ops)
}

async fn webhook(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let event = header("x-github-event").unwrap_or("").to_string();
    let delivery = header("x-github-delivery").unwrap_or("-").to_string();
    let config = shared.config();
    let Some(gh) = config.github.as_ref() else {
        return (StatusCode::NOT_FOUND, "github is not configured\n".into());
    };
    if !config.role.receives() {
        return (
            StatusCode::NOT_FOUND,
            "this replica takes no webhooks (role worker)\n".into(),
        );
    }
    let Some(secret) = gh.webhook_secret.as_ref() else {
        shared.metrics.webhook(&event, WebhookResult::Unauthorized);
        tracing::warn!(delivery, "webhook refused: no webhook secret is configured");
        return (
            StatusCode::UNAUTHORIZED,
            "webhooks need github.webhook_secret_file\n".into(),
        );
    };
    if !webhook::verify(
        secret.expose().as_bytes(),
        &body,
        header("x-hub-signature-256"),
    ) {
        shared.metrics.webhook(&event, WebhookResult::Unauthorized);
        tracing::warn!(
            delivery,
            event,
            "webhook refused: bad or missing X-Hub-Signature-256"
        );
        return (StatusCode::UNAUTHORIZED, "bad signature\n".into());
    }
    if shared.health.is_draining() {
        shared.metrics.webhook(&event, WebhookResult::Unavailable);
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n".into());
    }
    let repository = format!("{}/{}", gh.api.owner, gh.api.name);
    match webhook::parse(&event, &body, &repository, &config.repository.branch) {
        Ok(Ok(e)) => {
            // Accepted only once it is handed over: with replicas, queued in the database.
            if let Err(err) = shared.send(e.clone()) {
                shared.metrics.webhook(&event, WebhookResult::Unavailable);
                tracing::error!(delivery, event, error = %crate::error::chain(&err), "webhook not queued; GitHub delivers it again");
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not queued: the state database is unreachable\n".into(),
                );
            }
            tracing::info!(delivery, event, action = ?e, "webhook accepted");
            shared.metrics.webhook(&event, WebhookResult::Accepted);
            (StatusCode::ACCEPTED, "accepted\n".into())
        }
        Ok(Err(Ignored::OtherRepository(name))) => {
            shared.metrics.webhook(&event, WebhookResult::Ignored);
            tracing::info!(
                delivery,
                event,
                repository = name,
                "webhook for another repository ignored"
            );
            (StatusCode::ACCEPTED, "ignored: another repository\n".into())
        }
        Ok(Err(Ignored::Uninteresting(what))) => {
            shared.metrics.webhook(&event, WebhookResult::Ignored);
            tracing::debug!(delivery, what, "webhook ignored");
            (StatusCode::ACCEPTED, format!("ignored: {what}\n"))
        }
        Err(problem) => {
            shared.metrics.webhook(&event, WebhookResult::Invalid);
            tracing::warn!(delivery, event, problem, "webhook payload refused");
            (StatusCode::BAD_REQUEST, format!("{problem}\n"))
        }
    }
}
