//! A connection's bounded outbound queue.
//!
//! Many producers (the hub, the connection's own reader) offer frames
//! without waiting; one consumer (the connection's writer) takes them. Unlike
//! tokio's mpsc, which allocates a block of 32 slots per channel up front,
//! this holds no heap memory while empty beyond a few spare slots, which
//! matters at tens of thousands of mostly idle connections.
//!
//! It is bounded twice: in frames, and in the bytes they hold, so that a
//! client that asks for large replies and never reads cannot make the
//! gateway hold more than the byte bound for it. A frame is refused when
//! either bound would be passed, except into an empty queue: one frame is
//! always admitted (replies are bounded by their own size limits).

use parking_lot::Mutex;
use std::collections::VecDeque;
use tokio::sync::Notify;
use tungstenite::Message;

/// Spare capacity kept when the queue drains; more is released.
const KEEP_SLOTS: usize = 16;

/// A queued frame and, for a live event, when its origin gateway took it
/// in (microseconds since the Unix epoch; 0 for anything else), so the
/// writer can measure end-to-end fan-out latency.
pub type Stamped = (Message, u64);

/// See the module documentation.
#[derive(Debug)]
pub struct Outbound {
    frames: Mutex<Queued>,
    /// Signalled when a frame is offered (the writer waits on it).
    ready: Notify,
    /// Signalled when a frame is taken (a replay waits on it).
    space: Notify,
    capacity: usize,
    /// The most payload bytes the queued frames may hold.
    max_bytes: usize,
}

/// The frames and the payload bytes they hold.
#[derive(Debug, Default)]
struct Queued {
    frames: VecDeque<Stamped>,
    bytes: usize,
}

/// The queue was full; the frame is handed back.
#[derive(Debug)]
pub struct Full(pub Message);

impl Outbound {
    /// A queue that holds at most `capacity` frames, of any size.
    pub fn new(capacity: usize) -> Self {
        Outbound::bounded(capacity, usize::MAX)
    }

    /// A queue that holds at most `capacity` frames and `max_bytes` bytes
    /// of payload (one frame of any size when it is empty).
    pub fn bounded(capacity: usize, max_bytes: usize) -> Self {
        Outbound {
            frames: Mutex::new(Queued::default()),
            ready: Notify::new(),
            space: Notify::new(),
            capacity: capacity.max(1),
            max_bytes,
        }
    }

    /// Queues a frame unless the queue is full.
    pub fn offer(&self, frame: Message) -> Result<(), Full> {
        self.offer_at(frame, 0)
    }

    /// Queues a live event's frame, ingested at `ingest_us` on its origin
    /// gateway, unless the queue is full.
    pub fn offer_at(&self, frame: Message, ingest_us: u64) -> Result<(), Full> {
        {
            let mut q = self.frames.lock();
            let size = frame.len();
            let over_bytes = q.bytes.saturating_add(size) > self.max_bytes;
            if q.frames.len() >= self.capacity || (over_bytes && !q.frames.is_empty()) {
                return Err(Full(frame));
            }
            q.bytes += size;
            q.frames.push_back((frame, ingest_us));
        }
        self.ready.notify_one();
        Ok(())
    }

    /// Queues a frame, waiting for room. Only for a connection's own bulk
    /// output (a resume replay), never for fan-out: the hub must not wait.
    pub async fn offer_wait(&self, frame: Message, ingest_us: u64) {
        let mut frame = frame;
        loop {
            match self.offer_at(frame, ingest_us) {
                Ok(()) => return,
                Err(Full(back)) => frame = back,
            }
            // notify_one keeps a permit, so a take between offer and here
            // is not missed; a stale permit only costs one more try.
            self.space.notified().await;
        }
    }

    /// Takes the next frame if there is one.
    pub fn try_take(&self) -> Option<Message> {
        self.try_take_stamped().map(|(frame, _)| frame)
    }

    /// Takes the next frame, with its ingest stamp, if there is one.
    pub fn try_take_stamped(&self) -> Option<Stamped> {
        let frame = {
            let mut q = self.frames.lock();
            let frame = q.frames.pop_front();
            if let Some((f, _)) = &frame {
                q.bytes -= f.len();
            }
            if q.frames.is_empty() && q.frames.capacity() > KEEP_SLOTS {
                q.frames.shrink_to(KEEP_SLOTS);
            }
            frame
        };
        if frame.is_some() {
            self.space.notify_one();
        }
        frame
    }

    /// Waits for the next frame. Only one task may take from a queue.
    ///
    /// Cancel-safe: a frame is only removed when this returns it.
    pub async fn take(&self) -> Stamped {
        loop {
            if let Some(frame) = self.try_take_stamped() {
                return frame;
            }
            // notify_one stores a permit when nobody waits, so a frame
            // offered between try_take and here is not missed.
            self.ready.notified().await;
        }
    }

    /// The most frames it holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.frames.lock().frames.len()
    }

    /// Payload bytes waiting.
    pub fn bytes(&self) -> usize {
        self.frames.lock().bytes
    }

    /// Whether no frame is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn text(s: &str) -> Message {
        Message::Text(s.to_owned().into())
    }

    #[test]
    fn bounded_and_in_order() {
        let q = Outbound::new(2);
        assert!(q.offer(text("a")).is_ok());
        assert!(q.offer(text("b")).is_ok());
        assert!(matches!(q.offer(text("c")), Err(Full(m)) if m == text("c")));
        assert_eq!(q.try_take(), Some(text("a")));
        assert!(q.offer(text("c")).is_ok());
        assert_eq!(q.try_take(), Some(text("b")));
        assert_eq!(q.try_take(), Some(text("c")));
        assert_eq!(q.try_take(), None);
    }

    #[test]
    fn bounded_in_bytes_too_but_always_one_frame() {
        let q = Outbound::bounded(100, 10);
        assert!(
            q.offer(text("0123456789abcdef")).is_ok(),
            "one frame always fits"
        );
        assert!(q.offer(text("x")).is_err(), "over the bytes");
        assert_eq!(q.try_take(), Some(text("0123456789abcdef")));
        assert_eq!(q.bytes(), 0);
        assert!(q.offer(text("01234")).is_ok());
        assert!(q.offer(text("56789")).is_ok());
        assert_eq!(q.bytes(), 10);
        assert!(matches!(q.offer(text("a")), Err(Full(_))));
        assert_eq!(q.try_take(), Some(text("01234")));
        assert!(q.offer(text("a")).is_ok());
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn drained_queues_release_memory() {
        let q = Outbound::new(1000);
        for i in 0..500 {
            q.offer(text(&i.to_string())).expect("room");
        }
        while q.try_take().is_some() {}
        assert!(q.frames.lock().frames.capacity() <= KEEP_SLOTS);
    }

    #[tokio::test]
    async fn take_waits_for_a_frame_from_another_task() {
        let q = Arc::new(Outbound::new(4));
        let producer = q.clone();
        tokio::spawn(async move {
            tokio::task::yield_now().await;
            producer.offer(text("late")).expect("room");
        });
        let got = tokio::time::timeout(Duration::from_secs(5), q.take())
            .await
            .expect("woken");
        assert_eq!(got, (text("late"), 0));
    }

    #[tokio::test]
    async fn offer_wait_waits_for_room_and_keeps_order() {
        let q = Arc::new(Outbound::new(2));
        let producer = q.clone();
        let task = tokio::spawn(async move {
            for i in 0..10 {
                producer.offer_wait(text(&i.to_string()), 0).await;
            }
        });
        for i in 0..10 {
            let got = tokio::time::timeout(Duration::from_secs(5), q.take())
                .await
                .expect("frame");
            assert_eq!(got, (text(&i.to_string()), 0));
        }
        task.await.expect("producer finished");
    }

    #[tokio::test]
    async fn stamps_travel_with_their_frames() {
        let q = Outbound::new(4);
        q.offer_at(text("live"), 1_234).expect("room");
        q.offer(text("reply")).expect("room");
        assert_eq!(q.take().await, (text("live"), 1_234));
        assert_eq!(q.try_take_stamped(), Some((text("reply"), 0)));
    }

    #[tokio::test]
    async fn a_cancelled_take_loses_nothing() {
        let q = Outbound::new(4);
        // Cancel a waiting take, then offer: the next take still gets it.
        let _ = tokio::time::timeout(Duration::from_millis(5), q.take()).await;
        q.offer(text("x")).expect("room");
        assert_eq!(q.take().await, (text("x"), 0));
    }
}
