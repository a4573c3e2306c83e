//! `capstan state migrate --from state.db --to postgres://…`: moves an installation to
//! another store without deploying anything. Both stores are held (the source's state
//! folder lock, and each store's deploy lock) for the copy, so no deploy runs meanwhile;
//! the target must be empty. The source is left as it was: keep it until the new store
//! has served, then remove it.

use super::StateAt;
use crate::deploy::{DeployLock, Holder};
use crate::state::Lock;

const HOLDER: Holder = Holder::Command("capstan state migrate");

pub fn migrate(from: &StateAt, to: &StateAt) -> anyhow::Result<i32> {
    let source = from.open_existing()?;
    let _source_lock = crate::deploy::take_over(&from.dir, &source, HOLDER)?;
    crate::state::state_folder(&to.dir)?;
    let target = to.open()?;
    // The target's folder is often the source's (`.capstan`), whose lock is held already.
    let target_dir = std::path::absolute(&to.dir)?;
    let same_folder = target_dir == std::path::absolute(&from.dir)?;
    let _target_store_lock = match same_folder {
        true => target
            .try_lock(Lock::Deploy, HOLDER.name())
            .map_err(|e| anyhow::anyhow!("the deploy lock of {to}: {e}"))?,
        false => None,
    };
    let _target_folder_lock = match same_folder {
        true => None,
        false => Some(DeployLock::acquire(&target_dir, &target, HOLDER)?),
    };
    // Terraform states a module without a backend keeps beside an SQLite state move into
    // PostgreSQL with the records; whether they can is known before anything is copied.
    let tf_target = to
        .location
        .terraform_pg()
        .filter(|_| !from.location.is_postgres());
    let mover = match tf_target {
        Some(_) => crate::deploy::tf_states::Mover::new(&from.dir)?,
        None => None,
    };
    let copied = source.copy_into(&target)?;
    let moved = match (mover, tf_target) {
        (Some(mover), Some(pg)) => {
            crate::deploy::tf_states::move_into_postgres(mover, &from.dir, pg)?
        }
        _ => Vec::new(),
    };
    let deployed = target.deployed()?.len();
    println!(
        "Copied {} rows from {from} to {to}: {deployed} instances with their digests, {} runs, {} pull requests.",
        copied.total(),
        count(&copied, "runs"),
        count(&copied, "pull_requests"),
    );
    for m in &moved {
        println!(
            "Moved the Terraform state of {} step {} into PostgreSQL (schema {}).",
            m.instance, m.step, m.schema
        );
    }
    println!(
        "Nothing was deployed. Point capstan at {to} (`--state`, or `state:` in the daemon's configuration); {from} is unchanged, keep it until {to} has served."
    );
    Ok(0)
}

fn count(copied: &crate::state::Copied, table: &str) -> usize {
    copied
        .0
        .iter()
        .find(|(t, _)| *t == table)
        .map_or(0, |(_, n)| *n)
}
