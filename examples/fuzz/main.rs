//! capstan's own fuzz campaign: structure-aware mutants of `example-repo` (see mutate.rs)
//! run through the loader, the validator, the resolver, the plan and its renderings, the
//! incremental check (which must equal the check from scratch, twice in a row), and mutated
//! webhook deliveries through the daemon's signature check and payload mapping. In-process,
//! on stable Rust, every case deterministic from `(seed, case)`.
//!
//!     cargo run --release --example fuzz -- --cases 100000            # the full campaign
//!     cargo run --example fuzz -- --seed 1 --seconds 120                # CI's slice
//!     cargo run --example fuzz -- --seed 1 --case 4242 --out DIR        # replay one case
//!
//! A case that panics or breaks an invariant is reported with its mutations and written to
//! `--out` (default `target/fuzz/`) as a repository to reproduce it with `capstan validate`.
//! A case running longer than `--case-timeout` (default 10 s) is a hang: it is reported and
//! the campaign stops with exit 1. Any failure exits 1.

mod mutate;
mod payload;
mod rng;

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use capstan::core::incremental::Revision;
use capstan::core::render;
use capstan::core::source::{Content, SourceFile, SourceTree};
use capstan::core::{Checked, check};

use rng::Rng;

struct Args {
    seed: u64,
    cases: Option<u64>,
    seconds: Option<u64>,
    case: Option<u64>,
    jobs: usize,
    case_timeout: Duration,
    out: PathBuf,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        seed: 0x5EED,
        cases: None,
        seconds: None,
        case: None,
        jobs: std::thread::available_parallelism().map_or(2, usize::from),
        case_timeout: Duration::from_secs(10),
        out: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/fuzz"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| v.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--seed" => a.seed = number(value()?)?,
            "--cases" => a.cases = Some(number(value()?)?),
            "--seconds" => a.seconds = Some(number(value()?)?),
            "--case" => a.case = Some(number(value()?)?),
            "--jobs" => a.jobs = number(value()?)?.max(1) as usize,
            "--case-timeout" => a.case_timeout = Duration::from_secs(number(value()?)?),
            "--out" => a.out = PathBuf::from(value()?),
            _ => {
                return Err(format!(
                    "unknown argument {flag}; usage: fuzz [--seed N] [--cases N | --seconds N | --case N] [--jobs N] [--case-timeout S] [--out DIR]"
                ));
            }
        }
    }
    if a.cases.is_none() && a.seconds.is_none() && a.case.is_none() {
        a.cases = Some(10_000);
    }
    Ok(a)
}

/// The unmutated repository and its check, which every case starts from.
struct Base {
    files: Vec<SourceFile>,
    revision: Revision,
}

/// What one case did: the mutations of its two steps, and what broke (if anything).
struct Case {
    mutations: Vec<String>,
    files: Vec<SourceFile>,
}

/// The mutants of case `case`: the first step's files, then the second's (mutated again).
fn mutants(base: &Base, seed: u64, case: u64) -> (Case, Case) {
    let mut rng = Rng::for_case(seed, case);
    let mut first = base.files.clone();
    let count = 1 + rng.below(4);
    let m1 = mutate::mutate(&mut first, &mut rng, count);
    let mut second = first.clone();
    let m2 = mutate::mutate(&mut second, &mut rng, 1);
    (
        Case {
            mutations: m1,
            files: first,
        },
        Case {
            mutations: m2,
            files: second,
        },
    )
}

/// Everything a check concludes, as text: equal texts are equal results.
fn fingerprint(c: &Checked) -> String {
    format!(
        "{:?}\n{:?}\n{:?}\n{:?}",
        c.repository, c.diagnostics, c.resolved.instances, c.resolved.waves
    )
}

/// Diagnostics point at a file of the tree, at a real position.
fn diagnostics_point_somewhere(tree: &SourceTree, checked: &Checked) -> Result<(), String> {
    for d in &checked.diagnostics {
        if tree.get(&d.loc.file).is_none() {
            return Err(format!("{d} names a file that is not in the tree"));
        }
        if d.loc.pos.line == 0 || d.loc.pos.col == 0 {
            return Err(format!("{d} has no real position"));
        }
    }
    Ok(())
}

fn renders(old: &Checked, new: &Checked) -> String {
    let p = capstan::core::plan::plan(old, new);
    let text = render::plan::text(&p, false);
    let md = render::markdown::plan(&p, &new.diagnostics, &render::markdown::Options::new(None));
    let _ = (
        render::diagnostics::text(new),
        render::diagnostics::json(new),
        render::graph::mermaid(&new.resolved, None),
        text,
        md,
    );
    render::plan::json(&p)
}

/// One case: both steps checked from scratch and incrementally, planned and rendered, and a
/// mutated delivery mapped. `Ok` names the kinds of mutation it made and the diagnostic codes
/// the mutants drew; `Err` says which invariant broke.
fn run_case(base: &Base, seed: u64, case: u64) -> Result<(Vec<String>, Vec<String>), String> {
    let (first, second) = mutants(base, seed, case);
    let kinds: Vec<String> = first
        .mutations
        .iter()
        .chain(&second.mutations)
        .map(|m| m.split(':').next().unwrap_or("?").to_string())
        .collect();
    let tree1 = SourceTree::new(first.files);
    let scratch1 = check(&tree1);
    diagnostics_point_somewhere(&tree1, &scratch1)?;
    let (rev1, _) = Revision::check(tree1.clone(), Some(&base.revision));
    if fingerprint(&rev1.checked) != fingerprint(&scratch1) {
        return Err("step 1: the incremental check differs from the check from scratch".into());
    }
    if renders(&base.revision.checked, &rev1.checked) != renders(&base.revision.checked, &scratch1)
    {
        return Err("step 1: the incremental plan differs from the plan from scratch".into());
    }

    let tree2 = SourceTree::new(second.files);
    let scratch2 = check(&tree2);
    diagnostics_point_somewhere(&tree2, &scratch2)?;
    let (rev2, _) = Revision::check(tree2, Some(&rev1));
    if fingerprint(&rev2.checked) != fingerprint(&scratch2) {
        return Err("step 2: the incremental check differs from the check from scratch".into());
    }
    if renders(&rev1.checked, &rev2.checked) != renders(&scratch1, &scratch2) {
        return Err("step 2: the incremental plan differs from the plan from scratch".into());
    }

    let mut rng = Rng::for_case(seed ^ 0xDE11_7E12, case);
    let (event, body, signature) = payload::delivery(&mut rng);
    if capstan::daemon::webhook::verify(payload::SECRET, &body, signature.as_deref()) {
        let _ =
            capstan::daemon::webhook::parse(&event, &body, payload::REPOSITORY, payload::BRANCH);
    }
    // Unverified bodies are mapped too: the mapping must survive anything.
    let _ = capstan::daemon::webhook::parse(&event, &body, payload::REPOSITORY, payload::BRANCH);
    let codes = scratch1
        .diagnostics
        .iter()
        .chain(&scratch2.diagnostics)
        .map(|d| d.code.to_string())
        .collect();
    Ok((kinds, codes))
}

/// Writes a case's repository (step 1, and step 2 beside it) and its mutations to `dir`.
fn write_case(base: &Base, seed: u64, case: u64, dir: &Path, why: &str) -> std::io::Result<()> {
    let (first, second) = mutants(base, seed, case);
    let _ = std::fs::remove_dir_all(dir);
    for (name, step) in [("step1", &first), ("step2", &second)] {
        let root = dir.join(name);
        std::fs::create_dir_all(&root)?;
        let writable: Vec<SourceFile> = step
            .files
            .iter()
            .filter(|f| {
                !f.path
                    .split('/')
                    .any(|s| s.is_empty() || s == ".." || s == ".")
            })
            .cloned()
            .collect();
        for f in &writable {
            if matches!(f.content, Content::Symlink) {
                let link = root.join(&f.path);
                if let Some(parent) = link.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                let _ = std::os::unix::fs::symlink("/nonexistent", link);
            }
        }
        // A path that is a file in one place and a folder in another cannot be written whole.
        let _ = capstan::synth::write_files(&root, &writable);
    }
    let text = format!(
        "seed {seed} case {case}: {why}\nreplay: cargo run --example fuzz -- --seed {seed} --case {case}\n\nstep 1:\n{}\n\nstep 2:\n{}\n",
        first.mutations.join("\n"),
        second.mutations.join("\n")
    );
    std::fs::write(dir.join("MUTATIONS.txt"), text)
}

/// The message the panic hook kept for this thread's last panic.
fn panic_message(last: &Mutex<std::collections::HashMap<std::thread::ThreadId, String>>) -> String {
    last.lock()
        .ok()
        .and_then(|m| m.get(&std::thread::current().id()).cloned())
        .unwrap_or_else(|| "panic".into())
}

/// The case a worker is on, and since when (`None` between cases).
type Slot = Mutex<Option<(u64, Instant)>>;

#[derive(Default)]
struct Tally {
    done: u64,
    failures: Vec<(u64, String)>,
    kinds: BTreeMap<String, u64>,
    /// Every diagnostic code a mutant drew: how far into the validator the campaign reaches.
    codes: std::collections::BTreeSet<String>,
}

fn main() -> std::process::ExitCode {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fuzz: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("example-repo");
    let files = match capstan::source::read_dir(&root) {
        Ok(t) => t.files().to_vec(),
        Err(e) => {
            eprintln!("fuzz: reading {}: {e}", root.display());
            return std::process::ExitCode::FAILURE;
        }
    };
    let (revision, _) = Revision::check(SourceTree::new(files.clone()), None);
    let base = Arc::new(Base { files, revision });

    // A panic is a finding: the hook keeps its message for the report instead of printing it.
    let last_panic: Arc<Mutex<std::collections::HashMap<std::thread::ThreadId, String>>> =
        Arc::default();
    {
        let last_panic = Arc::clone(&last_panic);
        std::panic::set_hook(Box::new(move |info| {
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let msg = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            if let Ok(mut m) = last_panic.lock() {
                m.insert(std::thread::current().id(), format!("panic{at}: {msg}"));
            }
        }));
    }

    if let Some(case) = args.case {
        let (first, second) = mutants(&base, args.seed, case);
        println!("seed {} case {case}", args.seed);
        println!("step 1:\n  {}", first.mutations.join("\n  "));
        println!("step 2:\n  {}", second.mutations.join("\n  "));
        let result =
            std::panic::catch_unwind(AssertUnwindSafe(|| run_case(&base, args.seed, case)));
        let verdict = match result {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some(panic_message(&last_panic)),
        };
        let dir = args.out.join(format!("case-{case}"));
        let why = verdict.clone().unwrap_or_else(|| "passes".into());
        if let Err(e) = write_case(&base, args.seed, case, &dir, &why) {
            eprintln!("fuzz: writing {}: {e}", dir.display());
        }
        println!("{why}; repository written to {}", dir.display());
        return if verdict.is_none() {
            std::process::ExitCode::SUCCESS
        } else {
            std::process::ExitCode::FAILURE
        };
    }

    let started = Instant::now();
    let deadline = args.seconds.map(|s| started + Duration::from_secs(s));
    let next = Arc::new(AtomicU64::new(0));
    let tally = Arc::new(Mutex::new(Tally::default()));
    // What each worker is on, for the watchdog.
    let running: Arc<Vec<Slot>> = Arc::new((0..args.jobs).map(|_| Mutex::new(None)).collect());

    let workers: Vec<_> = (0..args.jobs)
        .map(|w| {
            let (base, next, tally, running, last_panic) = (
                Arc::clone(&base),
                Arc::clone(&next),
                Arc::clone(&tally),
                Arc::clone(&running),
                Arc::clone(&last_panic),
            );
            let (cases, seed) = (args.cases, args.seed);
            std::thread::Builder::new()
                .name(format!("fuzz-{w}"))
                .stack_size(64 << 20)
                .spawn(move || {
                    loop {
                        if deadline.is_some_and(|d| Instant::now() >= d) {
                            break;
                        }
                        let case = next.fetch_add(1, Ordering::Relaxed);
                        if cases.is_some_and(|n| case >= n) {
                            break;
                        }
                        *running[w].lock().expect("not poisoned") = Some((case, Instant::now()));
                        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
                            run_case(&base, seed, case)
                        }));
                        *running[w].lock().expect("not poisoned") = None;
                        let mut t = tally.lock().expect("not poisoned");
                        t.done += 1;
                        match result {
                            Ok(Ok((kinds, codes))) => {
                                for kind in kinds {
                                    *t.kinds.entry(kind).or_default() += 1;
                                }
                                t.codes.extend(codes);
                            }
                            Ok(Err(e)) => t.failures.push((case, e)),
                            Err(_) => t.failures.push((case, panic_message(&last_panic))),
                        }
                    }
                })
                .expect("a worker thread starts")
        })
        .collect();

    // The watchdog: progress once every 10 s, and a case over its bound is a hang.
    let mut last_report = Instant::now();
    while workers.iter().any(|w| !w.is_finished()) {
        std::thread::sleep(Duration::from_millis(100));
        for slot in running.iter() {
            let on = *slot.lock().expect("not poisoned");
            if let Some((case, since)) = on
                && since.elapsed() > args.case_timeout
            {
                let dir = args.out.join(format!("case-{case}"));
                let _ = write_case(&base, args.seed, case, &dir, "hang");
                println!(
                    "HANG: seed {} case {case} ran past {:?}; repository written to {}",
                    args.seed,
                    args.case_timeout,
                    dir.display()
                );
                std::process::exit(1);
            }
        }
        if last_report.elapsed() >= Duration::from_secs(10) {
            last_report = Instant::now();
            let t = tally.lock().expect("not poisoned");
            println!(
                "{} cases, {} failures, {:.0} cases/s",
                t.done,
                t.failures.len(),
                t.done as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    for w in workers {
        let _ = w.join();
    }

    let t = tally.lock().expect("not poisoned");
    let took = started.elapsed();
    for (case, why) in &t.failures {
        let dir = args.out.join(format!("case-{case}"));
        let _ = write_case(&base, args.seed, *case, &dir, why);
        println!(
            "FAIL: seed {} case {case}: {why} ({})",
            args.seed,
            dir.display()
        );
    }
    let kinds: Vec<String> = t.kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
    println!("mutations: {}", kinds.join(", "));
    println!(
        "diagnostic codes drawn: {} ({})",
        t.codes.len(),
        t.codes.iter().cloned().collect::<Vec<_>>().join(", ")
    );
    println!(
        "fuzz: seed {}, {} cases in {:.1} s ({:.0} cases/s on {} threads): {} panics or broken invariants, 0 hangs",
        args.seed,
        t.done,
        took.as_secs_f64(),
        t.done as f64 / took.as_secs_f64(),
        args.jobs,
        t.failures.len()
    );
    println!(
        "{} passed, {} failed",
        t.done - t.failures.len() as u64,
        t.failures.len()
    );
    if t.failures.is_empty() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
