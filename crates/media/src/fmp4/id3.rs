//! ID3v2.4 tags of `TXXX` frames: the payload of the timed-metadata `emsg` boxes.
//!
//! Layout (ID3v2.4.0 "structure" §3.1 and §4, "native frames" §4.2.6):
//!
//! ```text
//! "ID3" 04 00 flags=00 size(4, synchsafe)      tag header; size excludes these 10 bytes
//! "TXXX" size(4, synchsafe) flags(2)=0000      frame header; size excludes these 10 bytes
//! 03 description 00 value                      UTF-8, description NUL-terminated
//! ```
//!
//! hls.js decodes such a tag into `{ key: "TXXX", info: description, data: value }`.

/// A synchsafe integer holds 28 bits: four bytes of seven bits each.
const SYNCHSAFE_MAX: usize = (1 << 28) - 1;
/// Size of the tag header and of each frame header.
const HEADER_LEN: usize = 10;
/// `$03`: the frame's strings are UTF-8.
const UTF8: u8 = 3;

/// An ID3v2.4 tag with one `TXXX` (user-defined text) frame per `(description, value)` pair, in
/// order, both UTF-8. A description ends at its first NUL (the byte that terminates it on the
/// wire). Frames that would push the tag past the 28-bit synchsafe size limit (256 MiB) are left
/// out.
pub fn id3_tag(frames: &[(&str, &str)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (description, value) in frames {
        let description = description.split('\0').next().unwrap_or_default();
        let frame_len = 1 + description.len() + 1 + value.len();
        if body.len() + HEADER_LEN + frame_len > SYNCHSAFE_MAX {
            continue;
        }
        body.extend_from_slice(b"TXXX");
        body.extend_from_slice(&synchsafe(frame_len));
        body.extend_from_slice(&[0, 0]);
        body.push(UTF8);
        body.extend_from_slice(description.as_bytes());
        body.push(0);
        body.extend_from_slice(value.as_bytes());
    }
    let mut tag = Vec::with_capacity(HEADER_LEN + body.len());
    tag.extend_from_slice(b"ID3");
    tag.extend_from_slice(&[4, 0, 0]); // version 2.4.0, no flags
    tag.extend_from_slice(&synchsafe(body.len()));
    tag.extend_from_slice(&body);
    tag
}

/// `n` (at most [`SYNCHSAFE_MAX`]) as four big-endian bytes of seven bits each, so no byte of a
/// size can look like the start of an MPEG sync word.
fn synchsafe(n: usize) -> [u8; 4] {
    let n = n.min(SYNCHSAFE_MAX);
    [
        (n >> 21) as u8 & 0x7f,
        (n >> 14) as u8 & 0x7f,
        (n >> 7) as u8 & 0x7f,
        n as u8 & 0x7f,
    ]
}
