//! Where the state is: an SQLite file (the default, beside the repository) or a
//! PostgreSQL database, named by a `postgres://` (or `postgresql://`) address or by
//! libpq's `key=value` form starting with `postgres:`. A password may be in the address
//! or, better, in `PGPASSWORD`; it is never shown: [`Location`] prints the address
//! without it.

use std::fmt;
use std::path::PathBuf;

use super::StateError;

#[derive(Clone, Debug)]
pub enum Location {
    File(PathBuf),
    Postgres(Box<PgTarget>),
}

/// A PostgreSQL database to connect to.
#[derive(Clone)]
pub struct PgTarget {
    pub(super) config: tokio_postgres::Config,
}

impl fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgTarget({self})")
    }
}

impl Location {
    /// `text` as a location: a PostgreSQL address, else a file path.
    pub fn parse(text: &str) -> Result<Location, StateError> {
        if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
            return Ok(Location::File(PathBuf::from(text)));
        }
        let mut config: tokio_postgres::Config = text.parse().map_err(|e| {
            StateError::Location(format!(
                "the state address is not a PostgreSQL address: {e}"
            ))
        })?;
        if config.get_password().is_none()
            && let Ok(password) = std::env::var("PGPASSWORD")
        {
            config.password(password);
        }
        if config.get_application_name().is_none() {
            config.application_name("capstan");
        }
        config.connect_timeout(std::time::Duration::from_secs(10));
        Ok(Location::Postgres(Box::new(PgTarget { config })))
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Location::Postgres(_))
    }

    /// The database OpenTofu and Terraform modules without a backend keep their state in:
    /// this one when it is PostgreSQL.
    pub fn terraform_pg(&self) -> Option<&PgTarget> {
        match self {
            Location::Postgres(target) => Some(target),
            Location::File(_) => None,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File(path) => write!(f, "{}", path.display()),
            Location::Postgres(target) => target.fmt(f),
        }
    }
}

impl PgTarget {
    /// The address for Terraform's `pg` backend (lib/pq), without the password (given as
    /// `PGPASSWORD`), and without TLS, as capstan's own connection.
    pub fn terraform_address(&self) -> String {
        self.address(None)
    }

    /// The address with its password, for a driver that takes only an address (the job
    /// queue's). Never shown: it holds the password.
    pub fn url_with_password(&self) -> String {
        self.address(self.password().as_deref())
    }

    /// `postgres://user[:password]@host:port/database?sslmode=disable`, each part
    /// percent-encoded; a socket folder goes in `host=`.
    fn address(&self, password: Option<&str>) -> String {
        use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
        use tokio_postgres::config::Host;
        let c = &self.config;
        let enc = |t: &str| utf8_percent_encode(t, NON_ALPHANUMERIC).to_string();
        let user = match (c.get_user(), password) {
            (Some(u), Some(p)) => format!("{}:{}@", enc(u), enc(p)),
            (Some(u), None) => format!("{}@", enc(u)),
            (None, _) => String::new(),
        };
        let db = enc(c.get_dbname().unwrap_or(""));
        let port = c.get_ports().first().copied().unwrap_or(5432);
        match c.get_hosts().first() {
            Some(Host::Tcp(host)) => {
                format!("postgres://{user}{host}:{port}/{db}?sslmode=disable")
            }
            Some(Host::Unix(dir)) => format!(
                "postgres://{user}/{db}?host={}&port={port}&sslmode=disable",
                enc(&dir.display().to_string())
            ),
            None => format!("postgres://{user}localhost:{port}/{db}?sslmode=disable"),
        }
    }

    /// Sets the password (from a credential file), over the address's and `PGPASSWORD`.
    pub fn set_password(&mut self, password: &str) {
        self.config.password(password);
    }

    /// The password, if the address or `PGPASSWORD` gave one.
    pub fn password(&self) -> Option<String> {
        self.config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
    }
}

impl fmt::Display for PgTarget {
    /// `postgres://user@host:port/database`, never the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use tokio_postgres::config::Host;
        let c = &self.config;
        f.write_str("postgres://")?;
        if let Some(user) = c.get_user() {
            write!(f, "{user}@")?;
        }
        let ports = c.get_ports();
        for (i, host) in c.get_hosts().iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match host {
                Host::Tcp(name) => f.write_str(name)?,
                Host::Unix(path) => write!(f, "[{}]", path.display())?,
            }
            if let Some(port) = ports.get(i).or(ports.first()) {
                write!(f, ":{port}")?;
            }
        }
        write!(f, "/{}", c.get_dbname().unwrap_or(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_shown_without_its_password() {
        let at = Location::parse("postgres://capstan:s3cret@db.internal:6432/infra").unwrap();
        assert!(at.is_postgres());
        assert_eq!(at.to_string(), "postgres://capstan@db.internal:6432/infra");
        assert!(!format!("{at:?}").contains("s3cret"));
        let Location::Postgres(target) = &at else {
            unreachable!()
        };
        assert_eq!(
            target.terraform_address(),
            "postgres://capstan@db.internal:6432/infra?sslmode=disable"
        );
        assert_eq!(target.password().as_deref(), Some("s3cret"));
        assert_eq!(
            target.url_with_password(),
            "postgres://capstan:s3cret@db.internal:6432/infra?sslmode=disable"
        );
        let file = Location::parse(".capstan/state.db").unwrap();
        assert_eq!(file.to_string(), ".capstan/state.db");
    }

    #[test]
    fn a_malformed_address_is_refused_without_echoing_it() {
        let err = Location::parse("postgres://capstan:s3cret@db:notaport/infra")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a PostgreSQL address"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }
}
