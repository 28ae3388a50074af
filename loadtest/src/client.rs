//! Opening authenticated connections.

use anyhow::Context;
use futures_util::StreamExt;
use shared::auth::{MintClaims, mint_hs256};
use shared::codec::{self, Encoding};
use shared::protocol::ServerMessage;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A client connection.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Mints a token for load user `n`.
pub fn token(secret: &str, n: usize) -> anyhow::Result<String> {
    let mut claims = MintClaims::for_user(&format!("load-{n}"), 3600);
    claims.name = Some(format!("Load {n}"));
    mint_hs256(secret.as_bytes(), &claims).context("minting a token")
}

/// Connects to `url` (`ws://host:port/ws`) with a token and the encoding's
/// subprotocol, and waits for the `welcome`.
pub async fn connect(url: &str, token: &str, encoding: Encoding) -> anyhow::Result<Ws> {
    let mut req = format!("{url}?token={token}").into_client_request()?;
    req.headers_mut().insert(
        "sec-websocket-protocol",
        encoding
            .subprotocol()
            .parse()
            .context("subprotocol header")?,
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
    loop {
        let frame = ws.next().await.context("closed before welcome")??;
        let bytes = match &frame {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) => b,
            Message::Close(c) => anyhow::bail!("closed before welcome: {c:?}"),
            _ => continue,
        };
        match codec::decode_server(encoding, bytes)? {
            ServerMessage::Welcome(_) => return Ok(ws),
            other => anyhow::bail!("expected welcome, got {}", other.kind()),
        }
    }
}
