//! The web view beside the daemon (docs/web.md): on a listener of its own, so the view can
//! stay on loopback while webhooks come from the internet, and only when `ui:` (or `--ui`)
//! asks for it.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::config::UiConfig;
use super::error::DaemonError;
use super::server;
use crate::error::chain;
use crate::state::Store;
use crate::web::{Branch, View};

/// Binds and serves the view until `stop`; `None` when it is off. The address it took is
/// returned (a `:0` port is chosen by the system).
pub(super) async fn start(
    ui: Option<&UiConfig>,
    store: Arc<Store>,
    branch: watch::Receiver<Option<Arc<Branch>>>,
    github: Option<String>,
    stop: CancellationToken,
) -> Result<Option<(SocketAddr, tokio::task::JoinHandle<()>)>, DaemonError> {
    let Some(ui) = ui else {
        return Ok(None);
    };
    let (listener, addr) = server::bind(ui.listen).await?;
    let view = Arc::new(View::new(store, branch, github, ui.auth.clone()));
    tokio::spawn(crate::web::keep_warm(view.clone(), stop.clone()));
    let app = crate::web::router(view).into_make_service_with_connect_info::<SocketAddr>();
    tracing::info!(%addr, auth = ?mode(ui), "web view listening");
    let task = tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %chain(&e), "the web view's server failed");
        }
    });
    Ok(Some((addr, task)))
}

fn mode(ui: &UiConfig) -> &'static str {
    match ui.auth {
        crate::web::Auth::None => "none",
        crate::web::Auth::Proxy { .. } => "proxy",
        crate::web::Auth::GitHub(_) => "github",
    }
}
