//! Minimal HTTP for tests: one request per connection, and reading
//! Prometheus expositions.

use std::collections::HashMap;
use std::net::SocketAddr;

/// A plain HTTP/1.1 GET with an optional bearer token; returns the status,
/// the lower-cased headers and the body.
pub async fn get(
    addr: SocketAddr,
    path: &str,
    bearer: Option<&str>,
) -> (u16, HashMap<String, String>, Vec<u8>) {
    let auth = bearer.map(|t| format!("Bearer {t}"));
    request(addr, "GET", path, auth.as_deref(), None).await
}

/// A POST of a JSON body with an optional bearer token; returns as [`get`].
pub async fn post(
    addr: SocketAddr,
    path: &str,
    bearer: Option<&str>,
    json: &str,
) -> (u16, HashMap<String, String>, Vec<u8>) {
    let auth = bearer.map(|t| format!("Bearer {t}"));
    request(addr, "POST", path, auth.as_deref(), Some(json.as_bytes())).await
}

/// A POST of a JSON body with `Authorization: <authorization>` as given
/// (e.g. `ApiKey <key>`); returns as [`get`].
pub async fn post_authorized(
    addr: SocketAddr,
    path: &str,
    authorization: Option<&str>,
    json: &str,
) -> (u16, HashMap<String, String>, Vec<u8>) {
    request(addr, "POST", path, authorization, Some(json.as_bytes())).await
}

/// Any method, with an optional `Authorization` header value and JSON body;
/// returns as [`get`].
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: Option<&[u8]>,
) -> (u16, HashMap<String, String>, Vec<u8>) {
    let auth = authorization.map(|a| ("Authorization", a));
    request_with(addr, method, path, auth.as_slice(), body).await
}

/// Any method with any request headers and an optional JSON body; returns
/// as [`get`].
pub async fn request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> (u16, HashMap<String, String>, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    if let Some(b) = body {
        extra.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n")
            .into_bytes();
    req.extend_from_slice(body.unwrap_or_default());
    s.write_all(&req).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    parse_response(&raw)
}

/// Status, lower-cased headers and body of a raw HTTP/1.1 response (the
/// body as far as it was read).
pub fn parse_response(raw: &[u8]) -> (u16, HashMap<String, String>, Vec<u8>) {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("http head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body)
}

/// The status of a GET, or `None` when nothing answers (refused, reset).
pub async fn status(addr: SocketAddr, path: &str) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.ok()?;
    let head = String::from_utf8_lossy(&buf);
    head.split_whitespace().nth(1)?.parse().ok()
}

/// The value of one sample line (`name{labels} value`) in a Prometheus
/// text exposition; `series` must match up to the value exactly.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// `GET /metrics` on `admin`, which must answer 200.
pub async fn scrape(admin: SocketAddr) -> String {
    let (status, _, body) = get(admin, "/metrics", None).await;
    assert_eq!(status, 200, "GET /metrics");
    String::from_utf8(body).expect("utf-8 exposition")
}

#[cfg(test)]
mod tests {
    use super::sample;

    #[test]
    fn sample_reads_exact_series_only() {
        let text = "a_total 3\na_total{code=\"x\"} 4\nab_total 5\n";
        assert_eq!(sample(text, "a_total"), Some(3.0));
        assert_eq!(sample(text, "a_total{code=\"x\"}"), Some(4.0));
        assert_eq!(sample(text, "b_total"), None);
    }
}
