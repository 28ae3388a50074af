//! Where Redis is and how to trust it: `redis://` is plain TCP, `rediss://`
//! is TLS (rustls) with the server's certificate and host name verified
//! against a given CA, or the system's trust store when none is given.

use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::{Client, ConnectionInfo, RedisError, TlsCertificates};
use std::time::Duration;

/// A client for `url`; `ca_pem` (PEM certificates) replaces the system's
/// trust store for a `rediss://` URL and is refused for a plain one.
pub fn redis_client(url: &str, ca_pem: Option<&[u8]>) -> Result<Client, RedisError> {
    let tls = url.starts_with("rediss://");
    match ca_pem {
        None => Client::open(url),
        Some(_) if !tls => Err(RedisError::from((
            redis::ErrorKind::InvalidClientConfig,
            "a CA file applies to TLS only: the Redis URL must start with rediss://",
        ))),
        Some(pem) => Client::build_with_tls(
            url,
            TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.to_vec()),
            },
        ),
    }
}

/// A Redis Cluster client seeded with one node's connection (`info`, whose
/// TLS mode, credentials and protocol every node shares); `ca_pem` replaces
/// the system's trust store for TLS. Each call is bounded by `timeout` per
/// attempt; a call is redirected or retried a few times (MOVED, ASK, a
/// failover in progress) before it fails.
pub fn cluster_client(
    info: &ConnectionInfo,
    timeout: Duration,
    ca_pem: Option<&[u8]>,
) -> Result<ClusterClient, RedisError> {
    cluster_builder(info, timeout, ca_pem).build()
}

/// The builder behind [`cluster_client`], for callers that add to it (a
/// push sender, the protocol).
pub fn cluster_builder(
    info: &ConnectionInfo,
    timeout: Duration,
    ca_pem: Option<&[u8]>,
) -> ClusterClientBuilder {
    let mut builder = ClusterClientBuilder::new(vec![info.clone()])
        .connection_timeout(timeout)
        .response_timeout(timeout)
        .retries(3);
    if let Some(pem) = ca_pem {
        builder = builder.certs(TlsCertificates {
            client_tls: None,
            root_cert: Some(pem.to_vec()),
        });
    }
    builder
}
