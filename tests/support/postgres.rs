//! A private PostgreSQL server (Debian's package, `../shared/notes/postgres-test-instance.md`):
//! its own data directory and port on 127.0.0.1, stopped and removed when dropped.

use super::util::{free_port, wait_until};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub struct Postgres {
    dir: tempfile::TempDir,
    port: u16,
    bin: PathBuf,
    /// More server settings (`-c name=value ...`).
    options: String,
}

/// The newest server version the package installed (`/usr/lib/postgresql/NN/bin`).
fn server_bin() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<u32> = std::fs::read_dir(root)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (is the postgresql package installed?)",
                root.display()
            )
        })
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    versions.sort();
    let version = versions.last().expect("a PostgreSQL server version");
    root.join(version.to_string()).join("bin")
}

fn as_postgres(program: &Path) -> Command {
    let mut command = Command::new("runuser");
    command.args(["-u", "postgres", "--"]).arg(program);
    command
}

impl Postgres {
    /// A fresh cluster with the database `fleet`, owned by the superuser `mailtrail`.
    pub fn start() -> Postgres {
        Postgres::start_with("")
    }

    /// [`Postgres::start`] with more server settings (`-c ssl=on ...`).
    pub fn start_with(options: &str) -> Postgres {
        let dir = tempfile::Builder::new()
            .prefix("mailtrail-pg.")
            .tempdir()
            .unwrap();
        let status = Command::new("chown")
            .arg("postgres")
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "chown postgres (tests run as root)");
        let pg = Postgres {
            port: free_port(),
            bin: server_bin(),
            dir,
            options: options.to_string(),
        };
        let out = as_postgres(&pg.bin.join("initdb"))
            .arg("-D")
            .arg(pg.data())
            .args(["-A", "trust", "-U", "mailtrail", "--no-sync"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.up();
        pg.psql("postgres", "CREATE DATABASE fleet");
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts (again) the server, with the data it had.
    pub fn up(&self) {
        let out = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.path().join("log"))
            .arg("-o")
            .arg(format!(
                "-k {} -p {} -c listen_addresses=127.0.0.1 -c fsync=on {}",
                self.dir.path().display(),
                self.port,
                self.options
            ))
            .args(["-w", "start"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        wait_until(
            Duration::from_secs(20),
            "PostgreSQL to answer",
            || {
                Command::new("pg_isready")
                    .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
                    .output()
                    .is_ok_and(|o| o.status.success())
            },
            || self.log(),
        );
    }

    /// Stops the server (`-m immediate`: as a crash would, without a shutdown checkpoint).
    pub fn down(&self, mode: &str) {
        let out = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .args(["-m", mode, "-w", "stop"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// The fleet database's connection URL.
    pub fn url(&self) -> String {
        format!("postgresql://mailtrail@127.0.0.1:{}/fleet", self.port)
    }

    /// A directory the server's user may read, removed with the server (certificates).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn run_psql(&self, database: &str, sql: &str) -> std::process::Output {
        Command::new("psql")
            .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "mailtrail",
                "-d",
                database,
                "-c",
                sql,
            ])
            .output()
            .unwrap()
    }

    /// Runs `sql` in `database`; the result rows, one per line, columns separated by `|`.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let out = self.run_psql(database, sql);
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `sql` in the fleet database, `None` when it fails (a table not created yet).
    pub fn try_query(&self, sql: &str) -> Option<String> {
        let out = self.run_psql("fleet", sql);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// [`Postgres::psql`] in the fleet database.
    pub fn query(&self, sql: &str) -> String {
        self.psql("fleet", sql)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}
