//! A throwaway PostgreSQL cluster for tests: Debian's binaries
//! (`apt-get install postgresql`), run as the `postgres` user (the server
//! refuses root) in a directory of its own, on a free loopback port, with
//! trust authentication for user `kms` on database `kms`. Stopped and
//! removed on drop.

use std::path::PathBuf;
use std::process::{Command, Output};

pub(crate) struct Postgres {
    dir: PathBuf,
    bin: PathBuf,
    pub(crate) port: u16,
}

/// The newest /usr/lib/postgresql/N/bin.
fn bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's server binaries (apt-get install postgresql)")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, p)| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("no /usr/lib/postgresql/N/bin/initdb")
        .1
}

fn as_postgres(bin: &std::path::Path, tool: &str, args: &[&str]) -> Output {
    Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin.join(tool))
        .args(args)
        .output()
        .expect("run runuser")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Postgres {
    pub(crate) fn start() -> Postgres {
        let bin = bin_dir();
        let dir =
            std::env::temp_dir().join(format!("kmsfs-pg-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        let chown = Command::new("chown")
            .arg("postgres")
            .arg(&dir)
            .status()
            .unwrap();
        assert!(chown.success(), "chown postgres {}", dir.display());
        let data = dir.join("data");
        let data = data.to_str().unwrap();
        let out = as_postgres(
            &bin,
            "initdb",
            &["-D", data, "-A", "trust", "-U", "kms", "--no-sync"],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            dir.display()
        );
        let log = dir.join("log");
        let out = as_postgres(
            &bin,
            "pg_ctl",
            &[
                "-D",
                data,
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let pg = Postgres { dir, bin, port };
        let out = as_postgres(
            &pg.bin,
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "kms",
                "kms",
            ],
        );
        assert!(
            out.status.success(),
            "createdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg
    }

    pub(crate) fn url(&self) -> String {
        format!("postgres://kms@127.0.0.1:{}/kms", self.port)
    }

    /// Runs `sql` with psql; its output (unaligned, tuples only).
    pub(crate) fn psql(&self, sql: &str) -> String {
        let out = as_postgres(
            &self.bin,
            "psql",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "kms",
                "-At",
                "-c",
                sql,
                "kms",
            ],
        );
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = as_postgres(
            &self.bin,
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-m", "immediate", "stop"],
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
