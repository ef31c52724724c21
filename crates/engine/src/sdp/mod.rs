//! A first look at a WHIP offer, before str0m parses it in full: does it send Opus audio, and in
//! which direction? This gives the client a precise 400 reason ("no Opus") instead of a generic
//! negotiation failure, and tells whether the speaker wants the mix-minus back. [`bundle`]
//! negotiates the offer with str0m and shapes the answer.

pub mod bundle;

/// Direction of the offer's audio section, from the offerer's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
}

/// Why an offer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    #[error("the offer has no audio m-line")]
    NoAudio,
    #[error("the offer's audio has no Opus payload type (tribune accepts Opus only)")]
    NoOpus,
    #[error("the offer's audio is {0}: a WHIP offer must send audio (sendonly or sendrecv)")]
    NotSending(&'static str),
}

/// Parse an offer in full with str0m (what [`bundle::negotiate`] does after [`inspect_offer`]).
pub fn parse_offer(sdp: &str) -> Result<str0m::change::SdpOffer, String> {
    str0m::change::SdpOffer::from_sdp_string(sdp).map_err(|e| e.to_string())
}

/// Inspect the first `m=audio` section of an SDP offer.
pub fn inspect_offer(sdp: &str) -> Result<Direction, OfferError> {
    let mut in_audio = false;
    let mut seen_audio = false;
    let mut opus = false;
    let mut session_dir: Option<&'static str> = None;
    let mut media_dir: Option<&'static str> = None;
    for line in sdp.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("m=") {
            if seen_audio {
                // Only the first audio section matters; stop at the next m-line after it.
                if in_audio {
                    break;
                }
            }
            in_audio = rest.starts_with("audio ");
            seen_audio |= in_audio;
            continue;
        }
        let dir = match line {
            "a=sendrecv" => Some("sendrecv"),
            "a=sendonly" => Some("sendonly"),
            "a=recvonly" => Some("recvonly"),
            "a=inactive" => Some("inactive"),
            _ => None,
        };
        if let Some(d) = dir {
            if in_audio {
                media_dir = Some(d);
            } else if !seen_audio {
                session_dir = Some(d);
            }
            continue;
        }
        if in_audio
            && let Some(rtpmap) = line.strip_prefix("a=rtpmap:")
            && let Some((_pt, codec)) = rtpmap.split_once(' ')
            && codec.to_ascii_lowercase().starts_with("opus/48000")
        {
            opus = true;
        }
    }
    if !seen_audio {
        return Err(OfferError::NoAudio);
    }
    if !opus {
        return Err(OfferError::NoOpus);
    }
    match media_dir.or(session_dir).unwrap_or("sendrecv") {
        "sendrecv" => Ok(Direction::SendRecv),
        "sendonly" => Ok(Direction::SendOnly),
        other => Err(OfferError::NotSending(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
        a=rtpmap:111 opus/48000/2\r\na=sendonly\r\n";

    #[test]
    fn sendonly_opus() {
        assert_eq!(inspect_offer(OFFER), Ok(Direction::SendOnly));
    }

    #[test]
    fn sendrecv_default() {
        let o = OFFER.replace("a=sendonly\r\n", "");
        assert_eq!(inspect_offer(&o), Ok(Direction::SendRecv));
    }

    #[test]
    fn no_opus_or_no_audio_or_recvonly() {
        assert_eq!(
            inspect_offer(&OFFER.replace("opus/48000/2", "PCMU/8000")),
            Err(OfferError::NoOpus)
        );
        assert_eq!(
            inspect_offer(&OFFER.replace("m=audio", "m=video")),
            Err(OfferError::NoAudio)
        );
        assert_eq!(
            inspect_offer(&OFFER.replace("sendonly", "recvonly")),
            Err(OfferError::NotSending("recvonly"))
        );
    }

    #[test]
    fn later_video_section_does_not_count() {
        let o = format!(
            "{OFFER}m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\na=recvonly\r\n"
        );
        assert_eq!(inspect_offer(&o), Ok(Direction::SendOnly));
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,400}") {
            let _ = inspect_offer(&s);
        }
    }
}
