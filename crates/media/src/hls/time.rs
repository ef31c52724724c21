//! `EXT-X-PROGRAM-DATE-TIME` values: ISO 8601 / RFC 3339 date-times with milliseconds, to and
//! from Unix milliseconds, without a date library (the civil-calendar conversion is the classic
//! days-from-civil algorithm on the proleptic Gregorian calendar).

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Formats Unix milliseconds as `YYYY-MM-DDThh:mm:ss.sssZ` (UTC).
pub fn format(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        unix_ms % 1000
    )
}

/// Parses an RFC 3339 date-time (`YYYY-MM-DDThh:mm:ss[.fff…](Z|±hh:mm|±hhmm)`) to Unix
/// milliseconds; fractions finer than a millisecond are truncated. `None` if malformed.
pub fn parse(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<u32> {
        let digits = b.get(from..from + len)?;
        digits.iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let sep = |at: usize, c: u8| b.get(at) == Some(&c);
    if !(sep(4, b'-') && sep(7, b'-') && (sep(10, b'T') || sep(10, b't')) && sep(13, b':')) {
        return None;
    }
    if !sep(16, b':') {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (h, mi, sec) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let days_in_month = match mo {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        _ => return None,
    };
    if d == 0 || d > days_in_month || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut ms = 0u32;
    if sep(i, b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 3 {
                ms = ms * 10 + u32::from(b[i] - b'0');
            }
            i += 1;
        }
        match i - start {
            0 => return None,
            1 => ms *= 100,
            2 => ms *= 10,
            _ => {}
        }
    }
    let offset_min: i64 = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&c @ (b'+' | b'-')) => {
            let (oh, om) = if sep(i + 3, b':') && i + 6 == b.len() {
                (num(i + 1, 2)?, num(i + 4, 2)?)
            } else if i + 5 == b.len() {
                (num(i + 1, 2)?, num(i + 3, 2)?)
            } else {
                return None;
            };
            if oh > 23 || om > 59 {
                return None;
            }
            let off = i64::from(oh * 60 + om);
            if c == b'-' { -off } else { off }
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(y), mo, d);
    let secs = days * 86_400 + i64::from(h * 3600 + mi * 60 + sec) - offset_min * 60;
    Some(secs * 1000 + i64::from(ms))
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        for ms in [
            0,
            1,
            999,
            86_399_999,
            951_782_400_000,
            1_709_251_199_123,
            4_102_444_800_000,
        ] {
            assert_eq!(super::parse(&super::format(ms)), Some(ms as i64), "{ms}");
        }
        assert_eq!(super::format(1_709_210_096_789), "2024-02-29T12:34:56.789Z");
    }

    #[test]
    fn offsets_and_fractions() {
        let z = super::parse("2024-02-29T12:34:56.789Z").unwrap();
        assert_eq!(super::parse("2024-02-29T14:34:56.789+02:00"), Some(z));
        assert_eq!(super::parse("2024-02-29T07:34:56.789-0500"), Some(z));
        assert_eq!(super::parse("2024-02-29T12:34:56.7891234Z"), Some(z));
        assert_eq!(super::parse("2024-02-29T12:34:56.7Z"), Some(z - 89));
        assert_eq!(super::parse("2024-02-29T12:34:56Z"), Some(z - 789));
        for bad in [
            "2023-02-29T00:00:00Z",
            "2024-02-29 12:34:56Z",
            "2024-02-29T12:34:56",
            "x",
            "",
        ] {
            assert_eq!(super::parse(bad), None, "{bad}");
        }
    }
}
