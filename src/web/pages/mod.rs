//! One module per page of the view: each reads what it shows (on the blocking pool) and
//! turns it into markup with `layout`.

pub(super) mod fleet;
mod graph;
mod instance;
mod pulls;
mod runs;
mod state;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

use super::View;

pub(super) fn routes() -> Router<Arc<View>> {
    Router::new()
        .route("/", get(fleet::page))
        .route("/instances/{id}", get(instance::page))
        .route("/runs", get(runs::list))
        .route("/runs/{id}", get(runs::run))
        .route("/steps/{id}", get(runs::step))
        .route("/steps/{id}/events", get(runs::events))
        .route("/pulls", get(pulls::list))
        .route("/pulls/{number}", get(pulls::pull))
        .route("/previews", get(state::previews))
        .route("/drift", get(state::drift))
        .route("/graph", get(graph::page))
}
