//! Junk datagrams at the media port: `--udp-junk PPS` from [`addr::ATTACKERS`] sockets, a
//! quarter of them STUN binding requests with random usernames (what a spoofed ICE check looks
//! like), the rest random bytes of random length. One loop sends each [`TICK`]'s share in a
//! tight burst and sleeps; a full socket buffer drops the datagram (counted), never queues it.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use tokio::net::UdpSocket;
use tokio::time::{Instant, MissedTickBehavior};

use super::{Ctx, Rng, addr};

/// The attackers' range: 127.202.0.x.
const NET: u8 = 202;
/// Sending period.
const TICK: Duration = Duration::from_millis(10);
/// Most datagrams sent in one tick, however late the loop is (a stalled loop does not burst).
const MAX_PER_TICK: u64 = 10_000;
/// Largest random datagram.
const MAX_LEN: usize = 1200;
/// STUN's magic cookie (RFC 8489).
const MAGIC_COOKIE: u32 = 0x2112_A442;

/// The junk datagrams' figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Datagrams per second asked for.
    pub rate: f64,
    /// Where they went.
    pub target: String,
    /// Datagrams sent.
    pub sent: u64,
    /// Of them, STUN binding requests.
    pub stun: u64,
    /// Not sent (socket buffer full or an error).
    pub dropped: u64,
    /// Sent per second, over the flood.
    pub sent_per_s: f64,
}

/// Sends `pps` junk datagrams a second to `to` until the flood stops.
pub async fn run(ctx: Ctx, to: SocketAddr, pps: f64) -> Report {
    let mut r = Report {
        rate: pps,
        target: to.to_string(),
        ..Report::default()
    };
    let mut sockets = Vec::new();
    for i in 0..addr::ATTACKERS {
        match UdpSocket::bind((addr::attacker(NET, i), 0)).await {
            Ok(s) => sockets.push(s),
            Err(e) => eprintln!("warning: UDP junk socket: {e}"),
        }
    }
    if sockets.is_empty() {
        return r;
    }
    let mut rng = Rng::new(0x0075_6470);
    let mut buf = vec![0u8; MAX_LEN];
    tokio::time::sleep_until(ctx.start).await;
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut attempted = 0u64;
    loop {
        ticker.tick().await;
        let now = Instant::now();
        if now >= ctx.stop {
            break;
        }
        let due = (now.saturating_duration_since(ctx.start).as_secs_f64() * pps) as u64;
        let n = due.saturating_sub(attempted).min(MAX_PER_TICK);
        for _ in 0..n {
            attempted += 1;
            let stun = rng.below(4) == 0;
            let len = if stun {
                stun_request(&mut rng, &mut buf)
            } else {
                let len = 1 + rng.below(MAX_LEN);
                rng.fill(&mut buf[..len]);
                len
            };
            let socket = &sockets[rng.below(sockets.len())];
            match socket.try_send_to(&buf[..len], to) {
                Ok(_) => {
                    r.sent += 1;
                    r.stun += u64::from(stun);
                }
                Err(_) => r.dropped += 1,
            }
        }
        // Anything the server sends back is read and thrown away, so no buffer fills.
        let mut sink = [0u8; 64];
        for s in &sockets {
            while s.try_recv_from(&mut sink).is_ok() {}
        }
    }
    let secs = ctx.stop.saturating_duration_since(ctx.start).as_secs_f64();
    r.sent_per_s = if secs > 0.0 {
        r.sent as f64 / secs
    } else {
        0.0
    };
    r
}

/// Writes a STUN binding request with a random `USERNAME` ("remote:local" ufrags) into `buf`;
/// returns its length.
pub fn stun_request(rng: &mut Rng, buf: &mut [u8]) -> usize {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut user = [0u8; 17];
    for (i, b) in user.iter_mut().enumerate() {
        *b = if i == 8 {
            b':'
        } else {
            ALPHABET[rng.below(ALPHABET.len())]
        };
    }
    let padded = user.len().next_multiple_of(4);
    let body = 4 + padded;
    buf[0..2].copy_from_slice(&0x0001u16.to_be_bytes());
    buf[2..4].copy_from_slice(&(body as u16).to_be_bytes());
    buf[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    rng.fill(&mut buf[8..20]);
    buf[20..22].copy_from_slice(&0x0006u16.to_be_bytes());
    buf[22..24].copy_from_slice(&(user.len() as u16).to_be_bytes());
    buf[24..24 + user.len()].copy_from_slice(&user);
    buf[24 + user.len()..24 + padded].fill(0);
    20 + body
}

/// The loopback UDP port process `pid` has bound (its media port), from `/proc`.
pub fn find_port(pid: u32) -> Result<SocketAddr> {
    let mut inodes = std::collections::HashSet::new();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).context("listing its sockets")?;
    for fd in fds.flatten() {
        if let Ok(link) = std::fs::read_link(fd.path())
            && let Some(inode) = link
                .to_str()
                .and_then(|l| l.strip_prefix("socket:["))
                .and_then(|l| l.strip_suffix(']'))
        {
            inodes.insert(inode.to_owned());
        }
    }
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/udp")).context("its UDP table")?;
    let found: Vec<SocketAddr> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let inode = cols.get(9)?;
            if !inodes.contains(*inode) {
                return None;
            }
            parse_proc_addr(cols.get(1)?)
        })
        .filter(|a| a.ip().is_loopback() && a.port() != 0)
        .collect();
    match found.as_slice() {
        [a] => Ok(*a),
        [] => bail!("no loopback UDP socket"),
        many => bail!("several UDP sockets ({many:?}): name one with --udp"),
    }
}

/// `0100007F:1F90` (a little-endian IPv4 address and a port, in hex) as an address.
fn parse_proc_addr(s: &str) -> Option<SocketAddr> {
    let (ip, port) = s.split_once(':')?;
    let ip = u32::from_str_radix(ip, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    Some(SocketAddr::from((
        std::net::Ipv4Addr::from_bits(u32::from_be(ip)),
        port,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stun_requests_are_well_formed() {
        let mut rng = Rng::new(1);
        let mut buf = [0u8; MAX_LEN];
        let len = stun_request(&mut rng, &mut buf);
        assert_eq!(len % 4, 0);
        assert_eq!(&buf[0..2], &[0, 1], "binding request");
        assert_eq!(u16::from_be_bytes([buf[2], buf[3]]) as usize, len - 20);
        assert_eq!(&buf[4..8], &MAGIC_COOKIE.to_be_bytes());
        assert_eq!(&buf[20..22], &[0, 6], "USERNAME");
        assert_eq!(buf[24 + 8], b':');
    }

    #[test]
    fn proc_addresses_parse() {
        assert_eq!(
            parse_proc_addr("0100007F:1F90"),
            Some("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(parse_proc_addr("junk"), None);
    }
}
