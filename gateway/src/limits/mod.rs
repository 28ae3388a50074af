//! Rate limits: token buckets per connection and per user for each class of
//! operation, a per-IP limit on new connections, and a per-user cap on
//! connections to this gateway.
//!
//! A bucket holds up to `burst` tokens and refills at `per_sec`; an
//! operation costs tokens (one per pixel for draws, one per message
//! otherwise). An operation the bucket cannot pay for is refused with E004
//! and told how long until it could be paid (`retry_after_ms`); nothing is
//! taken from a bucket for a refused operation.

mod address;

pub use address::{IpLimiter, TrustedProxies};

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// A refill rate and capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_sec: f64,
    pub burst: f64,
}

impl Rate {
    /// Parses `RATE/s:BURST` (e.g. `600/s:1200`); `RATE/s` alone has a
    /// burst of one second's worth.
    pub fn parse(text: &str) -> Result<Rate, String> {
        let (rate, burst) = match text.split_once(':') {
            Some((r, b)) => (r, Some(b)),
            None => (text, None),
        };
        let per_sec: f64 = rate
            .trim()
            .strip_suffix("/s")
            .ok_or_else(|| format!("{text:?}: expected RATE/s or RATE/s:BURST, e.g. 600/s:1200"))?
            .trim()
            .parse()
            .map_err(|_| format!("{text:?}: the rate is not a number"))?;
        let burst: f64 = match burst {
            Some(b) => b
                .trim()
                .parse()
                .map_err(|_| format!("{text:?}: the burst is not a number"))?,
            None => per_sec,
        };
        if !(per_sec.is_finite() && per_sec > 0.0) {
            return Err(format!("{text:?}: the rate must be above 0"));
        }
        if !(burst.is_finite() && burst >= 1.0) {
            return Err(format!("{text:?}: the burst must be at least 1"));
        }
        Ok(Rate { per_sec, burst })
    }
}

/// Classes of operation, each with its own buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpClass {
    /// `draw`, costing one token per pixel.
    Pixels = 0,
    Chat = 1,
    Cursors = 2,
    /// Object operations (create, update, move, delete, like) and clear.
    Objects = 3,
}

impl OpClass {
    pub const ALL: [OpClass; 4] = [
        OpClass::Pixels,
        OpClass::Chat,
        OpClass::Cursors,
        OpClass::Objects,
    ];

    /// The name in settings and the metric label.
    pub fn name(self) -> &'static str {
        match self {
            OpClass::Pixels => "pixels",
            OpClass::Chat => "chat",
            OpClass::Cursors => "cursors",
            OpClass::Objects => "objects",
        }
    }
}

/// One rate per operation class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassRates(pub [Rate; 4]);

const fn rate(per_sec: f64, burst: f64) -> Rate {
    Rate { per_sec, burst }
}

impl ClassRates {
    /// Per connection, when EASEL_RATE_LIMITS does not name a class.
    pub const CONNECTION_DEFAULTS: ClassRates = ClassRates([
        rate(1000.0, 2000.0),
        rate(5.0, 20.0),
        rate(300.0, 300.0),
        rate(30.0, 60.0),
    ]);
    /// Per user, when EASEL_USER_RATE_LIMITS does not name a class.
    pub const USER_DEFAULTS: ClassRates = ClassRates([
        rate(2000.0, 4000.0),
        rate(10.0, 30.0),
        rate(600.0, 600.0),
        rate(60.0, 120.0),
    ]);

    /// Parses `pixels=600/s:1200,chat=5/s:10,cursors=300/s:300`; classes
    /// not named keep their rate from `defaults`.
    pub fn parse(text: &str, defaults: ClassRates) -> Result<ClassRates, String> {
        let mut rates = defaults;
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, rate) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected CLASS=RATE/s:BURST"))?;
            let class = OpClass::ALL
                .into_iter()
                .find(|c| c.name() == name.trim())
                .ok_or_else(|| format!("{name:?}: not a class (pixels, chat, cursors, objects)"))?;
            rates.0[class as usize] = Rate::parse(rate)?;
        }
        Ok(rates)
    }

    pub fn get(&self, class: OpClass) -> Rate {
        self.0[class as usize]
    }
}

/// A token bucket; its rate is kept by the owner.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub fn full(rate: Rate, now: Instant) -> Self {
        Bucket {
            tokens: rate.burst,
            at: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_sec).min(rate.burst);
        self.at = now;
    }

    /// `Ok` if `cost` tokens are there now, else how long until they are.
    /// A full bucket admits any cost (going into debt that refilling pays
    /// off), so an operation larger than a shared bucket's burst still
    /// passes at the bucket's average rate.
    pub fn check(&mut self, rate: Rate, cost: f64, now: Instant) -> Result<(), Duration> {
        self.refill(rate, now);
        if self.tokens >= cost || self.tokens >= rate.burst {
            Ok(())
        } else {
            Err(Duration::from_secs_f64((cost - self.tokens) / rate.per_sec))
        }
    }

    /// Takes `cost` tokens if they are there (see [`Bucket::check`]).
    pub fn take(&mut self, rate: Rate, cost: f64, now: Instant) -> Result<(), Duration> {
        self.check(rate, cost, now)?;
        self.tokens -= cost;
        Ok(())
    }

    /// Whether the bucket is full again, i.e. indistinguishable from a new one.
    fn is_full(&mut self, rate: Rate, now: Instant) -> bool {
        self.refill(rate, now);
        self.tokens >= rate.burst
    }
}

/// One user's shared buckets on this gateway, held by each of its
/// connections.
pub struct UserLimits {
    buckets: Mutex<[Bucket; 4]>,
    /// How many gateways hold the user's open connections: this gateway
    /// allows 1/N of each rate and burst, so the user's connections spread
    /// over N gateways together get the user's limits (`crate::spread`).
    spread: AtomicUsize,
    /// Canvases this user may still create by using them.
    creations: Mutex<Bucket>,
    /// This user's connections on this gateway.
    connections: Mutex<usize>,
}

/// Users with connections on this gateway.
pub struct Users {
    rates: ClassRates,
    /// Canvases created by use (auto-creation), per user.
    create_rate: Rate,
    max_connections: usize,
    map: Mutex<HashMap<String, Arc<UserLimits>>>,
}

/// A connection's registration with its user's limits; leaving releases it.
pub struct UserSlot {
    users: Arc<Users>,
    user: String,
    pub limits: Arc<UserLimits>,
}

impl Users {
    pub fn new(rates: ClassRates, create_rate: Rate, max_connections: usize) -> Arc<Users> {
        Arc::new(Users {
            rates,
            create_rate,
            max_connections,
            map: Mutex::new(HashMap::new()),
        })
    }

    /// Registers a connection of `user`; `None` when the user already has
    /// the most connections allowed on this gateway.
    pub fn enter(self: &Arc<Self>, user: &str) -> Option<UserSlot> {
        let mut map = self.map.lock();
        let limits = self.entry(&mut map, user);
        let mut n = limits.connections.lock();
        if *n >= self.max_connections {
            return None;
        }
        *n += 1;
        drop(n);
        Some(UserSlot {
            users: self.clone(),
            user: user.to_owned(),
            limits,
        })
    }

    /// Users with connections here.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.lock().len()
    }
}

/// Users kept before idle ones (no connection, full buckets) are swept.
const USER_SWEEP_AT: usize = 10_000;

impl UserLimits {
    /// No connection and every bucket full: the same as a new entry.
    fn is_idle(&self, rates: &ClassRates, create_rate: Rate, now: Instant) -> bool {
        *self.connections.lock() == 0
            && self.creations.lock().is_full(create_rate, now)
            && self
                .buckets
                .lock()
                .iter_mut()
                .zip(rates.0)
                .all(|(b, r)| b.is_full(self.share(r), now))
    }
}

impl Users {
    /// A user's shared buckets for requests without a connection (REST):
    /// the same buckets its connections pay from.
    pub fn limits(&self, user: &str) -> Arc<UserLimits> {
        let mut map = self.map.lock();
        self.entry(&mut map, user)
    }

    /// The user's entry, made if missing (sweeping idle ones first when
    /// the map has grown).
    fn entry(&self, map: &mut HashMap<String, Arc<UserLimits>>, user: &str) -> Arc<UserLimits> {
        if map.len() >= USER_SWEEP_AT && !map.contains_key(user) {
            let now = Instant::now();
            map.retain(|_, u| !u.is_idle(&self.rates, self.create_rate, now));
        }
        map.entry(user.to_owned())
            .or_insert_with(|| {
                let now = Instant::now();
                Arc::new(UserLimits {
                    buckets: Mutex::new(self.rates.0.map(|r| Bucket::full(r, now))),
                    spread: AtomicUsize::new(1),
                    creations: Mutex::new(Bucket::full(self.create_rate, now)),
                    connections: Mutex::new(0),
                })
            })
            .clone()
    }
}

impl UserLimits {
    /// Pays `cost` from the user's bucket of `class` at its share of
    /// `rates`, or says how long until it could.
    pub fn take(&self, rates: &ClassRates, class: OpClass, cost: f64) -> Result<(), Duration> {
        let rate = self.share(rates.get(class));
        self.buckets.lock()[class as usize].take(rate, cost, Instant::now())
    }

    /// This gateway's part of the user's `rate`: 1/N of it over N gateways.
    fn share(&self, rate: Rate) -> Rate {
        let n = self.spread.load(Ordering::Relaxed).max(1) as f64;
        Rate {
            per_sec: rate.per_sec / n,
            burst: rate.burst / n,
        }
    }

    /// How many gateways hold the user's connections, as last learned.
    pub fn spread(&self) -> usize {
        self.spread.load(Ordering::Relaxed).max(1)
    }

    /// Learns how many gateways hold the user's connections (at least 1:
    /// this one serves the user); returns the number it replaces.
    pub fn set_spread(&self, gateways: usize) -> usize {
        self.spread.swap(gateways.max(1), Ordering::Relaxed).max(1)
    }

    /// This user's open connections on this gateway.
    pub fn connections(&self) -> usize {
        *self.connections.lock()
    }

    /// Pays for one canvas created by use at `rate`, or says how long
    /// until it could.
    pub fn take_creation(&self, rate: Rate) -> Result<(), Duration> {
        self.creations.lock().take(rate, 1.0, Instant::now())
    }
}

impl UserSlot {
    /// The user this slot belongs to.
    pub fn user(&self) -> &str {
        &self.user
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut map = self.users.map.lock();
        *self.limits.connections.lock() -= 1;
        // A user who drained a bucket keeps it past its last connection, so
        // reconnecting does not refill it; it goes once full again.
        if self
            .limits
            .is_idle(&self.users.rates, self.users.create_rate, Instant::now())
        {
            map.remove(&self.user);
        }
    }
}

/// Why an operation was refused.
pub struct Refused {
    pub retry_after: Duration,
    /// Whether the user's shared bucket (not the connection's) refused.
    pub by_user: bool,
}

/// A connection's own buckets, checked together with its user's. The
/// rates live in the settings, not here: this is per-connection memory.
pub struct ConnLimits {
    buckets: [Bucket; 4],
    /// Refusals in the current abuse window, and when it began.
    refusals: u32,
    window_start: Instant,
}

/// The window over which refusals are counted for the abuse limit.
pub const ABUSE_WINDOW: Duration = Duration::from_secs(10);

impl ConnLimits {
    pub fn new(rates: &ClassRates) -> Self {
        let now = Instant::now();
        ConnLimits {
            buckets: rates.0.map(|r| Bucket::full(r, now)),
            refusals: 0,
            window_start: now,
        }
    }

    /// Pays for an operation from the connection's buckets (at `rates`) and
    /// the user's (at `user_rates`), or takes nothing and says how long to
    /// wait.
    pub fn take(
        &mut self,
        (rates, user_rates): (&ClassRates, &ClassRates),
        user: &UserLimits,
        class: OpClass,
        cost: f64,
    ) -> Result<(), Refused> {
        let now = Instant::now();
        let i = class as usize;
        let own = &mut self.buckets[i];
        if let Err(wait) = own.check(rates.0[i], cost, now) {
            return Err(Refused {
                retry_after: wait,
                by_user: false,
            });
        }
        if let Err(wait) = user.buckets.lock()[i].take(user.share(user_rates.0[i]), cost, now) {
            return Err(Refused {
                retry_after: wait,
                by_user: true,
            });
        }
        let _paid = own.take(rates.0[i], cost, now);
        Ok(())
    }

    /// Counts a refusal; true once more than `limit` fell in one window
    /// (the connection should be closed). A limit of 0 never closes.
    pub fn refused(&mut self, limit: u32) -> bool {
        let now = Instant::now();
        if now.duration_since(self.window_start) >= ABUSE_WINDOW {
            self.window_start = now;
            self.refusals = 0;
        }
        self.refusals += 1;
        limit > 0 && self.refusals > limit
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

    #[test]
    fn rates_parse_with_and_without_a_burst_and_bad_ones_say_why() {
        assert_eq!(Rate::parse("600/s:1200"), Ok(rate(600.0, 1200.0)));
        assert_eq!(Rate::parse(" 2.5/s "), Ok(rate(2.5, 2.5)));
        for bad in ["600", "x/s", "5/s:y", "0/s", "5/s:0", "-1/s:3", "inf/s"] {
            assert!(Rate::parse(bad).is_err(), "{bad}");
        }
        let defaults = ClassRates([rate(1.0, 1.0); 4]);
        let r = ClassRates::parse("chat=5/s:10, cursors=300/s", defaults).unwrap();
        assert_eq!(r.get(OpClass::Pixels), rate(1.0, 1.0));
        assert_eq!(r.get(OpClass::Chat), rate(5.0, 10.0));
        assert_eq!(r.get(OpClass::Cursors), rate(300.0, 300.0));
        let r = ClassRates::parse("objects=2/s", defaults).unwrap();
        assert_eq!(r.get(OpClass::Objects), rate(2.0, 2.0));
        assert!(ClassRates::parse("bogus=1/s", defaults).is_err());
        assert!(ClassRates::parse("chat", defaults).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn buckets_refill_over_time_and_say_how_long_to_wait() {
        let r = rate(10.0, 5.0);
        let mut b = Bucket::full(r, Instant::now());
        for _ in 0..5 {
            assert!(b.take(r, 1.0, Instant::now()).is_ok());
        }
        let wait = b.take(r, 2.0, Instant::now()).unwrap_err();
        assert_eq!(wait, Duration::from_millis(200));
        // A refused take took nothing.
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(b.take(r, 1.0, Instant::now()).is_ok());
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(b.take(r, 5.0, Instant::now()).is_ok());
        assert!(b.take(r, 0.5, Instant::now()).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_users_connections_share_its_bucket_and_its_cap() {
        let users = Users::new(ClassRates([rate(1.0, 3.0); 4]), rate(1.0, 1.0), 2);
        let own = ClassRates([rate(100.0, 100.0); 4]);
        let user_rates = ClassRates([rate(1.0, 3.0); 4]);
        let r = (&own, &user_rates);
        let a = users.enter("u").unwrap();
        let b = users.enter("u").unwrap();
        assert!(users.enter("u").is_none(), "third connection over the cap");
        let _v = users.enter("v").unwrap();
        let (mut ca, mut cb) = (ConnLimits::new(&own), ConnLimits::new(&own));
        assert!(ca.take(r, &a.limits, OpClass::Chat, 2.0).is_ok());
        assert!(cb.take(r, &b.limits, OpClass::Chat, 1.0).is_ok());
        let refused = cb.take(r, &b.limits, OpClass::Chat, 1.0).err().unwrap();
        assert!(refused.by_user);
        assert_eq!(refused.retry_after, Duration::from_secs(1));
        // Other classes have their own buckets.
        assert!(cb.take(r, &b.limits, OpClass::Pixels, 3.0).is_ok());
        // The connection's own bucket refuses first when it is the smaller.
        let tight = ClassRates([rate(1.0, 1.0); 4]);
        let mut cc = ConnLimits::new(&tight);
        let c = users.enter("w").unwrap();
        assert!(
            cc.take((&tight, &user_rates), &c.limits, OpClass::Chat, 1.0)
                .is_ok()
        );
        let refused = cc
            .take((&tight, &user_rates), &c.limits, OpClass::Chat, 1.0)
            .err()
            .unwrap();
        assert!(!refused.by_user);
        drop(a);
        assert!(users.enter("u").is_some(), "a slot was freed");
        drop(b);
        drop(c);
        // u and w spent chat tokens: their entries stay (with v's), so
        // reconnecting gains nothing.
        assert_eq!(users.len(), 3, "{}", users.len());
        let again = users.enter("u").unwrap();
        let mut fresh = ConnLimits::new(&own);
        assert!(
            fresh.take(r, &again.limits, OpClass::Chat, 1.0).is_err(),
            "a reconnect must not refill the user's bucket"
        );
        drop(again);
        // Once the buckets are full again the entries go.
        tokio::time::advance(Duration::from_secs(10)).await;
        let _x = users.enter("x").unwrap();
        let now = Instant::now();
        users
            .map
            .lock()
            .retain(|_, u| !u.is_idle(&users.rates, users.create_rate, now));
        assert_eq!(users.len(), 2, "v and x remain");
    }

    #[tokio::test(start_paused = true)]
    async fn abuse_is_counted_per_window() {
        let own = ClassRates([rate(1.0, 1.0); 4]);
        let mut c = ConnLimits::new(&own);
        for _ in 0..3 {
            assert!(!c.refused(3));
        }
        assert!(c.refused(3));
        tokio::time::advance(ABUSE_WINDOW).await;
        assert!(!c.refused(3), "a new window starts from zero");
        assert!(!c.refused(0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_user_spread_over_gateways_gets_a_share_and_a_full_bucket_admits_any_cost() {
        let users = Users::new(ClassRates([rate(10.0, 10.0); 4]), rate(1.0, 1.0), 16);
        let slot = users.enter("u").unwrap();
        let user = &slot.limits;
        let rates = ClassRates([rate(10.0, 10.0); 4]);
        assert_eq!(user.set_spread(2), 1);
        assert_eq!(user.spread(), 2);
        // Half the burst here.
        for _ in 0..5 {
            assert!(user.take(&rates, OpClass::Chat, 1.0).is_ok());
        }
        let wait = user.take(&rates, OpClass::Chat, 1.0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(200), "at half the rate");
        // Whole again: a full bucket of 10 admits a cost of 25 once, and
        // the debt is paid off at the rate.
        user.set_spread(1);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(user.take(&rates, OpClass::Chat, 25.0).is_ok());
        let wait = user.take(&rates, OpClass::Chat, 1.0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(1600));
    }
}
