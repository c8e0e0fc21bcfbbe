//! TLS for the failover link: loads the PEM files once and runs handshakes in both roles
//! with mutual authentication against one CA (rustls, TLS 1.3, `ring` provider).

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::client::verify_server_name;
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector, client, server};

use super::{HANDSHAKE_TIMEOUT, LinkError, TlsConfig};

/// Why a handshake failed.
#[derive(Debug)]
pub(super) enum HandshakeError {
    /// rustls or the socket failed (bad certificate, alert, reset, not TLS at all).
    Io(std::io::Error),
    /// The handshake took longer than [`HANDSHAKE_TIMEOUT`].
    Timeout,
    /// The client's certificate, valid for the CA, does not name the peer.
    Name(rustls::Error),
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "{e}"),
            Self::Timeout => write!(f, "timed out after {HANDSHAKE_TIMEOUT:?}"),
            Self::Name(e) => write!(f, "client certificate: {e}"),
        }
    }
}

/// The TLS setup of one link.
pub(super) struct Tls {
    connector: TlsConnector,
    acceptor: TlsAcceptor,
    /// The name the peer's certificate must carry, as a server and as a client.
    name: ServerName<'static>,
}

impl Tls {
    /// Read the files of `cfg`; `peer` is the expected name when `cfg.peer_name` is `None`.
    pub(super) fn load(cfg: &TlsConfig, peer: IpAddr) -> Result<Self, LinkError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = certs(&cfg.cert)?;
        let key = PrivateKeyDer::from_pem_file(&cfg.key).map_err(|e| pem_error(&cfg.key, e))?;
        let mut roots = RootCertStore::empty();
        for ca in certs(&cfg.ca)? {
            roots.add(ca).map_err(LinkError::Tls)?;
        }
        let roots = Arc::new(roots);
        let name = match &cfg.peer_name {
            Some(n) => {
                ServerName::try_from(n.clone()).map_err(|_| LinkError::PeerName(n.clone()))?
            }
            None => ServerName::IpAddress(peer.to_canonical().into()),
        };

        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(&provider))
                .build()
                .map_err(LinkError::Verifier)?;
        let server = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(LinkError::Tls)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(LinkError::Tls)?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(LinkError::Tls)?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(LinkError::Tls)?;
        Ok(Self {
            connector: TlsConnector::from(Arc::new(client)),
            acceptor: TlsAcceptor::from(Arc::new(server)),
            name,
        })
    }

    /// Handshake as the TLS client (the primary's outgoing connection); rustls checks the
    /// server's certificate against the CA and the peer name.
    pub(super) async fn connect(
        &self,
        tcp: TcpStream,
    ) -> Result<client::TlsStream<TcpStream>, HandshakeError> {
        tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            self.connector.connect(self.name.clone(), tcp),
        )
        .await
        .map_err(|_| HandshakeError::Timeout)?
        .map_err(HandshakeError::Io)
    }

    /// Handshake as the TLS server (an accepted connection); rustls requires a client
    /// certificate signed by the CA, and this checks that it names the peer.
    pub(super) async fn accept(
        &self,
        tcp: TcpStream,
    ) -> Result<server::TlsStream<TcpStream>, HandshakeError> {
        let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(tcp))
            .await
            .map_err(|_| HandshakeError::Timeout)?
            .map_err(HandshakeError::Io)?;
        let leaf = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(<[_]>::first)
            .ok_or(HandshakeError::Name(rustls::Error::NoCertificatesPresented))?;
        let parsed = ParsedCertificate::try_from(leaf).map_err(HandshakeError::Name)?;
        verify_server_name(&parsed, &self.name).map_err(HandshakeError::Name)?;
        Ok(stream)
    }
}

/// Every certificate of a PEM file, at least one.
fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, LinkError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(LinkError::TlsPem {
            path: path.to_owned(),
            what: "no certificate".to_owned(),
        });
    }
    Ok(certs)
}

fn pem_error(path: &Path, e: rustls_pki_types::pem::Error) -> LinkError {
    match e {
        rustls_pki_types::pem::Error::Io(source) => LinkError::TlsFile {
            path: path.to_owned(),
            source,
        },
        other => LinkError::TlsPem {
            path: path.to_owned(),
            what: other.to_string(),
        },
    }
}
