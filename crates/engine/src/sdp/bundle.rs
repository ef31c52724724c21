//! From a WHIP offer to our answer, around str0m's negotiation: what str0m does not do the way
//! publishers need.
//!
//! - **An offer without BUNDLE.** RFC 9725 §4.2 asks WHIP clients for BUNDLE, but GStreamer's
//!   webrtcbin sends an audio-only offer without `a=group:BUNDLE` (bundle policy "none"), and
//!   str0m refuses any offer without one. Without BUNDLE every m-line has its own transport;
//!   tribune uses the first audio section's and rejects every other section, so we hand str0m
//!   the same offer with the other sections at port 0 and a BUNDLE group of just the audio
//!   section, and answer without a group (RFC 8843 §7.3: the answerer may only group what was
//!   offered in a group).
//! - **Where the transport goes.** str0m writes the candidates in the first m-line and ICE/DTLS
//!   attributes and a direction in every m-line, rejected ones included. When the first m-line
//!   is a rejected video (webrtcbin's audio+video offers put video first), the only candidate
//!   sat in a port-0 section and ICE never started. In the answer the BUNDLE tag carries every
//!   candidate and the end of them, the audio section its direction; a rejected section is
//!   `m=… 0` and `a=inactive` with no candidate, no codec and no media attributes, only what
//!   identifies it and what JSEP puts in every section (see [`REJECTED_KEEPS`]). The tag is the
//!   offerer's; when that is a section tribune does not take, it stays the tag, accepted but
//!   inactive, rather than rejected (see [`inactive_tag`] for why).
//! - **No trickle.** tribune is ICE-lite with every candidate in the answer, and `PATCH` answers
//!   405, so the answer does not advertise `a=ice-options:trickle` (str0m always does).

use str0m::Rtc;

/// What a rejected section keeps of str0m's, before its `a=inactive`: the connection line, its
/// mid, and the ICE credentials and DTLS fingerprint and role that every m-section carries in
/// JSEP (RFC 8829 §5.3.1). GStreamer 1.22's webrtcbin refuses an answer with any m-section
/// without `a=fingerprint` ("No fingerprint lines in sdp for media 0"), rejected or not.
const REJECTED_KEEPS: [&str; 6] = [
    "c=",
    "a=ice-ufrag:",
    "a=ice-pwd:",
    "a=fingerprint:",
    "a=setup:",
    "a=mid:",
];

/// Negotiate `offer` on `rtc` and return the answer to send (see the module doc for what is
/// done around str0m). The error is a reason for the client.
pub fn negotiate(rtc: &mut Rtc, offer: &str) -> Result<String, String> {
    let bundled = has_bundle(offer);
    let offer = if bundled {
        offer.to_owned()
    } else {
        bundle_first_audio(offer)?
    };
    let parsed = super::parse_offer(&offer).map_err(|e| format!("malformed SDP offer: {e}"))?;
    let answer = rtc
        .sdp_api()
        .accept_offer(parsed)
        .map_err(|e| format!("offer not acceptable: {e}"))?;
    Ok(fix_answer(&answer.to_sdp_string(), &offer, bundled))
}

fn lines(sdp: &str) -> impl Iterator<Item = &str> {
    sdp.lines().map(|l| l.trim_end_matches('\r'))
}

/// Whether the session part of `sdp` holds a BUNDLE group.
fn has_bundle(sdp: &str) -> bool {
    lines(sdp)
        .take_while(|l| !l.starts_with("m="))
        .any(|l| l.starts_with("a=group:BUNDLE"))
}

/// The port of an `m=` line (`m=audio 9 UDP/…`), as written.
fn port(m_line: &str) -> Option<&str> {
    m_line.split_whitespace().nth(1)
}

fn rejected(m_line: &str) -> bool {
    port(m_line).is_some_and(|p| p == "0" || p.starts_with("0/"))
}

/// The offer as str0m will take it: a BUNDLE group of the first audio section, every other
/// section set to port 0 (rejected, as tribune would anyway).
fn bundle_first_audio(offer: &str) -> Result<String, String> {
    // Split into the session part and the m-sections, by index.
    let all: Vec<&str> = lines(offer).collect();
    let starts: Vec<usize> = (0..all.len())
        .filter(|&i| all[i].starts_with("m="))
        .collect();
    let audio = starts
        .iter()
        .position(|&i| all[i].starts_with("m=audio "))
        .ok_or("the offer has no audio m-line")?;
    let end = |k: usize| starts.get(k + 1).copied().unwrap_or(all.len());
    let mid = all[starts[audio]..end(audio)]
        .iter()
        .find_map(|l| l.strip_prefix("a=mid:"))
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .ok_or("the offer's audio section has no a=mid (RFC 8843 needs one)")?;
    let mut out = String::with_capacity(offer.len() + 32);
    let first_m = starts.first().copied().unwrap_or(all.len());
    for l in &all[..first_m] {
        if !l.is_empty() {
            out.push_str(l);
            out.push_str("\r\n");
        }
    }
    out.push_str(&format!("a=group:BUNDLE {mid}\r\n"));
    for (k, &s) in starts.iter().enumerate() {
        for (j, l) in all[s..end(k)].iter().enumerate() {
            if l.is_empty() {
                continue;
            }
            if j == 0 && k != audio && !rejected(l) {
                // `m=video 9 …` → `m=video 0 …`
                let mut parts: Vec<&str> = l.split(' ').collect();
                if parts.len() > 1 {
                    parts[1] = "0";
                }
                out.push_str(&parts.join(" "));
            } else {
                out.push_str(l);
            }
            out.push_str("\r\n");
        }
    }
    Ok(out)
}

/// An SDP split into its session lines and its m-sections (each starting with its `m=` line).
fn split(sdp: &str) -> (Vec<&str>, Vec<Vec<&str>>) {
    let mut session = Vec::new();
    let mut sections: Vec<Vec<&str>> = Vec::new();
    for l in lines(sdp).filter(|l| !l.is_empty()) {
        if l.starts_with("m=") {
            sections.push(vec![l]);
        } else if let Some(s) = sections.last_mut() {
            s.push(l);
        } else {
            session.push(l);
        }
    }
    (session, sections)
}

fn mid_of<'a>(section: &[&'a str]) -> Option<&'a str> {
    section
        .iter()
        .find_map(|l| l.strip_prefix("a=mid:"))
        .map(str::trim)
}

/// The offerer's BUNDLE tag: the first mid of its group (RFC 8843 §7.2).
fn offer_tag<'a>(session: &[&'a str]) -> Option<&'a str> {
    session
        .iter()
        .find_map(|l| l.strip_prefix("a=group:BUNDLE"))
        .and_then(|mids| mids.split_whitespace().next())
}

/// Our answer as it goes out (see the module doc): `offer` is what str0m answered, `bundled`
/// says whether the client's offer had a BUNDLE group (if not, neither has the answer).
fn fix_answer(answer: &str, offer: &str, bundled: bool) -> String {
    let (session, sections) = split(answer);
    let (offer_session, offer_sections) = split(offer);
    let mut candidates: Vec<&str> = Vec::new();
    for l in sections.iter().flatten() {
        if l.starts_with("a=candidate:") && !candidates.contains(l) {
            candidates.push(l);
        }
    }
    let any_accepted = sections.iter().any(|s| !rejected(s[0]));
    // The offerer's tag, when it is a section we do not take: kept as the tag, inactive (see
    // `inactive_tag`).
    let kept = offer_tag(&offer_session)
        .filter(|_| bundled && any_accepted)
        .and_then(|mid| {
            sections
                .iter()
                .position(|s| rejected(s[0]) && mid_of(s) == Some(mid))
        });
    let tag = kept.or_else(|| sections.iter().position(|s| !rejected(s[0])));
    let mut out = String::with_capacity(answer.len());
    let mut push = |l: &str| {
        out.push_str(l);
        out.push_str("\r\n");
    };
    for l in session {
        if let Some(mids) = l.strip_prefix("a=group:BUNDLE") {
            if !bundled {
                continue;
            }
            if let Some(mid) = kept.and_then(|k| mid_of(&sections[k])) {
                push(&format!("a=group:BUNDLE {mid}{mids}"));
                continue;
            }
        }
        if let Some(l) = without_trickle(l) {
            push(&l);
        }
    }
    for (k, s) in sections.iter().enumerate() {
        if Some(k) == kept {
            let offered = offer_sections
                .iter()
                .find(|o| mid_of(o) == mid_of(s))
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            for l in inactive_tag(s, offered) {
                push(&l);
            }
        } else if rejected(s[0]) {
            push(s[0]);
            for l in &s[1..] {
                if REJECTED_KEEPS.iter().any(|k| l.starts_with(k)) {
                    push(l);
                }
            }
            push("a=inactive");
            continue;
        } else {
            for l in s {
                if l.starts_with("a=candidate:") || *l == "a=end-of-candidates" {
                    continue;
                }
                if let Some(l) = without_trickle(l) {
                    push(&l);
                }
            }
        }
        if Some(k) == tag {
            for c in &candidates {
                push(c);
            }
            // ICE-lite: these are all our candidates (JSEP §5.3.1).
            push("a=end-of-candidates");
        }
    }
    out
}

/// The offerer's tagged section when tribune does not take its media (webrtcbin's video):
/// accepted with `a=inactive` (RFC 3264 §6: nothing is sent or received) instead of rejected,
/// so that it stays the BUNDLE tag and carries the transport.
///
/// Why: RFC 8843 §7.3.1 lets an answerer that rejects the offerer's tagged section name
/// another one as its tag, but GStreamer's webrtcbin (1.22) then builds a new ICE transport
/// for the new tag that it never gathers candidates for, and ICE never starts; keeping the
/// offerer's tag is valid for every client.
fn inactive_tag(answered: &[&str], offered: &[&str]) -> Vec<String> {
    let mut m = answered[0].split(' ');
    let media = m.next().unwrap_or("m=video");
    let proto = m.nth(1).unwrap_or("UDP/TLS/RTP/SAVPF");
    // The offer's first format, and its rtpmap: an accepted m-line names one it was offered.
    let fmt = offered
        .first()
        .and_then(|l| l.split(' ').nth(3))
        .unwrap_or("0");
    let mut v = vec![format!("{media} 9 {proto} {fmt}")];
    for l in &answered[1..] {
        if REJECTED_KEEPS.iter().any(|k| l.starts_with(k)) {
            v.push((*l).to_owned());
        }
    }
    v.push("a=inactive".into());
    v.push("a=rtcp-mux".into());
    let rtpmap = format!("a=rtpmap:{fmt} ");
    if let Some(l) = offered.iter().find(|l| l.starts_with(&rtpmap)) {
        v.push((*l).to_owned());
    }
    v
}

/// `l`, with `trickle` taken out if it is an `a=ice-options` line; `None` if nothing is left.
fn without_trickle(l: &str) -> Option<String> {
    let Some(opts) = l.strip_prefix("a=ice-options:") else {
        return Some(l.to_owned());
    };
    let kept: Vec<&str> = opts
        .split_whitespace()
        .filter(|o| !o.eq_ignore_ascii_case("trickle"))
        .collect();
    (!kept.is_empty()).then(|| format!("a=ice-options:{}", kept.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Instant;

    /// Offers from GStreamer 1.22's webrtcbin (Debian's `whip-client`), addresses rewritten.
    const GST_AUDIO: &str = include_str!("testdata/webrtcbin-audio.sdp");
    const GST_AUDIO_VIDEO: &str = include_str!("testdata/webrtcbin-audio-video.sdp");

    /// An `Rtc` as the WHIP handler builds it, with one host candidate.
    fn rtc() -> Rtc {
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_opus(true, false)
            .set_ice_lite(true)
            .build(Instant::now());
        let c = str0m::Candidate::host("192.0.2.10:5000".parse().unwrap(), "udp").unwrap();
        rtc.add_local_candidate(c);
        rtc
    }

    /// The answer's m-sections, each as its lines.
    fn sections(answer: &str) -> Vec<Vec<String>> {
        let mut v: Vec<Vec<String>> = Vec::new();
        for l in answer.lines() {
            if l.starts_with("m=") {
                v.push(Vec::new());
            }
            if let Some(s) = v.last_mut() {
                s.push(l.to_owned());
            }
        }
        v
    }

    fn count(lines: &[String], prefix: &str) -> usize {
        lines.iter().filter(|l| l.starts_with(prefix)).count()
    }

    #[test]
    fn audio_only_offer_without_bundle_is_accepted_and_answered_without_group() {
        assert!(!has_bundle(GST_AUDIO));
        // What str0m alone says about it (the 400 webrtcbin used to get).
        let e = rtc()
            .sdp_api()
            .accept_offer(super::super::parse_offer(GST_AUDIO).unwrap())
            .unwrap_err();
        assert!(e.to_string().contains("a=group missing"), "{e}");

        let answer = negotiate(&mut rtc(), GST_AUDIO).unwrap();
        assert!(!answer.contains("a=group:"), "{answer}");
        let s = sections(&answer);
        assert_eq!(s.len(), 1);
        assert!(s[0][0].starts_with("m=audio 9 "), "{answer}");
        assert!(s[0].contains(&"a=mid:audio0".to_owned()));
        assert!(s[0].contains(&"a=recvonly".to_owned()), "{answer}");
        assert_eq!(count(&s[0], "a=candidate:"), 1, "{answer}");
        assert_eq!(count(&s[0], "a=end-of-candidates"), 1);
        assert_eq!(count(&s[0], "a=fingerprint:"), 1);
        assert_eq!(count(&s[0], "a=ice-ufrag:"), 1);
    }

    /// Attribute names of a section's lines after its m-line (`a=ice-ufrag:x` → `a=ice-ufrag`).
    fn names(section: &[String]) -> Vec<&str> {
        section[1..]
            .iter()
            .map(|l| l.split([':', ' ']).next().unwrap_or(""))
            .collect()
    }

    /// webrtcbin's max-bundle offer: video first and the BUNDLE tag, audio `bundle-only`.
    #[test]
    fn webrtcbin_audio_video_keeps_its_video_tag_inactive_and_takes_audio() {
        let answer = negotiate(&mut rtc(), GST_AUDIO_VIDEO).unwrap();
        assert!(
            answer.contains("a=group:BUNDLE video0 audio1\r\n"),
            "{answer}"
        );
        let s = sections(&answer);
        assert_eq!(s.len(), 2, "{answer}");
        // Video: the tag, so the transport (candidates) is here, but nothing flows.
        assert_eq!(s[0][0], "m=video 9 UDP/TLS/RTP/SAVPF 96", "{answer}");
        assert_eq!(
            names(&s[0]),
            [
                "c=IN",
                "a=ice-ufrag",
                "a=ice-pwd",
                "a=fingerprint",
                "a=setup",
                "a=mid",
                "a=inactive",
                "a=rtcp-mux",
                "a=rtpmap",
                "a=candidate",
                "a=end-of-candidates"
            ],
            "{answer}"
        );
        // Audio: what we receive, with its direction, ICE and DTLS, bundled on the tag.
        assert!(s[1][0].starts_with("m=audio 9 "), "{answer}");
        for (prefix, n) in [
            ("a=candidate:", 0),
            ("a=recvonly", 1),
            ("a=ice-ufrag:", 1),
            ("a=ice-pwd:", 1),
            ("a=fingerprint:", 1),
            ("a=setup:passive", 1),
            ("a=mid:audio1", 1),
            ("a=rtpmap:111 opus/48000/2", 1),
        ] {
            assert_eq!(count(&s[1], prefix), n, "{prefix} in {answer}");
        }
    }

    /// Audio first (the tag), video after it: video is a plain rejected m-line and audio has
    /// the transport.
    #[test]
    fn audio_tagged_offer_rejects_video_and_puts_the_transport_in_audio() {
        let video = "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:video1\r\n\
            a=rtpmap:96 VP8/90000\r\na=sendonly\r\na=rtcp-mux\r\n";
        let offer = GST_AUDIO.replace("t=0 0\r\n", "t=0 0\r\na=group:BUNDLE audio0 video1\r\n");
        let answer = negotiate(&mut rtc(), &format!("{offer}{video}")).unwrap();
        assert!(answer.contains("a=group:BUNDLE audio0\r\n"), "{answer}");
        let s = sections(&answer);
        assert_eq!(s.len(), 2, "{answer}");
        assert!(s[0][0].starts_with("m=audio 9 "), "{answer}");
        for (prefix, n) in [
            ("a=candidate:", 1),
            ("a=end-of-candidates", 1),
            ("a=recvonly", 1),
            ("a=fingerprint:", 1),
        ] {
            assert_eq!(count(&s[0], prefix), n, "{prefix} in {answer}");
        }
        assert!(s[1][0].starts_with("m=video 0 "), "{answer}");
        assert_eq!(
            names(&s[1]),
            [
                "c=IN",
                "a=ice-ufrag",
                "a=ice-pwd",
                "a=fingerprint",
                "a=setup",
                "a=mid",
                "a=inactive"
            ],
            "{answer}"
        );
    }

    #[test]
    fn no_trickle_advertised() {
        for offer in [GST_AUDIO, GST_AUDIO_VIDEO] {
            let answer = negotiate(&mut rtc(), offer).unwrap();
            assert!(!answer.contains("trickle"), "{answer}");
            assert!(answer.contains("a=ice-lite\r\n"), "{answer}");
        }
        assert_eq!(without_trickle("a=ice-options:trickle"), None);
        assert_eq!(
            without_trickle("a=ice-options:trickle ice2").as_deref(),
            Some("a=ice-options:ice2")
        );
    }

    #[test]
    fn unbundled_audio_after_video_rejects_video() {
        // Both sections with their own transport, video first.
        let video = "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:v\r\n\
            a=rtpmap:96 VP8/90000\r\na=sendonly\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
            a=fingerprint:sha-256 C3:28:B3:50:BF:CD:AF:EE:A4:61:A9:5F:5D:E7:95:63:57:A8:92:32:9F:6C:AF:08:71:E1:23:36:D7:A6:8F:97\r\n\
            a=setup:actpass\r\na=rtcp-mux\r\n";
        let head_end = GST_AUDIO.find("m=audio").unwrap();
        let offer = format!(
            "{}{video}{}",
            &GST_AUDIO[..head_end],
            &GST_AUDIO[head_end..]
        );
        let answer = negotiate(&mut rtc(), &offer).unwrap();
        assert!(!answer.contains("a=group:"), "{answer}");
        let s = sections(&answer);
        assert!(s[0][0].starts_with("m=video 0 "), "{answer}");
        assert_eq!(count(&s[0], "a=candidate:"), 0);
        assert!(s[1][0].starts_with("m=audio 9 "), "{answer}");
        assert_eq!(count(&s[1], "a=candidate:"), 1, "{answer}");
    }

    #[test]
    fn unbundled_audio_without_mid_is_a_clear_refusal() {
        let offer = GST_AUDIO.replace("a=mid:audio0\r\n", "");
        let e = negotiate(&mut rtc(), &offer).unwrap_err();
        assert!(e.contains("no a=mid"), "{e}");
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,400}") {
            let _ = bundle_first_audio(&s);
            let _ = fix_answer(&s, &s, false);
            let offer = format!("v=0\r\na=group:BUNDLE a b\r\nm=video 0 x\r\na=mid:a\r\n{s}");
            let _ = fix_answer(&format!("v=0\r\nm=audio 0 x\r\na=mid:a\r\nm=audio 9 y\r\n{s}"), &offer, true);
        }
    }
}
