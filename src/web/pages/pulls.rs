//! `/pulls` and `/pulls/{number}`: the pull requests capstan planned, with the statuses it
//! posted on their heads (plan, policy, ownership, previews), what each changes, and links
//! to GitHub and to the graph of what the change reaches.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use maud::{Markup, html};

use crate::state::PullRecord;
use crate::web::layout::{self, Context};
use crate::web::{Admitted, View, WebError, render};

/// Pull requests on the list.
const PULLS: usize = 200;

pub(super) async fn list(
    State(view): State<Arc<View>>,
    Extension(admitted): Extension<Admitted>,
) -> Result<Markup, WebError> {
    render(&view, &admitted, move |view, ctx| {
        let pulls = view.store.pulls(PULLS)?;
        let body = html! {
            @if pulls.is_empty() {
                (layout::empty("capstan has planned no pull request."))
            } @else {
                table {
                    caption { "Open pull requests first, newest first" }
                    thead { tr { th { "Pull request" } th { "State" } th { "Head" } th { "Statuses" } th { "Changes" } th { "Planned" } } }
                    tbody {
                        @for p in &pulls {
                            tr {
                                td { a href=(format!("/pulls/{}", p.number)) { "#" (p.number) } " (" (ctx.pull(p.number)) ")" }
                                td { (if p.open { "open" } else { "closed" }) }
                                td { @if let Some(h) = &p.head { (ctx.commit(h)) } @else { "–" } }
                                td { (statuses(p)) }
                                td { (p.changes.len()) }
                                td { (layout::maybe_time(p.planned_at)) }
                            }
                        }
                    }
                }
            }
        };
        Ok(layout::page(ctx, "Pull requests", "Pull requests", body))
    })
    .await
}

pub(super) async fn pull(
    State(view): State<Arc<View>>,
    Extension(admitted): Extension<Admitted>,
    Path(number): Path<u64>,
) -> Result<Markup, WebError> {
    render(&view, &admitted, move |view, ctx| {
        let pull = view.store.pull(number)?.ok_or_else(|| {
            WebError::NotFound(format!("capstan has not planned pull request #{number}."))
        })?;
        let previews: Vec<_> = view
            .store
            .previews()?
            .into_iter()
            .filter(|p| p.pr == Some(number))
            .collect();
        let body = body(ctx, &pull, &previews);
        Ok(layout::page(
            ctx,
            "Pull requests",
            &format!("Pull request #{number}"),
            body,
        ))
    })
    .await
}

fn body(ctx: &Context, p: &PullRecord, previews: &[crate::state::PreviewRecord]) -> Markup {
    html! {
        dl class="facts" {
            dt { "On GitHub" } dd { (ctx.pull(p.number)) }
            dt { "State" } dd { (if p.open { "open" } else { "closed" }) }
            dt { "Head" } dd { @if let Some(h) = &p.head { (ctx.commit(h)) } @else { "–" } }
            dt { "Merge base" } dd { @if let Some(b) = &p.base { (ctx.commit(b)) } @else { "–" } }
            dt { "Planned" } dd { (layout::maybe_time(p.planned_at)) }
        }
        h2 { "Statuses on the head" }
        @if p.statuses.is_empty() {
            (layout::empty("None posted."))
        } @else {
            table {
                thead { tr { th { "Context" } th { "State" } th { "Description" } } }
                tbody {
                    @for (context, state, description) in &p.statuses {
                        tr { td { code { (context) } } td { (layout::status(state)) } td { (description) } }
                    }
                }
            }
        }
        h2 { "Changes" }
        @if p.changes.is_empty() {
            (layout::empty("Its plan changes no instance."))
        } @else {
            p { a href=(format!("/graph?pull={}", p.number)) { "The graph of what these changes reach" } }
            ul { @for c in &p.changes { li { (layout::instance(c)) } } }
        }
        h2 { "Previews" }
        @if previews.is_empty() {
            (layout::empty("It has no preview."))
        } @else {
            ul {
                @for pv in previews {
                    li {
                        a href=(format!("/?project={}&environment={}", layout::path_part(&pv.project), layout::path_part(&pv.name))) { (pv.project) "-" (pv.name) }
                        " " (layout::status(pv.status.name())) ", expires " (layout::time(pv.expires_at()))
                    }
                }
            }
        }
    }
}

/// The head's statuses in short: `plan: success`.
fn statuses(p: &PullRecord) -> Markup {
    html! {
        @for (context, state, _) in &p.statuses {
            span { code { (context.trim_start_matches("capstan/")) } " " (layout::status(state)) } " "
        }
    }
}
