//! The media port's drop path allocates nothing: junk, STUN binding requests naming an unknown
//! ICE username, and truncated STUN are classified by [`Routes::route`] without touching the
//! allocator (a counting global allocator proves it), so a flood of junk costs the receive loop
//! a hash lookup or two per datagram and never grows memory.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use tribune_engine::rtc::mux::Routes;

/// Counts the allocations of the thread that asks for it (other threads of the test harness
/// may allocate at any time; they do not count).
struct Counting;

thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    // `try_with`: the thread-locals may be gone while a thread is being torn down.
    let _ = ON.try_with(|on| {
        if on.get() {
            let _ = COUNT.try_with(|c| c.set(c.get() + 1));
        }
    });
}

// SAFETY: every call is passed on to the system allocator unchanged; the bookkeeping touches
// only const-initialised thread-locals without destructors (no allocation, no re-entry).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Allocations made by this thread while `f` runs.
fn allocations(f: impl FnOnce()) -> u64 {
    COUNT.with(|c| c.set(0));
    ON.with(|on| on.set(true));
    f();
    ON.with(|on| on.set(false));
    COUNT.with(Cell::get)
}

/// A STUN binding request with USERNAME `username` (after a PRIORITY attribute, as ICE sends).
fn binding_request(username: &[u8]) -> Vec<u8> {
    let mut attrs = vec![0x00, 0x24, 0x00, 0x04, 1, 2, 3, 4];
    attrs.extend_from_slice(&[0x00, 0x06]);
    attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
    attrs.extend_from_slice(username);
    while attrs.len() % 4 != 0 {
        attrs.push(0);
    }
    let mut m = vec![0x00, 0x01];
    m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    m.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
    m.extend_from_slice(&[7; 12]);
    m.extend_from_slice(&attrs);
    m
}

#[test]
fn junk_on_the_media_port_is_dropped_without_allocating() {
    // The counter sees this thread's allocations.
    assert_eq!(allocations(|| drop(std::hint::black_box(vec![1u8; 8]))), 1);
    let mut routes = Routes::default();
    let _a = routes.register(1, "knownufrag");
    let _b = routes.register(2, "otherufrag");
    // A peer already bound by its first binding request (that path allocates: it is a session).
    let peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 5000);
    assert!(
        routes
            .route(peer, &binding_request(b"knownufrag:cli"))
            .is_some()
    );

    let good = binding_request(b"knownufrag:cli");
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut random = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng as u8
            })
            .collect()
    };
    let mut inputs: Vec<Vec<u8>> = vec![
        Vec::new(),
        vec![0x80; 172],                            // RTP-like
        vec![0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0],      // DTLS-like
        binding_request(b"unknownufrag:cli"),       // a username nobody was given
        binding_request(b"knownufragX:cli"),        // a longer one
        binding_request(b"knownufra:cli"),          // a shorter one
        binding_request(b"nocolon"),                // no remote part
        binding_request(b":cli"),                   // empty local part
        binding_request(&[0xff, 0xfe, b':', b'x']), // not UTF-8
    ];
    // Every truncation of a good request (only the whole one is for a session).
    for n in 0..good.len() {
        inputs.push(good[..n].to_vec());
    }
    // A good request with its length field lying.
    let mut long = good.clone();
    long[3] = long[3].wrapping_add(4);
    inputs.push(long);
    for n in [1, 20, 64, 200, 1200, 2048] {
        inputs.push(random(n));
    }

    let mut dropped = 0u32;
    let mut routed = 0u32;
    let n = allocations(|| {
        for (i, data) in inputs.iter().enumerate() {
            for port in 0..64u16 {
                let source = SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::new(192, 0, 2, (i % 250) as u8)),
                    40_000 + port,
                );
                match routes.route(source, data) {
                    None => dropped += 1,
                    Some(_) => routed += 1,
                }
            }
            // The bound peer's datagrams, whatever they hold, go to its session (a clone of a
            // channel sender: no allocation either).
            if routes.route(peer, data).is_some() {
                routed += 1;
            }
        }
    });
    assert_eq!(n, 0, "allocations on the drop path");
    assert_eq!(
        dropped,
        inputs.len() as u32 * 64,
        "every unbound datagram is dropped"
    );
    assert_eq!(
        routed,
        inputs.len() as u32,
        "only the bound peer's are routed"
    );
}
