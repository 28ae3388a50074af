//! Reading counters from the gateways' Prometheus endpoints (`--admin`).

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The gateways' frames written and socket writes so far, when their admin
/// listeners were given and report them (an older gateway does not: not
/// measured, not fatal).
pub async fn frames_and_writes(admins: &[String]) -> Option<(f64, f64)> {
    if admins.is_empty() {
        return None;
    }
    let names = [
        "easel_gateway_frames_written_total",
        "easel_gateway_socket_writes_total",
    ];
    match counters(admins, &names).await {
        Ok(sums) => Some((sums[0], sums[1])),
        Err(err) => {
            eprintln!("frames per write not measured: {err:#}");
            None
        }
    }
}

/// The sum over `admins` (host:port of each gateway's admin listener) of
/// each named counter, in the order of `names`.
pub async fn counters(admins: &[String], names: &[&str]) -> anyhow::Result<Vec<f64>> {
    let mut sums = vec![0.0; names.len()];
    for admin in admins {
        let text = metrics(admin).await?;
        for (sum, name) in sums.iter_mut().zip(names) {
            *sum +=
                sample(&text, name).with_context(|| format!("{admin}/metrics has no {name}"))?;
        }
    }
    Ok(sums)
}

/// The text of `GET /metrics` from `admin`.
async fn metrics(admin: &str) -> anyhow::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(admin)
        .await
        .with_context(|| format!("connecting to the admin listener {admin}"))?;
    let request = format!("GET /metrics HTTP/1.0\r\nHost: {admin}\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await?;
    let reply = String::from_utf8_lossy(&reply);
    let (_, body) = reply
        .split_once("\r\n\r\n")
        .context("a malformed HTTP reply from /metrics")?;
    Ok(body.to_owned())
}

/// The value of an unlabelled series in exposition text.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let (series, value) = line.split_once(' ')?;
        (series == name).then(|| value.trim().parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_an_unlabelled_series_and_not_a_prefix() {
        let text = "# HELP a_total x\na_total_more 9\na_total 12\n";
        assert_eq!(sample(text, "a_total"), Some(12.0));
        assert_eq!(sample(text, "b_total"), None);
    }
}
