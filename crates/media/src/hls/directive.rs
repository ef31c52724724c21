//! Delivery Directives (bis §6.2.5): the `_HLS_msn`, `_HLS_part` and `_HLS_skip` query
//! parameters of a media playlist request.

/// The Delivery Directives of one playlist request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Directives {
    /// `_HLS_msn`: block until this segment (or, with `part`, this part) exists.
    pub msn: Option<u64>,
    /// `_HLS_part`: the Part Index to wait for in segment `msn`.
    pub part: Option<u32>,
    /// `_HLS_skip=YES` (or `v2`, answered as `YES`: no `CAN-SKIP-DATERANGES` is offered):
    /// answer with a Playlist Delta Update.
    pub skip: bool,
}

/// A request whose directives the spec says to refuse with 400 Bad Request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectiveError {
    /// `_HLS_part` without `_HLS_msn` (bis §6.2.5.2).
    #[error("_HLS_part without _HLS_msn")]
    PartWithoutMsn,
    /// A directive whose value is not a canonical decimal integer (no sign, no leading zero;
    /// or `YES`/`v2`/`NO` for `_HLS_skip`), or that appears twice.
    #[error("invalid delivery directive {0}")]
    Invalid(String),
}

impl Directives {
    /// Parses the query string of a playlist request (without the `?`). Parameters that are not
    /// Delivery Directives are ignored, as are unknown `_HLS_` ones.
    pub fn parse(query: &str) -> Result<Self, DirectiveError> {
        let mut d = Self::default();
        let mut skip_seen = false;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let bad = || DirectiveError::Invalid(pair.to_owned());
            match key {
                "_HLS_msn" if d.msn.is_none() => d.msn = Some(int(value).ok_or_else(bad)?),
                "_HLS_part" if d.part.is_none() => {
                    let n = int(value).ok_or_else(bad)?;
                    d.part = Some(u32::try_from(n).map_err(|_| bad())?);
                }
                "_HLS_skip" if !skip_seen => {
                    skip_seen = true;
                    d.skip = match value {
                        "YES" | "v2" => true,
                        "NO" => false,
                        _ => return Err(bad()),
                    };
                }
                "_HLS_msn" | "_HLS_part" | "_HLS_skip" => return Err(bad()),
                _ => {}
            }
        }
        if d.part.is_some() && d.msn.is_none() {
            return Err(DirectiveError::PartWithoutMsn);
        }
        Ok(d)
    }
}

/// A decimal-integer (§4.2) in its one canonical spelling: see [`super::name`] for why
/// `+1` and `01` are refused.
fn int(s: &str) -> Option<u64> {
    super::name::decimal(s)
}

#[cfg(test)]
mod tests {
    use super::{DirectiveError, Directives};

    #[test]
    fn parses_directives() {
        let d = Directives::parse("_HLS_msn=12&_HLS_part=3&_HLS_skip=YES&t=9").unwrap();
        assert_eq!((d.msn, d.part, d.skip), (Some(12), Some(3), true));
        assert_eq!(Directives::parse("").unwrap(), Directives::default());
        assert!(Directives::parse("_HLS_skip=v2").unwrap().skip);
        assert_eq!(
            Directives::parse("_HLS_part=1"),
            Err(DirectiveError::PartWithoutMsn)
        );
        for bad in [
            "_HLS_msn=-1",
            "_HLS_msn=x",
            "_HLS_msn=1&_HLS_msn=2",
            "_HLS_msn=1&_HLS_part=99999999999",
            "_HLS_skip=yes",
            "_HLS_msn=+1",
            "_HLS_msn=01",
            "_HLS_msn=1&_HLS_part=00",
            "_HLS_msn= 1",
        ] {
            assert!(
                matches!(Directives::parse(bad), Err(DirectiveError::Invalid(_))),
                "{bad}"
            );
        }
    }
}
