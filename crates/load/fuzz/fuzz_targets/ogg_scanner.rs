//! Fuzz target: arbitrary bytes through the load tester's Ogg continuity scanner.
//!
//! The first byte picks how the input is split into pushes, so that chunk boundaries fall
//! everywhere; the scanner must never panic and must count every byte it was given.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tribune_load::ogg::Scanner;

fuzz_target!(|data: &[u8]| {
    let Some((&split, bytes)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(split).max(1);
    let mut scanner = Scanner::new();
    for (i, piece) in bytes.chunks(chunk).enumerate() {
        scanner.push(piece, Duration::from_millis(i as u64));
    }
    let stats = scanner.stats();
    assert_eq!(stats.bytes, bytes.len() as u64);
    assert!(stats.audio_pages <= stats.pages);
});
