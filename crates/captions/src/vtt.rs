//! WebVTT (W3C WebVTT, and RFC 8216 §3.5 for its use in HLS): writing cues, whole documents and
//! the segments of an HLS subtitles rendition (with `X-TIMESTAMP-MAP`), and reading them back
//! (for tests, and to check what is served; fuzzed by property tests).

use std::fmt::Write as _;

use crate::Cue;

/// `HH:MM:SS.mmm` (hours at least two digits).
pub fn timestamp(ms: u64) -> String {
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// Cue text as WebVTT wants it: `&`, `<`, `>` escaped, on one line, never `-->`.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.trim().to_owned()
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

fn write_cue(out: &mut String, c: &Cue, offset_ms: i64) {
    let shift = |t: u64| (t as i64 + offset_ms).max(0) as u64;
    let _ = write!(
        out,
        "\n{} --> {}\n{}\n",
        timestamp(shift(c.start_ms)),
        timestamp(shift(c.end_ms.max(c.start_ms + 1))),
        escape(&c.text)
    );
}

/// A whole document: every cue, times shifted by `offset_ms` (the replay's: ms into the
/// recording). Cues whose text is empty are left out.
pub fn document(cues: &[Cue], offset_ms: i64) -> String {
    let mut out = String::from("WEBVTT\n");
    for c in cues.iter().filter(|c| !escape(&c.text).is_empty()) {
        write_cue(&mut out, c, offset_ms);
    }
    out
}

/// One segment of an HLS subtitles rendition: the cues overlapping `[start_ms, end_ms)` of the
/// media timeline (a cue across a boundary is in both segments, as RFC 8216 allows), times
/// shifted by `offset_ms` into that timeline, which `X-TIMESTAMP-MAP` ties to the audio's
/// (MPEG-2 90 kHz clock 0 = local 0: cue times are media times).
pub fn segment(cues: &[Cue], offset_ms: i64, start_ms: u64, end_ms: u64) -> String {
    let mut out = String::from("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n");
    for c in cues {
        let s = (c.start_ms as i64 + offset_ms).max(0) as u64;
        let e = (c.end_ms as i64 + offset_ms).max(0) as u64;
        if e > start_ms && s < end_ms && !escape(&c.text).is_empty() {
            write_cue(&mut out, c, offset_ms);
        }
    }
    out
}

/// Why a WebVTT text was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Error {
    NoHeader,
    BadTiming { line: usize },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::NoHeader => write!(f, "not WebVTT: the first line is not WEBVTT"),
            Error::BadTiming { line } => write!(f, "line {line}: not a cue timing"),
        }
    }
}

fn parse_ts(s: &str) -> Option<u64> {
    let (hms, frac) = s.split_once('.')?;
    if frac.len() != 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let parts: Vec<&str> = hms.split(':').collect();
    let num = |p: &str, two: bool| -> Option<u64> {
        if p.is_empty()
            || (two && p.len() != 2)
            || !p.bytes().all(|b| b.is_ascii_digit())
            || p.len() > 10
        {
            return None;
        }
        p.parse().ok()
    };
    let (h, m, sec) = match parts.as_slice() {
        [m, s] => (0, num(m, true)?, num(s, true)?),
        [h, m, s] => (num(h, false)?, num(m, true)?, num(s, true)?),
        _ => return None,
    };
    if m > 59 || sec > 59 {
        return None;
    }
    Some(((h * 60 + m) * 60 + sec) * 1000 + frac.parse::<u64>().ok()?)
}

/// The cues of a WebVTT text (its header and `X-TIMESTAMP-MAP` skipped; cue settings ignored;
/// NOTE, STYLE and REGION blocks skipped).
pub fn parse(text: &str) -> Result<Vec<Cue>, Error> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let first = lines.first().copied().unwrap_or("");
    if !(first == "WEBVTT" || first.starts_with("WEBVTT ") || first.starts_with("WEBVTT\t")) {
        return Err(Error::NoHeader);
    }
    let mut i = 1;
    while i < lines.len() && !lines[i].is_empty() {
        i += 1; // header lines
    }
    let mut cues = Vec::new();
    while i < lines.len() {
        while i < lines.len() && lines[i].is_empty() {
            i += 1;
        }
        if i >= lines.len() {
            break;
        }
        let block_start = i;
        let mut block = Vec::new();
        while i < lines.len() && !lines[i].is_empty() {
            block.push(lines[i]);
            i += 1;
        }
        let head = block[0];
        if head.starts_with("NOTE") || head == "STYLE" || head == "REGION" {
            continue;
        }
        let (timing_at, timing) = if head.contains("-->") {
            (0, head)
        } else if block.len() > 1 && block[1].contains("-->") {
            (1, block[1])
        } else {
            return Err(Error::BadTiming {
                line: block_start + 1,
            });
        };
        let bad = Error::BadTiming {
            line: block_start + timing_at + 1,
        };
        let (a, rest) = timing.split_once("-->").ok_or(Error::BadTiming {
            line: block_start + 1,
        })?;
        let b = rest.split_whitespace().next().unwrap_or("");
        let (Some(start_ms), Some(end_ms)) = (parse_ts(a.trim()), parse_ts(b)) else {
            return Err(bad);
        };
        if end_ms <= start_ms {
            return Err(bad);
        }
        let payload: Vec<String> = block[timing_at + 1..].iter().map(|l| unescape(l)).collect();
        cues.push(Cue {
            start_ms,
            end_ms,
            text: payload.join("\n"),
        });
    }
    Ok(cues)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_document_and_a_segment() {
        let cues = vec![
            Cue {
                start_ms: 1_000,
                end_ms: 2_500,
                text: "Hello <world> & you".into(),
            },
            Cue {
                start_ms: 3_723_004,
                end_ms: 3_724_000,
                text: "an hour in --> later".into(),
            },
        ];
        let doc = document(&cues, 0);
        assert_eq!(
            doc,
            "WEBVTT\n\n00:00:01.000 --> 00:00:02.500\nHello &lt;world&gt; &amp; you\n\n01:02:03.004 --> 01:02:04.000\nan hour in --&gt; later\n"
        );
        assert_eq!(parse(&doc).unwrap(), cues);
        let seg = segment(&cues, 500, 2_000, 4_000);
        assert!(seg.starts_with("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n"));
        let got = parse(&seg).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].start_ms, got[0].end_ms), (1_500, 3_000));
        assert!(
            parse(&segment(&cues, 0, 10_000, 12_000))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn refusals() {
        assert_eq!(parse("WEBVT\n"), Err(Error::NoHeader));
        assert_eq!(parse(""), Err(Error::NoHeader));
        assert!(matches!(
            parse("WEBVTT\n\n00:01.000 --> 00:00.500\nx\n"),
            Err(Error::BadTiming { .. })
        ));
        assert!(matches!(
            parse("WEBVTT\n\nid\n00:01.0 --> 00:02.000\nx\n"),
            Err(Error::BadTiming { line: 4 })
        ));
        assert_eq!(parse("WEBVTT - title\nKind: captions\n\nNOTE hi\n\n1\n00:01.000 --> 00:02.000 align:start\nx\n").unwrap().len(), 1);
    }

    proptest! {
        #[test]
        fn round_trip(texts in proptest::collection::vec("\\PC{1,60}", 0..20), starts in proptest::collection::vec(0u64..10_000_000, 20)) {
            let cues: Vec<Cue> = texts.iter().zip(&starts).map(|(t, &s)| Cue { start_ms: s, end_ms: s + 1 + s % 5000, text: t.clone() }).collect();
            let back = parse(&document(&cues, 0)).unwrap();
            let want: Vec<Cue> = cues.iter().filter(|c| !escape(&c.text).is_empty()).map(|c| Cue { text: escape(&c.text).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"), ..c.clone() }).collect();
            prop_assert_eq!(back, want);
        }

        #[test]
        fn any_text_parses_or_is_refused(s in "(WEBVTT\n)?(\\PC|\n|-->|:|\\.|[0-9]){0,300}") {
            let _ = parse(&s);
        }
    }
}
