//! Command-line definitions and glue: the only place that knows about terminals, output
//! streams and exit codes (0 success, 1 validation errors, 2 usage or I/O failure).

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::core::diag::Code;
use crate::core::render;
use crate::core::schema::FileKind;

#[derive(Parser, Debug)]
#[command(
    name = "capstan",
    version,
    about = "GitOps reconciler for shared infrastructure"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate the repository: schemas, references, types, sharing grants, cycles.
    Validate {
        /// The repository root (the folder holding capstan.yaml); may be inside a larger git repository.
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// Read this git revision from the object database instead of the working tree.
        #[arg(long)]
        rev: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Plan: what changes between two revisions, why, what is affected downstream, in what order.
    Plan {
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// The old state (e.g. the merge base of a pull request).
        #[arg(long, default_value = "HEAD")]
        base: String,
        /// The new state.
        #[arg(long, conflicts_with = "worktree")]
        head: Option<String>,
        /// Plan the working tree (uncommitted edits included) against --base.
        #[arg(long)]
        worktree: bool,
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
        /// Exit 0 with no changes, 1 on errors, 2 with changes; usage and I/O failures give 3.
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// The instance graph with cross-project edges labelled by how they are made.
    Graph {
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        #[arg(long)]
        rev: Option<String>,
        #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
        format: GraphFormat,
        /// Only this project's instances and the edges that touch them.
        #[arg(long)]
        project: Option<String>,
    },
    /// Explain a diagnostic code, with an example; without a code, list them all.
    Explain { code: Option<String> },
    /// Print the JSON Schema of a file kind (for editors); without a kind, list the kinds.
    Schema { kind: Option<String> },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum GraphFormat {
    Mermaid,
    Dot,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum PlanFormat {
    Text,
    Markdown,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Text,
    Json,
}

/// Exit code for usage and I/O failures.
const FAILURE: i32 = 2;

pub fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { FAILURE } else { 0 };
        }
    };
    let detailed = matches!(
        cli.command,
        Command::Plan {
            detailed_exitcode: true,
            ..
        }
    );
    match execute(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("capstan: error: {}", chain(&e));
            if detailed { FAILURE + 1 } else { FAILURE }
        }
    }
}

/// The error and its causes on one line, each said once.
fn chain(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

fn out(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        // A closed pipe (`capstan validate | head`) is the reader's choice, not a failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

fn execute(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Validate { repo, rev, format } => {
            let tree = crate::source::read(&repo, rev.as_deref())?;
            let checked = crate::core::check(&tree);
            tracing::debug!(
                files = tree.files().len(),
                diagnostics = checked.diagnostics.len(),
                "validated"
            );
            out(&match format {
                Format::Text => render::diagnostics::text(&checked),
                Format::Json => render::diagnostics::json(&checked),
            })?;
            Ok(i32::from(checked.has_errors()))
        }
        Command::Plan {
            repo,
            base,
            head,
            worktree,
            format,
            detailed_exitcode,
        } => {
            let old = crate::core::check(&crate::source::read_base(&repo, &base)?);
            let head_rev = if worktree {
                None
            } else {
                Some(head.as_deref().unwrap_or("HEAD"))
            };
            let new = crate::core::check(&crate::source::read(&repo, head_rev)?);
            if new.has_errors() {
                out(&match format {
                    PlanFormat::Text => render::diagnostics::text(&new),
                    PlanFormat::Markdown => render::markdown::diagnostics(
                        &new.diagnostics,
                        &render::markdown::Options::new(None),
                    ),
                    PlanFormat::Json => render::diagnostics::json(&new),
                })?;
                return Ok(1);
            }
            let plan = crate::core::plan::plan(&old, &new);
            let color = std::env::var_os("NO_COLOR").is_none()
                && std::io::IsTerminal::is_terminal(&std::io::stdout());
            out(&match format {
                PlanFormat::Text => render::plan::text(&plan, color),
                PlanFormat::Markdown => render::markdown::plan(
                    &plan,
                    &new.diagnostics,
                    &render::markdown::Options::new(None),
                ),
                PlanFormat::Json => render::plan::json(&plan),
            })?;
            Ok(if detailed_exitcode && !plan.is_empty() {
                2
            } else {
                0
            })
        }
        Command::Graph {
            repo,
            rev,
            format,
            project,
        } => {
            let checked = crate::core::check(&crate::source::read(&repo, rev.as_deref())?);
            if checked.has_errors() {
                out(&render::diagnostics::text(&checked))?;
                return Ok(1);
            }
            if let Some(p) = &project
                && !checked.repository.projects.contains_key(p.as_str())
            {
                anyhow::bail!("project {p:?} does not exist in {}", repo.display());
            }
            let p = project.as_deref();
            out(&match format {
                GraphFormat::Mermaid => render::graph::mermaid(&checked.resolved, p),
                GraphFormat::Dot => render::graph::dot(&checked.resolved, p),
                GraphFormat::Json => render::graph::json(&checked.resolved, p),
            })?;
            Ok(0)
        }
        Command::Explain { code: None } => {
            let mut text = String::new();
            for code in Code::ALL {
                text.push_str(&format!(
                    "{:<26} {:<8} {}\n",
                    code.as_str(),
                    code.severity().as_str(),
                    code.summary()
                ));
            }
            out(&text)?;
            Ok(0)
        }
        Command::Explain { code: Some(name) } => match Code::from_name(&name) {
            Some(code) => {
                out(&format!(
                    "{code} ({}): {}\n\n{}",
                    code.severity().as_str(),
                    code.summary(),
                    code.explanation()
                ))?;
                Ok(0)
            }
            None => anyhow::bail!("unknown diagnostic code {name:?}; `capstan explain` lists them"),
        },
        Command::Schema { kind: None } => {
            let names: Vec<&str> = FileKind::ALL.iter().map(|k| k.name()).collect();
            out(&format!("{}\n", names.join("\n")))?;
            Ok(0)
        }
        Command::Schema { kind: Some(name) } => {
            match FileKind::ALL.iter().find(|k| k.name() == name) {
                Some(kind) => {
                    out(kind.source())?;
                    Ok(0)
                }
                None => anyhow::bail!("unknown file kind {name:?}; `capstan schema` lists them"),
            }
        }
    }
}
