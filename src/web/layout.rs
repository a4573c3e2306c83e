//! The page every view shares: the header with its navigation, and the small pieces pages
//! link each other with. Markup is maud's: every value is escaped unless a page says
//! otherwise, and no page carries inline script or style (the Content-Security-Policy
//! forbids both).

use maud::{DOCTYPE, Markup, html};

use crate::core::time::Timestamp;

/// The sections in the header, with the path each leads to.
pub const SECTIONS: [(&str, &str); 6] = [
    ("Fleet", "/"),
    ("Runs", "/runs"),
    ("Pull requests", "/pulls"),
    ("Previews", "/previews"),
    ("Drift", "/drift"),
    ("Graph", "/graph"),
];

/// Who is looking and where GitHub is, for every page.
#[derive(Clone, Debug, Default)]
pub struct Context {
    pub user: Option<String>,
    /// `https://github.com/acme/infra`, when the daemon knows the repository.
    pub github: Option<String>,
    /// Whether signing out means anything (GitHub sign-in).
    pub signed_in: bool,
}

impl Context {
    /// A link to a commit on GitHub, or its short form alone.
    pub fn commit(&self, sha: &str) -> Markup {
        let short: String = sha.chars().take(7).collect();
        match &self.github {
            Some(repo) if is_sha(sha) => html! {
                a href=(format!("{repo}/commit/{sha}")) { code { (short) } }
            },
            _ => html! { code { (short) } },
        }
    }

    /// A link to a pull request on GitHub, or its number alone.
    pub fn pull(&self, number: u64) -> Markup {
        match &self.github {
            Some(repo) => {
                html! { a href=(format!("{repo}/pull/{number}")) { "#" (number) " on GitHub" } }
            }
            None => html! { "#" (number) },
        }
    }
}

fn is_sha(s: &str) -> bool {
    (7..=64).contains(&s.len()) && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// The whole page: `title` in the tab and as the heading, `section` marked in the header.
pub fn page(ctx: &Context, section: &str, title: &str, body: Markup) -> Markup {
    page_with(ctx, section, title, &[], body)
}

/// As [`page`], with scripts (`/assets/...`) the page needs.
pub fn page_with(
    ctx: &Context,
    section: &str,
    title: &str,
    scripts: &[&str],
    body: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · capstan" }
                link rel="stylesheet" href="/assets/app.css";
                link rel="icon" href="/assets/icon.svg" type="image/svg+xml";
                @for script in scripts {
                    script src=(script) defer {}
                }
            }
            body {
                a class="skip" href="#main" { "Skip to content" }
                header {
                    a class="brand" href="/" { "capstan" }
                    nav aria-label="Sections" {
                        ul {
                            @for (name, href) in SECTIONS {
                                li {
                                    @if name == section {
                                        a href=(href) aria-current="page" { (name) }
                                    } @else {
                                        a href=(href) { (name) }
                                    }
                                }
                            }
                        }
                    }
                    @if let Some(user) = &ctx.user {
                        span class="user" {
                            "Signed in as " strong { (user) }
                            @if ctx.signed_in {
                                " · " a href="/auth/logout" { "Sign out" }
                            }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A link to an instance's page.
pub fn instance(id: &str) -> Markup {
    html! { a href=(format!("/instances/{}", path_part(id))) { (id) } }
}

/// A status as a word with its class (`status-failed`), never colour alone.
pub fn status(name: &str) -> Markup {
    html! { span class=(format!("status status-{name}")) { (name) } }
}

/// A moment as UTC text, with the machine-readable value.
pub fn time(t: Timestamp) -> Markup {
    html! { time datetime=(t.to_string()) { (t.to_minute()) } }
}

/// An optional moment; a dash for none.
pub fn maybe_time(t: Option<Timestamp>) -> Markup {
    match t {
        Some(t) => time(t),
        None => html! { "–" },
    }
}

/// Percent-encodes one path segment (instance ids are plain, but a state database may
/// hold anything).
pub fn path_part(s: &str) -> String {
    super::fleet::encode(s)
}

/// A page that says there is nothing to show (yet), and why.
pub fn empty(what: &str) -> Markup {
    html! { p class="empty" { (what) } }
}
