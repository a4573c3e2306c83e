//! `/runs`, `/runs/{id}` and `/steps/{id}`: deploy runs, their steps, and a step's log,
//! followed live while it runs (`/steps/{id}/events`, server-sent events).

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use crate::web::layout;
use crate::web::log;
use crate::web::{Admitted, View, WebError, blocking, render};

/// Runs on the list.
const RUNS: usize = 200;

pub(super) async fn list(
    State(view): State<Arc<View>>,
    Extension(admitted): Extension<Admitted>,
) -> Result<Markup, WebError> {
    render(&view, &admitted, move |view, ctx| {
        let runs = view.store.runs(RUNS)?;
        let body = html! {
            @if runs.is_empty() {
                (layout::empty("Nothing has been deployed yet."))
            } @else {
                table {
                    caption { "The latest " (runs.len()) " runs, newest first" }
                    thead { tr { th { "Run" } th { "Commit" } th { "Trigger" } th { "Status" } th { "Summary" } th { "Started" } th { "Finished" } } }
                    tbody {
                        @for r in &runs {
                            tr {
                                td { a href=(format!("/runs/{}", r.id)) { "run " (r.id) } }
                                td { (ctx.commit(&r.commit)) }
                                td { (r.trigger.name()) }
                                td { (layout::status(r.status.name())) }
                                td { (r.summary) }
                                td { (layout::time(r.started_at)) }
                                td { (layout::maybe_time(r.finished_at)) }
                            }
                        }
                    }
                }
            }
        };
        Ok(layout::page(ctx, "Runs", "Runs", body))
    })
    .await
}

pub(super) async fn run(
    State(view): State<Arc<View>>,
    Extension(admitted): Extension<Admitted>,
    Path(id): Path<i64>,
) -> Result<Markup, WebError> {
    render(&view, &admitted, move |view, ctx| {
        let run = view
            .store
            .run(id)?
            .ok_or_else(|| WebError::NotFound(format!("There is no run {id}.")))?;
        let steps = view.store.steps_in(id)?;
        let body = html! {
            dl class="facts" {
                dt { "Commit" } dd { (ctx.commit(&run.commit)) }
                dt { "Trigger" } dd { (run.trigger.name()) }
                dt { "Status" } dd { (layout::status(run.status.name())) " " (run.summary) }
                dt { "Started" } dd { (layout::time(run.started_at)) }
                dt { "Finished" } dd { (layout::maybe_time(run.finished_at)) }
            }
            h2 { "Steps" }
            @if steps.is_empty() {
                (layout::empty("This run had no steps."))
            } @else {
                table {
                    thead { tr { th { "Step" } th { "Instance" } th { "Action" } th { "Status" } th { "Message" } th { "Started" } th { "Finished" } } }
                    tbody {
                        @for s in &steps {
                            tr {
                                td { a href=(format!("/steps/{}", s.id)) { "log of step " (s.id) } }
                                td { (layout::instance(&s.instance)) }
                                td { (s.action.name()) }
                                td { (layout::status(s.status.name())) }
                                td { (s.message) }
                                td { (layout::time(s.started_at)) }
                                td { (layout::maybe_time(s.finished_at)) }
                            }
                        }
                    }
                }
            }
        };
        Ok(layout::page(ctx, "Runs", &format!("Run {id}"), body))
    })
    .await
}

pub(super) async fn step(
    State(view): State<Arc<View>>,
    Extension(admitted): Extension<Admitted>,
    Path(id): Path<i64>,
) -> Result<Markup, WebError> {
    render(&view, &admitted, move |view, ctx| {
        let step = view
            .store
            .step(id)?
            .ok_or_else(|| WebError::NotFound(format!("There is no step {id}.")))?;
        let running = step.finished_at.is_none();
        let shown = match step.log_path.as_deref() {
            Some(path) => log::read(std::path::Path::new(path), running).map_err(|e| e.to_string()),
            None => Err("this step wrote no log".to_string()),
        };
        let body = html! {
            dl class="facts" {
                dt { "Instance" } dd { (layout::instance(&step.instance)) }
                dt { "Run" } dd { a href=(format!("/runs/{}", step.run)) { "run " (step.run) } }
                dt { "Action" } dd { (step.action.name()) }
                dt { "Status" } dd { (layout::status(step.status.name())) " " (step.message) }
                dt { "Started" } dd { (layout::time(step.started_at)) }
                dt { "Finished" } dd { (layout::maybe_time(step.finished_at)) }
            }
            h2 { "Log" }
            @match &shown {
                Ok(log) => {
                    @if log.start > 0 {
                        p class="muted" { "The first " (log.start) " bytes are left out; this is the log's end." }
                    }
                    p id="log-state" class="muted" role="status" {
                        @if running { "The step is running: reload for more, or let the page follow it." }
                    }
                    pre class="log" id="log" tabindex="0"
                        data-running=(if running { "true" } else { "false" })
                        data-events=(format!("/steps/{id}/events"))
                        data-offset=(log.end) { (log.text) }
                }
                Err(why) => { (layout::empty(&format!("The log cannot be shown: {why}."))) }
            }
        };
        let title = format!("Step {id}: {} {}", step.action.name(), step.instance);
        Ok(layout::page_with(ctx, "Runs", &title, &["/assets/log.js"], body))
    })
    .await
}

#[derive(serde::Deserialize)]
pub(super) struct From {
    from: Option<u64>,
}

pub(super) async fn events(
    State(view): State<Arc<View>>,
    Path(id): Path<i64>,
    Query(from): Query<From>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let step = blocking(&view, move |view| Ok(view.store.step(id)?)).await?;
    let step = step.ok_or_else(|| WebError::NotFound(format!("There is no step {id}.")))?;
    let Some(path) = step.log_path else {
        return Err(WebError::NotFound("This step wrote no log.".into()));
    };
    // A reconnecting browser says where it was.
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let offset = resume.or(from.from).unwrap_or(0);
    Ok(log::follow(view, id, path.into(), offset).into_response())
}
