//! The media playlist parser: lines (§4.1), tags, and attribute lists (§4.2).

use super::{Error, MediaPlaylist, Part, PreloadHint, Segment, ServerControl};
use crate::hls::time;

/// A value in an attribute list.
enum Value<'a> {
    Quoted(&'a str),
    Plain(&'a str),
}

impl<'a> Value<'a> {
    fn quoted(&self) -> Result<&'a str, String> {
        match self {
            Value::Quoted(s) => Ok(s),
            Value::Plain(s) => Err(format!("{s} must be a quoted-string")),
        }
    }
    fn plain(&self) -> Result<&'a str, String> {
        match self {
            Value::Plain(s) => Ok(s),
            Value::Quoted(s) => Err(format!("\"{s}\" must not be quoted")),
        }
    }
}

/// An attribute list: `NAME=VALUE` pairs separated by commas, each name at most once (§4.2).
fn attributes(s: &str) -> Result<Vec<(&str, Value<'_>)>, String> {
    let mut out: Vec<(&str, Value<'_>)> = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let eq = rest
            .find('=')
            .ok_or_else(|| format!("attribute without '=' in {s:?}"))?;
        let name = &rest[..eq];
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(format!("bad attribute name {name:?}"));
        }
        if out.iter().any(|(n, _)| *n == name) {
            return Err(format!("attribute {name} appears twice"));
        }
        rest = &rest[eq + 1..];
        let value = if let Some(q) = rest.strip_prefix('"') {
            let end = q
                .find('"')
                .ok_or_else(|| format!("unterminated quoted-string for {name}"))?;
            rest = &q[end + 1..];
            Value::Quoted(&q[..end])
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            let v = &rest[..end];
            if v.is_empty() || v.bytes().any(|b| b == b'"' || b.is_ascii_whitespace()) {
                return Err(format!("bad value for {name}: {v:?}"));
            }
            rest = &rest[end..];
            Value::Plain(v)
        };
        out.push((name, value));
        if let Some(r) = rest.strip_prefix(',') {
            if r.is_empty() {
                return Err("trailing ',' in attribute list".into());
            }
            rest = r;
        } else if !rest.is_empty() {
            return Err(format!("expected ',' after {name}"));
        }
    }
    Ok(out)
}

/// A decimal-integer (§4.2): 1 to 20 digits that fit in 64 bits.
fn int(s: &str) -> Result<u64, String> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("not a decimal-integer: {s:?}"));
    }
    s.parse()
        .map_err(|_| format!("decimal-integer out of range: {s}"))
}

/// A (non-negative) decimal-floating-point (§4.2): digits, optionally a '.' and digits.
fn float(s: &str) -> Result<f64, String> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(frac) {
        return Err(format!("not a decimal-floating-point: {s:?}"));
    }
    s.parse()
        .map_err(|_| format!("not a decimal-floating-point: {s:?}"))
}

fn yes(v: &Value<'_>) -> Result<bool, String> {
    match v.plain()? {
        "YES" => Ok(true),
        "NO" => Ok(false),
        other => Err(format!("expected YES or NO, got {other}")),
    }
}

fn required<'a, T>(
    attrs: &[(&str, Value<'a>)],
    name: &str,
    f: impl Fn(&Value<'a>) -> Result<T, String>,
) -> Result<T, String> {
    optional(attrs, name, f)?.ok_or_else(|| format!("missing required attribute {name}"))
}

fn optional<'a, T>(
    attrs: &[(&str, Value<'a>)],
    name: &str,
    f: impl Fn(&Value<'a>) -> Result<T, String>,
) -> Result<Option<T>, String> {
    attrs
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| f(v))
        .transpose()
}

/// The tags of the segment being read, before its URI line.
#[derive(Default)]
struct Pending {
    duration: Option<f64>,
    pdt_ms: Option<i64>,
    parts: Vec<Part>,
    discontinuity: bool,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.duration.is_none()
            && self.pdt_ms.is_none()
            && self.parts.is_empty()
            && !self.discontinuity
    }
}

/// Parses a media playlist. See [`super::parse`].
pub(super) fn parse(text: &str) -> Result<MediaPlaylist, Error> {
    let err = |line: usize, msg: String| Error::Syntax { line, msg };
    if text.starts_with('\u{feff}') {
        return Err(err(1, "byte order mark (§4.1: MUST NOT)".into()));
    }
    let mut lines = text.lines();
    if lines.next() != Some("#EXTM3U") {
        return Err(err(1, "the first line must be #EXTM3U (§4.3.1.1)".into()));
    }
    let mut p = MediaPlaylist::default();
    let mut seen: Vec<&str> = vec!["#EXTM3U"];
    let mut pending = Pending::default();
    for (i, line) in lines.enumerate() {
        let n = i + 2;
        let at = |msg: String| err(n, msg);
        if line.is_empty() {
            continue;
        }
        if !line.starts_with('#') {
            let Some(duration) = pending.duration else {
                return Err(at(format!("URI {line:?} without EXTINF")));
            };
            let msn = p
                .media_sequence
                .checked_add(p.skipped.unwrap_or(0))
                .and_then(|m| m.checked_add(p.segments.len() as u64))
                .ok_or_else(|| at("media sequence number overflows".into()))?;
            let done = std::mem::take(&mut pending);
            p.segments.push(Segment {
                msn,
                duration,
                uri: line.to_owned(),
                pdt_ms: done.pdt_ms,
                parts: done.parts,
                discontinuity: done.discontinuity,
            });
            continue;
        }
        if !line.starts_with("#EXT") {
            continue; // a comment
        }
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        let started = !p.segments.is_empty() || !pending.is_empty();
        let once = [
            "#EXTM3U",
            "#EXT-X-VERSION",
            "#EXT-X-TARGETDURATION",
            "#EXT-X-MEDIA-SEQUENCE",
            "#EXT-X-DISCONTINUITY-SEQUENCE",
            "#EXT-X-PLAYLIST-TYPE",
            "#EXT-X-SERVER-CONTROL",
            "#EXT-X-PART-INF",
            "#EXT-X-MAP",
            "#EXT-X-SKIP",
            "#EXT-X-ENDLIST",
            "#EXT-X-INDEPENDENT-SEGMENTS",
        ];
        if once.contains(&name) {
            if seen.contains(&name) {
                return Err(at(format!("{name} appears more than once")));
            }
            seen.push(name);
        }
        let before_segments = |what: &str| {
            if started {
                Err(format!("{what} must appear before the first segment"))
            } else {
                Ok(())
            }
        };
        let r: Result<(), String> = (|| {
            match name {
                "#EXTM3U" => unreachable!("rejected as a duplicate above"),
                "#EXT-X-VERSION" => p.version = Some(int(value)?),
                "#EXT-X-TARGETDURATION" => p.target_duration = Some(int(value)?),
                "#EXT-X-MEDIA-SEQUENCE" => {
                    if started || p.skipped.is_some() {
                        return Err(
                            "EXT-X-MEDIA-SEQUENCE must appear before the first segment".into()
                        );
                    }
                    p.media_sequence = int(value)?;
                }
                "#EXT-X-DISCONTINUITY-SEQUENCE" => {
                    // §4.3.3.3: before the first segment and before any EXT-X-DISCONTINUITY
                    // (both are in `started`).
                    if started || p.skipped.is_some() {
                        return Err("EXT-X-DISCONTINUITY-SEQUENCE must appear before the first segment and any EXT-X-DISCONTINUITY (§4.3.3.3)".into());
                    }
                    p.discontinuity_sequence = int(value)?;
                    p.has_discontinuity_sequence = true;
                }
                "#EXT-X-DISCONTINUITY" => {
                    if !value.is_empty() || line.contains(':') {
                        return Err("EXT-X-DISCONTINUITY takes no value".into());
                    }
                    if pending.discontinuity {
                        return Err("two EXT-X-DISCONTINUITY tags for one segment".into());
                    }
                    if pending.duration.is_some() {
                        return Err("EXT-X-DISCONTINUITY between EXTINF and its URI".into());
                    }
                    if !pending.parts.is_empty() {
                        return Err(
                            "EXT-X-DISCONTINUITY must precede the segment's first EXT-X-PART"
                                .into(),
                        );
                    }
                    pending.discontinuity = true;
                }
                "#EXT-X-PLAYLIST-TYPE" => match value {
                    "EVENT" | "VOD" => p.playlist_type = Some(value.to_owned()),
                    _ => return Err(format!("bad EXT-X-PLAYLIST-TYPE {value:?}")),
                },
                "#EXT-X-INDEPENDENT-SEGMENTS" => p.independent_segments = true,
                "#EXT-X-ENDLIST" => p.endlist = true,
                "#EXT-X-SERVER-CONTROL" => {
                    let a = attributes(value)?;
                    p.server_control = Some(ServerControl {
                        can_block_reload: optional(&a, "CAN-BLOCK-RELOAD", yes)?.unwrap_or(false),
                        part_hold_back: optional(&a, "PART-HOLD-BACK", |v| float(v.plain()?))?,
                        can_skip_until: optional(&a, "CAN-SKIP-UNTIL", |v| float(v.plain()?))?,
                        can_skip_dateranges: optional(&a, "CAN-SKIP-DATERANGES", yes)?
                            .unwrap_or(false),
                        hold_back: optional(&a, "HOLD-BACK", |v| float(v.plain()?))?,
                    });
                }
                "#EXT-X-PART-INF" => {
                    p.part_target = Some(required(&attributes(value)?, "PART-TARGET", |v| {
                        float(v.plain()?)
                    })?);
                }
                "#EXT-X-MAP" => {
                    before_segments("EXT-X-MAP (one, for every segment)")?;
                    let a = attributes(value)?;
                    if a.iter().any(|(n, _)| *n == "BYTERANGE") {
                        return Err("EXT-X-MAP BYTERANGE is not supported".into());
                    }
                    p.map_uri = Some(required(&a, "URI", |v| v.quoted().map(str::to_owned))?);
                }
                "#EXT-X-SKIP" => {
                    before_segments("EXT-X-SKIP")?;
                    let a = attributes(value)?;
                    p.skipped = Some(required(&a, "SKIPPED-SEGMENTS", |v| int(v.plain()?))?);
                }
                "#EXT-X-PROGRAM-DATE-TIME" => {
                    if pending.pdt_ms.is_some() || pending.duration.is_some() {
                        return Err("EXT-X-PROGRAM-DATE-TIME twice for one segment".into());
                    }
                    if !pending.parts.is_empty() {
                        return Err("EXT-X-PROGRAM-DATE-TIME must precede the segment's first EXT-X-PART (§4.4.4.9)".into());
                    }
                    pending.pdt_ms =
                        Some(time::parse(value).ok_or_else(|| format!("bad date-time {value:?}"))?);
                }
                "#EXTINF" => {
                    if pending.duration.is_some() {
                        return Err("two EXTINF tags for one segment".into());
                    }
                    let d = value.split_once(',').map_or(value, |(d, _)| d);
                    pending.duration = Some(float(d)?);
                }
                "#EXT-X-PART" => {
                    if pending.duration.is_some() {
                        return Err("EXT-X-PART between EXTINF and its URI".into());
                    }
                    let a = attributes(value)?;
                    if a.iter().any(|(n, _)| *n == "BYTERANGE") {
                        return Err("EXT-X-PART BYTERANGE is not supported".into());
                    }
                    pending.parts.push(Part {
                        duration: required(&a, "DURATION", |v| float(v.plain()?))?,
                        uri: required(&a, "URI", |v| v.quoted().map(str::to_owned))?,
                        independent: optional(&a, "INDEPENDENT", yes)?.unwrap_or(false),
                        gap: optional(&a, "GAP", yes)?.unwrap_or(false),
                    });
                }
                "#EXT-X-PRELOAD-HINT" => {
                    let a = attributes(value)?;
                    p.preload_hints.push(PreloadHint {
                        kind: required(&a, "TYPE", |v| v.plain().map(str::to_owned))?,
                        uri: required(&a, "URI", |v| v.quoted().map(str::to_owned))?,
                    });
                }
                _ => {} // unknown tags are ignored (§6.3.1)
            }
            Ok(())
        })();
        r.map_err(at)?;
    }
    if pending.duration.is_some() {
        return Err(err(0, "EXTINF without a URI at the end".into()));
    }
    p.trailing_pdt_ms = pending.pdt_ms;
    p.trailing_parts = pending.parts;
    p.trailing_discontinuity = pending.discontinuity;
    Ok(p)
}
