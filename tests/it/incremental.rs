//! An incremental check gives, to the byte, what a check from scratch gives: over random
//! chains of edits to a synthetic monorepo (with the example repository's projects in it),
//! each revision checked by keeping what the previous one computed has the same model,
//! diagnostics, instances and deploy order as `core::check`, and the plans between
//! consecutive revisions render the same.

use capstan::core::incremental::{Reuse, Revision};
use capstan::core::plan::plan;
use capstan::core::render;
use capstan::core::source::{Content, SourceFile, SourceTree};
use capstan::core::{Checked, check};
use capstan::synth::{Shape, generate};
use proptest::prelude::*;

use crate::support::example_files;

const PROJECTS: usize = 6;

/// One edit to a repository; `p` and `e` pick a generated project and environment.
#[derive(Debug, Clone)]
enum Edit {
    /// An environment's app memory (an update in that environment).
    Memory { p: usize, e: usize, memory: u32 },
    /// An environment takes its cluster from another project (maybe one that does not exist).
    Cluster { p: usize, e: usize, from: usize },
    /// A project's network params (an update its consumers see downstream).
    Network { p: usize },
    /// A project stops sharing its cluster (its consumers break).
    Unshare { p: usize },
    /// An environment disables a package.
    Disable { p: usize, e: usize },
    /// A YAML syntax error in a project or environment file.
    Break { p: usize, env: Option<usize> },
    /// A whole project folder removed.
    Remove { p: usize },
    /// A project folder copied under a new name (a project appears).
    Copy { p: usize, to: usize },
    /// A file every project reads: a bundle's files (its digest) or the settings.
    Shared { which: usize },
    /// A file of one of the example repository's projects, appended to.
    Example { which: usize, text: &'static str },
}

fn edit() -> impl Strategy<Value = Edit> {
    let p = 0..PROJECTS;
    let e = 0..2usize;
    prop_oneof![
        (p.clone(), e.clone(), 1u32..4).prop_map(|(p, e, m)| Edit::Memory {
            p,
            e,
            memory: m * 512
        }),
        (p.clone(), e.clone(), 0..PROJECTS + 2).prop_map(|(p, e, from)| Edit::Cluster {
            p,
            e,
            from
        }),
        p.clone().prop_map(|p| Edit::Network { p }),
        p.clone().prop_map(|p| Edit::Unshare { p }),
        (p.clone(), e.clone()).prop_map(|(p, e)| Edit::Disable { p, e }),
        (p.clone(), proptest::option::of(e)).prop_map(|(p, env)| Edit::Break { p, env }),
        p.clone().prop_map(|p| Edit::Remove { p }),
        (p, PROJECTS..PROJECTS + 2).prop_map(|(p, to)| Edit::Copy { p, to }),
        (0..3usize).prop_map(|which| Edit::Shared { which }),
        (
            0..8usize,
            prop::sample::select(vec![
                "\n# a comment\n",
                "\nbroken: [\n",
                "\ndefaults: {kubernetes-cluster: p1-e0-k8s.cluster}\n",
            ])
        )
            .prop_map(|(which, text)| Edit::Example { which, text }),
    ]
}

fn text_of(files: &[SourceFile], path: &str) -> Option<String> {
    files
        .iter()
        .find(|f| f.path == path)
        .and_then(|f| match &f.content {
            Content::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        })
}

fn set(files: &mut Vec<SourceFile>, path: &str, text: String) {
    files.retain(|f| f.path != path);
    files.push(SourceFile {
        path: path.into(),
        executable: false,
        content: Content::Bytes(text.into_bytes().into()),
    });
}

/// Rewrites `path` with `f` when it exists.
fn rewrite(files: &mut Vec<SourceFile>, path: &str, f: impl FnOnce(String) -> String) {
    if let Some(text) = text_of(files, path) {
        set(files, path, f(text));
    }
}

fn apply(tree: &SourceTree, edit: &Edit) -> SourceTree {
    let mut files = tree.files().to_vec();
    let env = |p: usize, e: usize| format!("projects/p{p}/environments/e{e}.yaml");
    let project = |p: usize| format!("projects/p{p}/project.yaml");
    match edit {
        Edit::Memory { p, e, memory } => rewrite(&mut files, &env(*p, *e), |t| {
            t.replace("memory: 1024", &format!("memory: {memory}"))
                .replace("memory: 2048", &format!("memory: {memory}"))
        }),
        Edit::Cluster { p, e, from } => rewrite(&mut files, &env(*p, *e), |t| {
            let line = t
                .lines()
                .find(|l| l.contains("kubernetes-cluster:"))
                .unwrap_or_default()
                .to_string();
            t.replace(
                &line,
                &format!("  kubernetes-cluster: p{from}-e{e}-k8s.cluster"),
            )
        }),
        Edit::Network { p } => rewrite(&mut files, &project(*p), |t| {
            t.replace("high_availability: false", "high_availability: true")
        }),
        Edit::Unshare { p } => rewrite(&mut files, &project(*p), |t| {
            t.replace("to: {tier: [staging]}", "to: {tier: [nobody]}")
        }),
        Edit::Disable { p, e } => rewrite(&mut files, &env(*p, *e), |t| {
            format!("{t}  app1:\n    enabled: false\n")
        }),
        Edit::Break { p, env: e } => {
            let path = e.map_or_else(|| project(*p), |e| env(*p, e));
            rewrite(&mut files, &path, |t| format!("{t}\n  bad: [\n"));
        }
        Edit::Remove { p } => files.retain(|f| !f.path.starts_with(&format!("projects/p{p}/"))),
        Edit::Copy { p, to } => {
            let (from, into) = (format!("projects/p{p}/"), format!("projects/p{to}/"));
            files.retain(|f| !f.path.starts_with(&into));
            let copies: Vec<SourceFile> = files
                .iter()
                .filter_map(|f| {
                    let rest = f.path.strip_prefix(&from)?;
                    Some(SourceFile {
                        path: format!("{into}{rest}"),
                        ..f.clone()
                    })
                })
                .collect();
            files.extend(copies);
        }
        Edit::Shared { which } => {
            let path = [
                "capstan.yaml",
                "bundles/container-app/bundle.yaml",
                "artifact-types/kubernetes-cluster.yaml",
            ][*which];
            rewrite(&mut files, path, |t| format!("{t}\n# edited\n"));
        }
        Edit::Example { which, text } => {
            let examples: Vec<String> = files
                .iter()
                .filter(|f| f.path.starts_with("projects/") && !f.path.starts_with("projects/p"))
                .map(|f| f.path.clone())
                .collect();
            if let Some(path) = examples.get(which % examples.len().max(1)) {
                rewrite(&mut files, path, |t| format!("{t}{text}"));
            }
        }
    }
    SourceTree::new(files)
}

/// The generated projects plus the example repository (its projects included).
fn start() -> SourceTree {
    let example = SourceTree::new(example_files());
    let shape = Shape {
        projects: PROJECTS,
        environments: 2,
        packages: 4,
    };
    let mut files = generate(&example, shape, None).files().to_vec();
    files.extend(
        example
            .files()
            .iter()
            .filter(|f| f.path.starts_with("projects/"))
            .cloned(),
    );
    SourceTree::new(files)
}

/// Everything a check gives, as text: equal texts are equal results.
fn fingerprint(c: &Checked) -> String {
    format!(
        "{:#?}\n{:#?}\n{:#?}\n{:#?}",
        c.repository, c.diagnostics, c.resolved.instances, c.resolved.waves
    )
}

fn plans(old: &Checked, new: &Checked) -> (String, String) {
    let p = plan(old, new);
    (render::plan::json(&p), render::plan::text(&p, false))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn an_incremental_check_is_a_check_from_scratch(edits in prop::collection::vec(prop::collection::vec(edit(), 1..4), 1..5)) {
        let mut tree = start();
        let (mut previous, _) = Revision::check(tree.clone(), None);
        let mut scratch_previous = check(&tree);
        prop_assert_eq!(fingerprint(&previous.checked), fingerprint(&scratch_previous));
        for step in &edits {
            for e in step {
                tree = apply(&tree, e);
            }
            let scratch = check(&tree);
            let (revision, reuse) = Revision::check(tree.clone(), Some(&previous));
            prop_assert_eq!(fingerprint(&revision.checked), fingerprint(&scratch), "after {:?} ({:?})", step, reuse);
            prop_assert_eq!(
                plans(&previous.checked, &revision.checked),
                plans(&scratch_previous, &scratch),
                "plan after {:?}", step
            );
            previous = revision;
            scratch_previous = scratch;
        }
    }
}

#[test]
fn one_changed_environment_loads_one_folder_and_resolves_it_and_its_readers() {
    let tree = start();
    let (base, reuse) = Revision::check(tree.clone(), None);
    let projects = base.checked.repository.projects.len();
    assert_eq!(reuse.kept_loaded + reuse.kept_resolved, 0);
    assert_eq!(reuse.resolved, projects);

    // p2's environments take their cluster from p3: a change to p3 re-resolves p2 and p3.
    let (same, reuse) = Revision::check(tree.clone(), Some(&base));
    assert_eq!((reuse.loaded, reuse.resolved), (0, 0), "nothing changed");
    assert_eq!(fingerprint(&same.checked), fingerprint(&base.checked));

    let edited = apply(&tree, &Edit::Network { p: 3 });
    let (head, reuse) = Revision::check(edited.clone(), Some(&base));
    assert_eq!(
        reuse,
        Reuse {
            loaded: 1,
            kept_loaded: projects - 1,
            resolved: 2,
            kept_resolved: projects - 2,
        }
    );
    assert_eq!(fingerprint(&head.checked), fingerprint(&check(&edited)));

    // A shared file re-resolves everything, but parses no project folder again.
    let edited = apply(&tree, &Edit::Shared { which: 1 });
    let (_, reuse) = Revision::check(edited, Some(&base));
    assert_eq!((reuse.loaded, reuse.resolved), (0, projects));
}
