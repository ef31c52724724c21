//! `dvr.m3u8` rendered as it grows: each segment's lines are written once, when the segment
//! closes, so keeping the playlist current costs the same an hour or a day into a space.
//!
//! The text is the header and the complete segments, then `EXT-X-ENDLIST` once the rendition
//! has ended; there is nothing else (no parts, no preload hint: see
//! [`Rendition::dvr_playlist`](super::Rendition::dvr_playlist), the whole rendering, which
//! the tests hold this one to, byte for byte). [`Writer`] keeps the rendered text in immutable
//! pieces of about [`PIECE`] bytes, chained from the newest back, and the newest, growing piece
//! as a string of its own: closing a segment appends its ~80 bytes to that string and copies
//! it (at most a piece), and a snapshot ([`DvrText`]) is two reference counts, whatever the
//! length. Joining the pieces into one buffer is left to whoever serves it
//! ([`DvrText::render`]), once per version.

use std::fmt;
use std::sync::Arc;

use super::rendition::{SegmentInfo, write_dvr_header, write_segment};

/// Size at which the growing piece is frozen and a new one started: small enough that copying
/// it at every segment close is cheap (a few µs), large enough that a long space is few pieces
/// (three hours of 2 s segments, ~430 KB, are ~110).
pub const PIECE: usize = 4096;

/// A frozen piece of the text and the ones before it.
#[derive(Debug)]
struct Piece {
    before: Option<Arc<Piece>>,
    text: Box<str>,
}

impl Drop for Piece {
    /// Unlinks the chain one piece at a time: a long space is a long chain, and dropping it
    /// recursively could exhaust a thread's stack.
    fn drop(&mut self) {
        let mut next = self.before.take();
        while let Some(p) = next {
            next = match Arc::try_unwrap(p) {
                Ok(mut piece) => piece.before.take(),
                Err(_) => None, // still shared by a snapshot: it unlinks the rest itself
            };
        }
    }
}

/// `dvr.m3u8` as it stood when taken from [`Rendition::dvr_text`](super::Rendition::dvr_text):
/// cheap to take and to clone, immutable. Its text is [`DvrText::render`] (or `Display`).
#[derive(Debug, Clone)]
pub struct DvrText {
    frozen: Option<Arc<Piece>>,
    /// Bytes in the frozen pieces.
    frozen_len: usize,
    tail: Arc<str>,
    ended: bool,
}

impl DvrText {
    /// Length of the text in bytes.
    pub fn len(&self) -> usize {
        self.frozen_len + self.tail.len() + if self.ended { ENDLIST.len() } else { 0 }
    }

    /// Never: the text always has its header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The pieces of the text, in order; their concatenation is the playlist.
    pub fn pieces(&self) -> impl Iterator<Item = &str> {
        let mut frozen = Vec::new();
        let mut p = self.frozen.as_deref();
        while let Some(piece) = p {
            frozen.push(&*piece.text);
            p = piece.before.as_deref();
        }
        frozen
            .into_iter()
            .rev()
            .chain(std::iter::once(&*self.tail))
            .chain(self.ended.then_some(ENDLIST))
    }

    /// The whole text, in one string (a copy of every piece).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(self.len());
        for p in self.pieces() {
            out.push_str(p);
        }
        out
    }
}

impl fmt::Display for DvrText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.pieces().try_for_each(|p| f.write_str(p))
    }
}

const ENDLIST: &str = "#EXT-X-ENDLIST\n";

/// The rendered text of every complete segment so far, appended to as segments close.
#[derive(Debug, Clone)]
pub(super) struct Writer {
    frozen: Option<Arc<Piece>>,
    frozen_len: usize,
    /// The growing piece, and the copy of it snapshots share.
    tail: String,
    shared: Arc<str>,
}

impl Writer {
    /// The header alone: no segment yet.
    pub(super) fn new(target: u64) -> Writer {
        let mut tail = String::with_capacity(PIECE + 256);
        write_dvr_header(&mut tail, target);
        Writer {
            frozen: None,
            frozen_len: 0,
            shared: Arc::from(tail.as_str()),
            tail,
        }
    }

    /// Appends complete segments, in order.
    pub(super) fn extend<'a>(&mut self, segments: impl IntoIterator<Item = &'a SegmentInfo>) {
        for s in segments {
            write_segment(&mut self.tail, s, false, true);
            if self.tail.len() >= PIECE {
                let text = std::mem::replace(&mut self.tail, String::with_capacity(PIECE + 256));
                self.frozen_len += text.len();
                self.frozen = Some(Arc::new(Piece {
                    before: self.frozen.take(),
                    text: text.into_boxed_str(),
                }));
            }
        }
        self.shared = Arc::from(self.tail.as_str());
    }

    /// The text now, with `EXT-X-ENDLIST` if `ended`.
    pub(super) fn snapshot(&self, ended: bool) -> DvrText {
        DvrText {
            frozen: self.frozen.clone(),
            frozen_len: self.frozen_len,
            tail: self.shared.clone(),
            ended,
        }
    }
}
