//! The HTTP side: `POST /webhook` (signature first, then the event; nothing is done for a
//! delivery that fails the check), `/healthz`, `/readyz` and `/metrics`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;

use super::context::Shared;
use super::webhook::{self, Ignored, MAX_BODY};
use crate::error::chain;

pub(super) async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let app = router(shared);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %chain(&e), "the HTTP server failed");
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/webhook", post(webhook))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(shared)
}

async fn readyz(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    if shared.draining.load(Ordering::SeqCst) {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else if shared.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "fetching the repository\n")
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    shared.metrics.queue_depth.set(shared.queue.depth() as i64);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.metrics.render(),
    )
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
    let Some(secret) = gh.webhook_secret.as_ref() else {
        shared.metrics.webhook(&event, "unauthorized");
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
        shared.metrics.webhook(&event, "unauthorized");
        tracing::warn!(
            delivery,
            event,
            "webhook refused: bad or missing X-Hub-Signature-256"
        );
        return (StatusCode::UNAUTHORIZED, "bad signature\n".into());
    }
    if shared.draining.load(Ordering::SeqCst) {
        shared.metrics.webhook(&event, "unavailable");
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n".into());
    }
    let repository = format!("{}/{}", gh.api.owner, gh.api.name);
    match webhook::parse(&event, &body, &repository, &config.repository.branch) {
        Ok(Ok(e)) => {
            tracing::info!(delivery, event, action = ?e, "webhook accepted");
            shared.metrics.webhook(&event, "accepted");
            shared.send(e);
            (StatusCode::ACCEPTED, "accepted\n".into())
        }
        Ok(Err(Ignored::OtherRepository(name))) => {
            shared.metrics.webhook(&event, "ignored");
            tracing::info!(
                delivery,
                event,
                repository = name,
                "webhook for another repository ignored"
            );
            (StatusCode::ACCEPTED, "ignored: another repository\n".into())
        }
        Ok(Err(Ignored::Uninteresting(what))) => {
            shared.metrics.webhook(&event, "ignored");
            tracing::debug!(delivery, what, "webhook ignored");
            (StatusCode::ACCEPTED, format!("ignored: {what}\n"))
        }
        Err(problem) => {
            shared.metrics.webhook(&event, "invalid");
            tracing::warn!(delivery, event, problem, "webhook payload refused");
            (StatusCode::BAD_REQUEST, format!("{problem}\n"))
        }
    }
}
