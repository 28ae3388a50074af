//! A WebSocket spoken by hand over a plain socket, for tests that look at
//! the frames themselves (their sizes, fragments, a peer that never
//! answers).

use super::token;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Connects and sends a WebSocket upgrade request for `user`, by hand.
pub async fn send_upgrade(addr: SocketAddr, user: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET /ws?token={} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        token(user)
    );
    s.write_all(req.as_bytes()).await.unwrap();
    s
}

/// One frame as it came off the wire.
#[derive(Debug)]
pub struct RawFrame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

/// An upgraded socket and what was read past the last whole frame.
pub struct RawWs {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl RawWs {
    /// Upgrades by hand; the socket is ready once the 101 response is in.
    pub async fn upgrade(addr: SocketAddr, user: &str) -> RawWs {
        let mut ws = RawWs {
            stream: send_upgrade(addr, user).await,
            buf: Vec::new(),
        };
        let end = loop {
            if let Some(i) = ws.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            ws.fill().await;
        };
        assert!(
            ws.buf.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&ws.buf)
        );
        ws.buf.drain(..end);
        ws
    }

    async fn fill(&mut self) {
        let mut chunk = [0u8; 16 << 10];
        let n = tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut chunk))
            .await
            .expect("nothing arrived within 10 s")
            .unwrap();
        assert!(n > 0, "the connection ended");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    /// Sends a text message in one masked frame (a zero mask: clients
    /// must mask, any key will do).
    pub async fn send_text(&mut self, text: &str) {
        let len = text.len();
        let mut frame = vec![0x81];
        match len {
            0..=125 => frame.push(0x80 | len as u8),
            126..=65535 => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&[0, 0, 0, 0]);
        frame.extend_from_slice(text.as_bytes());
        self.stream.write_all(&frame).await.unwrap();
    }

    /// Reads the next frame (server frames are not masked).
    pub async fn frame(&mut self) -> RawFrame {
        loop {
            if let Some((frame, used)) = parse(&self.buf) {
                self.buf.drain(..used);
                return frame;
            }
            self.fill().await;
        }
    }
}

/// A whole unmasked frame at the start of `buf`, and its length on the wire.
fn parse(buf: &[u8]) -> Option<(RawFrame, usize)> {
    let (&b0, &b1) = (buf.first()?, buf.get(1)?);
    assert_eq!(b1 & 0x80, 0, "a server frame is never masked");
    let (len, head) = match b1 & 0x7f {
        126 => (
            u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?) as usize,
            4,
        ),
        127 => (
            u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    let payload = buf.get(head..head + len)?.to_vec();
    let frame = RawFrame {
        fin: b0 & 0x80 != 0,
        opcode: b0 & 0x0f,
        payload,
    };
    Some((frame, head + len))
}
