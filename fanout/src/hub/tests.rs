//! Tests of `hub`.

use super::*;
use shared::busframe::BusHeader;
use shared::protocol::{Author, ChatEvent};

fn canvas(id: &str) -> CanvasId {
    CanvasId::new(id).expect("valid")
}

fn member(conn: u64, encoding: Encoding, echo: bool, cap: usize) -> (Member, Arc<Outbound>) {
    let tx = Arc::new(Outbound::new(cap));
    let rx = tx.clone();
    (
        Member {
            conn,
            encoding,
            echo,
            tx,
            control: Arc::new(ConnControl::new()),
            gate: JoinGate::open(),
            gm: false,
            signals_only: false,
        },
        rx,
    )
}

fn chat_payload(node: &str, conn: u64, canvas_id: &str, text: &str) -> Bytes {
    seq_payload(node, conn, canvas_id, text, None)
}

fn seq_payload(node: &str, conn: u64, canvas_id: &str, text: &str, seq: Option<u64>) -> Bytes {
    let event = ServerMessage::Chat(ChatEvent {
        canvas: canvas(canvas_id),
        seq: None,
        author: Author {
            id: "u".into(),
            name: None,
        },
        ts: 1,
        text: text.into(),
    });
    let header = BusHeader {
        node: node.into(),
        conn,
        ingest_us: INGEST_US,
        gm_only: false,
        control: false,
    };
    Bytes::from(busframe::encode(&header, seq, &event).expect("encodes"))
}

/// The ingest stamp every test payload carries.
const INGEST_US: u64 = 1_700_000_000_000_000;

#[test]
fn one_event_reaches_every_member_once_in_their_encoding() {
    let hub = Hub::new("n1", None);
    let c = canvas("c");
    let (json, json_rx) = member(1, Encoding::Json, false, 8);
    let (mp, mp_rx) = member(2, Encoding::Msgpack, false, 8);
    let (sender, sender_rx) = member(3, Encoding::Json, false, 8);
    let (other, other_rx) = member(4, Encoding::Json, false, 8);
    assert!(hub.add(&c, json).is_none());
    hub.add(&c, mp);
    hub.add(&c, sender);
    hub.add(&canvas("elsewhere"), other);
    hub.dispatch(&c, &chat_payload("n1", 3, "c", "hi"));

    let Some(Message::Text(text)) = json_rx.try_take() else {
        panic!("json member got no text frame");
    };
    let msg = codec::decode_server(Encoding::Json, text.as_bytes()).expect("json");
    assert!(matches!(msg, ServerMessage::Chat(ChatEvent { ref text, .. }) if text == "hi"));
    let Some(Message::Binary(bin)) = mp_rx.try_take() else {
        panic!("msgpack member got no binary frame");
    };
    assert_eq!(
        codec::decode_server(Encoding::Msgpack, &bin).expect("msgpack"),
        msg
    );
    assert!(json_rx.try_take().is_none(), "delivered twice");
    assert!(
        sender_rx.try_take().is_none(),
        "sender got its own event without echo"
    );
    assert!(other_rx.try_take().is_none(), "other canvas got the event");
    assert_eq!(hub.stats().delivered.load(Ordering::Relaxed), 2);
}

#[test]
fn echo_is_per_member_and_only_for_the_same_node() {
    let hub = Hub::new("n1", None);
    let c = canvas("c");
    let (echoing, echo_rx) = member(3, Encoding::Json, true, 8);
    let (quiet, quiet_rx) = member(5, Encoding::Json, false, 8);
    hub.add(&c, echoing);
    hub.add(&c, quiet);
    hub.dispatch(&c, &chat_payload("n1", 3, "c", "mine"));
    assert!(
        echo_rx.try_take().is_some(),
        "echo member missed its own event"
    );
    // Same connection number on another node is someone else.
    hub.dispatch(&c, &chat_payload("n2", 5, "c", "theirs"));
    assert!(quiet_rx.try_take().is_some());
    assert!(quiet_rx.try_take().is_some());
}

#[test]
fn a_full_queue_closes_that_member_only() {
    let hub = Hub::new("n1", None);
    let c = canvas("c");
    let (slow, _slow_rx) = member(1, Encoding::Json, false, 1);
    let slow_control = slow.control.clone();
    let (fast, fast_rx) = member(2, Encoding::Json, false, 8);
    hub.add(&c, slow);
    hub.add(&c, fast);
    for i in 0..3 {
        hub.dispatch(&c, &chat_payload("n9", 9, "c", &format!("m{i}")));
    }
    assert_eq!(slow_control.reason(), Some(CloseCode::SlowConsumer));
    assert_eq!(hub.stats().slow_consumers.load(Ordering::Relaxed), 1);
    for _ in 0..3 {
        assert!(fast_rx.try_take().is_some());
    }
}

fn chat_seq(frame: Option<Message>) -> Option<u64> {
    let Some(Message::Text(t)) = frame else {
        panic!("expected a text frame, got {frame:?}");
    };
    match codec::decode_server(Encoding::Json, t.as_bytes()).expect("json") {
        ServerMessage::Chat(c) => c.seq,
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn durable_events_carry_their_sequence_number_in_both_encodings() {
    let hub = Hub::new("n1", None);
    let c = canvas("c");
    let (json, json_rx) = member(1, Encoding::Json, false, 8);
    let (mp, mp_rx) = member(2, Encoding::Msgpack, false, 8);
    hub.add(&c, json);
    hub.add(&c, mp);
    hub.dispatch(&c, &seq_payload("n2", 9, "c", "x", Some(77)));
    assert_eq!(chat_seq(json_rx.try_take()), Some(77));
    let Some(Message::Binary(b)) = mp_rx.try_take() else {
        panic!("no binary frame");
    };
    match codec::decode_server(Encoding::Msgpack, &b).expect("msgpack") {
        ServerMessage::Chat(c) => assert_eq!(c.seq, Some(77)),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn a_join_gate_releases_only_events_after_the_position_in_order() {
    let hub = Hub::new("n1", None);
    let c = canvas("c");
    let (mut m, rx) = member(1, Encoding::Json, false, 8);
    let gate = JoinGate::holding();
    m.gate = gate.clone();
    hub.add(&c, m);
    for seq in [4, 5, 6] {
        hub.dispatch(&c, &seq_payload("n2", 9, "c", "x", Some(seq)));
    }
    assert!(rx.try_take().is_none(), "held events leaked before release");
    // The join read position 5: only 6 is new to this member.
    rx.offer(Message::Text("ack".into())).expect("room");
    gate.release(5, &rx).await;
    // An event at or below the position that arrives late is dropped too.
    hub.dispatch(&c, &seq_payload("n2", 9, "c", "x", Some(5)));
    hub.dispatch(&c, &seq_payload("n2", 9, "c", "x", Some(7)));
    assert_eq!(rx.try_take(), Some(Message::Text("ack".into())));
    assert_eq!(chat_seq(rx.try_take()), Some(6));
    assert_eq!(chat_seq(rx.try_take()), Some(7));
    assert!(rx.try_take().is_none());
}

#[tokio::test]
async fn releasing_more_than_the_queue_holds_waits_for_the_reader() {
    let hub = Hub::new("n1", None);
    let c = canvas("c");
    let (mut m, rx) = member(1, Encoding::Json, false, 2);
    let gate = JoinGate::holding();
    m.gate = gate.clone();
    hub.add(&c, m);
    for seq in 1..=6 {
        hub.dispatch(&c, &seq_payload("n2", 9, "c", "x", Some(seq)));
    }
    let releasing = {
        let gate = gate.clone();
        let rx = rx.clone();
        tokio::spawn(async move { gate.release(0, &rx).await })
    };
    for seq in 1..=6 {
        let (frame, ingest_us) = tokio::time::timeout(std::time::Duration::from_secs(5), rx.take())
            .await
            .expect("released");
        assert_eq!(chat_seq(Some(frame)), Some(seq));
        // Held live events keep their ingest stamp through the gate.
        assert_eq!(ingest_us, INGEST_US);
    }
    releasing.await.expect("release finished");
    hub.dispatch(&c, &seq_payload("n2", 9, "c", "x", Some(7)));
    assert_eq!(chat_seq(rx.try_take()), Some(7));
}

#[test]
fn an_overfull_join_gate_is_a_slow_consumer() {
    let hub = Hub::new("n1", None);
    let c = canvas("c");
    let (mut m, _rx) = member(1, Encoding::Json, false, 2);
    m.gate = JoinGate::holding();
    let control = m.control.clone();
    hub.add(&c, m);
    for seq in 1..=(2 * GATE_SLACK as u64 + 1) {
        hub.dispatch(&c, &seq_payload("n2", 9, "c", "x", Some(seq)));
    }
    assert_eq!(control.reason(), Some(CloseCode::SlowConsumer));
}

#[test]
fn garbage_bus_frames_are_counted_and_dropped() {
    let hub = Hub::new("n1", None);
    let c = canvas("c");
    let (m, rx) = member(1, Encoding::Json, false, 8);
    hub.add(&c, m);
    hub.dispatch(&c, &Bytes::from_static(b"\xc1garbage"));
    assert!(rx.try_take().is_none());
    assert_eq!(hub.stats().bad_frames.load(Ordering::Relaxed), 1);
}

#[test]
fn membership_drives_subscribe_and_unsubscribe() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let hub = Hub::new("n1", Some(tx));
    let c = canvas("c");
    let (a, _a) = member(1, Encoding::Json, false, 8);
    let (b, _b) = member(2, Encoding::Json, false, 8);
    assert!(hub.add(&c, a).is_some());
    hub.add(&c, b);
    assert!(hub.remove(&c, 1));
    assert!(!hub.remove(&c, 1));
    assert!(hub.remove(&c, 2));
    let mut seen = Vec::new();
    while let Ok(cmd) = rx.try_recv() {
        seen.push(match cmd {
            SubCommand::Want(_) => "want",
            SubCommand::Unwant(_) => "unwant",
            SubCommand::Await(..) => "await",
        });
    }
    assert_eq!(seen, ["want", "await", "await", "unwant"]);
    assert_eq!(hub.canvas_count(), 0);
}
