//! validate + plan between two revisions of a synthetic monorepo, phase by phase.
//! Shape from `CAPSTAN_BENCH_SHAPE=PROJECTS,ENVIRONMENTS,PACKAGES` (default 1000,4,10:
//! 40,000 instances). See BENCHMARKS.md.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;

use capstan::core::diag::Diagnostics;
use capstan::core::incremental::Revision;
use capstan::core::schema::{self, FileKind};
use capstan::core::source::{Content, SourceTree};
use capstan::core::{load, plan, render, resolve, yaml};
use capstan::synth::{BENCH_CHANGE, Shape, write_git};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

fn phases(c: &mut Criterion) {
    let shape = Shape::from_env();
    let tmp = tempfile::tempdir().expect("tempdir");
    let base =
        capstan::source::read_dir(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("example-repo"))
            .expect("example-repo");
    write_git(tmp.path(), &base, shape, BENCH_CHANGE).expect("synthetic repository");
    let repo = tmp.path();

    let old_tree = capstan::source::read_rev(repo, "HEAD~1").expect("reads");
    let new_tree = capstan::source::read_rev(repo, "HEAD").expect("reads");
    let yaml_files: Vec<(FileKind, &str)> = new_tree
        .files()
        .iter()
        .filter_map(|f| {
            let kind = if f.path.ends_with("project.yaml") {
                FileKind::Project
            } else if f.path.contains("/environments/") {
                FileKind::Environment
            } else {
                return None;
            };
            match &f.content {
                Content::Bytes(b) => Some((kind, std::str::from_utf8(b).expect("utf-8"))),
                _ => None,
            }
        })
        .collect();
    let parsed: Vec<(FileKind, yaml::Node)> = yaml_files
        .iter()
        .map(|(k, t)| (*k, yaml::parse(t).0.expect("parses")))
        .collect();
    let old = capstan::core::check(&old_tree);
    let new = capstan::core::check(&new_tree);
    assert!(!new.has_errors(), "{:?}", new.diagnostics.first());
    let the_plan = plan::plan(&old, &new);
    eprintln!(
        "{} instances; {}",
        new.resolved.instances.len(),
        render::plan::summary(&the_plan)
    );

    let mut g = c.benchmark_group(format!(
        "{}x{}x{}",
        shape.projects, shape.environments, shape.packages
    ));
    g.sample_size(10);
    g.bench_function("1 read two revisions from git", |b| {
        b.iter(|| {
            (
                capstan::source::read_rev(repo, "HEAD~1").expect("reads"),
                capstan::source::read_rev(repo, "HEAD").expect("reads"),
            )
        })
    });
    g.bench_function("2 yaml parse (one revision)", |b| {
        b.iter(|| {
            yaml_files
                .iter()
                .filter(|(_, t)| yaml::parse(black_box(t)).0.is_some())
                .count()
        })
    });
    let file: Arc<str> = Arc::from("f.yaml");
    g.bench_function("3 schema check (one revision)", |b| {
        b.iter(|| {
            let mut d = Diagnostics::default();
            parsed
                .iter()
                .filter(|(k, n)| schema::check_file(*k, &file, n, &mut d))
                .count()
        })
    });
    g.bench_function("4 load: layout+parse+schema+model (one revision)", |b| {
        b.iter(|| load::load(black_box(&new_tree), &mut Diagnostics::default()))
    });
    let model = load::load(&new_tree, &mut Diagnostics::default());
    g.bench_function("5 resolve (one revision)", |b| {
        b.iter(|| resolve::resolve(black_box(&model), &mut Diagnostics::default()))
    });
    g.bench_function("6 plan diff", |b| {
        b.iter(|| plan::plan(black_box(&old), black_box(&new)))
    });
    g.bench_function("7 render markdown", |b| {
        b.iter(|| {
            render::markdown::plan(
                black_box(&the_plan),
                &[],
                &render::markdown::Options::new(None),
            )
        })
    });
    g.bench_function("8 total: read + validate both + plan + markdown", |b| {
        b.iter(|| {
            let old =
                capstan::core::check(&capstan::source::read_rev(repo, "HEAD~1").expect("reads"));
            let new =
                capstan::core::check(&capstan::source::read_rev(repo, "HEAD").expect("reads"));
            render::markdown::plan(
                &plan::plan(&old, &new),
                &new.diagnostics,
                &render::markdown::Options::new(None),
            )
        })
    });
    // The incremental path (what the daemon and the CLI's head do).
    let old_rev = Revision::check(old_tree.clone(), None).0;
    let new_rev = Revision::check(new_tree.clone(), None).0;
    let one_file = one_file_changed(&new_tree);
    g.bench_function("9 incremental check, one file changed", |b| {
        b.iter_batched(
            || one_file.clone(),
            |tree| Revision::check(tree, Some(&new_rev)),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("10 incremental check, HEAD next to HEAD~1", |b| {
        b.iter_batched(
            || new_tree.clone(),
            |tree| Revision::check(tree, Some(&old_rev)),
            BatchSize::LargeInput,
        )
    });
    let git = git2::Repository::open(repo).expect("opens");
    let base_commit = git
        .revparse_single("HEAD~1")
        .expect("HEAD~1")
        .id()
        .to_string();
    g.bench_function("11 read HEAD next to HEAD~1 (changed blobs only)", |b| {
        b.iter(|| {
            capstan::source::read_from(&git, repo, "", (&base_commit, &old_tree), "HEAD")
                .expect("reads")
        })
    });
    let (incremental, _) = Revision::check(new_tree.clone(), Some(&old_rev));
    g.bench_function("12 plan diff, incremental", |b| {
        b.iter(|| plan::plan(black_box(&old_rev.checked), black_box(&incremental.checked)))
    });
    g.bench_function(
        "13 total, incremental: read both, check head next to base, plan, markdown",
        |b| {
            b.iter(|| {
                let old = Revision::check(
                    capstan::source::read_rev(repo, "HEAD~1").expect("reads"),
                    None,
                )
                .0;
                let new = Revision::check(
                    capstan::source::read_rev(repo, "HEAD").expect("reads"),
                    Some(&old),
                )
                .0;
                render::markdown::plan(
                    &plan::plan(&old.checked, &new.checked),
                    &new.checked.diagnostics,
                    &render::markdown::Options::new(None),
                )
            })
        },
    );
    g.finish();
}

/// `tree` with one environment file's app memory changed.
fn one_file_changed(tree: &SourceTree) -> SourceTree {
    let mut files = tree.files().to_vec();
    let env = files
        .iter_mut()
        .find(|f| f.path == "projects/p7/environments/e0.yaml")
        .expect("p7's e0");
    if let Content::Bytes(b) = &mut env.content {
        *b = String::from_utf8_lossy(b)
            .replace("memory: 1024", "memory: 1536")
            .into_bytes()
            .into();
    }
    SourceTree::new(files)
}

criterion_group!(benches, phases);
criterion_main!(benches);
