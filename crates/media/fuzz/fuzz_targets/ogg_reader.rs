//! Fuzz target: arbitrary bytes through the Ogg page and packet readers.
//!
//! The first byte picks how the input is split into pushes, so that chunk boundaries fall
//! everywhere; the readers must never panic, and their raw buffer must stay bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tribune_media::ogg::{MAX_PAGE_LEN, PacketReader, PageReader};

fuzz_target!(|data: &[u8]| {
    let Some((&split, bytes)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(split).max(1);
    let mut pages = PageReader::new();
    let mut packets = PacketReader::new();
    for piece in bytes.chunks(chunk) {
        pages.push(piece);
        assert!(pages.buffered() <= MAX_PAGE_LEN);
        loop {
            match pages.next_page() {
                Ok(Some(page)) => {
                    let _ = page.packets().count();
                    packets.push_page(&page);
                }
                Ok(None) => break,
                Err(_) => continue,
            }
        }
        while packets.next_packet().is_some() {}
    }
});
