//! A space as an iCalendar event (RFC 5545), for "Add to calendar": one `VEVENT` with its start,
//! end, title, description, link and a reminder ten minutes before, written to the letter of the
//! RFC: CRLF line ends, lines folded at 75 octets without splitting a UTF-8 sequence (§3.1),
//! TEXT values escaped (§3.3.11), times in UTC (`…Z`, §3.3.5).
//!
//! The bytes depend only on the space and the origin given, so an HTTP cache can keep them.

/// What a calendar event of a space says.
pub struct Event<'a> {
    /// Space id (with `created_at`, the event's `UID`).
    pub id: &'a str,
    pub title: &'a str,
    pub description: &'a str,
    /// Unix seconds: when the space was created (`DTSTAMP`: the event's version).
    pub created_at: u64,
    /// Unix seconds: the start (scheduled, or when it went live).
    pub start: u64,
    /// Unix seconds: the end (when it ended, or the start plus [`DEFAULT_LENGTH_S`]).
    pub end: u64,
    /// The page of the space, absolute (`https://example.org/spaces/x`).
    pub url: &'a str,
    /// The host part of `UID` (`x.1700000000@example.org`).
    pub domain: &'a str,
}

/// How long a space that has not ended is written to last: one hour.
pub const DEFAULT_LENGTH_S: u64 = 3600;

/// The whole `VCALENDAR` document.
pub fn ics(e: &Event<'_>) -> String {
    let mut lines: Vec<String> = vec![
        "BEGIN:VCALENDAR".into(),
        "VERSION:2.0".into(),
        "PRODID:-//tribune//live audio rooms//EN".into(),
        "CALSCALE:GREGORIAN".into(),
        "METHOD:PUBLISH".into(),
        "BEGIN:VEVENT".into(),
        format!(
            "UID:{}",
            text(&format!("{}.{}@{}", e.id, e.created_at, e.domain))
        ),
        format!("DTSTAMP:{}", utc(e.created_at)),
        format!("DTSTART:{}", utc(e.start)),
        format!("DTEND:{}", utc(e.end.max(e.start + 60))),
        format!("SUMMARY:{}", text(e.title)),
    ];
    let about = if e.description.is_empty() {
        format!("Listen live: {}", e.url)
    } else {
        format!("{}\n\nListen live: {}", e.description, e.url)
    };
    lines.push(format!("DESCRIPTION:{}", text(&about)));
    lines.push(format!("URL:{}", e.url));
    lines.push("STATUS:CONFIRMED".into());
    lines.push("TRANSP:TRANSPARENT".into());
    lines.push("BEGIN:VALARM".into());
    lines.push("ACTION:DISPLAY".into());
    lines.push("TRIGGER:-PT10M".into());
    lines.push(format!(
        "DESCRIPTION:{}",
        text(&format!("{} starts in 10 minutes", e.title))
    ));
    lines.push("END:VALARM".into());
    lines.push("END:VEVENT".into());
    lines.push("END:VCALENDAR".into());
    let mut out = String::new();
    for l in lines {
        fold(&l, &mut out);
    }
    out
}

/// A TEXT value (§3.3.11): backslash, semicolon and comma escaped, line breaks as `\n`.
pub fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            // Other controls are not allowed in TEXT (§3.1: "CONTROL" excluded).
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Unix seconds as a UTC DATE-TIME, `19970714T173000Z` (the HLS program date-time's fields).
pub fn utc(unix: u64) -> String {
    let iso = tribune_media::hls::time::format(unix * 1000); // 1997-07-14T17:30:00.000Z
    let mut out: String = iso[..19]
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    out.push('Z');
    out
}

/// Appends `line` folded (§3.1): at most 75 octets per physical line, continuation lines start
/// with one space, never inside a UTF-8 sequence; each line ends with CRLF.
fn fold(line: &str, out: &mut String) {
    let mut used = 0;
    for c in line.chars() {
        let n = c.len_utf8();
        if used + n > 75 {
            out.push_str("\r\n ");
            used = 1;
        }
        out.push(c);
        used += n;
    }
    out.push_str("\r\n");
}

/// Undoes [`fold`] and [`text`] on one property's value: for tests and fuzzing.
pub fn unfold(doc: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for l in doc.split("\r\n") {
        if let Some(rest) = l.strip_prefix(' ') {
            if let Some(last) = lines.last_mut() {
                last.push_str(rest);
            }
        } else if !l.is_empty() {
            lines.push(l.to_owned());
        }
    }
    lines
}

/// The TEXT value `s` means (the inverse of [`text`] on what it produces).
pub fn untext(s: &str) -> String {
    let mut out = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('n') | Some('N') => out.push('\n'),
                Some(o) => out.push(o),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A property's value in an unfolded document (the first one named `name`, after `skip` ones).
pub fn property<'a>(lines: &'a [String], name: &str, skip: usize) -> Option<&'a str> {
    let mut seen = 0;
    for l in lines {
        if let Some((n, v)) = l.split_once(':')
            && n == name
        {
            if seen == skip {
                return Some(v);
            }
            seen += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn event<'a>(title: &'a str, description: &'a str) -> Event<'a> {
        Event {
            id: "abc",
            title,
            description,
            created_at: 1_700_000_000,
            start: 1_764_874_800, // 2025-12-04T19:00:00Z
            end: 1_764_874_800 + DEFAULT_LENGTH_S,
            url: "https://rooms.example/spaces/abc",
            domain: "rooms.example",
        }
    }

    #[test]
    fn utc_times() {
        assert_eq!(utc(0), "19700101T000000Z");
        assert_eq!(utc(1_764_874_800), "20251204T190000Z");
        assert_eq!(utc(951_782_400), "20000229T000000Z"); // leap day
        assert_eq!(utc(4_102_444_799), "20991231T235959Z");
    }

    #[test]
    fn a_whole_event() {
        let doc = ics(&event("Weekly, the show; live", "Line one\nLine \\ two"));
        assert!(doc.ends_with("END:VCALENDAR\r\n"));
        assert!(!doc.replace("\r\n", "").contains('\n'), "bare LF");
        let lines = unfold(&doc);
        assert_eq!(lines[0], "BEGIN:VCALENDAR");
        assert_eq!(property(&lines, "DTSTART", 0), Some("20251204T190000Z"));
        assert_eq!(property(&lines, "DTEND", 0), Some("20251204T200000Z"));
        assert_eq!(
            untext(property(&lines, "SUMMARY", 0).unwrap()),
            "Weekly, the show; live"
        );
        assert_eq!(
            property(&lines, "SUMMARY", 0),
            Some("Weekly\\, the show\\; live")
        );
        assert_eq!(
            untext(property(&lines, "DESCRIPTION", 0).unwrap()),
            "Line one\nLine \\ two\n\nListen live: https://rooms.example/spaces/abc"
        );
        assert_eq!(
            property(&lines, "UID", 0),
            Some("abc.1700000000@rooms.example")
        );
        assert_eq!(property(&lines, "TRIGGER", 0), Some("-PT10M"));
    }

    proptest! {
        /// Any title and description: every physical line is at most 75 octets and valid
        /// UTF-8 on its own, no bare CR or LF, and unfolding and unescaping gives the text back.
        #[test]
        fn folds_and_escapes_any_text(title in "\\PC{0,200}", description in "(\\PC|\n){0,400}") {
            let doc = ics(&event(&title, &description));
            for l in doc.split("\r\n") {
                prop_assert!(l.len() <= 75, "line of {} octets", l.len());
                prop_assert!(!l.contains('\r') && !l.contains('\n'));
            }
            let lines = unfold(&doc);
            let clean: String = title.chars().filter(|c| !c.is_control()).collect();
            prop_assert_eq!(untext(property(&lines, "SUMMARY", 0).unwrap()), clean);
            let about = untext(property(&lines, "DESCRIPTION", 0).unwrap());
            let want: String = description.chars().filter(|c| *c == '\n' || !c.is_control()).collect();
            prop_assert!(about.starts_with(&want));
        }
    }
}
