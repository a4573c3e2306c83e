//! A real PostgreSQL server in a temporary folder, for capstan's own tests and benchmarks:
//! `initdb`, then `pg_ctl start` on a free loopback port, and `pg_ctl stop` when the last
//! holder lets go. The binaries are found in `CAPSTAN_PG_BIN`, else by `pg_config
//! --bindir`, else in Debian's `/usr/lib/postgresql/<version>/bin`. PostgreSQL refuses to
//! run as root, so as root the server runs as the `postgres` user (Debian's package makes
//! it) in a folder given to that user.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, Weak};

use super::Location;
use super::db::{Db, PgConn};

pub struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    user: Option<(u32, u32)>,
}

static SHARED: Mutex<Weak<PgServer>> = Mutex::new(Weak::new());

impl PgServer {
    /// The server this process's tests share, started if none runs now.
    pub fn shared() -> Result<Arc<PgServer>, String> {
        let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(server) = shared.upgrade() {
            return Ok(server);
        }
        let server = Arc::new(PgServer::start(false)?);
        *shared = Arc::downgrade(&server);
        Ok(server)
    }

    /// Starts a server of its own. `durable: false` turns `fsync` off (tests); benchmarks
    /// keep it on, as production does.
    pub fn start(durable: bool) -> Result<PgServer, String> {
        let bin = bin_dir()?;
        let dir = tempfile::Builder::new()
            .prefix("capstan-pg-")
            .tempdir()
            .map_err(|e| format!("a folder for PostgreSQL: {e}"))?;
        let user = server_user()?;
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .map_err(|e| format!("giving {} to postgres: {e}", dir.path().display()))?;
        }
        let data = dir.path().join("data");
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "capstan", "-A", "trust", "-E", "UTF8", "--locale=C"])
            .arg("--no-sync");
        run(&mut initdb, user, "initdb")?;
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port()?;
            let mut options = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200",
                dir.path().display()
            );
            if !durable {
                options.push_str(" -c fsync=off -c synchronous_commit=off");
            }
            let mut start = Command::new(bin.join("pg_ctl"));
            start
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(dir.path().join("server.log"))
                .args(["-w", "-t", "60", "-o", &options, "start"]);
            match run(&mut start, user, "pg_ctl start") {
                Ok(()) => {
                    return Ok(PgServer {
                        dir,
                        bin,
                        port,
                        user,
                    });
                }
                // Another process took the port between our look and the server's bind.
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://capstan@127.0.0.1:{}/{name}", self.port)
    }

    /// A new, empty database with a name of its own; its address.
    pub fn create_database(&self) -> Result<String, String> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "capstan_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let Location::Postgres(target) =
            Location::parse(&self.url("postgres")).map_err(|e| e.to_string())?
        else {
            return Err("a postgres address is a PostgreSQL location".into());
        };
        let mut conn = PgConn::connect(&target.config).map_err(|e| e.to_string())?;
        Db::Postgres(&mut conn)
            .batch(&format!("CREATE DATABASE {name}"))
            .map_err(|e| e.to_string())?;
        Ok(self.url(&name))
    }

    /// `sql` run by `psql` on database `url` of this server; its rows, unaligned, `|` between
    /// columns.
    pub fn psql(&self, url: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                url,
                "-c",
                sql,
            ])
            .output()
            .map_err(|e| format!("psql did not start: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// The server's own log, for a failing test to show.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let mut stop = Command::new(self.bin.join("pg_ctl"));
        stop.arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"]);
        if let Err(e) = run(&mut stop, self.user, "pg_ctl stop") {
            eprintln!("{e}");
        }
    }
}

fn run(command: &mut Command, user: Option<(u32, u32)>, what: &str) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    if let Some((uid, gid)) = user {
        command.uid(uid).gid(gid);
    }
    let out = command
        .output()
        .map_err(|e| format!("{what} did not start: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port: {e}"))
}

/// The `postgres` user's ids when running as root; `None` otherwise.
fn server_user() -> Result<Option<(u32, u32)>, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| e.to_string())?;
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            match fields.as_slice() {
                ["postgres", _, uid, gid, ..] => Some((uid.parse().ok()?, gid.parse().ok()?)),
                _ => None,
            }
        })
        .map(Some)
        .ok_or_else(|| {
            "PostgreSQL will not run as root and there is no `postgres` user: install Debian's \
             `postgresql` package (which makes one) or run the tests as another user"
                .to_string()
        })
}

fn bin_dir() -> Result<PathBuf, String> {
    if let Ok(dir) = std::env::var("CAPSTAN_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            has_initdb(&bin).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(|| {
        "no PostgreSQL server binaries (initdb, pg_ctl): install Debian's `postgresql` \
         package or set CAPSTAN_PG_BIN"
            .to_string()
    })
}

fn has_initdb(bin: &Path) -> bool {
    bin.join("initdb").exists() && bin.join("pg_ctl").exists()
}

/// One store of each kind for a test: an SQLite file in a folder of its own, and a new
/// database on the shared PostgreSQL server. The store tests run their bodies on both.
#[cfg(test)]
pub(crate) fn both_stores() -> [TestStore; 2] {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let sqlite = TestStore {
        location: Location::File(dir.path().join("state.db")),
        _dir: Some(dir),
        _server: None,
    };
    let server = PgServer::shared().unwrap_or_else(|e| panic!("{e}"));
    let url = server.create_database().unwrap_or_else(|e| panic!("{e}"));
    let postgres = TestStore {
        location: Location::parse(&url).expect("the server's address"),
        _dir: None,
        _server: Some(server),
    };
    [sqlite, postgres]
}

#[cfg(test)]
pub(crate) struct TestStore {
    pub location: Location,
    _dir: Option<tempfile::TempDir>,
    _server: Option<Arc<PgServer>>,
}

#[cfg(test)]
impl TestStore {
    /// Opens the store (again): each call is a new connection, as a new process's is.
    pub fn open(&self) -> super::Store {
        super::Store::open_at(&self.location)
            .unwrap_or_else(|e| panic!("opening {}: {e:?}", self.location))
    }
}
