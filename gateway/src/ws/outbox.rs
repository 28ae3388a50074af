//! The sending side of a WebSocket connection: every reply to the client
//! goes through [`Outbox`], which counts it once and closes a connection
//! whose queue is full or whose error is fatal.

use crate::ops::OpError;
use fanout::{ConnControl, Outbound};
use shared::codec::Encoding;
use shared::protocol::{Ack, ErrorReply, ServerMessage};
use shared::{CloseCode, ErrorCode, RequestId};
use std::sync::Arc;

/// The sending side of a connection, used by the reader and the session.
pub(crate) struct Outbox {
    /// This node's number for the connection.
    pub conn: u64,
    pub tx: Arc<Outbound>,
    /// `easel_gateway_errors_total`, counted where every error is sent.
    pub errors: prometheus::IntCounterVec,
    /// `easel_gateway_messages_sent_total`, counted where every reply is queued.
    pub sent: Arc<crate::metrics::ByKind>,
    pub control: Arc<ConnControl>,
    pub encoding: Encoding,
}

impl Outbox {
    /// The queue, shared with the hub for canvas membership.
    pub fn queue(&self) -> Arc<Outbound> {
        self.tx.clone()
    }

    /// Queues a message; a full queue closes the connection as a slow consumer.
    pub fn send(&self, msg: &ServerMessage) {
        let Some(frame) = fanout::frame_for(self.encoding, msg) else {
            return;
        };
        self.sent.inc(msg.kind());
        if self.tx.offer(frame).is_err() {
            self.control.close(CloseCode::SlowConsumer);
        }
    }

    /// Replies `ack` when the command had an id.
    pub fn ack(&self, id: Option<RequestId>, result: Option<shared::protocol::AckResult>) {
        if let Some(id) = id {
            self.send(&ServerMessage::Ack(Ack { id, result }));
        }
    }

    /// Replies an operation's error (with its `retry_after_ms`), closing
    /// the connection if the code is fatal.
    pub fn fail(&self, id: Option<RequestId>, err: OpError) {
        self.error_retry(id, err.code, err.message, err.retry_after_ms);
    }

    /// Replies `error`, and closes the connection if the code is fatal.
    pub fn error(&self, id: Option<RequestId>, code: ErrorCode, message: impl Into<String>) {
        self.error_retry(id, code, message, None);
    }

    /// [`Outbox::error`] with a `retry_after_ms` hint.
    pub fn error_retry(
        &self,
        id: Option<RequestId>,
        code: ErrorCode,
        message: impl Into<String>,
        retry_after_ms: Option<u64>,
    ) {
        let code = self.reply_error(ErrorReply {
            id,
            code,
            message: message.into(),
            retry_after_ms,
        });
        if let Some(close) = CloseCode::for_fatal(code) {
            self.control.close(close);
        }
    }

    /// Counts and queues an error reply without closing. Every error reply
    /// goes through here.
    pub fn reply_error(&self, reply: ErrorReply) -> ErrorCode {
        let code = reply.code;
        self.errors.with_label_values(&[code.name()]).inc();
        self.send(&ServerMessage::Error(reply));
        code
    }
}
