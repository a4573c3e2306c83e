//! Checks real Massdriver bundles with the built `capstan`: each bundle of a corpus folder
//! (`<corpus>/massdriver/<name>/massdriver.yaml`) is placed in a minimal repository with
//! every artifact definition of `<corpus>/massdriver-artifact-definitions/` as
//! `artifact-types/<type>.json`, one package per params example of its own (defaults fill
//! the rest; `{}` when it has none), and `capstan validate --format json` is run on it.
//! Any error in the bundle or in an artifact type fails; a bundle named in the corpus's
//! `SOURCES.md` but missing fails too. Prints one row per bundle, with the example whose
//! params validate best.
//!
//!     cargo run --example compat -- CORPUS_DIR CAPSTAN_BINARY

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use capstan::core::yaml;
use serde_json::Value;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(corpus), Some(capstan)) = (args.first(), args.get(1)) else {
        eprintln!("usage: compat CORPUS_DIR CAPSTAN_BINARY");
        return ExitCode::from(2);
    };
    match run(Path::new(corpus), Path::new(capstan)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("compat: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What one bundle's check found.
struct Row {
    bundle: String,
    errors: Vec<String>,
    warnings: BTreeMap<String, usize>,
    /// Errors in the artifact definitions (the same in every row; reported once).
    type_errors: Vec<String>,
    /// The example whose params validate best, and their problems (in the project file,
    /// not the bundle).
    params: (String, Vec<String>),
    /// Other problems outside the bundle (e.g. a required connection the harness leaves open).
    other: BTreeMap<String, usize>,
}

fn run(corpus: &Path, capstan: &Path) -> Result<bool, String> {
    let bundles_dir = corpus.join("massdriver");
    let definitions = corpus.join("massdriver-artifact-definitions");
    for dir in [&bundles_dir, &definitions] {
        if !dir.is_dir() {
            return Err(format!(
                "{} is missing: a corpus folder given to the check must hold massdriver/ and massdriver-artifact-definitions/",
                dir.display()
            ));
        }
    }
    let named = named_in_sources(&corpus.join("SOURCES.md"))?;
    let present: BTreeSet<String> = std::fs::read_dir(&bundles_dir)
        .map_err(|e| format!("{}: {e}", bundles_dir.display()))?
        .flatten()
        .filter(|e| e.path().join("massdriver.yaml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let mut ok = true;
    for missing in named.difference(&present) {
        println!("{missing}: MISSING from {}", bundles_dir.display());
        ok = false;
    }
    let types: Vec<PathBuf> = std::fs::read_dir(&definitions)
        .map_err(|e| format!("{}: {e}", definitions.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    if types.is_empty() {
        return Err(format!(
            "no artifact definitions in {}",
            definitions.display()
        ));
    }
    println!(
        "| bundle | result | warnings | example params | outside the bundle |\n|---|---|---|---|---|"
    );
    let mut loaded = 0;
    let mut type_errors = BTreeSet::new();
    for bundle in &present {
        let row = check(&bundles_dir.join(bundle), bundle, &types, capstan)?;
        if !row.type_errors.is_empty() {
            ok = false;
            type_errors.extend(row.type_errors.iter().cloned());
        }
        let result = if row.errors.is_empty() {
            loaded += 1;
            "loads".to_string()
        } else {
            ok = false;
            let shown: Vec<&str> = row.errors.iter().take(3).map(String::as_str).collect();
            format!(
                "**{} errors**: {}{}",
                row.errors.len(),
                shown.join("; "),
                if row.errors.len() > 3 { "; …" } else { "" }
            )
        };
        let counts = |m: &BTreeMap<String, usize>| {
            if m.is_empty() {
                "-".to_string()
            } else {
                m.iter()
                    .map(|(c, n)| format!("{c} ×{n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        let (example, problems) = &row.params;
        let params = if problems.is_empty() {
            format!("valid ({example})")
        } else {
            format!("{example}: {}", problems.join("; "))
        };
        println!(
            "| {} | {result} | {} | {params} | {} |",
            row.bundle,
            counts(&row.warnings),
            counts(&row.other)
        );
    }
    println!(
        "\n{loaded} of {} bundles load with no error in the bundle itself",
        present.len()
    );
    println!(
        "{} artifact definitions read, {} errors in them",
        types.len(),
        type_errors.len()
    );
    for e in &type_errors {
        println!("- {e}");
    }
    Ok(ok)
}

/// The bundle folders the corpus's SOURCES.md lists (its first table's first column).
fn named_in_sources(path: &Path) -> Result<BTreeSet<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let names = text
        .lines()
        .take_while(|l| !l.starts_with("| artifact definitions"))
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| l.split(" |").next())
        .map(str::trim)
        .filter(|n| !n.is_empty() && *n != "folder" && !n.starts_with("---"))
        .map(str::to_string)
        .collect();
    Ok(names)
}

fn check(dir: &Path, name: &str, types: &[PathBuf], capstan: &Path) -> Result<Row, String> {
    let source =
        std::fs::read_to_string(dir.join("massdriver.yaml")).map_err(|e| format!("{name}: {e}"))?;
    let repo = tempfile::tempdir().map_err(|e| e.to_string())?;
    let root = repo.path();
    let write = |rel: &str, text: &str| -> Result<(), String> {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("a folder")).map_err(|e| e.to_string())?;
        std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))
    };
    write("capstan.yaml", "")?;
    for t in types {
        let file = t
            .file_name()
            .expect("a name")
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(t).map_err(|e| format!("{}: {e}", t.display()))?;
        write(&format!("artifact-types/{file}"), &text)?;
    }
    write(&format!("bundles/{name}/massdriver.yaml"), &source)?;
    // The folders the bundle's steps run in (the real repositories have them; here each gets
    // a placeholder file); `src` is Massdriver's default.
    let mut step_dirs: BTreeSet<String> = BTreeSet::from(["src".to_string()]);
    for line in source.lines() {
        let line = line.trim_start().trim_start_matches("- ");
        if let Some(p) = line.strip_prefix("path:") {
            let p = p.trim().trim_matches(['"', '\'']);
            if !p.is_empty() && !p.contains(' ') {
                step_dirs.insert(p.trim_start_matches("./").to_string());
            }
        }
    }
    for d in &step_dirs {
        write(&format!("bundles/{name}/{d}/main.tf"), "# module\n")?;
    }
    let examples = example_params(&source);
    let mut project = String::from("packages:\n");
    for (i, (_, params)) in examples.iter().enumerate() {
        project.push_str(&format!(
            "  e{i}:\n    bundle: {name}\n    params: {}\n",
            serde_json::to_string(params).map_err(|e| e.to_string())?
        ));
    }
    write("projects/compat/project.yaml", &project)?;
    write("projects/compat/environments/check.yaml", "")?;
    let out = Command::new(capstan)
        .args(["validate", "--format", "json", "--repo"])
        .arg(root)
        .output()
        .map_err(|e| format!("running {}: {e}", capstan.display()))?;
    let report: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "{name}: capstan printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let mut row = Row {
        bundle: name.to_string(),
        errors: Vec::new(),
        warnings: BTreeMap::new(),
        type_errors: Vec::new(),
        params: (String::new(), Vec::new()),
        other: BTreeMap::new(),
    };
    let mut params: Vec<Vec<String>> = vec![Vec::new(); examples.len()];
    for d in report["diagnostics"].as_array().into_iter().flatten() {
        let file = d["file"].as_str().unwrap_or_default();
        let code = d["code"].as_str().unwrap_or_default().to_string();
        let message = d["message"].as_str().unwrap_or_default();
        let error = d["severity"] == "error";
        let shown = format!("{file}:{}:{} {code}: {message}", d["line"], d["column"]);
        if file.starts_with("artifact-types/") {
            row.type_errors.push(shown);
        } else if file.starts_with("bundles/") && error {
            row.errors.push(shown);
        } else if file.starts_with("bundles/") {
            *row.warnings.entry(code).or_default() += 1;
        } else if code == "params.invalid"
            && let Some((instance, problem)) = message.split_once(": ")
            && let Some(i) = instance
                .rsplit_once("-e")
                .and_then(|(_, i)| i.parse::<usize>().ok())
                .filter(|i| *i < params.len())
        {
            params[i].push(problem.to_string());
        } else {
            *row.other.entry(code).or_default() += 1;
        }
    }
    let best = (0..examples.len())
        .min_by_key(|i| params[*i].len())
        .unwrap_or(0);
    row.params = (
        examples
            .get(best)
            .map(|(n, _)| n.clone())
            .unwrap_or_default(),
        std::mem::take(&mut params[best]),
    );
    Ok(row)
}

/// The bundle's params examples by name (`__name`), without Massdriver's `__`-keys; one
/// empty example when it has none (the schema's defaults fill in).
fn example_params(source: &str) -> Vec<(String, Value)> {
    let (root, _) = yaml::parse(source);
    let examples: Vec<(String, Value)> = root
        .as_ref()
        .and_then(|r| r.get("params"))
        .and_then(|p| p.get("examples"))
        .map(|e| {
            e.items()
                .iter()
                .map(yaml::Node::to_json)
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .filter_map(|(i, example)| {
            let Value::Object(map) = example else {
                return None;
            };
            let name = map.get("__name").and_then(Value::as_str).map_or_else(
                || format!("example {}", i + 1),
                |n| format!("example {n:?}"),
            );
            let params = map
                .into_iter()
                .filter(|(k, _)| !k.starts_with("__"))
                .collect();
            Some((name, Value::Object(params)))
        })
        .collect();
    if examples.is_empty() {
        vec![(
            "no examples: {}".to_string(),
            Value::Object(Default::default()),
        )]
    } else {
        examples
    }
}
