//! Writes a synthetic monorepo as a git repository with two commits (the second changes a
//! few projects), for `capstan plan` measurements. See BENCHMARKS.md.
//!
//!     cargo run --release --example synth -- DIR [PROJECTS ENVIRONMENTS PACKAGES]

use std::path::PathBuf;

use capstan::synth::{BENCH_CHANGE, Shape, write_git};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = PathBuf::from(
        args.first()
            .ok_or_else(|| anyhow::anyhow!("usage: synth DIR [PROJECTS ENVIRONMENTS PACKAGES]"))?,
    );
    let num = |i: usize, default: usize| args.get(i).map_or(Ok(default), |s| s.parse::<usize>());
    let shape = Shape {
        projects: num(1, 1000)?,
        environments: num(2, 4)?,
        packages: num(3, 10)?,
    };
    let base =
        capstan::source::read_dir(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("example-repo"))?;
    write_git(&dir, &base, shape, BENCH_CHANGE)?;
    println!(
        "{}: {} instances; plan it with: capstan plan --repo {} --base HEAD~1 --head HEAD",
        dir.display(),
        shape.instances(),
        dir.display()
    );
    Ok(())
}
