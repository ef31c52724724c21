//! Canonical numbers in URLs: `seg/{msn}.m4s`, `part/{msn}.{index}.m4s` and the `_HLS_msn` /
//! `_HLS_part` delivery directives.
//!
//! One object, one URL. A number is accepted only as [`segment_uri`](super::segment_uri) and
//! [`part_uri`](super::part_uri) write it: decimal digits, no sign, no leading zero (except
//! `0` itself), within 64 bits. `seg/01.m4s` or `seg/+1.m4s` would otherwise be a second URL
//! for segment 1: a second cache key at every edge and browser, so a second copy fetched from
//! the origin (a way around the edges' request coalescing), and, for the directives, a second
//! blocking-reload answer held for the same part. RFC 8216bis §4.2 defines a decimal-integer
//! as digits only (so no sign); its grammar does not forbid leading zeros, but no player sends
//! them and each spelling would be a separate cached answer, so they are refused too.

use super::PartId;

/// Longest decimal form of a `u64`.
const MAX_DIGITS: usize = 20;

/// A canonical decimal integer: `0`, or a non-zero digit followed by digits, fitting in a
/// `u64`. `None` for anything else (empty, a sign, a leading zero, spaces, overflow).
pub fn decimal(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let canonical = match b {
        [] => false,
        [b'0'] => true,
        [first, ..] => *first != b'0' && b.len() <= MAX_DIGITS && b.iter().all(u8::is_ascii_digit),
    };
    if !canonical {
        return None;
    }
    s.parse().ok()
}

/// The msn of a segment file name, `{msn}.m4s`, canonical only.
pub fn segment_name(name: &str) -> Option<u64> {
    decimal(name.strip_suffix(".m4s")?)
}

/// The part of a part file name, `{msn}.{index}.m4s`, canonical only.
pub fn part_name(name: &str) -> Option<PartId> {
    let (msn, part) = name.strip_suffix(".m4s")?.split_once('.')?;
    Some(PartId {
        msn: decimal(msn)?,
        part: u32::try_from(decimal(part)?).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hls::{part_uri, segment_uri};
    use proptest::prelude::*;

    #[test]
    fn canonical_only() {
        assert_eq!(decimal("0"), Some(0));
        assert_eq!(decimal("12"), Some(12));
        assert_eq!(decimal("18446744073709551615"), Some(u64::MAX));
        for bad in [
            "",
            "01",
            "00",
            "+1",
            "-1",
            " 1",
            "1 ",
            "1e3",
            "0x1",
            "18446744073709551616",
            "١",
        ] {
            assert_eq!(decimal(bad), None, "{bad:?}");
        }
        assert_eq!(segment_name("2.m4s"), Some(2));
        for bad in ["02.m4s", "+2.m4s", "2.mp4", "2", ".m4s", "2.m4s.m4s"] {
            assert_eq!(segment_name(bad), None, "{bad:?}");
        }
        assert_eq!(part_name("1.2.m4s"), Some(PartId { msn: 1, part: 2 }));
        for bad in [
            "01.2.m4s",
            "1.02.m4s",
            "1.+2.m4s",
            "1.2.3.m4s",
            "1..m4s",
            "1.4294967296.m4s",
        ] {
            assert_eq!(part_name(bad), None, "{bad:?}");
        }
    }

    proptest! {
        /// Every number has exactly one spelling: what the URIs write parses back, and
        /// whatever parses is written the same way.
        #[test]
        fn one_object_one_url(msn in any::<u64>(), part in any::<u32>(), junk in "\\PC{0,24}") {
            prop_assert_eq!(decimal(&msn.to_string()), Some(msn));
            let seg = segment_uri(msn);
            prop_assert_eq!(segment_name(seg.strip_prefix("seg/").unwrap()), Some(msn));
            let p = PartId { msn, part };
            let uri = part_uri(p);
            prop_assert_eq!(part_name(uri.strip_prefix("part/").unwrap()), Some(p));
            if let Some(n) = decimal(&junk) {
                prop_assert_eq!(n.to_string(), junk.clone());
            }
            if let Some(n) = segment_name(&junk) {
                prop_assert_eq!(format!("{n}.m4s"), junk.clone());
            }
            if let Some(p) = part_name(&junk) {
                prop_assert_eq!(format!("{}.{}.m4s", p.msn, p.part), junk);
            }
        }

        /// Leading zeros and signs never name an object.
        #[test]
        fn spelling_variants_are_refused(msn in any::<u64>(), zeros in 1usize..3, sign in prop::sample::select(vec!["+", "-", " "])) {
            let padded = format!("{}{msn}", "0".repeat(zeros));
            prop_assert_eq!(decimal(&padded), None);
            let signed = format!("{sign}{msn}");
            prop_assert_eq!(decimal(&signed), None);
            let seg = format!("{padded}.m4s");
            prop_assert_eq!(segment_name(&seg), None);
            let part = format!("{msn}.{padded}.m4s");
            prop_assert_eq!(part_name(&part), None);
        }
    }
}
