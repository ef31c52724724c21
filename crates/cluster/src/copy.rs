//! The hot standby's copy of a space's files, as one byte stream from the owner: the
//! recording, and the LL-HLS rendition on disk (segment journal, segment files, the open
//! segment's parts). Pure: the encoding and an incremental decoder; the server tails the files
//! on the owner and writes them on the standby.
//!
//! A stream is a sequence of records: one byte of kind, one byte of name length, the name, the
//! offset (u64, big-endian), the data length (u32, big-endian), the data.
//!
//! | kind | name | meaning |
//! |---|---|---|
//! | `R` | — | recording bytes at `offset` |
//! | `J` | — | segment-journal bytes at `offset` |
//! | `S` | `{msn}.m4s` | a segment file, whole |
//! | `O` | — | the open segment's side file, whole |
//! | `K` | — | nothing new (the owner is alive and this is all there is) |
//! | `Z` | — | the owner stopped running the space: everything was sent |
//!
//! Writes at an offset and whole files make every record idempotent: a standby that reconnects
//! says how much it has, and whatever is sent twice is written twice to the same effect.

/// Longest data of one record.
pub const MAX_DATA: usize = 1 << 20;
/// Longest name.
const MAX_NAME: usize = 64;
/// Bytes before the name.
const HEAD: usize = 2;
/// Bytes between the name and the data.
const MID: usize = 12;

/// One record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Recording { offset: u64, data: Vec<u8> },
    Journal { offset: u64, data: Vec<u8> },
    Segment { msn: u64, data: Vec<u8> },
    Open { data: Vec<u8> },
    Alive,
    End,
}

/// Why a stream cannot be read on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("unknown record kind {0:#04x}")]
    Kind(u8),
    #[error("record name of {0} bytes (at most {MAX_NAME})")]
    NameLength(usize),
    #[error("segment name {0:?} is not {{msn}}.m4s")]
    Name(String),
    #[error("record data of {0} bytes (at most {MAX_DATA})")]
    DataLength(usize),
}

impl Record {
    /// The record's bytes on the stream.
    pub fn encode(&self) -> Vec<u8> {
        let (kind, name, offset, data): (u8, String, u64, &[u8]) = match self {
            Record::Recording { offset, data } => (b'R', String::new(), *offset, data),
            Record::Journal { offset, data } => (b'J', String::new(), *offset, data),
            Record::Segment { msn, data } => (b'S', format!("{msn}.m4s"), 0, data),
            Record::Open { data } => (b'O', String::new(), 0, data),
            Record::Alive => (b'K', String::new(), 0, &[]),
            Record::End => (b'Z', String::new(), 0, &[]),
        };
        let mut out = Vec::with_capacity(HEAD + name.len() + MID + data.len());
        out.push(kind);
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&offset.to_be_bytes());
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(data);
        out
    }
}

/// Reads records from chunks as they arrive.
#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    /// Takes the next chunk of the stream.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next whole record, `None` until more bytes arrive; an error ends the stream.
    pub fn next_record(&mut self) -> Result<Option<Record>, Error> {
        let b = &self.buf;
        if b.len() < HEAD {
            return Ok(None);
        }
        let (kind, name_len) = (b[0], b[1] as usize);
        if !matches!(kind, b'R' | b'J' | b'S' | b'O' | b'K' | b'Z') {
            return Err(Error::Kind(kind));
        }
        if name_len > MAX_NAME {
            return Err(Error::NameLength(name_len));
        }
        let mid = HEAD + name_len;
        if b.len() < mid + MID {
            return Ok(None);
        }
        let mut word = [0u8; 8];
        word.copy_from_slice(&b[mid..mid + 8]);
        let offset = u64::from_be_bytes(word);
        let mut len = [0u8; 4];
        len.copy_from_slice(&b[mid + 8..mid + 12]);
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_DATA {
            return Err(Error::DataLength(len));
        }
        let end = mid + MID + len;
        if b.len() < end {
            return Ok(None);
        }
        let name = String::from_utf8_lossy(&b[HEAD..mid]).into_owned();
        let data = b[mid + MID..end].to_vec();
        let record = match kind {
            b'R' => Record::Recording { offset, data },
            b'J' => Record::Journal { offset, data },
            b'S' => {
                let msn = name
                    .strip_suffix(".m4s")
                    .and_then(canonical_msn)
                    .ok_or(Error::Name(name))?;
                Record::Segment { msn, data }
            }
            b'O' => Record::Open { data },
            b'K' => Record::Alive,
            _ => Record::End,
        };
        self.buf.drain(..end);
        Ok(Some(record))
    }
}

/// A canonical decimal (as segment names are written): digits, no leading zero but `0`.
fn canonical_msn(s: &str) -> Option<u64> {
    let canonical = s == "0"
        || (!s.is_empty()
            && !s.starts_with('0')
            && s.len() <= 20
            && s.bytes().all(|c| c.is_ascii_digit()));
    canonical.then(|| s.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record() -> impl Strategy<Value = Record> {
        let data = proptest::collection::vec(any::<u8>(), 0..300);
        prop_oneof![
            (any::<u64>(), data.clone())
                .prop_map(|(offset, data)| Record::Recording { offset, data }),
            (any::<u64>(), data.clone())
                .prop_map(|(offset, data)| Record::Journal { offset, data }),
            (any::<u64>(), data.clone()).prop_map(|(msn, data)| Record::Segment { msn, data }),
            data.prop_map(|data| Record::Open { data }),
            Just(Record::Alive),
            Just(Record::End),
        ]
    }

    proptest! {
        /// Any records, cut into any chunks, read back as they were.
        #[test]
        fn records_read_back_whatever_the_chunks(
            records in proptest::collection::vec(record(), 0..20),
            cuts in proptest::collection::vec(1usize..64, 0..200),
        ) {
            let bytes: Vec<u8> = records.iter().flat_map(Record::encode).collect();
            let mut d = Decoder::default();
            let mut out = Vec::new();
            let mut at = 0;
            let mut cuts = cuts.into_iter();
            while at < bytes.len() {
                let n = cuts.next().unwrap_or(bytes.len()).min(bytes.len() - at);
                d.push(&bytes[at..at + n]);
                at += n;
                while let Some(r) = d.next_record().unwrap() {
                    out.push(r);
                }
            }
            prop_assert_eq!(out, records);
        }

        /// Any bytes at all: records, `None` or an error, never a panic, and never a segment
        /// name that is not a canonical number.
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut d = Decoder::default();
            d.push(&bytes);
            while let Ok(Some(r)) = d.next_record() {
                if let Record::Segment { msn, .. } = r {
                    prop_assert!(canonical_msn(&msn.to_string()).is_some());
                }
            }
        }
    }

    #[test]
    fn bad_names_and_sizes_are_refused() {
        let mut d = Decoder::default();
        let mut bad = Record::Segment {
            msn: 1,
            data: vec![],
        }
        .encode();
        bad[2] = b'/';
        d.push(&bad);
        assert!(matches!(d.next_record(), Err(Error::Name(_))));
        let mut d = Decoder::default();
        d.push(&[b'X', 0]);
        assert_eq!(d.next_record(), Err(Error::Kind(b'X')));
        let mut d = Decoder::default();
        let mut big = Record::Open { data: vec![] }.encode();
        big[10..14].copy_from_slice(&((MAX_DATA as u32) + 1).to_be_bytes());
        d.push(&big);
        assert_eq!(d.next_record(), Err(Error::DataLength(MAX_DATA + 1)));
    }
}
