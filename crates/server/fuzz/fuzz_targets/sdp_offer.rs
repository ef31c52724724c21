//! Fuzz the first look at a WHIP offer, then str0m's full SDP parse, as the WHIP handler does.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = tribune_server::sdp::inspect_offer(s);
        let _ = str0m_parse(s);
    }
});

fn str0m_parse(s: &str) -> bool {
    tribune_server::sdp::parse_offer(s).is_ok()
}
