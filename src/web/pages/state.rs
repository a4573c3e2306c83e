//! `/previews` and `/drift`: the preview environments with their expiry, and the drift
//! checks of what is deployed.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use maud::{Markup, html};

use crate::core::drift::DriftStatus;
use crate::web::layout;
use crate::web::{Admitted, View, WebError, render};

pub(super) async fn previews(
    State(view): State<Arc<View>>,
    Extension(admitted): Extension<Admitted>,
) -> Result<Markup, WebError> {
    render(&view, &admitted, move |view, ctx| {
        let previews = view.store.previews()?;
        let body = html! {
            @if previews.is_empty() {
                (layout::empty("No preview environment is up."))
            } @else {
                table {
                    thead { tr { th { "Preview" } th { "Pull request" } th { "Status" } th { "Head" } th { "Created" } th { "Expires" } } }
                    tbody {
                        @for p in &previews {
                            tr {
                                td { a href=(format!("/?project={}&environment={}", layout::path_part(&p.project), layout::path_part(&p.name))) { (p.project) "-" (p.name) } }
                                td {
                                    @if let Some(n) = p.pr {
                                        a href=(format!("/pulls/{n}")) { "#" (n) }
                                    } @else { "capstan preview up" }
                                }
                                td { (layout::status(p.status.name())) }
                                td { (ctx.commit(p.head.as_str())) }
                                td { (layout::time(p.created_at)) }
                                td { (layout::time(p.expires_at())) }
                            }
                        }
                    }
                }
            }
        };
        Ok(layout::page(ctx, "Previews", "Previews", body))
    })
    .await
}

pub(super) async fn drift(
    State(view): State<Arc<View>>,
    Extension(admitted): Extension<Admitted>,
) -> Result<Markup, WebError> {
    render(&view, &admitted, move |view, ctx| {
        let deployed = view.deployed()?;
        let rank = |s: Option<DriftStatus>| match s {
            Some(DriftStatus::Drifted) => 0,
            Some(DriftStatus::CheckFailed) => 1,
            None => 2,
            Some(DriftStatus::NotCheckable) => 3,
            Some(DriftStatus::InSync) => 4,
        };
        let mut rows: Vec<_> = deployed.values().collect();
        rows.sort_by_key(|d| (rank(d.drift.as_ref().map(|c| c.status)), d.instance.clone()));
        let drifted = rows
            .iter()
            .filter(|d| d.drift.as_ref().is_some_and(|c| c.status == DriftStatus::Drifted))
            .count();
        let body = html! {
            p { (drifted) " of " (rows.len()) " deployed instances drifted at their last check. Drifted first, then checks that could not tell, then instances not checked since their deploy." }
            @if !rows.is_empty() {
                table {
                    thead { tr { th { "Instance" } th { "Drift" } th { "Summary" } th { "Since" } th { "Checked" } } }
                    tbody {
                        @for d in &rows {
                            tr {
                                td { (layout::instance(d.instance.as_str())) }
                                @match &d.drift {
                                    Some(c) => {
                                        td { (layout::status(c.status.name())) }
                                        td { (c.summary) }
                                        td { (layout::time(c.since)) }
                                        td { (layout::time(c.checked_at)) }
                                    }
                                    None => {
                                        td { span class="muted" { "not checked" } }
                                        td {} td {} td {}
                                    }
                                }
                            }
                        }
                    }
                }
            }
        };
        Ok(layout::page(ctx, "Drift", "Drift", body))
    })
    .await
}
