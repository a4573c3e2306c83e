//! Where a command's state is: the store (an SQLite file, or a PostgreSQL database named
//! by `--state postgres://…`) and the local folder for logs and working folders (beside
//! the file; `.capstan` in the repository with PostgreSQL).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::state::{Location, Store};

#[derive(Clone, Debug)]
pub struct StateAt {
    pub location: Location,
    /// Logs and working folders.
    pub dir: PathBuf,
}

impl StateAt {
    /// `--state` as given (`None`: `.capstan/state.db` in `repo`).
    pub fn new(repo: &Path, state: Option<&str>) -> anyhow::Result<StateAt> {
        let local = match repo.as_os_str().to_str() {
            Some(".") => PathBuf::from(".capstan"),
            _ => repo.join(".capstan"),
        };
        let location = match state {
            Some(text) => Location::parse(text)?,
            None => Location::File(local.join("state.db")),
        };
        let dir = match &location {
            Location::File(path) => match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            },
            Location::Postgres(_) => local,
        };
        Ok(StateAt { location, dir })
    }

    /// Whether anything may have been deployed with it: a file that exists; a PostgreSQL
    /// database is asked when it is opened.
    pub fn exists(&self) -> bool {
        match &self.location {
            Location::File(path) => path.exists(),
            Location::Postgres(_) => true,
        }
    }

    /// Opens (creating an SQLite file if needed) and migrates the store.
    pub fn open(&self) -> anyhow::Result<Store> {
        Ok(Store::open_at(&self.location)?)
    }

    /// Opens the store, which must exist.
    pub fn open_existing(&self) -> anyhow::Result<Store> {
        if !self.exists() {
            anyhow::bail!(
                "no state database at {self}: nothing was deployed with it yet (`capstan apply` creates it; --repo or --state names another)"
            );
        }
        self.open()
    }
}

impl fmt::Display for StateAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.location.fmt(f)
    }
}
