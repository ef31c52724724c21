//! Fuzz the LL-HLS playlist parser and rule checks, and the delivery-directive query parser.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(p) = tribune_media::hls::validate::parse(s) {
            let _ = tribune_media::hls::validate::check(&p);
            let _ = tribune_media::hls::validate::check_sequence(&p, &p);
            let _ = tribune_media::hls::validate::apply_delta(&p, &p);
        }
        let _ = tribune_media::hls::Directives::parse(s);
    }
});
