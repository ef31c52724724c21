//! Reading back what [`super::fragment`] writes, for clients: the `emsg` boxes at the top level
//! of a CMAF chunk (a part or a segment) and the `TXXX` frames of the ID3 tags they carry.
//!
//! Both take bytes from the network and never panic: a truncated or foreign box ends the walk,
//! a malformed tag yields the frames read before the fault.

use mp4_atom::{Decode, EmsgTimestamp};

use super::Emsg;

/// Every `emsg` box (version 0 or 1) among the top-level boxes of `chunk`, in order; the walk
/// stops at the first box whose header does not fit (a version 0 box's relative time is
/// reported as its `presentation_time`).
pub fn emsgs(chunk: &[u8]) -> Vec<Emsg> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while let Some((kind, len)) = box_header(&chunk[at..]) {
        let Some(end) = at.checked_add(len).filter(|&e| e <= chunk.len()) else {
            break;
        };
        if &kind == b"emsg" {
            let mut body = &chunk[at..end];
            if let Ok(e) = mp4_atom::Emsg::decode(&mut body) {
                out.push(Emsg {
                    scheme_id_uri: e.scheme_id_uri,
                    value: e.value,
                    timescale: e.timescale,
                    presentation_time: match e.presentation_time {
                        EmsgTimestamp::Absolute(t) => t,
                        EmsgTimestamp::Relative(t) => u64::from(t),
                    },
                    event_duration: e.event_duration,
                    id: e.id,
                    message_data: e.message_data,
                });
            }
        }
        at = end;
    }
    out
}

/// A box's type and whole length (header included), if its header is complete and sane.
fn box_header(b: &[u8]) -> Option<([u8; 4], usize)> {
    let size = u32::from_be_bytes(b.get(0..4)?.try_into().ok()?) as u64;
    let kind: [u8; 4] = b.get(4..8)?.try_into().ok()?;
    let (len, header) = match size {
        // A 64-bit size follows the type.
        1 => (u64::from_be_bytes(b.get(8..16)?.try_into().ok()?), 16),
        // "To the end of the file".
        0 => (b.len() as u64, 8),
        n => (n, 8),
    };
    (len >= header).then_some((kind, usize::try_from(len).ok()?))
}

/// The `(description, value)` of every `TXXX` frame of an ID3v2.3 or v2.4 tag, in order
/// (UTF-8, lossily; a value's trailing NUL dropped). Other frames are skipped; anything that is
/// not an ID3 tag gives nothing.
pub fn txxx(tag: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if tag.len() < 10 || &tag[0..3] != b"ID3" {
        return out;
    }
    let version = tag[3];
    let end = tag.len().min(10 + synchsafe(&tag[6..10]));
    let mut i = 10;
    while i + 10 <= end {
        let id = &tag[i..i + 4];
        let size_bytes = &tag[i + 4..i + 8];
        let size = if version >= 4 {
            synchsafe(size_bytes)
        } else {
            u32::from_be_bytes([size_bytes[0], size_bytes[1], size_bytes[2], size_bytes[3]])
                as usize
        };
        let start = i + 10;
        let valid_id = id
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        if !valid_id || size == 0 || start + size > end {
            break;
        }
        if id == b"TXXX" {
            // After the encoding byte: description NUL value.
            let f = &tag[start + 1..start + size];
            if let Some(nul) = f.iter().position(|&c| c == 0) {
                let value = &f[nul + 1..];
                let value = value.strip_suffix(&[0]).unwrap_or(value);
                out.push((
                    String::from_utf8_lossy(&f[..nul]).into_owned(),
                    String::from_utf8_lossy(value).into_owned(),
                ));
            }
        }
        i = start + size;
    }
    out
}

fn synchsafe(b: &[u8]) -> usize {
    b.iter()
        .fold(0usize, |n, &x| (n << 7) | usize::from(x & 0x7f))
}

#[cfg(test)]
mod tests {
    use super::super::{EMSG_ID3_SCHEME, Sample, fragment, id3_tag};
    use super::*;
    use proptest::prelude::*;

    fn emsg(id: u32, data: Vec<u8>) -> Emsg {
        Emsg {
            scheme_id_uri: EMSG_ID3_SCHEME.into(),
            value: String::new(),
            timescale: 48_000,
            presentation_time: 96_000 + u64::from(id),
            event_duration: 0xFFFF_FFFF,
            id,
            message_data: data,
        }
    }

    #[test]
    fn reads_back_what_fragment_writes() {
        let tag = id3_tag(&[("tribune", r#"{"k":1,"listeners":3}"#), ("other", "x")]);
        let boxes = vec![emsg(7, tag.clone()), emsg(8, id3_tag(&[]))];
        let samples = [Sample {
            data: &[1, 2, 3],
            duration: 960,
        }];
        let chunk = fragment(1, 0, &samples, &boxes);
        assert_eq!(emsgs(&chunk), boxes);
        assert_eq!(
            txxx(&tag),
            vec![
                ("tribune".to_owned(), r#"{"k":1,"listeners":3}"#.to_owned()),
                ("other".to_owned(), "x".to_owned())
            ]
        );
        assert!(emsgs(&fragment(2, 960, &samples, &[])).is_empty());
        assert!(txxx(b"not a tag at all").is_empty());
    }

    proptest! {
        #[test]
        fn any_bytes_are_read_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = emsgs(&bytes);
            let _ = txxx(&bytes);
        }

        #[test]
        fn a_truncated_chunk_yields_a_prefix_of_its_boxes(cut in 0usize..400, n in 0u32..4) {
            let boxes: Vec<Emsg> = (0..n).map(|i| emsg(i, id3_tag(&[("tribune", "{}")]))).collect();
            let chunk = fragment(1, 0, &[Sample { data: &[9; 40], duration: 960 }], &boxes);
            let got = emsgs(&chunk[..cut.min(chunk.len())]);
            prop_assert!(got.len() <= boxes.len());
            prop_assert_eq!(&boxes[..got.len()], &got[..]);
        }

        #[test]
        fn frames_round_trip(frames in proptest::collection::vec(("[a-z]{0,8}", "[^\u{0}]{0,40}"), 0..5)) {
            let pairs: Vec<(&str, &str)> = frames.iter().map(|(d, v)| (d.as_str(), v.as_str())).collect();
            let got = txxx(&id3_tag(&pairs));
            let want: Vec<(String, String)> = frames.clone();
            prop_assert_eq!(got, want);
        }
    }
}
