//! Tests of the Ogg framing: known values, round trips, resynchronisation and property tests.

use proptest::prelude::*;

use super::*;

/// Reads every page (skipping errors) from a reader.
fn drain(r: &mut PageReader) -> (Vec<Page>, usize) {
    let mut pages = Vec::new();
    let mut errors = 0;
    loop {
        match r.next_page() {
            Ok(Some(p)) => pages.push(p),
            Ok(None) => return (pages, errors),
            Err(_) => errors += 1,
        }
    }
}

fn read_all(bytes: &[u8]) -> (Vec<Page>, usize) {
    let mut r = PageReader::new();
    r.push(bytes);
    drain(&mut r)
}

#[test]
fn crc_known_values() {
    // The Ogg CRC (CRC-32/MPEG-2 polynomial, init 0, no reflection, no xor): "123456789" gives
    // 0x89a1897f.
    assert_eq!(crc32(b"123456789"), 0x89a1_897f);
    assert_eq!(crc32(b""), 0);
}

#[test]
fn page_layout() {
    let page = encode_page(FLAG_BOS, 0x0102_0304_0506_0708, 0xaabb_ccdd, 7, &[b"hello"]).unwrap();
    assert_eq!(&page[..4], b"OggS");
    assert_eq!(page[4], 0);
    assert_eq!(page[5], FLAG_BOS);
    assert_eq!(&page[6..14], &0x0102_0304_0506_0708u64.to_le_bytes());
    assert_eq!(&page[14..18], &0xaabb_ccddu32.to_le_bytes());
    assert_eq!(&page[18..22], &7u32.to_le_bytes());
    assert_eq!(page[26], 1);
    assert_eq!(page[27], 5);
    assert_eq!(&page[28..], b"hello");
    let mut zeroed = page.clone();
    zeroed[22..26].fill(0);
    assert_eq!(&page[22..26], &crc32(&zeroed).to_le_bytes());
}

#[test]
fn lacing_255_rule() {
    let p255 = vec![1u8; 255];
    let page = encode_page(0, 0, 1, 0, &[&p255, &[], &[2; 3]]).unwrap();
    let (pages, errors) = read_all(&page);
    assert_eq!(errors, 0);
    assert_eq!(pages[0].lacing, vec![255, 0, 0, 3]);
    let pieces: Vec<_> = pages[0].packets().collect();
    assert_eq!(pieces.len(), 3);
    assert_eq!(pieces[0], (&p255[..], true));
    assert_eq!(pieces[1], (&[][..], true));
    assert_eq!(pieces[2], (&[2u8; 3][..], true));
}

#[test]
fn too_many_lacing_values() {
    let big = vec![0u8; 255 * 255];
    assert!(matches!(
        encode_page(0, 0, 1, 0, &[&big]),
        Err(Error::TooManySegments { lacing: 256 })
    ));
    let ok = vec![0u8; 255 * 254 + 254];
    assert!(encode_page(0, 0, 1, 0, &[&ok]).is_ok());
    let empties: Vec<&[u8]> = vec![&[]; 256];
    assert!(encode_page(0, 0, 1, 0, &empties).is_err());
}

#[test]
fn bad_crc_is_reported_and_reader_resyncs() {
    let a = encode_page(0, 1, 9, 0, &[b"first"]).unwrap();
    let mut b = encode_page(0, 2, 9, 1, &[b"second"]).unwrap();
    let c = encode_page(0, 3, 9, 2, &[b"third"]).unwrap();
    let last = b.len() - 1;
    b[last] ^= 0xff;
    let mut stream = b"junk".to_vec();
    stream.extend_from_slice(&a);
    stream.extend_from_slice(&b);
    stream.extend_from_slice(&c);
    let mut r = PageReader::new();
    r.push(&stream);
    assert!(matches!(
        r.next_page(),
        Err(Error::Corrupt { skipped: 4, .. })
    ));
    assert_eq!(r.next_page().unwrap().unwrap().granule, 1);
    match r.next_page() {
        Err(Error::Corrupt { skipped, reason }) => {
            assert_eq!(skipped, b.len());
            assert_eq!(reason, "CRC mismatch");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(r.next_page().unwrap().unwrap().granule, 3);
    assert!(r.next_page().unwrap().is_none());
}

#[test]
fn bad_version_and_flags_rejected() {
    let mut p = encode_page(0, 0, 1, 0, &[b"x"]).unwrap();
    p[4] = 1;
    let (pages, errors) = read_all(&p);
    assert!(pages.is_empty());
    assert_eq!(errors, 1);
    let mut p = encode_page(0, 0, 1, 0, &[b"x"]).unwrap();
    p[5] = 0x80;
    assert!(read_all(&p).0.is_empty());
}

#[test]
fn packets_across_pages() {
    // A 600-byte packet split over two pages, then a small one.
    let big: Vec<u8> = (0..600).map(|i| i as u8).collect();
    let mut lacing = Vec::new();
    lace(big.len(), &mut lacing); // 255, 255, 90
    let mut bytes = Vec::new();
    write_page(
        &mut bytes,
        FLAG_BOS,
        u64::MAX,
        5,
        0,
        &lacing[..1],
        &big[..255],
    )
    .unwrap();
    let mut rest_lacing = lacing[1..].to_vec();
    rest_lacing.push(2);
    let mut rest_body = big[255..].to_vec();
    rest_body.extend_from_slice(b"ok");
    write_page(
        &mut bytes,
        FLAG_CONTINUED | FLAG_EOS,
        42,
        5,
        1,
        &rest_lacing,
        &rest_body,
    )
    .unwrap();

    let (pages, _) = read_all(&bytes);
    assert_eq!(pages.len(), 2);
    assert_eq!(
        pages[0].packets().collect::<Vec<_>>(),
        vec![(&big[..255], false)]
    );
    let mut pr = PacketReader::new();
    for p in &pages {
        pr.push_page(p);
    }
    let first = pr.next_packet().unwrap();
    assert_eq!(first.data, big);
    assert_eq!(first.granule, None);
    assert_eq!(first.page_seq, 1);
    assert!(first.bos && !first.eos);
    let second = pr.next_packet().unwrap();
    assert_eq!(second.data, b"ok");
    assert_eq!(second.granule, Some(42));
    assert!(second.eos && !second.bos);
    assert!(pr.next_packet().is_none());
    assert!(pr.ended());
}

#[test]
fn sequence_gap_discards_partial_packet() {
    let mut bytes = Vec::new();
    write_page(&mut bytes, 0, u64::MAX, 5, 0, &[255], &[1; 255]).unwrap();
    // Page 1 (the packet's end) is lost; page 2 continues something we cannot complete.
    write_page(
        &mut bytes,
        FLAG_CONTINUED,
        10,
        5,
        2,
        &[255, 3, 1],
        &[2; 259],
    )
    .unwrap();
    let (pages, _) = read_all(&bytes);
    let mut pr = PacketReader::new();
    for p in &pages {
        pr.push_page(p);
    }
    let only = pr.next_packet().unwrap();
    assert_eq!(only.data, vec![2]);
    assert_eq!(only.granule, Some(10));
    assert!(pr.next_packet().is_none());
    assert_eq!(pr.gaps(), 1);
    assert_eq!(pr.discarded(), 2);
}

#[test]
fn garbage_stays_bounded() {
    let mut r = PageReader::new();
    // Garbage full of capture patterns with huge declared sizes.
    let mut junk = Vec::new();
    for i in 0..2_000u32 {
        junk.extend_from_slice(b"OggS\0\0");
        junk.extend_from_slice(&i.to_le_bytes());
        junk.extend_from_slice(&[255; 30]);
    }
    for chunk in junk.chunks(7777) {
        r.push(chunk);
        assert!(r.buffered() <= MAX_PAGE_LEN);
    }
    let (pages, errors) = drain(&mut r);
    assert!(pages.is_empty());
    assert_eq!(errors, 1, "a run of garbage is one error");
    assert!(r.skipped_total() > 0);
}

fn arb_packets() -> impl Strategy<Value = Vec<Vec<u8>>> {
    let len = prop_oneof![
        0usize..600,
        Just(0usize),
        Just(255usize),
        Just(510usize),
        Just(765usize),
        Just(254usize),
        Just(256usize),
    ];
    prop::collection::vec(
        len.prop_flat_map(|n| prop::collection::vec(any::<u8>(), n)),
        0..12,
    )
}

proptest! {
    #[test]
    fn prop_round_trip(pages in prop::collection::vec((arb_packets(), any::<u64>(), any::<u8>()), 1..5),
                       serial in any::<u32>()) {
        let mut bytes = Vec::new();
        let mut expected = Vec::new();
        for (i, (packets, granule, flags)) in pages.iter().enumerate() {
            let flags = flags & (FLAG_BOS | FLAG_EOS);
            let refs: Vec<&[u8]> = packets.iter().map(|p| p.as_slice()).collect();
            bytes.extend_from_slice(&encode_page(flags, *granule, serial, i as u32, &refs).unwrap());
            expected.push((flags, *granule, packets.clone()));
        }
        let (got, errors) = read_all(&bytes);
        prop_assert_eq!(errors, 0);
        prop_assert_eq!(got.len(), expected.len());
        let mut pr = PacketReader::new();
        let mut all_packets = Vec::new();
        for (page, (flags, granule, packets)) in got.iter().zip(&expected) {
            prop_assert_eq!(page.flags, *flags);
            prop_assert_eq!(page.granule, *granule);
            prop_assert_eq!(page.serial, serial);
            let pieces: Vec<Vec<u8>> = page.packets().map(|(p, done)| { assert!(done); p.to_vec() }).collect();
            prop_assert_eq!(&pieces, packets);
            prop_assert_eq!(page.to_bytes().unwrap().len(), HEADER_LEN + page.lacing.len() + page.body.len());
            pr.push_page(page);
            all_packets.extend(packets.iter().cloned());
        }
        let mut reassembled = Vec::new();
        while let Some(p) = pr.next_packet() {
            reassembled.push(p.data);
        }
        prop_assert_eq!(reassembled, all_packets);
    }

    #[test]
    fn prop_split_anywhere_same_pages(pages in prop::collection::vec(arb_packets(), 1..4),
                                     junk in prop::collection::vec(any::<u8>(), 0..64),
                                     cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..10)) {
        let mut bytes = junk.clone();
        for (i, packets) in pages.iter().enumerate() {
            let refs: Vec<&[u8]> = packets.iter().map(|p| p.as_slice()).collect();
            bytes.extend_from_slice(&encode_page(0, i as u64, 3, i as u32, &refs).unwrap());
            bytes.extend_from_slice(&junk);
        }
        let (whole, _) = read_all(&bytes);
        prop_assert!(whole.len() >= pages.len());
        let mut cut_points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
        cut_points.sort_unstable();
        let mut r = PageReader::new();
        let mut pieces = Vec::new();
        let mut prev = 0;
        for c in cut_points.into_iter().chain([bytes.len()]) {
            r.push(&bytes[prev..c]);
            prev = c;
            pieces.extend(drain(&mut r).0);
        }
        prop_assert_eq!(pieces, whole);
    }

    #[test]
    fn prop_garbage_never_panics(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..2000), 0..20),
                                 prefix in any::<bool>()) {
        let mut r = PageReader::new();
        let mut pr = PacketReader::new();
        for c in &chunks {
            // Sprinkle capture patterns in so the header paths get exercised.
            let mut data = c.clone();
            if prefix && data.len() > 27 {
                data[..4].copy_from_slice(CAPTURE);
                data[4] = 0;
            }
            r.push(&data);
            prop_assert!(r.buffered() <= MAX_PAGE_LEN);
            loop {
                match r.next_page() {
                    Ok(Some(p)) => pr.push_page(&p),
                    Ok(None) => break,
                    Err(_) => {}
                }
            }
            while pr.next_packet().is_some() {}
        }
    }
}
