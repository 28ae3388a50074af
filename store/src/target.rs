//! Where Redis is and how to trust it: `redis://` is plain TCP, `rediss://`
//! is TLS (rustls) with the server's certificate and host name verified
//! against a given CA, or the system's trust store when none is given.

use redis::{Client, RedisError, TlsCertificates};

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
