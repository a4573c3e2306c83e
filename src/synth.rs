//! Synthetic monorepos for benchmarks: N projects × M environments × K packages, with shares
//! and cross-project references, built on the artifact types and bundles of a base repository
//! (normally `example-repo/`).

use std::path::Path;
use std::process::Command;

use crate::core::source::{Content, SourceFile, SourceTree};

/// The shape of a generated repository.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub projects: usize,
    pub environments: usize,
    /// Packages per project, at least 3: a network, a cluster and apps.
    pub packages: usize,
}

impl Shape {
    pub fn instances(&self) -> usize {
        self.projects * self.environments * self.packages
    }

    /// The benchmarks' shape: `CAPSTAN_BENCH_SHAPE=PROJECTS,ENVIRONMENTS,PACKAGES`, else
    /// 1000,4,10 (40,000 instances).
    pub fn from_env() -> Shape {
        let text = std::env::var("CAPSTAN_BENCH_SHAPE").unwrap_or_else(|_| "1000,4,10".into());
        let v: Vec<usize> = text
            .split(',')
            .map(|n| {
                n.trim()
                    .parse()
                    .expect("CAPSTAN_BENCH_SHAPE is three numbers")
            })
            .collect();
        assert_eq!(v.len(), 3, "CAPSTAN_BENCH_SHAPE is three numbers");
        Shape {
            projects: v[0],
            environments: v[1],
            packages: v[2],
        }
    }
}

/// A change between two generated revisions.
#[derive(Clone, Copy, Debug)]
pub struct Change {
    /// Every `every`-th project changes one app's memory in its first environment...
    pub every: usize,
    /// ...and every `network_every`-th project changes its network params (wide blast radius).
    pub network_every: usize,
}

fn file(path: String, text: String) -> SourceFile {
    SourceFile {
        path,
        executable: false,
        content: Content::Bytes(text.into_bytes().into()),
    }
}

/// The base's settings, artifact types and bundles, plus generated projects.
/// Project `p<i>`'s environments take their cluster from `p<i+1>` (shared by a grant), so
/// every project is both a producer and a consumer.
pub fn generate(base: &SourceTree, shape: Shape, change: Option<Change>) -> SourceTree {
    let mut files: Vec<SourceFile> = base
        .files()
        .iter()
        .filter(|f| !f.path.starts_with("projects/"))
        .cloned()
        .collect();
    let apps = shape.packages.saturating_sub(2).max(1);
    for p in 0..shape.projects {
        let changed = change.is_some_and(|c| c.every > 0 && p % c.every == 0);
        let network_changed =
            change.is_some_and(|c| c.network_every > 0 && p % c.network_every == 0);
        let mut project = format!(
            "owners: [\"@acme/team{p}\"]\nattributes: {{team: t{p}}}\npackages:\n  net:\n    bundle: aws-vpc\n    params: {{high_availability: {network_changed}}}\n  k8s:\n    bundle: aws-eks-cluster\n    connections: {{network: net.network}}\n"
        );
        for a in 0..apps {
            project.push_str(&format!("  app{a}:\n    bundle: container-app\n    params: {{image: ghcr.io/acme/p{p}-app{a}:1.0, memory: 1024}}\n"));
        }
        project.push_str("shares:\n  - artifacts: [k8s.cluster]\n    to: {tier: [staging]}\n");
        files.push(file(format!("projects/p{p}/project.yaml"), project));
        for e in 0..shape.environments {
            let next = (p + 1) % shape.projects;
            let memory = if changed && e == 0 { 2048 } else { 1024 };
            files.push(file(
                format!("projects/p{p}/environments/e{e}.yaml"),
                format!(
                    "attributes: {{tier: staging}}\ndefaults:\n  aws-iam-role: {{data: {{arn: \"arn:aws:iam::111111111111:role/p{p}\"}}}}\n  kubernetes-cluster: p{next}-e{e}-k8s.cluster\npackages:\n  net:\n    params: {{region: us-east-1, cidr: 10.{}.0.0/16}}\n  app0:\n    params: {{memory: {memory}}}\n",
                    p % 250
                ),
            ));
        }
    }
    SourceTree::new(files)
}

/// The change the benchmark plans: 1% of projects change an app, 0.4% their network.
pub const BENCH_CHANGE: Change = Change {
    every: 100,
    network_every: 250,
};

/// Writes a git repository at `dir` with two commits: the generated repository, then the same
/// with `change` applied (`HEAD~1..HEAD` is the plan to benchmark), packed as a clone is.
/// Runs the `git` command.
pub fn write_git(
    dir: &Path,
    base: &SourceTree,
    shape: Shape,
    change: Change,
) -> std::io::Result<()> {
    let git = |args: &[&str]| -> std::io::Result<()> {
        let status = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "synth")
            .env("GIT_AUTHOR_EMAIL", "synth@capstan.invalid")
            .env("GIT_COMMITTER_NAME", "synth")
            .env("GIT_COMMITTER_EMAIL", "synth@capstan.invalid")
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!("git {args:?} failed")))
        }
    };
    std::fs::create_dir_all(dir)?;
    git(&["init", "-q", "-b", "main"])?;
    for (message, change) in [("base", None), ("change", Some(change))] {
        if dir.join("projects").exists() {
            std::fs::remove_dir_all(dir.join("projects"))?;
        }
        write_files(dir, generate(base, shape, change).files())?;
        git(&["add", "-A"])?;
        git(&["commit", "-q", "-m", message])?;
    }
    // Packed, as a clone is: reading thousands of loose objects costs more than the plan does.
    git(&["repack", "-a", "-d", "-q"])?;
    git(&["prune", "--expire=now"])
}

/// Writes the files of a tree that have bytes below `dir`, each with the mode its source had
/// (executable or not), so `git add` records `100755` for the bundles' scripts as it does in
/// `example-repo` and a deploy of the written repository can run them.
pub fn write_files(dir: &Path, files: &[SourceFile]) -> std::io::Result<()> {
    for f in files {
        if let Content::Bytes(bytes) = &f.content {
            let path = dir.join(&f.path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, bytes)?;
            set_executable(&path, f.executable)?;
        }
    }
    Ok(())
}

#[cfg(unix)]
fn set_executable(path: &Path, executable: bool) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = if executable { 0o755 } else { 0o644 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_executable(_: &Path, _: bool) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_generated_repos_validate_and_change_as_asked() {
        let base = SourceTree::new(vec![]);
        let shape = Shape {
            projects: 3,
            environments: 2,
            packages: 4,
        };
        let tree = generate(&base, shape, None);
        assert_eq!(tree.files().len(), 3 * 3);
        let changed = generate(
            &base,
            shape,
            Some(Change {
                every: 2,
                network_every: 3,
            }),
        );
        assert_ne!(tree, changed);
    }
}
