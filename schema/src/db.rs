//! How Easel reaches PostgreSQL: the URL, its TLS settings, and the schema
//! Easel's tables live in.
//!
//! TLS follows the URL's `sslmode` as libpq spells it, with one rule of its
//! own: when TLS is used, the server's certificate and host name are always
//! verified (against `sslrootcert` when the URL names a file, else the
//! system's trust store). So `require`, `verify-ca` and `verify-full` all
//! mean what libpq's `verify-full` means; `disable` (and no `sslmode`) means
//! plain TCP; `allow` and `prefer`, which fall back to plain TCP without
//! saying so, are refused.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The schema Easel's tables live in unless configured otherwise.
pub const DEFAULT_SCHEMA: &str = "easel";

/// A parsed database URL: what to connect to, how to secure it, and where
/// the tables are.
#[derive(Clone)]
pub struct Database {
    /// The connection settings, with the schema on the search path.
    pub config: tokio_postgres::Config,
    /// The TLS connector (used only when `config` requires TLS).
    pub tls: MakeRustlsConnect,
    /// The schema Easel's tables live in.
    pub schema: String,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("config", &self.config)
            .field("tls", &(self.config.get_ssl_mode() == SslMode::Require))
            .field("schema", &self.schema)
            .finish()
    }
}

impl Database {
    /// Parses `url` (a `postgres://` URL or libpq's `key=value` form) and
    /// puts `schema` first on every connection's search path.
    pub fn parse(url: &str, schema: &str) -> Result<Database, String> {
        check_schema_name(schema)?;
        let (rest, tls) = take_tls_params(url)?;
        let mut config: tokio_postgres::Config = rest.parse().map_err(|e| format!("{e}"))?;
        let options = match config.get_options() {
            Some(o) if !o.is_empty() => format!("{o} -c search_path={schema}"),
            _ => format!("-c search_path={schema}"),
        };
        config.options(&options);
        let roots = match &tls {
            Tls::Off => {
                config.ssl_mode(SslMode::Disable);
                RootCertStore::empty()
            }
            Tls::Verified { root_cert } => {
                config.ssl_mode(SslMode::Require);
                trusted_roots(root_cert.as_deref())?
            }
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Database {
            config,
            tls: MakeRustlsConnect::new(client),
            schema: schema.to_owned(),
        })
    }

    /// Whether connections use TLS.
    pub fn tls(&self) -> bool {
        self.config.get_ssl_mode() == SslMode::Require
    }
}

/// A schema name Easel accepts: a plain lower-case SQL identifier, so it
/// never needs quoting in a search path.
fn check_schema_name(schema: &str) -> Result<(), String> {
    let mut chars = schema.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if first_ok && rest_ok && schema.len() <= 63 {
        Ok(())
    } else {
        Err(format!(
            "schema {schema:?}: use 1-63 of a-z 0-9 _, not starting with a digit"
        ))
    }
}

/// What the URL asks of TLS.
enum Tls {
    Off,
    Verified { root_cert: Option<String> },
}

/// Takes `sslmode` and `sslrootcert` out of the URL (tokio-postgres knows
/// neither `verify-*` nor `sslrootcert`) and says what they ask for.
fn take_tls_params(url: &str) -> Result<(String, Tls), String> {
    let mut mode = None;
    let mut root_cert = None;
    let mut take = |key: &str, value: String| match key {
        "sslmode" => {
            mode = Some(value);
            true
        }
        "sslrootcert" => {
            root_cert = Some(value);
            true
        }
        _ => false,
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            None => url.to_owned(),
            Some((base, query)) => {
                let kept: Vec<&str> = query
                    .split('&')
                    .filter(|pair| {
                        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                        !take(k, percent_decode(v))
                    })
                    .collect();
                if kept.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let kept: Vec<String> = key_value_pairs(url)
            .into_iter()
            .filter(|(k, v)| !take(k, unquote(v)))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        kept.join(" ")
    };
    let tls = match mode.as_deref() {
        None | Some("disable") if root_cert.is_some() => {
            return Err("sslrootcert is set but TLS is off: add sslmode=verify-full".to_owned());
        }
        None | Some("disable") => Tls::Off,
        Some("require" | "verify-ca" | "verify-full") => Tls::Verified { root_cert },
        Some(m @ ("allow" | "prefer")) => {
            return Err(format!(
                "sslmode={m} would fall back to an unencrypted connection without saying so; \
                 use sslmode=require (TLS, certificate verified) or sslmode=disable"
            ));
        }
        Some(m) => {
            return Err(format!(
                "sslmode={m}: use disable, require, verify-ca or verify-full"
            ));
        }
    };
    Ok((rest, tls))
}

/// The certificates TLS connections trust.
fn trusted_roots(root_cert: Option<&str>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match root_cert {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("sslrootcert {path}: {e}"))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("sslrootcert {path}: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("sslrootcert {path}: {e}"))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    if roots.is_empty() {
        return Err(match root_cert {
            Some(path) => format!("sslrootcert {path}: no certificate in the file"),
            None => {
                "TLS: the system trust store has no certificates; name a CA file with sslrootcert"
                    .to_owned()
            }
        });
    }
    Ok(roots)
}

/// `%XX` escapes decoded (for a file name in a URL's query).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// libpq's `key=value key='quoted value'` form, split into pairs with each
/// value as written (quotes kept, so the rest can be put back unchanged).
fn key_value_pairs(s: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && !c.is_whitespace())).collect();
        if key.is_empty() {
            break;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        chars.next_if_eq(&'=');
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            value.push('\'');
            while let Some(c) = chars.next() {
                value.push(c);
                match c {
                    '\\' => value.extend(chars.next()),
                    '\'' => break,
                    _ => {}
                }
            }
        } else {
            value.extend(std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace())));
        }
        pairs.push((key, value));
    }
    pairs
}

/// A `key=value` value without its quotes and escapes.
fn unquote(v: &str) -> String {
    match v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        Some(inner) => inner.replace("\\'", "'").replace("\\\\", "\\"),
        None => v.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    // Test code: a failed unwrap is a failed test, with its message.
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn no_sslmode_is_plain_tcp_with_the_schema_on_the_path() {
        let db = Database::parse("postgres://u@h:5/d", "easel").unwrap();
        assert!(!db.tls());
        assert_eq!(db.config.get_options(), Some("-c search_path=easel"));
        assert_eq!(db.config.get_dbname(), Some("d"));
    }

    #[test]
    fn require_verifies_with_the_named_ca_and_keeps_other_params() {
        let dir = tempfile_dir();
        let ca = dir.join("ca.pem");
        let cert = rcgen::generate_simple_self_signed(vec!["h".to_owned()]).unwrap();
        std::fs::write(&ca, cert.cert.pem()).unwrap();
        let url = format!(
            "postgres://u@h/d?application_name=x&sslmode=require&sslrootcert={}",
            ca.display().to_string().replace('/', "%2F")
        );
        let db = Database::parse(&url, "s1").unwrap();
        assert!(db.tls());
        assert_eq!(db.config.get_application_name(), Some("x"));
        let kv = format!(
            "host=h dbname=d sslmode=verify-full sslrootcert='{}'",
            ca.display()
        );
        assert!(Database::parse(&kv, "easel").unwrap().tls());
    }

    #[test]
    fn refuses_what_would_silently_drop_tls_or_is_unknown() {
        for url in [
            "postgres://u@h/d?sslmode=prefer",
            "postgres://u@h/d?sslmode=allow",
            "postgres://u@h/d?sslmode=bogus",
            "postgres://u@h/d?sslrootcert=/x",
            "postgres://u@h/d?sslmode=require&sslrootcert=/nonexistent/ca.pem",
        ] {
            assert!(Database::parse(url, "easel").is_err(), "{url}");
        }
        for schema in ["", "Easel", "1x", "a-b", "a;drop"] {
            assert!(
                Database::parse("postgres://u@h/d", schema).is_err(),
                "{schema}"
            );
        }
    }

    #[test]
    fn user_options_are_kept() {
        let db = Database::parse("host=h options='-c statement_timeout=5s'", "easel").unwrap();
        assert_eq!(
            db.config.get_options(),
            Some("-c statement_timeout=5s -c search_path=easel")
        );
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("easel-db-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
