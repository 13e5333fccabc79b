//! A private PostgreSQL server for the benchmarks that need one (Debian's `postgresql`
//! package, run as its `postgres` user: run the benchmark as root), stopped when dropped.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

fn as_postgres(program: &Path) -> Command {
    let mut command = Command::new("runuser");
    command.args(["-u", "postgres", "--"]).arg(program);
    command
}

pub struct Server {
    bin: PathBuf,
    dir: PathBuf,
    pub port: u16,
}

impl Server {
    /// A fresh cluster in `dir` (fsync on) on 127.0.0.1:`port`, superuser `mailtrail`.
    pub fn start(dir: &Path, port: u16) -> Server {
        let mut versions: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
            .expect("Debian's postgresql package (apt-get install postgresql)")
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        versions.sort();
        let bin = PathBuf::from(format!(
            "/usr/lib/postgresql/{}/bin",
            versions.last().expect("a server version")
        ));
        let server = Server {
            bin,
            dir: dir.to_path_buf(),
            port,
        };
        // A run that panicked left its server up.
        server.stop("immediate");
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        let chown = Command::new("chown").arg("postgres").arg(dir).status();
        assert!(chown.unwrap().success(), "chown postgres (run as root)");
        let ok = as_postgres(&server.bin.join("initdb"))
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-A", "trust", "-U", "mailtrail"])
            .output()
            .unwrap()
            .status
            .success();
        assert!(ok, "initdb");
        let ok = as_postgres(&server.bin.join("pg_ctl"))
            .arg("-D")
            .arg(dir.join("data"))
            .arg("-l")
            .arg(dir.join("log"))
            .arg("-o")
            .arg(format!(
                "-k {} -p {port} -c listen_addresses=127.0.0.1 -c fsync=on -c max_wal_size=4GB {}",
                dir.display(),
                // More server settings, to look into a run: e.g. auto_explain's.
                std::env::var("MAILTRAIL_BENCH_PG_OPTIONS").unwrap_or_default()
            ))
            .args(["-w", "start"])
            .status()
            .unwrap()
            .success();
        assert!(ok, "pg_ctl start");
        server
    }

    fn stop(&self, mode: &str) {
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", mode, "-w", "stop"])
            .output();
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgresql://mailtrail@127.0.0.1:{}/{database}", self.port)
    }

    /// A connection to `database`, its connection task spawned on the current runtime.
    pub async fn connect(&self, database: &str) -> tokio_postgres::Client {
        let (client, connection) =
            tokio_postgres::connect(&self.url(database), tokio_postgres::NoTls)
                .await
                .expect("connect");
        tokio::spawn(connection);
        client
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop("fast");
    }
}

/// A fresh store in `dir` of a host in the fleet (its outbox on) into which `mailtrail import`
/// read the generated 1,000,000-line log: every row goes through the outbox as it is written.
/// Returns the store's path.
pub fn fleet_host_store(dir: &Path, log: &Path) -> PathBuf {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let store_path = dir.join("store.db");
    let config = dir.join("mailtrail.toml");
    std::fs::write(
        &config,
        format!("[store]\npath = {:?}\n", store_path.display().to_string()),
    )
    .unwrap();
    mailtrail::store::Store::open(&store_path)
        .unwrap()
        .set_fleet_outbox(true)
        .unwrap();
    let started = std::time::Instant::now();
    let ok = Command::new(env!("CARGO_BIN_EXE_mailtrail"))
        .arg("--config")
        .arg(&config)
        .arg("import")
        .arg(log)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "mailtrail import");
    println!(
        "imported {} in {:.1} s",
        log.display(),
        started.elapsed().as_secs_f64()
    );
    store_path
}
