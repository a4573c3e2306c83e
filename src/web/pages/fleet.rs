//! `/`: the fleet, filtered by project, environment and status, a page of 100 at a time,
//! grouped by project and environment.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Query, State};
use maud::{Markup, html};

use crate::core::drift::Heal;
use crate::web::fleet::{self, Filter, Row, Status};
use crate::web::layout::{self, Context};
use crate::web::{Admitted, View, WebError, render};

/// The fleet of one branch commit and one state of the database: rows are computed once
/// per pair (a plan against 40,000 deployed instances takes a while), filtered per request.
pub(in crate::web) struct Cached {
    key: (String, String),
    rows: Arc<Vec<Row>>,
}

/// The fleet at one branch commit.
pub(in crate::web) type Fleet = (String, Arc<Vec<Row>>);

/// The rows of the fleet now: the cached ones while neither the branch nor the state moved.
pub(in crate::web) fn rows(view: &View) -> Result<Option<Fleet>, WebError> {
    let Some(branch) = view.branch() else {
        return Ok(None);
    };
    let key = (branch.commit.to_string(), view.store.fingerprint()?);
    let mut cache = view.fleet.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = cache.as_ref().filter(|c| c.key == key) {
        return Ok(Some((key.0, c.rows.clone())));
    }
    let deployed = view.deployed()?;
    let scope = view.store.branch_scope()?;
    let checked = &branch.checked;
    let heal = Heal::Environments(checked.repository.config.remediate.clone());
    let plan = crate::core::plan::against_deployed(&deployed, checked, &scope, &heal);
    let previews: BTreeSet<(String, String)> = view
        .store
        .previews()?
        .into_iter()
        .map(|p| (p.project, p.name))
        .collect();
    let rows = Arc::new(fleet::rows(checked, &deployed, &plan, &previews));
    *cache = Some(Cached {
        key: key.clone(),
        rows: rows.clone(),
    });
    Ok(Some((key.0, rows)))
}

pub(super) async fn page(
    State(view): State<Arc<View>>,
    Extension(admitted): Extension<Admitted>,
    Query(filter): Query<Filter>,
) -> Result<Markup, WebError> {
    render(&view, &admitted, move |view, ctx| {
        let Some((commit, rows)) = rows(view)? else {
            return Ok(layout::page(
                ctx,
                "Fleet",
                "Fleet",
                layout::empty("capstan has not read the deploy branch yet; this page fills in after its first pass."),
            ));
        };
        Ok(layout::page(ctx, "Fleet", "Fleet", body(ctx, &commit, &rows, &filter)))
    })
    .await
}

fn body(ctx: &Context, commit: &str, rows: &[Row], filter: &Filter) -> Markup {
    let page = fleet::select(rows, filter);
    let chosen = |v: &Option<String>, x: &str| v.as_deref() == Some(x);
    let with_status = |s: Option<Status>| Filter {
        status: s.map(|s| s.name().to_string()),
        page: None,
        ..filter.clone()
    };
    html! {
        p {
            (rows.len()) " instances, the deploy branch at " (ctx.commit(commit)) "."
            " Each instance's status comes from its last run, its last drift check, and what the branch wants of it."
        }
        nav aria-label="Statuses" {
            ul class="counts" {
                li { a href=(format!("/{}", with_status(None).query(1))) { "all: " (page.counts.values().sum::<usize>()) } }
                @for status in Status::ALL {
                    li {
                        a href=(format!("/{}", with_status(Some(status)).query(1))) {
                            (layout::status(status.name())) " " (page.counts.get(&status).copied().unwrap_or(0))
                        }
                    }
                }
            }
        }
        form class="filter" method="get" action="/" {
            label { "Project"
                select name="project" {
                    option value="" { "all" }
                    @for p in &page.projects {
                        option value=(p) selected[chosen(&filter.project, p)] { (p) }
                    }
                }
            }
            label { "Environment"
                select name="environment" {
                    option value="" { "all" }
                    @for e in &page.environments {
                        option value=(e) selected[chosen(&filter.environment, e)] { (e) }
                    }
                }
            }
            label { "Status"
                select name="status" {
                    option value="" { "all" }
                    @for s in Status::ALL {
                        option value=(s.name()) selected[chosen(&filter.status, s.name())] { (s.name()) }
                    }
                }
            }
            button type="submit" { "Filter" }
        }
        @if page.unknown_status {
            p class="empty" { "There is no status of that name; the statuses are listed above." }
        }
        @if page.matching == 0 {
            (layout::empty("No instance matches this filter."))
        } @else {
            table {
                caption { (page.matching) " matching, page " (page.page) " of " (page.pages) }
                thead { tr { th { "Instance" } th { "Package" } th { "Bundle" } th { "Status" } th { "Why" } th { "Commit" } th { "Updated" } } }
                tbody {
                    @for (i, row) in page.rows.iter().enumerate() {
                        @if i == 0 || (&page.rows[i - 1].project, &page.rows[i - 1].environment) != (&row.project, &row.environment) {
                            tr class="group" {
                                th colspan="7" scope="colgroup" {
                                    a href=(format!("/{}", Filter { project: Some(row.project.clone()), ..Filter::default() }.query(1))) { (row.project) }
                                    " · "
                                    a href=(format!("/{}", Filter { project: Some(row.project.clone()), environment: Some(row.environment.clone()), ..Filter::default() }.query(1))) { (row.environment) }
                                }
                            }
                        }
                        tr {
                            td { (layout::instance(row.instance.as_str())) }
                            td { (row.package) }
                            td { code { (row.bundle) } }
                            td { (layout::status(row.status.name())) }
                            td { (row.detail) }
                            td { @if let Some(c) = &row.commit { (ctx.commit(c)) } @else { "–" } }
                            td { (layout::maybe_time(row.updated_at)) }
                        }
                    }
                }
            }
            (pager(filter, page.page, page.pages))
        }
    }
}

fn pager(filter: &Filter, page: usize, pages: usize) -> Markup {
    html! {
        nav class="pager" aria-label="Pages" {
            @if page > 1 {
                a href=(format!("/{}", filter.query(page - 1))) rel="prev" { "← Previous" }
            }
            span { "Page " (page) " of " (pages) }
            @if page < pages {
                a href=(format!("/{}", filter.query(page + 1))) rel="next" { "Next →" }
            }
        }
    }
}
