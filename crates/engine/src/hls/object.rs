//! The objects of a rendition, from a URL's last component to a file of its directory.
//!
//! A request names an object by text (`seg/12.m4s`, `part/12.3.m4s`); that text is parsed
//! into numbers ([`segment`], [`part`]) and only a [`Stored`] built from them names a file
//! ([`Stored::path`]). So a path on disk is never made of a request's text: whatever the name,
//! the file is `init.mp4`, a playlist the server wrote, or `{msn}.m4s` with `msn` printed by
//! the server, directly inside the space's HLS directory. Names are canonical
//! ([`tribune_media::hls::name`]): `01.m4s` or `+1.m4s` name nothing, so one object has one URL.
//! Anything else is refused with a [`NameError`], which says what a name should look like.

use std::path::{Path, PathBuf};

use tribune_media::hls::{INIT_URI, PartId, name};

/// A file a rendition keeps in its directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// The initialization section, `init.mp4`.
    Init,
    /// A complete segment, `{msn}.m4s`.
    Segment(u64),
    /// A playlist of an ended space's replay (and, beside it, its gzip encoding).
    Playlist(Playlist),
}

/// The playlists written to disk when a space ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Playlist {
    /// `index.m3u8`, the multivariant playlist.
    Index,
    /// `live.m3u8`, the media playlist (ended: it has `EXT-X-ENDLIST`).
    Live,
    /// `dvr.m3u8`, every segment: the replay.
    Dvr,
}

impl Playlist {
    /// The playlist's file name (and URL), e.g. `dvr.m3u8`.
    pub fn file_name(self) -> &'static str {
        match self {
            Playlist::Index => "index.m3u8",
            Playlist::Live => "live.m3u8",
            Playlist::Dvr => "dvr.m3u8",
        }
    }
}

impl Stored {
    /// The file's name in the rendition's directory: one path component, written by the
    /// server from numbers, never containing a separator.
    pub fn file_name(self) -> String {
        match self {
            Stored::Init => INIT_URI.to_owned(),
            Stored::Segment(msn) => format!("{msn}.m4s"),
            Stored::Playlist(p) => p.file_name().to_owned(),
        }
    }

    /// The file in the rendition's directory `dir`.
    pub fn path(self, dir: &Path) -> PathBuf {
        dir.join(self.file_name())
    }
}

/// A name in a URL that names no object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Not `{msn}.m4s`.
    #[error(
        "no such segment: segment names are {{msn}}.m4s, msn a decimal number without sign or leading zero"
    )]
    Segment,
    /// Not `{msn}.{part}.m4s`.
    #[error(
        "no such part: part names are {{msn}}.{{part}}.m4s, each a decimal number without sign or leading zero"
    )]
    Part,
}

/// The segment a `seg/` URL's last component names: `{msn}.m4s`, canonical.
pub fn segment(url_name: &str) -> Result<u64, NameError> {
    name::segment_name(url_name).ok_or(NameError::Segment)
}

/// The part a `part/` URL's last component names: `{msn}.{part}.m4s`, canonical. Parts live
/// in memory only (the open segment's side file is not served), so a part has no [`Stored`].
pub fn part(url_name: &str) -> Result<PartId, NameError> {
    name::part_name(url_name).ok_or(NameError::Part)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::Component;
    use tribune_media::hls::{part_uri, segment_uri};

    /// The path of a named object, as the handlers build it.
    fn path_of(dir: &Path, url_name: &str) -> Option<PathBuf> {
        segment(url_name)
            .ok()
            .map(|msn| Stored::Segment(msn).path(dir))
    }

    /// `p` is a plain file directly inside `dir`.
    fn directly_inside(dir: &Path, p: &Path) -> bool {
        p.parent() == Some(dir)
            && p.strip_prefix(dir).is_ok_and(|rest| {
                let c: Vec<_> = rest.components().collect();
                matches!(c.as_slice(), [Component::Normal(_)])
            })
    }

    #[test]
    fn hostile_names_are_refused_with_what_a_name_looks_like() {
        for bad in [
            "../segments.log",
            "..",
            "../../etc/passwd",
            "/etc/passwd",
            "1.m4s/../../x",
            "segments.log",
            "init.mp4",
            "open.m4s",
            "dvr.m3u8",
            "01.m4s",
            "+1.m4s",
            "1.m4s\0",
            "1%2e.m4s",
            "",
        ] {
            assert_eq!(segment(bad), Err(NameError::Segment), "{bad:?}");
            assert_eq!(part(bad), Err(NameError::Part), "{bad:?} is no part either");
        }
        assert_eq!(segment("7.m4s"), Ok(7));
        assert_eq!(part("7.2.m4s"), Ok(PartId { msn: 7, part: 2 }));
        let msg = NameError::Segment.to_string();
        assert!(
            msg.contains("{msn}.m4s") && msg.starts_with("no such segment"),
            "{msg}"
        );
        assert!(NameError::Part.to_string().contains("{msn}.{part}.m4s"));
    }

    #[test]
    fn stored_files_are_the_ones_the_server_writes() {
        let dir = Path::new("/data/hls/space");
        assert_eq!(Stored::Init.path(dir), dir.join("init.mp4"));
        assert_eq!(Stored::Segment(12).path(dir), dir.join("12.m4s"));
        assert_eq!(
            Stored::Playlist(Playlist::Dvr).path(dir),
            dir.join("dvr.m3u8")
        );
        for s in [
            Stored::Init,
            Stored::Segment(u64::MAX),
            Stored::Playlist(Playlist::Index),
            Stored::Playlist(Playlist::Live),
        ] {
            assert!(directly_inside(dir, &s.path(dir)), "{s:?}");
        }
    }

    proptest! {
        /// Whatever the name (any text, or path-like pieces glued together), parsing never
        /// panics and a name that parses gives a file directly inside the directory, whose
        /// name is the URL's own: hence a canonical number.
        #[test]
        fn any_name_stays_inside_the_directory(
            junk in "\\PC{0,32}",
            pieces in prop::collection::vec(
                prop::sample::select(vec!["..", ".", "/", "\\\\", "0", "1", "9", "m4s", ".m4s", "%2e", "\0", "seg", "~"]),
                0..10,
            ),
        ) {
            let dir = Path::new("/data/hls/space");
            let glued: String = pieces.concat();
            for name in [junk.as_str(), glued.as_str()] {
                let _ = part(name);
                if let Some(p) = path_of(dir, name) {
                    prop_assert!(directly_inside(dir, &p), "{:?} -> {:?}", name, p);
                    prop_assert_eq!(p.file_name().and_then(|f| f.to_str()), Some(name));
                }
            }
        }

        /// Every object the playlists name parses back to itself, and to the file the server
        /// wrote for it.
        #[test]
        fn valid_names_round_trip(msn in any::<u64>(), index in any::<u32>()) {
            let seg = segment_uri(msn);
            let seg_name = seg.strip_prefix("seg/").unwrap_or(&seg);
            prop_assert_eq!(segment(seg_name), Ok(msn));
            prop_assert_eq!(Stored::Segment(msn).file_name(), seg_name);
            let p = PartId { msn, part: index };
            let uri = part_uri(p);
            prop_assert_eq!(part(uri.strip_prefix("part/").unwrap_or(&uri)), Ok(p));
        }
    }
}
