//! Writes gathered together: many callers each add one item (a leaving
//! connection's presence or online entry) and wait until a write that
//! includes it has finished. While one write runs, the items added
//! meanwhile wait and go together in the next; when nothing else is
//! happening an item is written at once, alone. No timer and no task: the
//! first caller to find no write running writes everything pending.
//!
//! A mass disconnect (a load balancer restarting, a network dropping tens
//! of thousands of clients) then costs Redis a few hundred calls instead
//! of one per connection, which had exhausted the pool and timed out.

use parking_lot::Mutex;
use std::future::Future;
use tokio::sync::watch;

/// Items per write; more are written in several, one after another. Also
/// the entries presence and the online registry refresh per Redis round
/// trip: one bound for every batched Redis write of per-connection entries.
pub(crate) const CHUNK: usize = 500;

pub(crate) struct Gather<T> {
    state: Mutex<State<T>>,
    /// The last generation whose write finished.
    finished: watch::Sender<u64>,
}

struct State<T> {
    pending: Vec<T>,
    /// The generation the pending items will be written in.
    next: u64,
    /// Whether a caller is writing now.
    writing: bool,
}

impl<T> Default for Gather<T> {
    fn default() -> Self {
        Gather {
            state: Mutex::new(State {
                pending: Vec::new(),
                next: 1,
                writing: false,
            }),
            finished: watch::Sender::new(0),
        }
    }
}

impl<T: Clone> Gather<T> {
    /// Adds `item` and returns once a write that included it finished
    /// (whether it succeeded is the writer's to report). `write` is called
    /// with up to [`CHUNK`] items at a time, by whichever caller writes.
    pub(crate) async fn add<F, Fut>(&self, item: T, write: F)
    where
        F: Fn(Vec<T>) -> Fut,
        Fut: Future<Output = ()>,
    {
        let mut finished = self.finished.subscribe();
        let mine = {
            let mut st = self.state.lock();
            st.pending.push(item);
            st.next
        };
        loop {
            let batch = {
                let mut st = self.state.lock();
                if *finished.borrow_and_update() >= mine {
                    return;
                }
                if st.writing {
                    None
                } else {
                    st.writing = true;
                    let generation = st.next;
                    st.next += 1;
                    Some((std::mem::take(&mut st.pending), generation))
                }
            };
            match batch {
                Some((items, generation)) => self.write_all(items, generation, &write).await,
                // Another caller is writing: wait for its write to finish,
                // then look again (it may have been this item's).
                None => {
                    if finished.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// Writes one generation's items, chunk by chunk; if this future is
    /// dropped midway, the unwritten items go back to be written next.
    async fn write_all<F, Fut>(&self, items: Vec<T>, generation: u64, write: &F)
    where
        F: Fn(Vec<T>) -> Fut,
        Fut: Future<Output = ()>,
    {
        let mut guard = Writing {
            gather: self,
            left: items,
            generation,
            done: false,
        };
        while !guard.left.is_empty() {
            // Kept until written, so a write dropped midway hands it back.
            let n = guard.left.len().min(CHUNK);
            write(guard.left[..n].to_vec()).await;
            guard.left.drain(..n);
        }
        guard.done = true;
    }
}

/// Ends a write: marks its generation finished, or, if the write was
/// dropped before the end, hands its unwritten items back.
struct Writing<'a, T> {
    gather: &'a Gather<T>,
    left: Vec<T>,
    generation: u64,
    done: bool,
}

impl<T> Drop for Writing<'_, T> {
    fn drop(&mut self) {
        // Under the lock, so no caller sees the write over but not yet
        // marked finished.
        let mut st = self.gather.state.lock();
        st.writing = false;
        if self.done {
            self.gather.finished.send_replace(self.generation);
        } else {
            // Not finished: its items wait for the next write, which a
            // waiting caller, woken here, starts.
            st.pending.append(&mut self.left);
            self.gather.finished.send_modify(|_| {});
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::sync::Notify;

    #[tokio::test]
    async fn alone_an_item_is_written_at_once() {
        let g = Gather::default();
        let written = Mutex::new(Vec::new());
        g.add(1, |b: Vec<i32>| {
            written.lock().push(b);
            async {}
        })
        .await;
        assert_eq!(*written.lock(), vec![vec![1]]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn items_added_during_a_write_go_together_in_the_next() {
        let g = Arc::new(Gather::default());
        let written = Arc::new(Mutex::new(Vec::new()));
        let release = Arc::new(Notify::new());
        let write = {
            let (written, release) = (written.clone(), release.clone());
            move |b: Vec<i32>| {
                let first = written.lock().is_empty();
                written.lock().push(b);
                let release = release.clone();
                async move {
                    // The first write is held until the others have queued.
                    if first {
                        release.notified().await;
                    }
                }
            }
        };
        let first = tokio::spawn({
            let (g, write) = (g.clone(), write.clone());
            async move { g.add(0, write).await }
        });
        testkit::eventually(
            Duration::from_secs(5),
            "the first write started",
            || async { !written.lock().is_empty() },
        )
        .await;
        let others: Vec<_> = (1..=100)
            .map(|i| {
                let (g, write) = (g.clone(), write.clone());
                tokio::spawn(async move { g.add(i, write).await })
            })
            .collect();
        testkit::eventually(Duration::from_secs(5), "all queued", || async {
            g.state.lock().pending.len() == 100
        })
        .await;
        assert!(
            !others.iter().any(|t| t.is_finished()),
            "returned before written"
        );
        release.notify_one();
        first.await.expect("first caller");
        for t in others {
            t.await.expect("caller");
        }
        let written = written.lock();
        assert_eq!(written.len(), 2, "{written:?}");
        assert_eq!(written[0], vec![0]);
        let mut second = written[1].clone();
        second.sort_unstable();
        assert_eq!(second, (1..=100).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn large_batches_are_written_in_chunks() {
        let g = Gather::default();
        g.state.lock().pending.extend(0..(CHUNK as i32 * 2));
        let sizes = Mutex::new(Vec::new());
        g.add(-1, |b: Vec<i32>| {
            sizes.lock().push(b.len());
            async {}
        })
        .await;
        assert_eq!(*sizes.lock(), vec![CHUNK, CHUNK, 1]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writer_dropped_midway_hands_its_items_on() {
        let g = Arc::new(Gather::default());
        let started = Arc::new(Notify::new());
        // This writer never finishes; it is cancelled.
        let stuck = tokio::spawn({
            let (g, started) = (g.clone(), started.clone());
            async move {
                g.add(1, |_b: Vec<i32>| {
                    started.notify_one();
                    std::future::pending::<()>()
                })
                .await
            }
        });
        started.notified().await;
        let written = Arc::new(Mutex::new(Vec::new()));
        let waiting = tokio::spawn({
            let (g, written) = (g.clone(), written.clone());
            async move {
                g.add(2, |b: Vec<i32>| {
                    written.lock().extend(b);
                    async {}
                })
                .await
            }
        });
        stuck.abort();
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the waiting caller wrote")
            .expect("caller");
        let mut got = written.lock().clone();
        got.sort_unstable();
        assert_eq!(got, vec![1, 2], "the dropped write's item too");
    }
}
