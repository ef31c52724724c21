//! Fuzz the HLS segment journal reader and the canonical URL number parsers: no panic, and
//! whatever they accept reads back the same way.
#![no_main]
use tribune_media::hls::{journal, name};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let j = journal::parse(s);
        let again = journal::parse(&journal::render(&j.entries));
        assert_eq!(again.entries, j.entries);
        if let Some(n) = name::decimal(s) {
            assert_eq!(n.to_string(), s);
        }
        if let Some(p) = name::part_name(s) {
            assert_eq!(format!("{}.{}.m4s", p.msn, p.part), s);
        }
        let _ = name::segment_name(s);
    }
});
