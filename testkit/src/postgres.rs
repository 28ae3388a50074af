//! A private PostgreSQL server.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A PostgreSQL server from the system's binaries (`initdb`, `postgres`) on
/// a free loopback port, with its data in a temporary directory. Trust
/// authentication, user `postgres`, database `postgres`. Killed (SIGKILL)
/// when dropped.
///
/// PostgreSQL refuses to run as root, so when the tests run as root the
/// server runs as the `postgres` user (through `runuser`) and the directory
/// is handed to that user.
pub struct PostgresServer {
    port: u16,
    bin: PathBuf,
    dir: tempfile::TempDir,
    as_postgres_user: bool,
    /// Further `postgres` options (`-c name=value ...`).
    options: String,
}

/// The directory of the server binaries: Debian's versioned directory
/// (newest version) if present, else wherever `initdb` is on PATH.
fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    versions.retain(|dir| dir.join("initdb").is_file());
    versions.sort_by_key(|dir| {
        dir.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions
        .pop()
        .or_else(|| {
            crate::find_binary("initdb", &[]).and_then(|p| p.parent().map(Path::to_path_buf))
        })
        .expect(
            "PostgreSQL server binaries (initdb, postgres) not found: integration tests \
             start private PostgreSQL servers; install them (apt-get install postgresql)",
        )
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

impl PostgresServer {
    /// Initialises a cluster, starts it, and waits until it accepts queries.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// A server that takes TLS connections only (with `certs`' server
    /// certificate): its `pg_hba.conf` admits `hostssl` alone, so a plain
    /// TCP connection is refused. The `psql` helper negotiates TLS itself.
    pub fn start_tls(certs: &crate::TestCerts) -> Self {
        Self::start_with(Some(certs))
    }

    fn start_with(certs: Option<&crate::TestCerts>) -> Self {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("easel-pg-")
            .tempdir()
            .expect("create temp dir");
        let as_postgres_user = running_as_root();
        if as_postgres_user {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                ok,
                "could not hand {} to the postgres user",
                dir.path().display()
            );
        }
        let mut server = PostgresServer {
            port: 0,
            bin,
            dir,
            as_postgres_user,
            options: String::new(),
        };
        let out = server
            .command("initdb")
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(server.data_dir())
            .current_dir(server.dir.path())
            .stdout(Stdio::null())
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some(certs) = certs {
            server.require_tls(certs);
        }
        for _ in 0..5 {
            server.port = crate::free_port();
            if server.spawn() {
                return server;
            }
        }
        panic!(
            "postgres did not start after 5 attempts; its log:\n{}",
            std::fs::read_to_string(server.log_path()).unwrap_or_default()
        );
    }

    /// Copies the certificate and key where the server user may read them,
    /// turns TLS on and admits TLS connections only.
    fn require_tls(&mut self, certs: &crate::TestCerts) {
        let cert = self.dir.path().join("server.pem");
        let key = self.dir.path().join("server.key");
        std::fs::copy(certs.cert(), &cert).expect("copy certificate");
        std::fs::copy(certs.key(), &key).expect("copy key");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod key");
        if self.as_postgres_user {
            let ok = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&cert)
                .arg(&key)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "could not hand the certificate to the postgres user");
        }
        let hba = self.data_dir().join("pg_hba.conf");
        std::fs::write(
            &hba,
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n",
        )
        .expect("write pg_hba.conf");
        self.options = format!(
            "-c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
            cert.display(),
            key.display()
        );
    }

    /// A tool from the server's directory, or from PATH when that directory
    /// lacks it (e.g. a lone `initdb` link).
    fn tool(&self, program: &str) -> PathBuf {
        let local = self.bin.join(program);
        if local.is_file() {
            return local;
        }
        crate::find_binary(program, &[]).unwrap_or(local)
    }

    fn command(&self, program: &str) -> Command {
        let path = self.tool(program);
        if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// Starts the server in the background on `self.port`; true once it
    /// accepts connections.
    fn spawn(&mut self) -> bool {
        let status = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_path())
            .arg("-o")
            .arg(format!(
                "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c max_connections=200 {}",
                self.port,
                self.dir.path().display(),
                self.options
            ))
            .args(["-w", "-t", "30", "start"])
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .output();
        match status {
            Ok(out) if out.status.success() => self.wait_ready(Duration::from_secs(30)),
            Ok(out) => {
                eprintln!(
                    "pg_ctl start failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                false
            }
            Err(err) => {
                eprintln!("pg_ctl could not run: {err}");
                false
            }
        }
    }

    fn wait_ready(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.is_ready() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Whether the server accepts connections right now.
    pub fn is_ready(&self) -> bool {
        Command::new(self.tool("pg_isready"))
            .args([
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-t",
                "1",
            ])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A libpq-style URL for the `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs SQL with `psql` and returns its unaligned, tuples-only output.
    /// Easel's tables are found in its default schema (`easel`), then in
    /// `public`.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new(self.tool("psql"))
            .env("PGOPTIONS", "-c search_path=easel,public")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql failed for {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn postmaster_pid(&self) -> Option<String> {
        let pidfile = std::fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        pidfile.lines().next().map(|l| l.trim().to_owned())
    }

    /// Kills the server with SIGKILL, as a crash would, and waits until it is gone.
    pub fn kill(&mut self) {
        let Some(pid) = self.postmaster_pid() else {
            return;
        };
        let _ = Command::new("kill").args(["-9", &pid]).status();
        let proc = Path::new("/proc").join(&pid);
        let deadline = Instant::now() + Duration::from_secs(10);
        while proc.exists() && Instant::now() < deadline {
            // A zombie until pg_ctl's child is reaped; the port is free once
            // the process is gone from the table or no longer accepts.
            if !self.is_ready() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server again on the same port and data directory (crash
    /// recovery runs). Panics if it cannot.
    pub fn restart(&mut self) {
        self.kill();
        // Backends of the killed postmaster may still hold shared memory for
        // a moment; retry until the new postmaster starts.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.spawn() {
            assert!(
                Instant::now() < deadline,
                "postgres could not restart on port {}; see {}",
                self.port,
                self.log_path().display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_answers_survives_a_crash_and_keeps_its_data() {
        let mut pg = PostgresServer::start();
        assert_eq!(pg.psql("select 1"), "1");
        pg.psql("create table t (v int); insert into t values (42)");
        pg.kill();
        assert!(!pg.is_ready());
        pg.restart();
        assert_eq!(pg.psql("select v from t"), "42");
    }
}
