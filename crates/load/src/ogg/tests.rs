//! The scanner against streams made by tribune's own Ogg/Opus writer: any chunking of a valid
//! stream has no gap; a dropped page, a renumbered stream or lost framing is a gap; no input
//! makes it panic.

use std::time::Duration;

use proptest::prelude::*;
use tribune_media::ogg::{Page, PageReader};
use tribune_media::oggopus::OggOpusWriter;

use super::*;

/// (first bytes of a packet, its duration in samples): TOC bytes of every mode and code.
const TOCS: &[(&[u8], u32)] = &[
    (&[0xF8], 960),        // CELT FB 20 ms, one frame
    (&[0x78], 960),        // Hybrid FB 20 ms
    (&[0x08], 960),        // SILK NB 20 ms
    (&[0x18], 2880),       // SILK NB 60 ms
    (&[0x80], 120),        // CELT NB 2.5 ms
    (&[0xF9], 1920),       // code 1: two frames of 20 ms
    (&[0xFB, 0x03], 2880), // code 3: three frames of 20 ms
];

fn packet(toc: usize, len: usize) -> (Vec<u8>, u32) {
    let (start, samples) = TOCS[toc % TOCS.len()];
    let mut p = start.to_vec();
    p.resize(len.max(start.len()), 0x55);
    (p, samples)
}

/// Splits a byte stream into its pages.
fn pages_of(bytes: &[u8]) -> Vec<Page> {
    let mut reader = PageReader::new();
    reader.push(bytes);
    let mut pages = Vec::new();
    while let Ok(Some(p)) = reader.next_page() {
        pages.push(p);
    }
    pages
}

/// A stream of `groups` (each flushed as one page, or more if it has over 255 lacing values):
/// its headers at sequence 0 and 1, then audio pages from `first_seq`, as tribune's live stream
/// (and Icecast) sends it to a listener joining mid-stream. Returns its pages.
fn stream(groups: &[Vec<(Vec<u8>, u32)>], first_seq: u32, start_granule: u64) -> Vec<Page> {
    let mut w = OggOpusWriter::resume(7, 1, 312, vec![], first_seq, start_granule);
    let mut bytes = w.header_pages();
    for group in groups {
        for (p, samples) in group {
            w.push(p, *samples);
        }
        if let Some(page) = w.flush(false) {
            bytes.extend_from_slice(&page.bytes);
        }
    }
    pages_of(&bytes)
}

fn bytes_of(pages: &[Page]) -> Vec<u8> {
    pages.iter().flat_map(|p| p.to_bytes().unwrap()).collect()
}

/// Feeds `bytes` in pieces of the given sizes (cycled), the i-th piece at i ms.
fn scan(bytes: &[u8], sizes: &[usize]) -> Stats {
    let mut s = Scanner::new();
    let mut at = 0;
    let mut i = 0;
    while at < bytes.len() {
        let n = sizes[i % sizes.len()].max(1).min(bytes.len() - at);
        s.push(&bytes[at..at + n], Duration::from_millis(i as u64));
        at += n;
        i += 1;
    }
    s.stats().clone()
}

fn simple_groups(pages: usize) -> Vec<Vec<(Vec<u8>, u32)>> {
    (0..pages)
        .map(|i| (0..10).map(|j| packet(i + j, 60 + j * 7)).collect())
        .collect()
}

#[test]
fn a_whole_stream_has_no_gap() {
    let pages = stream(&simple_groups(20), 2, 0);
    let stats = scan(&bytes_of(&pages), &[usize::MAX]);
    assert_eq!(stats.gaps(), 0, "{stats:?}");
    assert_eq!(stats.pages, 22);
    assert_eq!(stats.audio_pages, 20);
    assert_eq!(stats.streams, 1);
    assert!(stats.opus);
    assert_eq!(stats.first_audio, Some(Duration::ZERO));
}

#[test]
fn joining_mid_stream_has_no_gap() {
    // Headers at 0 and 1, then audio pages from 100 at granule 48 000 000.
    let pages = stream(&simple_groups(5), 100, 48_000_000);
    assert_eq!((pages[0].seq, pages[1].seq, pages[2].seq), (0, 1, 100));
    let stats = scan(&bytes_of(&pages), &[100]);
    assert_eq!(stats.gaps(), 0, "{stats:?}");
    assert_eq!(stats.audio_pages, 5);
}

#[test]
fn after_a_late_join_a_dropped_page_is_a_gap() {
    let mut pages = stream(&simple_groups(6), 100, 48_000_000);
    pages.remove(4);
    let stats = scan(&bytes_of(&pages), &[100]);
    assert_eq!(stats.seq_gaps, 1, "{stats:?}");
    // Only the first page after the headers may jump, and only ahead.
    let mut back = stream(&simple_groups(3), 2, 0);
    back[2].seq = 1;
    for p in &mut back[3..] {
        p.seq -= 1;
    }
    assert_eq!(scan(&bytes_of(&back), &[100]).seq_gaps, 1);
}

#[test]
fn join_latency_is_the_first_byte_of_the_first_audio_page() {
    let pages = stream(&simple_groups(3), 2, 0);
    let mut s = Scanner::new();
    let headers = bytes_of(&pages[..2]);
    let audio = bytes_of(&pages[2..]);
    s.push(&headers, Duration::from_millis(1));
    assert_eq!(s.stats().first_audio, None, "header pages are not audio");
    s.push(&audio[..10], Duration::from_millis(5));
    s.push(&audio[10..], Duration::from_millis(9));
    assert_eq!(s.stats().first_audio, Some(Duration::from_millis(5)));
}

#[test]
fn a_dropped_page_is_a_sequence_gap() {
    let mut pages = stream(&simple_groups(10), 2, 0);
    pages.remove(6);
    let stats = scan(&bytes_of(&pages), &[333]);
    assert_eq!(stats.seq_gaps, 1, "{stats:?}");
    assert_eq!(
        stats.granule_gaps, 0,
        "the jump after a sequence gap is not counted twice"
    );
}

#[test]
fn a_dropped_page_renumbered_over_is_a_granule_gap() {
    let mut pages = stream(&simple_groups(10), 2, 0);
    pages.remove(6);
    for p in &mut pages[6..] {
        p.seq -= 1;
    }
    let stats = scan(&bytes_of(&pages), &[usize::MAX]);
    assert_eq!(stats.seq_gaps, 0, "{stats:?}");
    assert_eq!(stats.granule_gaps, 1, "{stats:?}");
}

#[test]
fn a_short_last_page_is_not_a_gap() {
    let mut pages = stream(&simple_groups(4), 2, 0);
    let last = pages.last_mut().unwrap();
    last.flags |= FLAG_EOS;
    last.granule -= 300; // end trimming, RFC 7845 §4.5
    let stats = scan(&bytes_of(&pages), &[64]);
    assert_eq!(stats.gaps(), 0, "{stats:?}");
}

#[test]
fn a_chained_stream_starts_anew() {
    let first = stream(&simple_groups(3), 2, 0);
    let mut second = stream(&simple_groups(3), 2, 0);
    for p in &mut second {
        p.serial = 8;
    }
    let mut pages = first;
    pages.last_mut().unwrap().flags |= FLAG_EOS;
    pages.extend(second);
    let stats = scan(&bytes_of(&pages), &[50]);
    assert_eq!(stats.gaps(), 0, "{stats:?}");
    assert_eq!(stats.streams, 2);
}

#[test]
fn garbage_between_pages_is_a_sync_loss() {
    let pages = stream(&simple_groups(4), 2, 0);
    let mut bytes = bytes_of(&pages[..3]);
    bytes.extend_from_slice(b"OgXjunk OggS\x01 more junk");
    bytes.extend(bytes_of(&pages[3..]));
    let stats = scan(&bytes, &[7]);
    assert_eq!(stats.sync_losses, 1, "{stats:?}");
    assert_eq!(stats.pages, 6, "the framing is found again, no page lost");
    assert_eq!(stats.seq_gaps, 0);
}

#[test]
fn other_ogg_streams_only_need_monotonic_granules() {
    // A stream whose first packet is not OpusHead: granules may step freely, not go back.
    let page = |seq: u32, granule: u64, flags: u8| Page {
        flags,
        granule,
        serial: 3,
        seq,
        lacing: vec![3],
        body: b"abc".to_vec(),
    };
    let ok = [page(0, 0, FLAG_BOS), page(1, 500, 0), page(2, 7000, 0)];
    let stats = scan(&bytes_of(&ok), &[10]);
    assert!(!stats.opus);
    assert_eq!(stats.gaps(), 0, "{stats:?}");
    let back = [page(0, 0, FLAG_BOS), page(1, 500, 0), page(2, 400, 0)];
    assert_eq!(scan(&bytes_of(&back), &[10]).granule_gaps, 1);
}

#[test]
fn opus_durations_from_the_toc() {
    for (start, samples) in TOCS {
        assert_eq!(opus_samples(start, 10), *samples, "{start:?}");
    }
    assert_eq!(opus_samples(&[], 0), 0);
    assert_eq!(opus_samples(&[0xFB], 1), 0, "code 3 without its count byte");
}

fn groups_strategy() -> impl Strategy<Value = Vec<Vec<(usize, usize)>>> {
    // Pages of 1..40 packets of 1..700 bytes (so some pages spill over 255 lacing values and
    // packets continue on the next page).
    prop::collection::vec(
        prop::collection::vec((0..TOCS.len(), 1usize..700), 1..40),
        2..12,
    )
}

fn build(groups: &[Vec<(usize, usize)>], first_seq: u32) -> Vec<Page> {
    let groups: Vec<Vec<(Vec<u8>, u32)>> = groups
        .iter()
        .map(|g| g.iter().map(|&(t, len)| packet(t, len)).collect())
        .collect();
    stream(&groups, first_seq, u64::from(first_seq) * 9600)
}

proptest! {
    #[test]
    fn any_chunking_of_a_valid_stream_has_no_gap(
        groups in groups_strategy(),
        first_seq in 2u32..1000,
        sizes in prop::collection::vec(1usize..600, 1..8),
    ) {
        let pages = build(&groups, first_seq);
        let stats = scan(&bytes_of(&pages), &sizes);
        prop_assert_eq!(stats.gaps(), 0, "{:?}", stats);
        prop_assert_eq!(stats.pages, pages.len() as u64);
        prop_assert!(stats.first_audio.is_some());
    }

    #[test]
    fn a_dropped_audio_page_is_a_gap(
        groups in groups_strategy(),
        sizes in prop::collection::vec(1usize..600, 1..8),
        pick in any::<prop::sample::Index>(),
        renumber in any::<bool>(),
    ) {
        let mut pages = build(&groups, 2);
        // An audio page with a page after it that ends a packet (else nothing can tell), and
        // not the first page after the headers (without it the stream reads as a late join).
        // Renumbered, the first audio page or one ending no packet leaves no trace.
        let first_audio = (2..pages.len()).find(|&i| pages[i].granule != u64::MAX);
        let candidates: Vec<usize> = (3..pages.len() - 1)
            .filter(|&i| pages[i + 1..].iter().any(|p| p.granule != u64::MAX))
            .filter(|&i| {
                !renumber || (pages[i].granule != u64::MAX && first_audio.is_some_and(|f| i > f))
            })
            .collect();
        prop_assume!(!candidates.is_empty());
        let drop = candidates[pick.index(candidates.len())];
        pages.remove(drop);
        if renumber {
            for p in &mut pages[drop..] {
                p.seq -= 1;
            }
        }
        let stats = scan(&bytes_of(&pages), &sizes);
        prop_assert!(stats.gaps() > 0, "dropped page {}: {:?}", drop, stats);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..4000),
        sizes in prop::collection::vec(1usize..300, 1..6),
    ) {
        let stats = scan(&bytes, &sizes);
        prop_assert_eq!(stats.bytes, bytes.len() as u64);
    }

    #[test]
    fn corrupted_streams_never_panic(
        groups in groups_strategy(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..20),
        sizes in prop::collection::vec(1usize..600, 1..8),
    ) {
        let mut bytes = bytes_of(&build(&groups, 2));
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        scan(&bytes, &sizes);
    }
}

#[test]
fn the_scanner_stays_small() {
    // Tens of thousands run in one process: the header, the lacing table and a few counters.
    assert!(std::mem::size_of::<Scanner>() <= 512);
}
