//! A GitHub comment (or issue) body assembled to fit GitHub's limit: a head that always
//! survives, lines that survive while they fit (diagnostics), then whole sections while they
//! fit, and a note saying what was cut. Sections are never cut inside, so a `<details>` or a
//! code fence is never left open. Every body capstan posts is assembled here.

/// GitHub's limit for an issue or pull-request comment body, in characters.
pub const MAX_COMMENT: usize = 65_536;

/// Room kept for the note that says what was cut.
const RESERVE: usize = 200;

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Comment {
    /// Always shown, first (it starts with the hidden marker that finds the comment again).
    pub head: String,
    /// Shown under `kept_title`, each line while it fits.
    pub kept_title: String,
    pub kept: Vec<String>,
    /// Shown in order, each whole, while they fit; after the first that does not fit, none.
    pub sections: Vec<String>,
    /// Where the whole of it is, for the note: "Run `capstan plan` for the full plan."
    pub see_all: std::borrow::Cow<'static, str>,
}

impl Comment {
    /// The body, at most `max` bytes (GitHub counts characters; bytes are never fewer).
    pub fn render(&self, max: usize) -> String {
        let mut body = self.head.clone();
        if body.len() + RESERVE > max {
            // Only a pathological head gets here; cut it at a line and say so.
            let mut end = max.saturating_sub(RESERVE).min(body.len());
            while !body.is_char_boundary(end) {
                end -= 1;
            }
            body.truncate(body[..end].rfind('\n').map_or(end, |i| i + 1));
            body.push_str(&note(&self.see_all, "the summary was too long"));
            return body;
        }
        let mut dropped_kept = 0;
        if !self.kept.is_empty() {
            body.push_str(&self.kept_title);
            for line in &self.kept {
                if body.len() + line.len() + RESERVE <= max {
                    body.push_str(line);
                } else {
                    dropped_kept += 1;
                }
            }
            body.push('\n');
        }
        let total = self.sections.len();
        let mut cut = 0;
        for section in &self.sections {
            if cut == 0 && body.len() + section.len() + RESERVE <= max {
                body.push_str(section);
            } else {
                cut += 1;
            }
        }
        if cut > 0 || dropped_kept > 0 {
            let what = format!(
                "{cut} of {total} sections{}",
                if dropped_kept > 0 {
                    format!(" and {dropped_kept} diagnostics")
                } else {
                    String::new()
                }
            );
            body.push_str(&note(&self.see_all, &what));
        }
        body
    }
}

fn note(see_all: &str, what: &str) -> String {
    format!("\n> **Cut to fit GitHub's {MAX_COMMENT} characters:** {what}. {see_all}\n")
}

/// A markdown table of `rows` under `header`, as long as it fits in `budget` bytes; the rows
/// that do not fit are counted in a last row (`… 12 more <what>`).
pub fn table(header: &str, rows: &[String], budget: usize, what: &str) -> String {
    let columns = header
        .lines()
        .next()
        .map_or(1, |l| l.matches('|').count() - 1);
    let mut out = header.to_string();
    let mut shown = 0;
    for row in rows {
        if out.len() + row.len() + 80 > budget {
            break;
        }
        out.push_str(row);
        shown += 1;
    }
    if shown < rows.len() {
        out.push_str(&format!(
            "| … {} more {what} |{}\n",
            rows.len() - shown,
            " |".repeat(columns.saturating_sub(1))
        ));
    }
    out
}

/// Escapes what would break a table cell or inline HTML.
pub fn cell(s: &str) -> String {
    s.replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_whole_or_absent_and_the_limit_holds() {
        let c = Comment {
            head: "<!-- m -->\n**head**\n".into(),
            kept_title: "**Diagnostics**\n\n".into(),
            kept: vec!["- a\n".into(); 3],
            sections: (0..100)
                .map(|i| {
                    format!(
                        "<details><summary>{i}</summary>\n\n{}\n</details>\n",
                        "x".repeat(1000)
                    )
                })
                .collect(),
            see_all: "Run `capstan plan` for the full plan.".into(),
        };
        let body = c.render(20_000);
        assert!(body.len() <= 20_000, "{}", body.len());
        assert_eq!(
            body.matches("<details>").count(),
            body.matches("</details>").count()
        );
        assert!(body.contains("Cut to fit"), "the note says so");
        assert!(body.starts_with("<!-- m -->"));
        assert_eq!(c.render(1_000_000).matches("<details>").count(), 100);
    }

    #[test]
    fn even_a_huge_head_fits() {
        let c = Comment {
            head: "line\n".repeat(100_000),
            see_all: "Run `capstan plan` for the full plan.".into(),
            ..Comment::default()
        };
        let body = c.render(MAX_COMMENT);
        assert!(body.len() <= MAX_COMMENT);
        assert!(body.contains("the summary was too long"));
    }

    #[test]
    fn tables_count_what_they_leave_out() {
        let rows: Vec<String> = (0..1000).map(|i| format!("| r{i} | x |\n")).collect();
        let t = table("| a | b |\n|---|---|\n", &rows, 2_000, "instances");
        assert!(t.len() <= 2_100);
        assert!(t.contains("more instances | |"), "{t}");
    }
}
