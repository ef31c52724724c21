//! DTLS for WHIP sessions on OpenSSL (the system's libssl), plugged into str0m as its DTLS
//! provider; SRTP, hashes and STUN's HMAC stay on str0m's default provider.
//!
//! Why not str0m's own DTLS (`dimpl`): it accepts only ECDSA client certificates (its
//! CertificateRequest lists ECDSA signature algorithms only), while RFC 8827 §6.5 requires an
//! endpoint to accept RSA as well as ECDSA, and GStreamer's webrtcbin (OBS and the Debian
//! `whip-client` use it) always presents an RSA certificate: it could never publish. OpenSSL
//! asks for and verifies both. str0m's own OpenSSL provider for this str0m version is not on the
//! registry we build from, hence this small one.
//!
//! What it does:
//! - our certificate is a fresh self-signed ECDSA P-256 one per session (what Chromium uses),
//!   so every peer can verify it, including str0m/dimpl clients (`tribune speak`) that only do
//!   ECDSA;
//! - any peer certificate is accepted by OpenSSL; str0m then checks it against the SDP's
//!   `a=fingerprint` (that is WebRTC's authentication, RFC 8827 §6.5);
//! - DTLS 1.2 only (RFC 8827; OpenSSL 3.0 has no DTLS 1.3), forward-secret AEAD suites, the SRTP
//!   profiles str0m implements (RFC 5764, RFC 7714).
//!
//! OpenSSL reads and writes through an in-memory [`Wire`]: str0m hands datagrams in and takes
//! them out, so the instance stays sans-IO. OpenSSL keeps its own retransmission timer; while
//! the handshake runs the instance asks to be woken every [`HANDSHAKE_POLL`] to let OpenSSL
//! resend a lost flight when that timer has expired.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dimpl::SecurityError;
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::srtp::SrtpProfileId;
use openssl::ssl::{
    ErrorCode, Ssl, SslContext, SslContextBuilder, SslMethod, SslOptions, SslStream, SslVerifyMode,
    SslVersion,
};
use openssl::x509::{X509, X509NameBuilder};
use str0m::crypto::dtls::{
    DtlsCert, DtlsImplError, DtlsInstance, DtlsOutput, DtlsProvider, DtlsVersion, KeyingMaterial,
    ProtocolVersion, SrtpProfile,
};
use str0m::crypto::{CryptoError, CryptoProvider};

/// How often OpenSSL gets a chance to retransmit while the handshake runs. Its own timer starts
/// at 1 s and doubles; waking at this period delays a retransmission by at most this much.
const HANDSHAKE_POLL: Duration = Duration::from_millis(50);

/// When nothing is pending after the handshake: str0m wakes us for every packet anyway.
const IDLE: Duration = Duration::from_secs(3600);

/// Days our certificate is valid (it lives as long as one session). It starts a day in the past,
/// so a peer whose clock is behind still accepts it.
const CERT_DAYS: u32 = 30;

/// Our preference: AEAD first (RFC 7714), then the mandatory profile of RFC 8827.
const SRTP_PROFILES: &str = "SRTP_AEAD_AES_128_GCM:SRTP_AEAD_AES_256_GCM:SRTP_AES128_CM_SHA1_80";

/// ECDHE key exchange, AEAD ciphers, signed with either ECDSA or RSA (the peer's choice of
/// certificate; ours is ECDSA, so ECDSA suites are what gets negotiated).
const CIPHERS: &str = "ECDHE+AESGCM:ECDHE+CHACHA20";

/// The handshake_failure alert (RFC 5246 §7.2), what str0m is told when OpenSSL fails.
const HANDSHAKE_FAILURE: u8 = 40;

/// The crypto provider for every server-side [`str0m::Rtc`]: str0m's default one with its DTLS
/// replaced by [`OpensslDtls`]. Built once per process.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            static DTLS: OpensslDtls = OpensslDtls;
            let mut p = str0m::crypto::from_feature_flags();
            p.dtls_provider = &DTLS;
            Arc::new(p)
        })
        .clone()
}

/// str0m's DTLS provider trait on OpenSSL.
#[derive(Debug)]
pub struct OpensslDtls;

impl DtlsProvider for OpensslDtls {
    fn generate_certificate(&self) -> Option<DtlsCert> {
        match self_signed() {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!(error = %e, "DTLS certificate generation failed");
                None
            }
        }
    }

    fn new_dtls(
        &self,
        cert: &DtlsCert,
        now: Instant,
        version: DtlsVersion,
        mtu: Option<usize>,
    ) -> Result<Box<dyn DtlsInstance>, CryptoError> {
        if version == DtlsVersion::Dtls13 {
            return Err(CryptoError::Other(
                "DTLS 1.3 is not available with OpenSSL".into(),
            ));
        }
        let ctx = context(cert).map_err(|e| CryptoError::Other(format!("DTLS context: {e}")))?;
        Ok(Box::new(Instance {
            ctx,
            mtu: mtu.and_then(|m| u32::try_from(m).ok()),
            stream: None,
            active: false,
            state: State::Idle,
            events: VecDeque::new(),
            now,
        }))
    }
}

/// A self-signed ECDSA P-256 certificate (DER) and its key (PKCS#8 DER).
pub fn self_signed() -> Result<DtlsCert, ErrorStack> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    let key = PKey::from_ec_key(EcKey::generate(&group)?)?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_nid(Nid::COMMONNAME, "tribune")?;
    let name = name.build();
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(64, MsbOption::MAYBE_ZERO, false)?;
    let serial = serial.to_asn1_integer()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(&name)?;
    b.set_pubkey(&key)?;
    let yesterday = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs().saturating_sub(86_400))
        .unwrap_or(0);
    let not_before = Asn1Time::from_unix(i64::try_from(yesterday).unwrap_or(0))?;
    let not_after = Asn1Time::days_from_now(CERT_DAYS)?;
    b.set_not_before(&not_before)?;
    b.set_not_after(&not_after)?;
    b.sign(&key, MessageDigest::sha256())?;
    Ok(DtlsCert {
        certificate: b.build().to_der()?,
        private_key: key.private_key_to_pkcs8()?,
    })
}

fn context(cert: &DtlsCert) -> Result<SslContext, ErrorStack> {
    let x509 = X509::from_der(&cert.certificate)?;
    let key = PKey::private_key_from_der(&cert.private_key)?;
    let mut b = SslContextBuilder::new(SslMethod::dtls())?;
    b.set_min_proto_version(Some(SslVersion::DTLS1_2))?;
    b.set_max_proto_version(Some(SslVersion::DTLS1_2))?;
    b.set_certificate(&x509)?;
    b.set_private_key(&key)?;
    b.check_private_key()?;
    b.set_cipher_list(CIPHERS)?;
    b.set_tlsext_use_srtp(SRTP_PROFILES)?;
    // The MTU is ours to set (our in-memory BIO knows no path MTU).
    b.set_options(SslOptions::NO_QUERY_MTU | SslOptions::NO_TICKET);
    // Ask for (and insist on) the peer's certificate, of any type; accept whatever it is here:
    // str0m compares it with the SDP fingerprint, which is what authenticates it.
    b.set_verify_callback(
        SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
        |_, _| true,
    );
    Ok(b.build())
}

/// The datagrams between OpenSSL and str0m: one `read` is one received datagram, one `write`
/// one datagram to send (OpenSSL writes a whole datagram at a time on DTLS).
#[derive(Debug, Default)]
struct Wire {
    incoming: VecDeque<Vec<u8>>,
    outgoing: VecDeque<Vec<u8>>,
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(d) = self.incoming.pop_front() else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        // A datagram longer than OpenSSL's buffer is truncated, as a UDP socket would.
        let n = d.len().min(buf.len());
        buf[..n].copy_from_slice(&d[..n]);
        Ok(n)
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.outgoing.push_back(buf.to_vec());
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before str0m says which side we are.
    Idle,
    Handshaking,
    Connected,
    /// Closed by us or by the peer, or failed.
    Closed,
}

#[derive(Debug)]
enum Event {
    PeerCert(Vec<u8>),
    Keying(Vec<u8>, SrtpProfile),
    Connected,
    Data(Vec<u8>),
    CloseNotify,
}

/// One DTLS association.
struct Instance {
    ctx: SslContext,
    mtu: Option<u32>,
    stream: Option<SslStream<Wire>>,
    active: bool,
    state: State,
    /// What `poll_output` hands str0m after the datagrams to send.
    events: VecDeque<Event>,
    now: Instant,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("active", &self.active)
            .field("state", &self.state)
            .finish()
    }
}

fn failed(what: &str, e: impl std::fmt::Display) -> DtlsImplError {
    tracing::debug!(error = %e, "DTLS {what} failed");
    DtlsImplError::SecurityError(SecurityError::FatalAlert {
        description: HANDSHAKE_FAILURE,
    })
}

fn srtp_profile(id: SrtpProfileId) -> Option<SrtpProfile> {
    match id {
        SrtpProfileId::SRTP_AES128_CM_SHA1_80 => Some(SrtpProfile::AES128_CM_SHA1_80),
        SrtpProfileId::SRTP_AEAD_AES_128_GCM => Some(SrtpProfile::AEAD_AES_128_GCM),
        SrtpProfileId::SRTP_AEAD_AES_256_GCM => Some(SrtpProfile::AEAD_AES_256_GCM),
        _ => None,
    }
}

impl Instance {
    fn start(&mut self) -> Result<(), DtlsImplError> {
        let mut ssl = Ssl::new(&self.ctx).map_err(|e| failed("setup", e))?;
        if let Some(mtu) = self.mtu {
            ssl.set_mtu(mtu).map_err(|e| failed("setup", e))?;
        }
        if self.active {
            ssl.set_connect_state();
        } else {
            ssl.set_accept_state();
        }
        let stream = SslStream::new(ssl, Wire::default()).map_err(|e| failed("setup", e))?;
        self.stream = Some(stream);
        self.state = State::Handshaking;
        Ok(())
    }

    /// Let OpenSSL consume what came in (and retransmit if its timer expired).
    fn drive(&mut self) -> Result<(), DtlsImplError> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(());
        };
        if self.state == State::Handshaking {
            match stream.do_handshake() {
                Ok(()) => self.connected()?,
                Err(e) if matches!(e.code(), ErrorCode::WANT_READ | ErrorCode::WANT_WRITE) => {
                    return Ok(());
                }
                Err(e) => {
                    self.state = State::Closed;
                    return Err(failed("handshake", e));
                }
            }
        }
        let Some(stream) = self.stream.as_mut() else {
            return Ok(());
        };
        while self.state == State::Connected {
            let mut buf = vec![0u8; 2048];
            match stream.ssl_read(&mut buf) {
                Ok(n) => {
                    buf.truncate(n);
                    self.events.push_back(Event::Data(buf));
                }
                Err(e) if e.code() == ErrorCode::WANT_READ => break,
                Err(e) if e.code() == ErrorCode::ZERO_RETURN => {
                    self.state = State::Closed;
                    self.events.push_back(Event::CloseNotify);
                }
                Err(e) => {
                    self.state = State::Closed;
                    return Err(failed("read", e));
                }
            }
        }
        Ok(())
    }

    /// The handshake is done: hand str0m the peer's certificate (to check against the SDP
    /// fingerprint) and the SRTP keys, then say connected.
    fn connected(&mut self) -> Result<(), DtlsImplError> {
        let Some(stream) = self.stream.as_ref() else {
            return Ok(());
        };
        let ssl = stream.ssl();
        let cert = ssl
            .peer_certificate()
            .ok_or_else(|| failed("handshake", "no peer certificate"))?
            .to_der()
            .map_err(|e| failed("handshake", e))?;
        let profile = ssl
            .selected_srtp_profile()
            .and_then(|p| srtp_profile(p.id()))
            .ok_or_else(|| failed("handshake", "no SRTP profile negotiated"))?;
        let mut km = vec![0u8; profile.keying_material_len()];
        ssl.export_keying_material(&mut km, "EXTRACTOR-dtls_srtp", None)
            .map_err(|e| failed("key export", e))?;
        self.state = State::Connected;
        self.events.push_back(Event::PeerCert(cert));
        self.events.push_back(Event::Keying(km, profile));
        self.events.push_back(Event::Connected);
        Ok(())
    }
}

impl DtlsInstance for Instance {
    fn set_active(&mut self, active: bool) {
        self.active = active;
    }

    fn handle_packet(&mut self, packet: &[u8]) -> Result<(), DtlsImplError> {
        if self.state == State::Idle {
            self.start()?;
        }
        // str0m passes an empty packet to make a client start; OpenSSL starts on `drive`.
        // After the end nothing is read any more, so nothing is kept either.
        if !packet.is_empty()
            && self.state != State::Closed
            && let Some(s) = self.stream.as_mut()
        {
            s.get_mut().incoming.push_back(packet.to_vec());
        }
        self.drive()
    }

    fn poll_output<'a>(&mut self, buf: &'a mut [u8]) -> DtlsOutput<'a> {
        if let Some(s) = self.stream.as_mut()
            && let Some(d) = s.get_mut().outgoing.pop_front()
        {
            if d.len() > buf.len() {
                let needed = d.len();
                s.get_mut().outgoing.push_front(d);
                return DtlsOutput::BufferTooSmall { needed };
            }
            buf[..d.len()].copy_from_slice(&d);
            return DtlsOutput::Packet(&buf[..d.len()]);
        }
        let copy = |bytes: &[u8], buf: &'a mut [u8]| -> Result<&'a [u8], usize> {
            if bytes.len() > buf.len() {
                return Err(bytes.len());
            }
            buf[..bytes.len()].copy_from_slice(bytes);
            Ok(&buf[..bytes.len()])
        };
        if let Some(e) = self.events.pop_front() {
            let out = match &e {
                Event::PeerCert(der) => copy(der, buf).map(DtlsOutput::PeerCert),
                Event::Data(d) => copy(d, buf).map(DtlsOutput::ApplicationData),
                Event::Keying(km, p) => Ok(DtlsOutput::KeyingMaterial(KeyingMaterial::new(km), *p)),
                Event::Connected => Ok(DtlsOutput::Connected),
                Event::CloseNotify => Ok(DtlsOutput::CloseNotify),
            };
            return match out {
                Ok(o) => o,
                Err(needed) => {
                    self.events.push_front(e);
                    DtlsOutput::BufferTooSmall { needed }
                }
            };
        }
        match self.state {
            State::Handshaking => DtlsOutput::Timeout(self.now + HANDSHAKE_POLL),
            _ => DtlsOutput::Timeout(self.now + IDLE),
        }
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsImplError> {
        self.now = now;
        match self.state {
            State::Idle if self.active => {
                self.start()?;
                self.drive()
            }
            State::Handshaking => self.drive(),
            _ => Ok(()),
        }
    }

    fn send_application_data(&mut self, data: &[u8]) -> Result<usize, DtlsImplError> {
        if data.is_empty() || self.state != State::Connected {
            return Ok(0);
        }
        let Some(s) = self.stream.as_mut() else {
            return Ok(0);
        };
        match s.ssl_write(data) {
            Ok(n) => Ok(n),
            Err(e) if matches!(e.code(), ErrorCode::WANT_READ | ErrorCode::WANT_WRITE) => Ok(0),
            Err(e) => Err(failed("write", e)),
        }
    }

    fn is_active(&self) -> bool {
        self.active
    }

    fn protocol_version(&self) -> Option<ProtocolVersion> {
        (self.state == State::Connected).then_some(ProtocolVersion::DTLS1_2)
    }

    fn is_closed(&self) -> bool {
        self.state == State::Closed
            && self
                .stream
                .as_ref()
                .is_none_or(|s| s.get_ref().outgoing.is_empty())
    }

    fn close(&mut self) -> Result<(), DtlsImplError> {
        if self.state == State::Connected
            && let Some(s) = self.stream.as_mut()
        {
            // Queues close_notify; the peer's answer is not awaited.
            let _ = s.shutdown();
        }
        self.state = State::Closed;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drive two instances against each other (no network) until both are connected.
    fn handshake(
        client: &mut dyn DtlsInstance,
        server: &mut dyn DtlsInstance,
    ) -> Result<Vec<String>, DtlsImplError> {
        let now = Instant::now();
        let mut seen = Vec::new();
        client.set_active(true);
        server.set_active(false);
        client.handle_timeout(now).unwrap();
        server.handle_timeout(now).unwrap();
        client.handle_packet(&[]).unwrap();
        let mut buf = vec![0u8; 4096];
        for _ in 0..20 {
            flight(client, server, "client", &mut buf, &mut seen)?;
            flight(server, client, "server", &mut buf, &mut seen)?;
            if seen.iter().filter(|s| s.ends_with("connected")).count() == 2 {
                break;
            }
        }
        Ok(seen)
    }

    /// Everything `from` has to say, its datagrams delivered to `to`.
    fn flight(
        from: &mut dyn DtlsInstance,
        to: &mut dyn DtlsInstance,
        who: &str,
        buf: &mut [u8],
        seen: &mut Vec<String>,
    ) -> Result<(), DtlsImplError> {
        let mut packets = Vec::new();
        loop {
            match from.poll_output(buf) {
                DtlsOutput::Packet(p) => packets.push(p.to_vec()),
                DtlsOutput::Timeout(_) => break,
                DtlsOutput::Connected => seen.push(format!("{who} connected")),
                DtlsOutput::PeerCert(_) => seen.push(format!("{who} peer cert")),
                DtlsOutput::KeyingMaterial(km, p) => {
                    seen.push(format!("{who} keys {} {p:?}", km.len()))
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        for p in packets {
            to.handle_packet(&p)?;
        }
        Ok(())
    }

    #[test]
    fn openssl_server_and_client_agree_on_keys() {
        let p = OpensslDtls;
        let now = Instant::now();
        let mut c = p
            .new_dtls(
                &self_signed().unwrap(),
                now,
                DtlsVersion::Dtls12,
                Some(1150),
            )
            .unwrap();
        let mut s = p
            .new_dtls(
                &self_signed().unwrap(),
                now,
                DtlsVersion::Dtls12,
                Some(1150),
            )
            .unwrap();
        let seen = handshake(c.as_mut(), s.as_mut()).unwrap();
        for who in ["client", "server"] {
            assert!(seen.contains(&format!("{who} connected")), "{seen:?}");
            assert!(seen.contains(&format!("{who} peer cert")), "{seen:?}");
            assert!(
                seen.contains(&format!("{who} keys 56 AEAD_AES_128_GCM")),
                "{seen:?}"
            );
        }
    }

    /// The certificate we generate is one str0m's own DTLS (dimpl, what `tribune speak` and
    /// other str0m clients use) accepts: a dimpl client completes the handshake with us.
    #[test]
    fn dimpl_client_accepts_our_server() {
        let dimpl = str0m::crypto::from_feature_flags().dtls_provider;
        let now = Instant::now();
        let mut c = dimpl
            .new_dtls(
                &dimpl.generate_certificate().unwrap(),
                now,
                DtlsVersion::Dtls12,
                Some(1150),
            )
            .unwrap();
        let mut s = OpensslDtls
            .new_dtls(
                &self_signed().unwrap(),
                now,
                DtlsVersion::Dtls12,
                Some(1150),
            )
            .unwrap();
        let seen = handshake(c.as_mut(), s.as_mut()).unwrap();
        assert!(seen.contains(&"client connected".to_owned()), "{seen:?}");
        assert!(seen.contains(&"server connected".to_owned()), "{seen:?}");
        assert!(seen.contains(&"server peer cert".to_owned()), "{seen:?}");
    }

    /// An RSA client certificate (what webrtcbin presents) is accepted: the case dimpl refuses.
    #[test]
    fn rsa_client_certificate_is_accepted() {
        let rsa = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_nid(Nid::COMMONNAME, "gst").unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&rsa).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        b.sign(&rsa, MessageDigest::sha256()).unwrap();
        let cert = DtlsCert {
            certificate: b.build().to_der().unwrap(),
            private_key: rsa.private_key_to_pkcs8().unwrap(),
        };
        let now = Instant::now();
        let mut c = OpensslDtls
            .new_dtls(&cert, now, DtlsVersion::Dtls12, Some(1150))
            .unwrap();
        let mut s = OpensslDtls
            .new_dtls(
                &self_signed().unwrap(),
                now,
                DtlsVersion::Dtls12,
                Some(1150),
            )
            .unwrap();
        let seen = handshake(c.as_mut(), s.as_mut()).unwrap();
        assert!(seen.contains(&"server connected".to_owned()), "{seen:?}");
        assert!(seen.contains(&"server peer cert".to_owned()), "{seen:?}");
    }

    /// And the same RSA client against dimpl as the server fails: why this provider exists.
    #[test]
    fn dimpl_server_refuses_rsa_client() {
        let dimpl = str0m::crypto::from_feature_flags().dtls_provider;
        let rsa = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
        let mut b = X509::builder().unwrap();
        b.set_pubkey(&rsa).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        b.sign(&rsa, MessageDigest::sha256()).unwrap();
        let cert = DtlsCert {
            certificate: b.build().to_der().unwrap(),
            private_key: rsa.private_key_to_pkcs8().unwrap(),
        };
        let now = Instant::now();
        let mut c = OpensslDtls
            .new_dtls(&cert, now, DtlsVersion::Dtls12, Some(1150))
            .unwrap();
        let mut s = dimpl
            .new_dtls(
                &dimpl.generate_certificate().unwrap(),
                now,
                DtlsVersion::Dtls12,
                Some(1150),
            )
            .unwrap();
        match handshake(c.as_mut(), s.as_mut()) {
            Err(e) => assert_eq!(
                e.to_string(),
                "certificate error: no client certificate received"
            ),
            Ok(seen) => panic!("dimpl now accepts RSA clients ({seen:?}): this provider may go"),
        }
    }
}
