//! Opening authenticated connections, joining canvases, and framing
//! messages in either encoding.

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use shared::auth::{MintClaims, mint_hs256};
use shared::codec::{self, Encoding};
use shared::protocol::{AckResult, ClientMessage, Join, Joined, Leave, ServerMessage};
use shared::{CanvasId, RequestId};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A client connection.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a reply to join or leave may take before the attempt fails.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(15);

/// Bytes read from a socket at once; events are a few hundred bytes.
const READ_BUFFER: usize = 8 * 1024;

/// Mints a token for load user `n` (`load-<n>`).
pub fn token(secret: &str, n: usize) -> anyhow::Result<String> {
    token_for(secret, &format!("load-{n}"))
}

/// Mints a one-hour token for `user`.
pub fn token_for(secret: &str, user: &str) -> anyhow::Result<String> {
    let mut claims = MintClaims::for_user(user, 3600);
    claims.name = Some(user.to_owned());
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
    // tungstenite zero-fills its whole read buffer before every read: with
    // the default 128 KiB that memset was a third of the load tester's CPU.
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(req, Some(config), true).await?;
    loop {
        let frame = ws.next().await.context("closed before welcome")??;
        match decode(encoding, &frame) {
            Some(Ok(ServerMessage::Welcome(_))) => return Ok(ws),
            Some(Ok(other)) => anyhow::bail!("expected welcome, got {}", other.kind()),
            Some(Err(e)) => return Err(e),
            None => continue,
        }
    }
}

/// A client message as a frame of the encoding.
pub fn frame(encoding: Encoding, msg: &ClientMessage) -> anyhow::Result<Message> {
    let bytes = codec::encode(encoding, msg)?;
    Ok(if encoding.is_binary() {
        Message::binary(bytes)
    } else {
        Message::text(String::from_utf8(bytes).context("JSON is UTF-8")?)
    })
}

/// Decodes a server frame; `None` for control frames, an error for a close
/// or an undecodable message.
pub fn decode(encoding: Encoding, frame: &Message) -> Option<anyhow::Result<ServerMessage>> {
    let bytes: &[u8] = match frame {
        Message::Text(t) => t.as_bytes(),
        Message::Binary(b) => b,
        Message::Close(c) => return Some(Err(anyhow::anyhow!("closed by the server: {c:?}"))),
        _ => return None,
    };
    Some(codec::decode_server(encoding, bytes).map_err(anyhow::Error::from))
}

/// Sends `msg` and reads until the reply with `id`, dropping events that
/// arrive first. Errors on an error reply, a close, or a timeout.
pub async fn request(
    ws: &mut Ws,
    encoding: Encoding,
    id: u64,
    msg: &ClientMessage,
) -> anyhow::Result<Option<AckResult>> {
    ws.send(frame(encoding, msg)?).await?;
    let want = RequestId::Num(id);
    tokio::time::timeout(REPLY_TIMEOUT, async {
        loop {
            let frame = ws.next().await.context("closed before the reply")??;
            match decode(encoding, &frame) {
                Some(Ok(ServerMessage::Ack(a))) if a.id == want => return Ok(a.result),
                Some(Ok(ServerMessage::Error(e))) if e.id.as_ref() == Some(&want) => {
                    anyhow::bail!("{} {}: {}", msg.kind(), e.code.as_str(), e.message)
                }
                Some(Err(e)) => return Err(e),
                _ => continue,
            }
        }
    })
    .await
    .with_context(|| format!("no reply to {} within {REPLY_TIMEOUT:?}", msg.kind()))?
}

/// Joins `canvas` (resuming after `since` in `epoch` when given).
pub async fn join(
    ws: &mut Ws,
    encoding: Encoding,
    canvas: &CanvasId,
    resume: Option<(u64, String)>,
) -> anyhow::Result<Joined> {
    let (since, epoch) = resume.map_or((None, None), |(s, e)| (Some(s), Some(e)));
    let msg = ClientMessage::Join(Join {
        id: Some(RequestId::Num(1)),
        canvas: canvas.clone(),
        echo: false,
        since,
        epoch,
    });
    match request(ws, encoding, 1, &msg).await? {
        Some(AckResult::Joined(j)) => Ok(j),
        other => anyhow::bail!("join answered with {other:?}"),
    }
}

/// Leaves `canvas` and waits for the ack.
pub async fn leave(ws: &mut Ws, encoding: Encoding, canvas: &CanvasId) -> anyhow::Result<()> {
    let msg = ClientMessage::Leave(Leave {
        id: Some(RequestId::Num(2)),
        canvas: canvas.clone(),
    });
    request(ws, encoding, 2, &msg).await.map(|_| ())
}
