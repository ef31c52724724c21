//! Fuzz the allocation-free STUN peek that routes every unknown datagram on the media port.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(ufrag) = tribune_server::rtc::stun::binding_request_local_ufrag(data) {
        assert!(!ufrag.is_empty() && !ufrag.contains(':'));
    }
});
