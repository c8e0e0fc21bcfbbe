//! A test PKI for the failover partner link's TLS: CAs, and partner certificates written to
//! files with the CA that must sign the peer's.
//!
//! Shared by the link's unit tests (`src/failover/link/tests.rs`) and `tests/failover_tls.rs`,
//! each including it with `#[path = "…/common/tls.rs"] mod pki;`.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// A self-signed CA with common name `name`.
pub fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
}

/// The files [`write_cert`] wrote.
pub struct CertFiles {
    /// The certificate, PEM: `TAG.crt`.
    pub cert: PathBuf,
    /// Its private key, PEM: `TAG.key`.
    pub key: PathBuf,
    /// The CA to trust, PEM: `TAG-ca.crt`.
    pub ca: PathBuf,
}

/// Writes under `dir`, named after `tag`, a certificate for server and client
/// authentication with common name `common_name` and subject alternative names `sans`,
/// signed by `issuer`; its key; and `trust`, the CA that must sign the peer's certificate.
pub fn write_cert(
    dir: &Path,
    tag: &str,
    common_name: &str,
    sans: &[&str],
    issuer: &CertifiedIssuer<'static, KeyPair>,
    trust: &CertifiedIssuer<'static, KeyPair>,
) -> CertFiles {
    let mut p =
        CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap();
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    p.distinguished_name.push(DnType::CommonName, common_name);
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, issuer).unwrap();
    let files = CertFiles {
        cert: dir.join(format!("{tag}.crt")),
        key: dir.join(format!("{tag}.key")),
        ca: dir.join(format!("{tag}-ca.crt")),
    };
    std::fs::write(&files.cert, cert.pem()).unwrap();
    std::fs::write(&files.key, key.serialize_pem()).unwrap();
    std::fs::write(&files.ca, trust.pem()).unwrap();
    files
}
