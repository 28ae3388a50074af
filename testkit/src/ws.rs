//! A WebSocket test client that speaks the Easel protocol in either encoding.

use futures_util::{SinkExt, StreamExt};
use shared::codec::{self, Encoding};
use shared::protocol::{ClientMessage, ServerMessage};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long `recv` waits before failing the test.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the client puts its token.
#[derive(Debug, Clone)]
pub enum TokenIn {
    /// `?token=`.
    Query(String),
    /// `Authorization: Bearer`.
    Header(String),
    /// Not at all (send a `handshake` yourself).
    None,
}

/// Connection options.
#[derive(Debug, Clone)]
pub struct Connect {
    pub token: TokenIn,
    /// Subprotocol to ask for; `None` asks for none (the server defaults to JSON).
    pub encoding: Option<Encoding>,
    pub origin: Option<String>,
    /// Raw `Sec-WebSocket-Protocol` value, overriding `encoding`.
    pub subprotocol: Option<String>,
    /// Socket receive buffer size (small makes a stalled reader fill up fast).
    pub recv_buffer: Option<u32>,
}

impl Connect {
    /// Token in the query string, JSON.
    pub fn token(token: &str) -> Self {
        Connect {
            token: TokenIn::Query(token.to_owned()),
            encoding: None,
            origin: None,
            subprotocol: None,
            recv_buffer: None,
        }
    }

    /// The same with an explicit encoding.
    pub fn with_encoding(mut self, encoding: Encoding) -> Self {
        self.encoding = Some(encoding);
        self
    }
}

/// A connected client.
pub struct WsClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The encoding the server agreed to.
    pub encoding: Encoding,
}

/// What ended a connection, as the client saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Closed {
    /// The close code, if a close frame arrived.
    pub code: Option<u16>,
    /// Messages received before the close.
    pub before: Vec<ServerMessage>,
}

impl WsClient {
    /// Connects; `Err` carries the HTTP refusal (status and body) if any.
    pub async fn connect(addr: SocketAddr, opts: Connect) -> Result<WsClient, tungstenite::Error> {
        let url = match &opts.token {
            TokenIn::Query(t) => format!("ws://{addr}/ws?token={t}"),
            _ => format!("ws://{addr}/ws"),
        };
        let mut req = url.into_client_request()?;
        let h = req.headers_mut();
        if let TokenIn::Header(t) = &opts.token {
            h.insert("authorization", header(&format!("Bearer {t}")));
        }
        if let Some(origin) = &opts.origin {
            h.insert("origin", header(origin));
        }
        let proto = opts
            .subprotocol
            .clone()
            .or_else(|| opts.encoding.map(|e| e.subprotocol().to_owned()));
        if let Some(p) = &proto {
            h.insert("sec-websocket-protocol", header(p));
        }
        let socket = tokio::net::TcpSocket::new_v4()?;
        if let Some(size) = opts.recv_buffer {
            socket.set_recv_buffer_size(size)?;
        }
        let stream = socket.connect(addr).await?;
        let (ws, resp) =
            tokio_tungstenite::client_async(req, MaybeTlsStream::Plain(stream)).await?;
        let encoding = match resp
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
        {
            Some(p) if p == Encoding::Msgpack.subprotocol() => Encoding::Msgpack,
            _ => Encoding::Json,
        };
        Ok(WsClient { ws, encoding })
    }

    /// Connects and reads the `welcome`; panics on anything else.
    pub async fn connect_ok(
        addr: SocketAddr,
        opts: Connect,
    ) -> (WsClient, shared::protocol::Welcome) {
        let mut c = WsClient::connect(addr, opts).await.expect("connect");
        match c.recv().await {
            ServerMessage::Welcome(w) => (c, w),
            other => panic!("expected welcome, got {other:?}"),
        }
    }

    /// Sends a command in the connection's encoding.
    pub async fn send(&mut self, msg: &ClientMessage) {
        let bytes = codec::encode(self.encoding, msg).expect("encode");
        let frame = match self.encoding {
            Encoding::Json => Message::Text(String::from_utf8(bytes).expect("utf8").into()),
            Encoding::Msgpack => Message::Binary(bytes.into()),
        };
        self.send_raw(frame).await;
    }

    /// Sends any frame.
    pub async fn send_raw(&mut self, frame: Message) {
        self.ws.send(frame).await.expect("send");
    }

    /// Sends a frame, reporting failure instead of panicking.
    pub async fn try_send_raw(&mut self, frame: Message) -> Result<(), tungstenite::Error> {
        self.ws.send(frame).await
    }

    /// The next message within `timeout`, skipping pings and pongs; `None`
    /// on timeout; panics if the connection closes.
    pub async fn recv_within(&mut self, timeout: Duration) -> Option<ServerMessage> {
        match self.try_recv_within(timeout).await {
            Ok(msg) => msg,
            Err(why) => panic!("{why} while waiting for a message"),
        }
    }

    /// [`Self::recv_within`] for clients that expect the connection to
    /// fail: `Err` says how it ended instead of panicking.
    pub async fn try_recv_within(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<ServerMessage>, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let frame = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Ok(None),
                Ok(None) => return Err("connection ended".into()),
                Ok(Some(Err(e))) => return Err(format!("connection failed: {e}")),
                Ok(Some(Ok(f))) => f,
            };
            match frame {
                Message::Text(t) => {
                    return Ok(Some(
                        codec::decode_server(Encoding::Json, t.as_bytes())
                            .expect("server sent bad json"),
                    ));
                }
                Message::Binary(b) => {
                    return Ok(Some(
                        codec::decode_server(Encoding::Msgpack, &b)
                            .expect("server sent bad msgpack"),
                    ));
                }
                Message::Close(c) => return Err(format!("closed: {c:?}")),
                _ => continue,
            }
        }
    }

    /// The next message; panics after [`RECV_TIMEOUT`].
    pub async fn recv(&mut self) -> ServerMessage {
        self.recv_within(RECV_TIMEOUT)
            .await
            .expect("no message within the timeout")
    }

    /// Reads until the server closes; returns the close code and what came before.
    pub async fn closed(&mut self) -> Closed {
        let mut before = Vec::new();
        let deadline = tokio::time::Instant::now() + RECV_TIMEOUT * 2;
        loop {
            let frame = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => panic!("server did not close within the timeout; got {before:?}"),
                Ok(None) | Ok(Some(Err(_))) => return Closed { code: None, before },
                Ok(Some(Ok(f))) => f,
            };
            match frame {
                Message::Close(c) => {
                    return Closed {
                        code: c.map(|c| u16::from(c.code)),
                        before,
                    };
                }
                Message::Text(t) => {
                    before.extend(codec::decode_server(Encoding::Json, t.as_bytes()).ok())
                }
                Message::Binary(b) => {
                    before.extend(codec::decode_server(Encoding::Msgpack, &b).ok())
                }
                _ => {}
            }
        }
    }

    /// Stops reading and writing without closing: a stalled client.
    pub fn into_inner(self) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        self.ws
    }
}

fn header(v: &str) -> HeaderValue {
    HeaderValue::from_str(v).expect("valid header value")
}
