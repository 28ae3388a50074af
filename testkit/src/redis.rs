//! A private redis-server process.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` on a free loopback port, with no persistence, in its own
/// temporary directory. Killed when dropped.
pub struct RedisServer {
    port: u16,
    binary: PathBuf,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Further `redis-server` arguments (e.g. `--replicaof`).
    extra: Vec<String>,
    /// With `EASEL_TEST_REDIS=cluster`: the other five nodes of the Redis
    /// Cluster this node seeds. Killing, pausing, resuming and restarting
    /// the server then applies to the whole cluster.
    pub(crate) peers: Vec<RedisServer>,
}

impl RedisServer {
    /// One server, whatever [`crate::cluster_mode`] says: for tests of a single
    /// server's own topology (a standalone replica, a TLS port, a proxy in
    /// front of its one port).
    pub fn start_single(extra: &[&str]) -> Self {
        Self::start_node(extra)
    }

    /// A replica of `primary`, started and in sync (its link is up).
    pub fn start_replica_of(primary: &RedisServer) -> Self {
        let port = primary.port.to_string();
        let replica = Self::start_node(&["--replicaof", "127.0.0.1", &port]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !replica
            .info("replication")
            .contains("master_link_status:up")
        {
            assert!(Instant::now() < deadline, "the replica never synced");
            std::thread::sleep(Duration::from_millis(20));
        }
        replica
    }

    /// A server that also takes TLS connections (with `certs`' server
    /// certificate, no client certificates) on a second port; with the
    /// `rediss://` URL of that port. PING and the other helpers keep using
    /// the plain port.
    pub fn start_tls(certs: &crate::TestCerts) -> (Self, String) {
        let tls_port = crate::free_port().to_string();
        let path = |p: std::path::PathBuf| p.display().to_string();
        let (cert, key, ca) = (path(certs.cert()), path(certs.key()), path(certs.ca()));
        let server = Self::start_node(&[
            "--tls-port",
            &tls_port,
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            "no",
        ]);
        (server, format!("rediss://127.0.0.1:{tls_port}"))
    }

    /// One `redis-server` process.
    pub(crate) fn start_node(extra: &[&str]) -> Self {
        let binary = crate::find_binary("redis-server", &["/usr/bin", "/usr/local/bin"]).expect(
            "redis-server not found on PATH: integration tests start private Redis \
                 processes; install it (apt-get install redis-server)",
        );
        for _ in 0..5 {
            let dir = tempfile::Builder::new()
                .prefix("easel-redis-")
                .tempdir()
                .expect("create temp dir");
            let mut server = RedisServer {
                port: crate::free_port(),
                binary: binary.clone(),
                dir,
                child: None,
                extra: extra.iter().map(|a| a.to_string()).collect(),
                peers: Vec::new(),
            };
            if server.spawn() {
                return server;
            }
        }
        panic!("redis-server did not start after 5 attempts");
    }

    /// Spawns the process on `self.port`; true once it answers PING.
    fn spawn(&mut self) -> bool {
        let log = self.dir.path().join("redis.log");
        let child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.ping() {
                return true;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(_)) = child.try_wait()
            {
                // Exited: most likely the port was taken meanwhile.
                self.child = None;
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        false
    }

    /// Whether the server answers PING right now.
    pub fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(
            &([127, 0, 0, 1], self.port).into(),
            Duration::from_millis(200),
        ) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    /// A section of `INFO`, as text (empty if the server does not answer).
    pub fn info(&self, section: &str) -> String {
        let Ok(mut s) = TcpStream::connect_timeout(
            &([127, 0, 0, 1], self.port).into(),
            Duration::from_millis(200),
        ) else {
            return String::new();
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        if s.write_all(format!("INFO {section}\r\n").as_bytes())
            .is_err()
        {
            return String::new();
        }
        // A bulk string: `$<len>\r\n<text>\r\n`.
        let mut reply = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&reply);
            if let Some((len, rest)) = text.strip_prefix('$').and_then(|t| t.split_once("\r\n"))
                && rest.len() >= len.parse::<usize>().unwrap_or(0)
            {
                return rest.to_owned();
            }
        }
        String::new()
    }

    /// Its data directory (RDB snapshot, AOF files).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (every node of a cluster) with SIGKILL (no clean
    /// shutdown) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.peers.iter_mut().for_each(RedisServer::kill);
    }

    /// Whether this node seeds a cluster ([`crate::cluster_mode`]).
    pub fn is_cluster(&self) -> bool {
        !self.peers.is_empty()
    }

    /// This node and its cluster's other nodes.
    pub(crate) fn all_nodes(&self) -> impl Iterator<Item = &RedisServer> {
        std::iter::once(self).chain(&self.peers)
    }

    /// Freezes the server with SIGSTOP: connections stay open and calls
    /// hang until [`Self::resume`] (a stall, not a crash).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server run again (SIGCONT): it runs what it was sent.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, which: &str) {
        for node in self.all_nodes() {
            let child = node.child.as_ref().expect("redis-server is running");
            let status = Command::new("kill")
                .args([which, &child.id().to_string()])
                .status()
                .expect("run kill");
            assert!(status.success(), "kill {which} failed");
        }
    }

    /// Starts the server again on the same port, empty (with its peers,
    /// each keeping its `nodes.conf`); see [`Self::restart`].
    pub(crate) fn respawn_all(&mut self) {
        self.kill();
        self.respawn();
        self.peers.iter_mut().for_each(RedisServer::respawn);
    }

    /// Spawns the (killed) process again on the same port.
    fn respawn(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.spawn() {
            assert!(
                Instant::now() < deadline,
                "redis-server could not restart on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
