//! Limits by client address: the rate of new connections per address,
//! and which proxies' `X-Forwarded-For` names the address.

use super::{Bucket, Rate};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;
use tokio::time::Instant;

/// New connections per client IP.
pub struct IpLimiter {
    rate: Rate,
    map: Mutex<HashMap<IpAddr, Bucket>>,
}

/// Entries kept before full (idle) buckets are swept.
const IP_SWEEP_AT: usize = 10_000;

impl IpLimiter {
    pub fn new(rate: Rate) -> Self {
        IpLimiter {
            rate,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Admits a new connection from `ip`, or says how long to wait.
    pub fn admit(&self, ip: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let mut map = self.map.lock();
        if map.len() >= IP_SWEEP_AT && !map.contains_key(&ip) {
            // A full bucket is the same as none: forget those.
            let rate = self.rate;
            map.retain(|_, b| !b.is_full(rate, now));
        }
        map.entry(ip)
            .or_insert_with(|| Bucket::full(self.rate, now))
            .take(self.rate, 1.0, now)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.lock().len()
    }
}

/// Proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrustedProxies(Vec<ipnet::IpNet>);

impl TrustedProxies {
    /// Parses a comma-separated list of addresses and CIDR blocks.
    pub fn parse(text: &str) -> Result<TrustedProxies, String> {
        text.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<ipnet::IpNet>()
                    .or_else(|_| p.parse::<IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| format!("{p:?} is not an IP address or CIDR block"))
            })
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: the peer's, unless the peer is a trusted
    /// proxy, in which case the nearest `X-Forwarded-For` entry that is not
    /// itself a trusted proxy (entries are appended by each proxy, so the
    /// rightmost untrusted one is the first the client could not forge).
    pub fn client_ip(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let Some(chain) = forwarded_for else {
            return peer;
        };
        let mut client = peer;
        for entry in chain.rsplit(',') {
            match entry.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !self.trusts(ip) {
                        break;
                    }
                }
                // Garbage: stop at the last address we could read.
                Err(_) => break,
            }
        }
        client
    }
}

#[cfg(test)]
// Test code: a failed unwrap is a failed test.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rate(per_sec: f64, burst: f64) -> Rate {
        Rate { per_sec, burst }
    }

    #[tokio::test(start_paused = true)]
    async fn ip_limits_are_per_address_and_idle_entries_are_swept() {
        let limiter = IpLimiter::new(rate(1.0, 2.0));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(limiter.admit(a).is_ok() && limiter.admit(a).is_ok());
        assert_eq!(limiter.admit(a), Err(Duration::from_secs(1)));
        assert!(limiter.admit(b).is_ok());
        for i in 0..IP_SWEEP_AT as u32 {
            let _ = limiter.admit(IpAddr::from(i.to_be_bytes()));
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        let _ = limiter.admit("198.51.100.1".parse().unwrap());
        assert!(limiter.len() < 10, "{}", limiter.len());
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let t = TrustedProxies::parse("10.0.0.0/8, 127.0.0.1").unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // From a trusted proxy: the rightmost untrusted entry.
        assert_eq!(
            t.client_ip(ip("127.0.0.1"), Some("203.0.113.9, 198.51.100.7, 10.1.2.3")),
            ip("198.51.100.7")
        );
        assert_eq!(t.client_ip(ip("127.0.0.1"), None), ip("127.0.0.1"));
        assert_eq!(t.client_ip(ip("127.0.0.1"), Some("junk")), ip("127.0.0.1"));
        // From anyone else the header is ignored.
        assert_eq!(
            t.client_ip(ip("198.51.100.7"), Some("203.0.113.9")),
            ip("198.51.100.7")
        );
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert_eq!(TrustedProxies::parse(""), Ok(TrustedProxies::default()));
    }
}
