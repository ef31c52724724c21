//! HTTPS for `tribune serve`: the certificate and key from PEM files, a rustls server
//! configuration, and a listener that hands finished TLS streams to [`crate::serve`].
//!
//! A TLS handshake takes a round trip or two and a client may never finish one, so handshakes
//! never run on the accept path: the accept loop only takes TCP connections and spawns one task
//! per handshake, bounded in time ([`HANDSHAKE_TIMEOUT`]) and in number
//! ([`MAX_HANDSHAKES_IN_FLIGHT`]; past it a new connection is closed at once). Finished streams
//! reach hyper through a channel, so a silent or broken client costs one task and one permit,
//! and every other client is served meanwhile.
//!
//! Crypto is `ring` (already in the dependency tree); ALPN offers `h2` then `http/1.1`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::accept::Acceptor;
use crate::conn_limit::{ConnLimits, Refused};
use crate::serve::{Conn, Incoming};
use tribune_admission::{Class, Reason};
use tribune_metrics::Metrics;

/// A client that has not finished its handshake by then is dropped (and counted as failed).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in progress at once. Each holds a task and a socket; the bound keeps a flood of
/// half-open connections from growing memory without limit while leaving room for a flash
/// crowd (the listen backlog is 4096 too).
pub const MAX_HANDSHAKES_IN_FLIGHT: usize = 4096;

/// Why the TLS configuration could not be loaded. Each message is whole (the cause is in it,
/// not chained as a `source`), so it reads the same however it is printed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading the TLS {what} {path}: {error}")]
    Read {
        what: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("parsing the TLS {what} {path}: {error}")]
    Pem {
        what: &'static str,
        path: PathBuf,
        error: pem::Error,
    },
    #[error("no certificate (-----BEGIN CERTIFICATE-----) in {0}")]
    NoCertificate(PathBuf),
    #[error("no private key (PKCS#8, RSA or SEC1 PEM) in {0}")]
    NoKey(PathBuf),
    #[error("the private key {key} does not match the certificate {cert}")]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("TLS certificate {cert} with key {key}: {error}")]
    Rustls {
        cert: PathBuf,
        key: PathBuf,
        error: rustls::Error,
    },
}

/// Load the certificate chain and key and build the server configuration (ALPN `h2`,
/// `http/1.1`; TLS 1.3 and 1.2).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, Error> {
    let chain = load_certs(cert)?;
    let key_der = load_key(key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key_der))
        .map_err(|error| match error {
            rustls::Error::InconsistentKeys(_) => Error::KeyMismatch {
                cert: cert.to_owned(),
                key: key.to_owned(),
            },
            error => Error::Rustls {
                cert: cert.to_owned(),
                key: key.to_owned(),
                error,
            },
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|error| Error::Read {
        what,
        path: path.to_owned(),
        error,
    })
}

/// Every certificate of a PEM file, in order (the server's first, then its issuers).
fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let bytes = read("certificate", path)?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| Error::Pem {
            what: "certificate",
            path: path.to_owned(),
            error,
        })?;
    if chain.is_empty() {
        return Err(Error::NoCertificate(path.to_owned()));
    }
    Ok(chain)
}

/// The first private key of a PEM file.
fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    let bytes = read("key", path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|error| match error {
        pem::Error::NoItemsFound => Error::NoKey(path.to_owned()),
        error => Error::Pem {
            what: "key",
            path: path.to_owned(),
            error,
        },
    })
}

/// The HTTPS connections whose handshake is done, for [`crate::serve::serve`].
pub type Listener = Incoming<TlsStream<TcpStream>>;

/// Start accepting on `tcp` with `config`, within `limits`, counting handshakes in `metrics`.
/// Dropping the listener stops the accept loop.
pub fn spawn(
    tcp: TcpListener,
    config: Arc<ServerConfig>,
    metrics: Arc<Metrics>,
    limits: Arc<ConnLimits>,
) -> std::io::Result<Listener> {
    let local = tcp.local_addr()?;
    let acceptor = Acceptor::new(tcp, metrics.clone());
    Ok(Incoming::spawn(local, move |ready| {
        accept_loop(acceptor, TlsAcceptor::from(config), ready, metrics, limits)
    }))
}

/// Take TCP connections and start a bounded handshake task for each, until the listener is
/// dropped. A connection over its address's cap is closed unanswered: an answer would cost the
/// handshake the cap is there to save.
async fn accept_loop(
    acceptor: Acceptor,
    tls: TlsAcceptor,
    ready: mpsc::Sender<Conn<TlsStream<TcpStream>>>,
    metrics: Arc<Metrics>,
    limits: Arc<ConnLimits>,
) {
    let permits = Arc::new(Semaphore::new(MAX_HANDSHAKES_IN_FLIGHT));
    let closed = ready.clone();
    crate::accept::run(acceptor, closed.closed(), |stream, peer| {
        let guard = match limits.admit(peer.ip()) {
            Ok(guard) => guard,
            Err(Refused::PerAddress) => {
                metrics.refused(Reason::TooManyConnections, Class::Join);
                return;
            }
            Err(Refused::Full) => {
                metrics.audience_connections_shed.fetch_add(1, Relaxed);
                return;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics.tls_connections_shed.fetch_add(1, Relaxed);
            return;
        };
        let _ = stream.set_nodelay(true);
        let tls = tls.clone();
        let ready = ready.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let done = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await;
            drop(permit);
            match done {
                Ok(Ok(io)) => {
                    metrics.tls_handshakes.fetch_add(1, Relaxed);
                    let conn = Conn {
                        io,
                        peer,
                        guard: Some(guard),
                    };
                    // An error here means the server is shutting down: the stream just closes.
                    let _ = ready.send(conn).await;
                }
                Ok(Err(e)) => {
                    metrics.tls_handshake_failures.fetch_add(1, Relaxed);
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                }
                Err(_) => {
                    metrics.tls_handshake_failures.fetch_add(1, Relaxed);
                    tracing::debug!(%peer, "TLS handshake timed out");
                }
            }
        });
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, text: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("tribune-tls-{}-{name}", std::process::id()));
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn missing_files_name_the_file() {
        let e = server_config(
            Path::new("/nonexistent/cert.pem"),
            Path::new("/nonexistent/key.pem"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("reading the TLS certificate /nonexistent/cert.pem: "),
            "{e}"
        );
    }

    #[test]
    fn a_file_without_pem_items_is_refused() {
        let junk = temp_file("junk.pem", "not a certificate\n");
        let e = server_config(&junk, &junk).unwrap_err();
        assert!(matches!(e, Error::NoCertificate(_)), "{e}");
        assert!(e.to_string().contains("no certificate"), "{e}");
        assert!(matches!(load_key(&junk), Err(Error::NoKey(_))));
        let _ = std::fs::remove_file(junk);
    }

    #[test]
    fn a_certificate_file_is_not_a_key() {
        // Any base64 body makes a certificate item; no key item is there.
        let cert = temp_file(
            "only-cert.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        assert_eq!(load_certs(&cert).unwrap().len(), 1);
        let e = load_key(&cert).unwrap_err().to_string();
        assert!(e.starts_with("no private key"), "{e}");
        let _ = std::fs::remove_file(cert);
    }
}
