//! The online registry in process memory, for standalone mode.

use parking_lot::Mutex;
use std::collections::HashMap;

/// The standalone store: user -> (entry -> expiry).
#[derive(Default)]
pub struct MemoryOnline {
    users: Mutex<HashMap<String, HashMap<String, u64>>>,
}

impl MemoryOnline {
    /// Adds an entry; whether the user had no live one, and the user's
    /// entries expiring after `open_after` (open, not in a grace period).
    pub fn enter(
        &self,
        user: &str,
        entry: &str,
        expiry: u64,
        now: u64,
        open_after: u64,
    ) -> super::Entered {
        let mut users = self.users.lock();
        let entries = users.entry(user.to_owned()).or_default();
        let first = !entries.values().any(|exp| *exp > now);
        entries.insert(entry.to_owned(), expiry);
        let open = entries.values().filter(|exp| **exp > open_after).count();
        super::Entered {
            first,
            open,
            gateways: gateways(entries, open_after),
        }
    }

    /// Gateways holding the user's open connections.
    pub fn gateways(&self, user: &str, open_after: u64) -> usize {
        let users = self.users.lock();
        users.get(user).map_or(0, |e| gateways(e, open_after))
    }

    /// Moves existing entries' expiry.
    pub fn expire_at(&self, entries: &[(String, String)], expiry: u64) {
        let mut users = self.users.lock();
        for (user, entry) in entries {
            if let Some(exp) = users.get_mut(user).and_then(|e| e.get_mut(entry)) {
                *exp = expiry;
            }
        }
    }

    /// Removes lapsed entries; the users left with none.
    pub fn sweep(&self, now: u64) -> Vec<String> {
        let mut users = self.users.lock();
        let mut gone = Vec::new();
        users.retain(|user, entries| {
            entries.retain(|_, exp| *exp > now);
            if entries.is_empty() {
                gone.push(user.clone());
                false
            } else {
                true
            }
        });
        gone.sort();
        gone
    }

    /// Whether each user is online.
    pub fn check(&self, users: &[String], now: u64) -> Vec<bool> {
        let map = self.users.lock();
        users
            .iter()
            .map(|u| map.get(u).is_some_and(|e| e.values().any(|exp| *exp > now)))
            .collect()
    }
}

/// Distinct gateways (the node part of `<user>\x1f<node>\x1f<conn>`) among
/// the entries expiring after `open_after`.
fn gateways(entries: &HashMap<String, u64>, open_after: u64) -> usize {
    let nodes: std::collections::HashSet<&str> = entries
        .iter()
        .filter(|(_, exp)| **exp > open_after)
        .filter_map(|(entry, _)| entry.split('\u{1f}').nth(1))
        .collect();
    nodes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn online_with_the_first_connection_offline_after_the_last_lapses() {
        let o = MemoryOnline::default();
        let first = o.enter("ada", "ada\u{1f}a\u{1f}1", 100, 0, 5);
        assert_eq!((first.first, first.open, first.gateways), (true, 1, 1));
        let second = o.enter("ada", "ada\u{1f}b\u{1f}2", 100, 0, 5);
        assert_eq!(
            (second.first, second.open, second.gateways),
            (false, 2, 2),
            "second tab, on gateway b"
        );
        assert_eq!(o.gateways("ada", 5), 2);
        assert!(o.enter("bob", "bob\u{1f}a\u{1f}3", 50, 0, 5).first);
        // Ada's first tab closes with a grace period; she is still online,
        // on one gateway.
        o.expire_at(&[("ada".into(), "ada\u{1f}a\u{1f}1".into())], 10);
        assert_eq!(o.gateways("ada", 15), 1, "the grace period is not open");
        assert!(o.sweep(20).is_empty());
        assert_eq!(
            o.check(&["ada".into(), "bob".into(), "cat".into()], 20),
            [true, true, false]
        );
        assert_eq!(o.sweep(60), ["bob"]);
        assert!(o.sweep(70).is_empty(), "reported once");
        assert_eq!(o.sweep(200), ["ada"]);
        assert!(
            o.enter("ada", "ada\u{1f}a\u{1f}9", 300, 200, 205).first,
            "back online"
        );
        // A closed connection in its grace period is not an open one.
        o.expire_at(&[("ada".into(), "ada\u{1f}a\u{1f}9".into())], 210);
        let back = o.enter("ada", "ada\u{1f}b\u{1f}10", 300, 200, 215);
        assert_eq!((back.first, back.open, back.gateways), (false, 1, 1));
    }
}
