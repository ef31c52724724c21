//! Fuzz target: arbitrary bytes as an HTTP response to the load tester: the head parser, then
//! the chunked decoder feeding the Ogg scanner and the SSE scanner.
//!
//! The first byte picks the chunking; nothing may panic, and the decoder must never hand out
//! more bytes than it was given.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tribune_load::events::SseScanner;
use tribune_load::net::{Dechunk, parse_head};
use tribune_load::ogg::Scanner;

fuzz_target!(|data: &[u8]| {
    let Some((&split, bytes)) = data.split_first() else {
        return;
    };
    let body = match parse_head(bytes) {
        Ok(Some(head)) => &bytes[head.len..],
        _ => bytes,
    };
    let chunk = usize::from(split).max(1);
    let (mut dechunk, mut ogg, mut sse) = (Dechunk::default(), Scanner::new(), SseScanner::default());
    let mut out = 0;
    for piece in body.chunks(chunk) {
        let fed = dechunk.feed(piece, |b| {
            out += b.len();
            ogg.push(b, Duration::ZERO);
            sse.push(b);
        });
        if !matches!(fed, Ok(false)) {
            break;
        }
    }
    assert!(out <= body.len());
});
