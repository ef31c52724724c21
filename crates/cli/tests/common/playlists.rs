//! LL-HLS helpers of the end-to-end tests: fetch an object, fetch a media playlist and check it
//! against the spec's rules (`tribune_media::hls::validate`), end a space, wait for its replay.

use std::time::Duration;

use bytes::Bytes;
use tribune_media::hls::validate::{self, MediaPlaylist};

use super::*;

/// Status, headers and body of a GET.
pub async fn get(url: &str) -> (u16, reqwest::header::HeaderMap, Bytes) {
    let r = reqwest::get(url).await.expect("get");
    let (s, h) = (r.status().as_u16(), r.headers().clone());
    (s, h, r.bytes().await.unwrap_or_default())
}

/// The media playlist at `url`: served as one, parsed, and obeying the rules.
pub async fn playlist(url: &str) -> MediaPlaylist {
    let (s, h, body) = get(url).await;
    assert_eq!(s, 200, "{url}");
    assert_eq!(h["content-type"], "application/vnd.apple.mpegurl");
    let text = String::from_utf8(body.to_vec()).expect("utf-8");
    let p = validate::parse(&text).unwrap_or_else(|e| panic!("{url}: {e}\n{text}"));
    if let Err(errs) = validate::check(&p) {
        panic!("{url} breaks the rules: {errs:?}\n{text}");
    }
    p
}

/// `POST /end` of space `id` by its host.
pub async fn end_space(base: &str, id: &str, host: &str) {
    let (s, v) = api(
        "POST",
        &format!("{base}/api/spaces/{id}/end"),
        Some(host),
        None,
    )
    .await;
    assert_eq!(s, 200, "end: {v}");
}

/// The replay of an ended space (`{hls}/dvr.m3u8`) once it is final (`EXT-X-ENDLIST`).
pub async fn final_replay(hls: &str) -> MediaPlaylist {
    let url = format!("{hls}/dvr.m3u8");
    assert!(
        eventually(Duration::from_secs(10), async || playlist(&url)
            .await
            .endlist)
        .await,
        "the replay is final"
    );
    playlist(&url).await
}
