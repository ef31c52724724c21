//! The fan-out's sans-IO core: the window of recent pages a writer's listeners share, and each
//! listener's place in it.
//!
//! A listener's whole state is a [`Cursor`]: the bytes it gets first (the response head and its
//! numbered header pages, shared with every listener that joined at the same page), the index of
//! the next page, and how much of it is already written. Pages are shared [`LivePage`]s, never
//! copied; a listener whose next page has left the window is too slow and goes. Nothing here
//! touches a socket: [`Window::fill`] says what to write next and [`Window::advance`] takes
//! note of what was written.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::Bytes;

use crate::live::LivePage;

/// The end of a chunked body.
const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Recent pages, oldest first, numbered from [`Window::base`].
#[derive(Debug)]
pub struct Window {
    pages: VecDeque<LivePage>,
    /// Index of `pages[0]`.
    base: u64,
    /// Pages kept: how far a listener may lag.
    keep: usize,
    /// Pages of recent audio a new listener starts with.
    burst: usize,
    /// No page will come any more.
    closed: bool,
}

/// One listener's place.
#[derive(Debug)]
pub struct Cursor {
    /// Written before any page (empty once written).
    pre: Bytes,
    /// Index of the page being written; past the last page when the listener is caught up.
    next: u64,
    /// Bytes written of `pre` (while it is not empty), else of page `next` (or of the last
    /// chunk, once the stream is closed).
    off: usize,
    /// Pages go out as HTTP/1.1 chunks (else raw, to an HTTP/1.0 client).
    chunked: bool,
}

/// What a listener needs next.
#[derive(Debug, PartialEq, Eq)]
pub enum Fill {
    /// Write these many slices (filled in by [`Window::fill`]).
    Write(usize),
    /// Nothing until the next page.
    Idle,
    /// Everything is written and the stream is over: close the connection.
    Done,
    /// Its next page has left the window: it is too slow.
    Behind,
}

impl Window {
    /// A window keeping `keep` pages (at least `burst`), starting with `recent` pages.
    pub fn new(keep: usize, burst: usize, recent: Vec<LivePage>) -> Window {
        let keep = keep.max(burst).max(1);
        let mut w = Window {
            pages: VecDeque::with_capacity(keep + 1),
            base: 0,
            keep,
            burst,
            closed: false,
        };
        for p in recent {
            w.push(p);
        }
        w
    }

    /// A new page; the oldest leaves once more than `keep` are held.
    pub fn push(&mut self, page: LivePage) {
        self.pages.push_back(page);
        if self.pages.len() > self.keep {
            self.pages.pop_front();
            self.base += 1;
        }
    }

    /// No page will come any more: listeners get what is left, then the end.
    pub fn close(&mut self) {
        self.closed = true;
    }

    /// Whether the stream is over.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Forget every page (after missing some): only listeners that join afterwards can be served.
    pub fn reset(&mut self) {
        // Past every index handed out so far, so no old cursor can continue across the gap.
        self.base = self.end() + 1;
        self.pages.clear();
    }

    fn end(&self) -> u64 {
        self.base + self.pages.len() as u64
    }

    /// Where a listener joining now starts (up to `burst` pages back).
    pub fn start(&self) -> u64 {
        self.end() - self.pages.len().min(self.burst) as u64
    }

    fn page(&self, i: u64) -> Option<&LivePage> {
        let k = usize::try_from(i.checked_sub(self.base)?).ok()?;
        self.pages.get(k)
    }

    /// A cursor at `start` (from [`Window::start`]) that first writes `pre`.
    pub fn cursor(&self, pre: Bytes, start: u64, chunked: bool) -> Cursor {
        Cursor {
            pre,
            next: start,
            off: 0,
            chunked,
        }
    }

    /// Whether `c`'s next page has left the window.
    pub fn is_behind(&self, c: &Cursor) -> bool {
        c.next < self.base
    }

    /// Fill `iov` with what `c` needs next, in order.
    pub fn fill<'a>(&'a self, c: &'a Cursor, iov: &mut [IoSlice<'a>]) -> Fill {
        if self.is_behind(c) {
            return Fill::Behind;
        }
        let mut n = 0;
        let mut off = c.off;
        if !c.pre.is_empty() && n < iov.len() {
            iov[n] = IoSlice::new(&c.pre[off..]);
            n += 1;
            off = 0;
        }
        let mut i = c.next;
        while n < iov.len()
            && let Some(p) = self.page(i)
        {
            let bytes = if c.chunked { &p.chunk } else { &p.bytes };
            iov[n] = IoSlice::new(&bytes[off..]);
            n += 1;
            off = 0;
            i += 1;
        }
        if n == 0 && self.closed {
            if c.chunked && i == self.end() {
                iov[0] = IoSlice::new(&LAST_CHUNK[off..]);
                return Fill::Write(1);
            }
            return Fill::Done;
        }
        if n == 0 { Fill::Idle } else { Fill::Write(n) }
    }

    /// Take note that `c` wrote `written` bytes of what [`Window::fill`] gave it.
    pub fn advance(&self, c: &mut Cursor, mut written: usize) {
        if !c.pre.is_empty() {
            let left = c.pre.len() - c.off;
            if written < left {
                c.off += written;
                return;
            }
            written -= left;
            c.pre = Bytes::new();
            c.off = 0;
        }
        while written > 0 {
            let len = match self.page(c.next) {
                Some(p) if c.chunked => p.chunk.len(),
                Some(p) => p.bytes.len(),
                None => LAST_CHUNK.len(),
            };
            let left = len - c.off;
            if written < left {
                c.off += written;
                return;
            }
            written -= left;
            c.next += 1;
            c.off = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(seq: u32) -> LivePage {
        LivePage::new(seq, seq, seq as u64 * 9600, &[seq as u8; 10])
    }

    /// Everything `c` would get if each write took at most `step` bytes.
    fn drain(w: &Window, c: &mut Cursor, step: usize) -> (Vec<u8>, Fill) {
        let mut out = Vec::new();
        loop {
            let mut iov = [IoSlice::new(&[]); 4];
            let n = match w.fill(c, &mut iov) {
                Fill::Write(n) => n,
                other => return (out, other),
            };
            let flat: Vec<u8> = iov[..n].iter().flat_map(|s| s.iter().copied()).collect();
            let k = flat.len().min(step);
            out.extend_from_slice(&flat[..k]);
            w.advance(c, k);
        }
    }

    /// The Ogg sequence number of the page at index `i`.
    fn seq_at(w: &Window, i: u64) -> Option<u32> {
        w.page(i).map(|p| p.seq)
    }

    #[test]
    fn a_new_listener_gets_its_head_the_burst_then_each_page() {
        let mut w = Window::new(5, 2, vec![page(2), page(3), page(4)]);
        let start = w.start();
        assert_eq!(
            seq_at(&w, start),
            Some(3),
            "two pages of burst: pages 3 and 4"
        );
        let mut c = w.cursor(Bytes::from_static(b"HEAD"), start, false);
        for step in [1, 3, 1000] {
            let mut c2 = w.cursor(Bytes::from_static(b"HEAD"), start, false);
            let (got, end) = drain(&w, &mut c2, step);
            assert_eq!(end, Fill::Idle);
            assert_eq!(
                got,
                [&b"HEAD"[..], &[3; 10], &[4; 10]].concat(),
                "step {step}"
            );
        }
        let (_, end) = drain(&w, &mut c, 7);
        assert_eq!(end, Fill::Idle);
        w.push(page(5));
        let (got, _) = drain(&w, &mut c, 7);
        assert_eq!(got, [5; 10]);
    }

    #[test]
    fn chunked_listeners_get_chunks_and_the_last_chunk() {
        let mut w = Window::new(5, 1, vec![page(2)]);
        let start = w.start();
        let mut c = w.cursor(Bytes::new(), start, true);
        let (got, _) = drain(&w, &mut c, 4);
        assert_eq!(got, b"a\r\n\x02\x02\x02\x02\x02\x02\x02\x02\x02\x02\r\n");
        w.push(page(3));
        w.close();
        let (got, end) = drain(&w, &mut c, 2);
        assert_eq!(&got[got.len() - 5..], b"0\r\n\r\n");
        assert_eq!(end, Fill::Done);
        // An HTTP/1.0 listener just ends.
        let mut raw = w.cursor(Bytes::new(), w.start(), false);
        let (got, end) = drain(&w, &mut raw, 100);
        assert_eq!((got, end), (vec![3; 10], Fill::Done));
    }

    #[test]
    fn a_listener_whose_page_left_the_window_is_behind() {
        let mut w = Window::new(3, 1, vec![]);
        let start = w.start();
        assert_eq!(
            seq_at(&w, start),
            None,
            "no page yet: the listener starts with the next one"
        );
        let mut slow = w.cursor(Bytes::from_static(b"H"), start, false);
        let mut fast = w.cursor(Bytes::new(), start, false);
        w.push(page(0));
        // The slow one writes only part of its first page.
        assert_eq!(w.fill(&slow, &mut [IoSlice::new(&[]); 4]), Fill::Write(2));
        w.advance(&mut slow, 4);
        for s in 1..=3 {
            w.push(page(s));
            assert_eq!(drain(&w, &mut fast, 100).1, Fill::Idle);
        }
        assert!(w.is_behind(&slow));
        assert_eq!(
            w.fill(&slow, &mut [IoSlice::new(&[]); 4]),
            Fill::Behind,
            "page 0 is gone"
        );
        assert_eq!(w.fill(&fast, &mut [IoSlice::new(&[]); 4]), Fill::Idle);
    }

    #[test]
    fn the_burst_never_exceeds_what_is_kept() {
        let w = Window::new(2, 4, (0..10).map(page).collect());
        assert_eq!(
            seq_at(&w, w.start()),
            Some(6),
            "keep is raised to the burst"
        );
        let mut r = Window::new(2, 1, vec![page(0)]);
        r.reset();
        r.push(page(7));
        assert_eq!(seq_at(&r, r.start()), Some(7));
    }
}
