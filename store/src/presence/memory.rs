//! Presence in process memory, for standalone mode.

use super::{EntryInfo, fold, user_of};
use parking_lot::Mutex;
use shared::CanvasId;
use shared::protocol::PresentUser;
use std::collections::HashMap;

/// A canvas's entries (expiry and details by entry name) and how many
/// each user has, as on Redis.
#[derive(Default)]
struct Entries {
    entries: HashMap<String, (u64, EntryInfo)>,
    users: HashMap<String, usize>,
}

/// The standalone store.
#[derive(Default)]
pub struct MemoryPresence {
    canvases: Mutex<HashMap<CanvasId, Entries>>,
}

impl MemoryPresence {
    pub fn enter(
        &self,
        canvas: &CanvasId,
        entry: &str,
        info: EntryInfo,
        expiry: u64,
        now: u64,
    ) -> (bool, usize) {
        let mut map = self.canvases.lock();
        let canvas = map.entry(canvas.clone()).or_default();
        let known = canvas
            .entries
            .insert(entry.to_owned(), (expiry, info))
            .is_some();
        let mut first = false;
        if !known {
            let n = canvas
                .users
                .entry(user_of(entry).unwrap_or_default().to_owned())
                .or_default();
            *n += 1;
            first = *n == 1;
        }
        let live = canvas
            .entries
            .values()
            .filter(|(exp, _)| *exp > now)
            .count();
        (first, live)
    }

    /// Sets an existing entry's expiry.
    pub fn expire_at(&self, canvas: &CanvasId, entry: &str, expiry: u64) {
        if let Some((exp, _)) = self
            .canvases
            .lock()
            .get_mut(canvas)
            .and_then(|m| m.entries.get_mut(entry))
        {
            *exp = expiry;
        }
    }

    pub fn sweep(&self, canvas: &CanvasId, now: u64) -> (Vec<String>, usize) {
        let mut map = self.canvases.lock();
        let Some(state) = map.get_mut(canvas) else {
            return (Vec::new(), 0);
        };
        let dead: Vec<String> = state
            .entries
            .iter()
            .filter(|(_, (exp, _))| *exp <= now)
            .map(|(e, _)| e.clone())
            .collect();
        let mut left = Vec::new();
        for e in &dead {
            state.entries.remove(e);
            let Some(user) = user_of(e) else { continue };
            if let Some(n) = state.users.get_mut(user) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    state.users.remove(user);
                    left.push(user.to_owned());
                }
            }
        }
        left.sort();
        let live = state.entries.len();
        if state.entries.is_empty() {
            map.remove(canvas);
        }
        (left, live)
    }

    pub fn list(&self, canvas: &CanvasId, now: u64, gm: bool) -> Vec<PresentUser> {
        let map = self.canvases.lock();
        let Some(state) = map.get(canvas) else {
            return Vec::new();
        };
        fold(
            state
                .entries
                .iter()
                .filter(|(_, (exp, _))| *exp > now)
                .map(|(e, (_, info))| (e.as_str(), info.clone())),
            gm,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presence::entry;
    use shared::auth::Role;

    fn info(since: u64, role: Role) -> EntryInfo {
        EntryInfo {
            name: Some(format!("n{since}")),
            role,
            since,
            activity: None,
            gm_only: false,
        }
    }

    #[test]
    fn a_user_arrives_once_and_leaves_with_its_last_entry() {
        let p = MemoryPresence::default();
        let c = CanvasId::new("c").expect("id");
        let (a1, a2) = (entry("ada", "gw1", 1), entry("ada", "gw2", 7));
        assert_eq!(p.enter(&c, &a1, info(10, Role::Player), 1000, 0), (true, 1));
        assert_eq!(
            p.enter(&c, &a2, info(20, Role::Player), 1000, 0),
            (false, 2),
            "second tab"
        );
        assert!(
            p.enter(&c, &entry("bob", "gw1", 2), info(15, Role::Gm), 1000, 0)
                .0
        );
        let list = p.list(&c, 5, true);
        assert_eq!(list.len(), 2);
        assert_eq!(
            (list[0].id.as_str(), list[0].connections, list[0].since),
            ("ada", 2, 10)
        );
        assert_eq!(list[1].role, Role::Gm);
        // One of ada's entries expires: she is still there.
        p.expire_at(&c, &a1, 50);
        assert_eq!(p.sweep(&c, 60), (Vec::new(), 2));
        assert_eq!(p.list(&c, 60, true)[0].connections, 1);
        // Expired entries are not listed even before a sweep.
        assert!(p.list(&c, 1000, true).is_empty());
        assert_eq!(
            p.sweep(&c, 1000),
            (vec!["ada".to_owned(), "bob".to_owned()], 0)
        );
        assert!(
            p.sweep(&c, 2000).0.is_empty(),
            "each departure is reported once"
        );
        // A user with an expired entry arriving again is new.
        assert!(p.enter(&c, &a1, info(3000, Role::Player), 4000, 3000).0);
    }

    #[test]
    fn users_whose_ids_share_a_prefix_are_told_apart() {
        let p = MemoryPresence::default();
        let c = CanvasId::new("c").expect("id");
        assert!(
            p.enter(&c, &entry("ad", "g", 1), info(1, Role::Player), 100, 0)
                .0
        );
        assert!(
            p.enter(&c, &entry("ada", "g", 2), info(1, Role::Player), 100, 0)
                .0
        );
        assert_eq!(p.list(&c, 0, true).len(), 2);
    }
}
