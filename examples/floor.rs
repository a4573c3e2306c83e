//! The read+parse floor of `capstan plan --base A --head B`: what any plan of those two
//! revisions must at least do. It reads every blob of both revisions from git with `git2`
//! and runs `saphyr-parser`'s event stream over each YAML file, keeping nothing. A plan's
//! wall time is judged against this (BENCHMARKS.md); `scripts/bench-plan.sh` runs both side
//! by side.
//!
//!     cargo run --release --example floor -- REPO [BASE HEAD]

use std::path::PathBuf;
use std::time::Instant;

use git2::{ObjectType, Repository, TreeWalkMode, TreeWalkResult};
use saphyr_parser::Parser;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let repo_path = PathBuf::from(
        args.first()
            .ok_or_else(|| anyhow::anyhow!("usage: floor REPO [BASE HEAD]"))?,
    );
    let revs = [
        args.get(1).map_or("HEAD~1", String::as_str),
        args.get(2).map_or("HEAD", String::as_str),
    ];
    let started = Instant::now();
    let repo = Repository::open(&repo_path)?;
    let (mut blobs, mut bytes, mut events) = (0usize, 0usize, 0usize);
    for rev in revs {
        let tree = repo.revparse_single(rev)?.peel_to_tree()?;
        let mut ids = Vec::new();
        tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
            if entry.kind() == Some(ObjectType::Blob) {
                let name = entry.name().unwrap_or_default();
                ids.push((entry.id(), format!("{dir}{name}")));
            }
            TreeWalkResult::Ok
        })?;
        for (id, path) in ids {
            let blob = repo.find_blob(id)?;
            blobs += 1;
            bytes += blob.content().len();
            if path.ends_with(".yaml") || path.ends_with(".yml") {
                let text = std::str::from_utf8(blob.content()).unwrap_or_default();
                for event in Parser::new_from_str(text) {
                    if event.is_err() {
                        break;
                    }
                    events += 1;
                }
            }
        }
    }
    println!(
        "floor: {blobs} blobs, {bytes} bytes, {events} YAML events in {:.3} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
