//! Certificates for TLS tests: a private CA and a server certificate it
//! signs for `localhost` and `127.0.0.1`, written as PEM files into a
//! temporary directory.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

/// A CA and a server certificate signed by it, as PEM files.
pub struct TestCerts {
    dir: tempfile::TempDir,
}

impl TestCerts {
    /// Makes a fresh CA (named `name`) and a server certificate.
    pub fn new(name: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("easel-certs-")
            .tempdir()
            .expect("create temp dir");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, name);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("CA key"))
            .expect("self-sign the CA");
        let mut server =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("server params");
        server
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let key = KeyPair::generate().expect("server key");
        let cert = server
            .signed_by(&key, &ca)
            .expect("sign the server certificate");
        let certs = TestCerts { dir };
        std::fs::write(certs.ca(), ca.pem()).expect("write CA");
        std::fs::write(certs.cert(), cert.pem()).expect("write certificate");
        std::fs::write(certs.key(), key.serialize_pem()).expect("write key");
        certs
    }

    /// The CA certificate (PEM).
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The server certificate (PEM).
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    /// The server's private key (PEM).
    pub fn key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
