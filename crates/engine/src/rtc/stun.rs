//! Just enough STUN (RFC 8489) to route a datagram on the shared UDP port: is this a binding
//! request, and which local ICE username fragment does it name?
//!
//! Runs on every unknown datagram, so it reads the buffer in place and allocates nothing; the
//! full check (message integrity) is str0m's, once the datagram reaches its session.

/// The STUN magic cookie (RFC 8489 §5).
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
/// Message type of a Binding request.
const BINDING_REQUEST: u16 = 0x0001;
/// The USERNAME attribute.
const ATTR_USERNAME: u16 = 0x0006;
/// STUN header length.
const HEADER: usize = 20;

/// If `buf` is a STUN binding request carrying a USERNAME of the form `local:remote`, return
/// `local` (the receiver's ufrag, i.e. ours).
pub fn binding_request_local_ufrag(buf: &[u8]) -> Option<&str> {
    if buf.len() < HEADER || buf[0] & 0xC0 != 0 {
        return None;
    }
    let typ = u16::from_be_bytes([buf[0], buf[1]]);
    let len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
    if typ != BINDING_REQUEST || buf[4..8] != MAGIC_COOKIE || HEADER + len != buf.len() {
        return None;
    }
    let mut attrs = &buf[HEADER..];
    while attrs.len() >= 4 {
        let t = u16::from_be_bytes([attrs[0], attrs[1]]);
        let l = u16::from_be_bytes([attrs[2], attrs[3]]) as usize;
        let value = attrs.get(4..4 + l)?;
        if t == ATTR_USERNAME {
            let s = std::str::from_utf8(value).ok()?;
            let (local, _remote) = s.split_once(':')?;
            return (!local.is_empty()).then_some(local);
        }
        // Attributes are padded to a multiple of 4 bytes.
        let padded = 4 + l.div_ceil(4) * 4;
        attrs = attrs.get(padded..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn request(username: &[u8]) -> Vec<u8> {
        let mut attrs = Vec::new();
        // A PRIORITY attribute first, as ICE clients send.
        attrs.extend_from_slice(&[0x00, 0x24, 0x00, 0x04, 1, 2, 3, 4]);
        attrs.extend_from_slice(&ATTR_USERNAME.to_be_bytes());
        attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attrs.extend_from_slice(username);
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&attrs);
        m
    }

    #[test]
    fn finds_local_ufrag() {
        assert_eq!(
            binding_request_local_ufrag(&request(b"srv1:cli")),
            Some("srv1")
        );
        assert_eq!(
            binding_request_local_ufrag(&request(b"abcde:x")),
            Some("abcde")
        );
    }

    #[test]
    fn rejects_non_requests() {
        assert_eq!(binding_request_local_ufrag(&request(b"nocolon")), None);
        let mut resp = request(b"a:b");
        resp[1] = 0x01;
        resp[0] = 0x01; // binding success response
        assert_eq!(binding_request_local_ufrag(&resp), None);
        let mut bad_len = request(b"a:b");
        bad_len.push(0);
        assert_eq!(binding_request_local_ufrag(&bad_len), None);
        assert_eq!(binding_request_local_ufrag(&[0x80; 40]), None, "RTP-like");
        assert_eq!(binding_request_local_ufrag(&[]), None);
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = binding_request_local_ufrag(&bytes);
        }

        #[test]
        fn round_trips(local in "[a-zA-Z0-9+/]{1,32}", remote in "[a-zA-Z0-9+/]{1,32}") {
            let m = request(format!("{local}:{remote}").as_bytes());
            prop_assert_eq!(binding_request_local_ufrag(&m), Some(local.as_str()));
        }
    }
}
