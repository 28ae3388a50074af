//! A private Redis Cluster: three masters, one replica each, on free
//! loopback ports, with a short node timeout so a failover takes about a
//! second.

use crate::RedisServer;
use std::process::Command;
use std::time::{Duration, Instant};

/// Whether `EASEL_TEST_REDIS=cluster` asks every [`RedisServer::start`] for
/// a 6-node Redis Cluster instead of one server, so that the same tests run
/// on both (`make test` runs the Redis tests both ways).
pub fn cluster_mode() -> bool {
    std::env::var("EASEL_TEST_REDIS").is_ok_and(|v| v == "cluster")
}

/// How long a node may be unreachable before the others fail it over (ms).
const NODE_TIMEOUT_MS: &str = "1000";

/// Six `redis-server --cluster-enabled yes` processes joined into one
/// cluster (3 masters with a replica each). Killed when dropped.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts the six nodes, creates the cluster and waits until every node
    /// reports it healthy with all 16,384 slots served.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// [`Self::start`] with further `redis-server` arguments for every node.
    pub fn start_with(extra: &[&str]) -> Self {
        let nodes: Vec<RedisServer> = (0..6)
            .map(|_| {
                let bus = crate::free_port().to_string();
                let mut args = vec![
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    NODE_TIMEOUT_MS,
                    "--cluster-port",
                    &bus,
                    // A replica takes over however long its link was down
                    // (the test kills masters on purpose).
                    "--cluster-replica-validity-factor",
                    "0",
                ];
                args.extend(extra);
                RedisServer::start_node(&args)
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let out = Command::new(redis_cli())
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = RedisCluster { nodes };
        cluster.wait_healthy(Duration::from_secs(20));
        cluster
    }

    /// Polls until every running node says `cluster_state:ok` and that all
    /// slots are served, three masters, and every running replica's link to
    /// its master up.
    pub fn wait_healthy(&self, timeout: Duration) {
        wait_healthy(self.nodes.iter(), timeout);
    }

    /// The first node, holding the others as its peers: the cluster as a
    /// [`RedisServer`] whose URL seeds it (`EASEL_TEST_REDIS=cluster`).
    pub(crate) fn into_seed(self) -> RedisServer {
        let mut nodes = self.nodes.into_iter();
        let mut seed = nodes.next().expect("six nodes");
        seed.peers = nodes.collect();
        seed
    }

    /// A seed URL (the first node that answers).
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .find(|n| n.ping())
            .expect("a running cluster node")
            .url()
    }

    /// Every node, masters and replicas.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The index of the running master serving `key`'s slot.
    pub fn master_of(&self, key: &str) -> usize {
        let slot = self
            .nodes
            .iter()
            .find(|n| n.ping())
            .expect("a running cluster node")
            .command(&["CLUSTER", "KEYSLOT", key]);
        let slot: u16 = slot.trim().parse().expect("a slot number");
        self.nodes
            .iter()
            .position(|n| n.ping() && n.is_master() && n.serves(slot))
            .expect("a master serving the slot")
    }

    /// Moves `key`'s slot, with its keys, from its master to master `to`
    /// (as a resharding does: IMPORTING/MIGRATING, MIGRATE, then the new
    /// owner announced to every master).
    pub fn move_slot(&self, key: &str, to: usize) {
        let from = self.master_of(key);
        let slot = self.nodes[from].command(&["CLUSTER", "KEYSLOT", key]);
        let slot = slot.trim();
        let id = |i: usize| {
            self.nodes[i]
                .command(&["CLUSTER", "MYID"])
                .trim()
                .to_owned()
        };
        let (src, dst) = (id(from), id(to));
        self.nodes[to].command(&["CLUSTER", "SETSLOT", slot, "IMPORTING", &src]);
        self.nodes[from].command(&["CLUSTER", "SETSLOT", slot, "MIGRATING", &dst]);
        loop {
            let keys = self.nodes[from].command(&["CLUSTER", "GETKEYSINSLOT", slot, "100"]);
            let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
            if keys.is_empty() {
                break;
            }
            let port = self.nodes[to].port().to_string();
            let mut args = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
            args.extend(keys);
            let out = self.nodes[from].command(&args);
            assert!(out.trim() == "OK", "MIGRATE failed: {out}");
        }
        // The new owner first, then the old, then the rest.
        let rest = (0..self.nodes.len()).filter(|&i| i != to && i != from);
        for i in [to, from].into_iter().chain(rest) {
            let node = &self.nodes[i];
            if node.ping() && node.is_master() {
                node.command(&["CLUSTER", "SETSLOT", slot, "NODE", &dst]);
            }
        }
        self.wait_healthy(Duration::from_secs(20));
    }

    /// Kills node `index` (SIGKILL), nothing more.
    pub fn kill(&mut self, index: usize) {
        self.nodes[index].kill();
    }

    /// The index of the replica of master `index`.
    pub fn replica_of(&self, index: usize) -> usize {
        let port = format!("master_port:{}", self.nodes[index].port());
        self.nodes
            .iter()
            .position(|n| n.info("replication").lines().any(|l| l.trim() == port))
            .expect("a replica of the master")
    }

    /// Kills node `index` (SIGKILL) and waits until its replica has taken
    /// over and the cluster serves every slot again; then starts the node
    /// again (same port, same `nodes.conf`), which rejoins as the new
    /// master's replica, and waits until it is in sync.
    pub fn fail_over(&mut self, index: usize) {
        self.nodes[index].kill();
        self.wait_healthy(Duration::from_secs(30));
        self.nodes[index].restart();
        self.wait_healthy(Duration::from_secs(30));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.nodes[index]
            .info("replication")
            .contains("master_link_status:up")
        {
            assert!(
                Instant::now() < deadline,
                "the old master never rejoined as a replica"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The `redis-cli` binary.
fn redis_cli() -> std::path::PathBuf {
    crate::find_binary("redis-cli", &["/usr/bin", "/usr/local/bin"])
        .expect("redis-cli not found: install redis-tools")
}

/// [`RedisCluster::wait_healthy`] over `nodes`.
fn wait_healthy<'a>(nodes: impl Iterator<Item = &'a RedisServer>, timeout: Duration) {
    let nodes: Vec<&RedisServer> = nodes.collect();
    let deadline = Instant::now() + timeout;
    loop {
        let running: Vec<&RedisServer> = nodes.iter().copied().filter(|n| n.ping()).collect();
        let ok = running.iter().all(|n| {
            let info = n.command(&["CLUSTER", "INFO"]);
            info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384")
        });
        let masters = running.iter().filter(|n| n.is_master()).count();
        let linked = running.iter().all(|n| {
            let info = n.info("replication");
            info.contains("role:master") || info.contains("master_link_status:up")
        });
        if ok && masters == 3 && linked {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the redis cluster was not healthy within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl RedisServer {
    /// Starts a server and waits until it answers PING; in
    /// [`cluster_mode`], a Redis Cluster seeded by this node, healthy.
    ///
    /// Panics with an install hint if `redis-server` is not installed.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// [`Self::start`] with further `redis-server` arguments (given to
    /// every node of a cluster).
    pub fn start_with(extra: &[&str]) -> Self {
        if cluster_mode() {
            return RedisCluster::start_with(extra).into_seed();
        }
        Self::start_node(extra)
    }

    /// Starts the server again on the same port, empty; a cluster's nodes
    /// all again (each keeps its `nodes.conf`, so the cluster forms again as
    /// it was), and waits until it is healthy. Panics if it cannot.
    pub fn restart(&mut self) {
        self.respawn_all();
        if self.is_cluster() {
            wait_healthy(self.all_nodes(), Duration::from_secs(30));
        }
    }

    /// Runs one command with `redis-cli` and returns its output as text (on
    /// a cluster's seed, following redirections to the key's node).
    pub fn command(&self, args: &[&str]) -> String {
        let follow: &[&str] = if self.is_cluster() { &["-c"] } else { &[] };
        self.cli(follow, args)
    }

    /// Runs one command on this server, or on every node of its cluster
    /// (`SAVE`, `CLIENT PAUSE`); the outputs in node order.
    pub fn command_everywhere(&self, args: &[&str]) -> Vec<String> {
        self.all_nodes().map(|node| node.cli(&[], args)).collect()
    }

    /// `redis-cli` on this node's port with `options`, then `args`: its
    /// output as text.
    fn cli(&self, options: &[&str], args: &[&str]) -> String {
        let out = Command::new(redis_cli())
            .args(["-h", "127.0.0.1", "-p", &self.port().to_string()])
            .args(options)
            .args(args)
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn is_master(&self) -> bool {
        self.info("replication").contains("role:master")
    }

    /// Whether this node's own line of `CLUSTER NODES` lists `slot`.
    fn serves(&self, slot: u16) -> bool {
        let nodes = self.command(&["CLUSTER", "NODES"]);
        let Some(me) = nodes.lines().find(|l| l.contains("myself")) else {
            return false;
        };
        me.split_whitespace().skip(8).any(|range| {
            let (lo, hi) = range.split_once('-').unwrap_or((range, range));
            match (lo.parse::<u16>(), hi.parse::<u16>()) {
                (Ok(lo), Ok(hi)) => (lo..=hi).contains(&slot),
                _ => false,
            }
        })
    }
}
