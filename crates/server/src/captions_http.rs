//! Live captions over HTTP: the WebVTT subtitles rendition of the LL-HLS stream
//! (`/spaces/{id}/hls/subs.m3u8`, `/spaces/{id}/hls/subs/{msn}.vtt`, listed in `index.m3u8`),
//! and the whole space's captions beside its recording (`/spaces/{id}/captions.vtt`).
//!
//! A subtitles segment has the number and span of the audio segment it captions, and is listed
//! once its span has been captioned (the captioner says how far it is done), so it never
//! changes once served: `public, max-age=31536000, immutable`, like the audio's. Its cues are
//! in the audio's media timeline (`X-TIMESTAMP-MAP` ties 90 kHz time to the cue clock, both the
//! segment's start), so players place them on the audio (hls.js does, tested; Safari is not
//! tested here). The playlist changes as segments are captioned: `max-age=1`.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use tribune_captions::vtt;
use tribune_engine::hls::{SegTiming, Text};
use tribune_engine::space::Space;
use tribune_media::hls::subtitles::{self, Listed};

use crate::api::find_space;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};

const VTT: &str = "text/vtt; charset=utf-8";
const PLAYLIST: &str = "application/vnd.apple.mpegurl";

fn captions_of(
    space: &Space,
) -> ApiResult<&std::sync::Arc<tribune_engine::space::captions::SpaceCaptions>> {
    space.captions.as_ref().ok_or_else(|| {
        ApiError::not_found("captions (this server runs without --captions-model, or the space is not running here)")
    })
}

/// `GET /spaces/{id}/hls/subs.m3u8`: the subtitles media playlist.
#[utoipa::path(
    get,
    path = "/spaces/{id}/hls/subs.m3u8",
    operation_id = "hls_subtitles",
    tag = "hls",
    params(("id" = String, Path, description = "Space id")),
    responses(
        (status = 200, description = "The WebVTT subtitles playlist: the audio's segments that have been captioned", body = String, content_type = "application/vnd.apple.mpegurl"),
        (status = 404, description = "No such space, or no captions", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn playlist(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let space = find_space(&app, &id)?;
    let caps = captions_of(&space)?;
    let hls = space
        .hls()
        .ok_or_else(|| ApiError::not_found("live rendition"))?;
    let (window, next, ended) = hls.subtitle_window();
    let done = caps.done_unix_ms();
    let listed: Vec<Listed> = window
        .iter()
        .take_while(|s| captioned(s, done))
        .map(|s| Listed {
            msn: s.msn,
            duration: s.duration,
            pdt_unix_ms: s.pdt_unix_ms,
        })
        .collect();
    let all = listed.len() == window.len();
    let next = listed
        .last()
        .map_or(window.first().map_or(next, |s| s.msn), |s| s.msn + 1);
    let ended = ended && all && caps.is_finished();
    let text = Text::new(subtitles::playlist(
        &listed,
        hls.config().segment_target.as_secs().max(1),
        next,
        ended,
    ));
    let cache = if ended {
        "public, max-age=300"
    } else {
        "public, max-age=1"
    };
    Ok(crate::hls_http::serve_text(
        &headers,
        &text,
        PLAYLIST,
        cache,
        app.cfg.clock.now_ms(),
    ))
}

/// Whether every cue of segment `s`'s span has been made.
fn captioned(s: &SegTiming, done_unix_ms: u64) -> bool {
    s.pdt_unix_ms + s.duration.as_millis() as u64 <= done_unix_ms
}

/// `GET /spaces/{id}/hls/subs/{msn}.vtt`: one subtitles segment.
#[utoipa::path(
    get,
    path = "/spaces/{id}/hls/subs/{name}",
    operation_id = "hls_subtitles_segment",
    tag = "hls",
    params(("id" = String, Path, description = "Space id"),
        ("name" = String, Path, description = "`{msn}.vtt`")),
    responses(
        (status = 200, description = "The captions of audio segment msn, WebVTT in the media timeline", body = String, content_type = "text/vtt"),
        (status = 404, description = "No such space, captions or segment (or not captioned yet)", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn segment(
    State(app): State<AppState>,
    Path((id, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let msn = name
        .strip_suffix(".vtt")
        .and_then(tribune_media::hls::name::decimal)
        .ok_or_else(|| ApiError::not_found("subtitles segment (the name is {msn}.vtt)"))?;
    let space = find_space(&app, &id)?;
    let caps = captions_of(&space)?;
    let hls = space
        .hls()
        .ok_or_else(|| ApiError::not_found("live rendition"))?;
    let s = hls
        .segment_timing(msn)
        .filter(|s| captioned(s, caps.done_unix_ms()))
        .ok_or_else(|| {
            ApiError::not_found("subtitles segment (not captioned yet, or no such segment)")
        })?;
    // Cue times (Unix ms of the mix) → the audio's media timeline, by this segment's clock.
    let offset = s.media_start_ms as i64 - s.pdt_unix_ms as i64;
    let start = s.media_start_ms;
    let end = start + s.duration.as_millis() as u64;
    let body = vtt::segment(&caps.cues(), offset, start, end).replacen(
        "X-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000",
        &format!(
            "X-TIMESTAMP-MAP=MPEGTS:{},LOCAL:{}",
            start * 90 % (1u64 << 33),
            vtt::timestamp(start)
        ),
        1,
    );
    let text = Text::new(body);
    Ok(crate::hls_http::serve_text(
        &headers,
        &text,
        VTT,
        "public, max-age=31536000, immutable",
        s.pdt_unix_ms + s.duration.as_millis() as u64,
    ))
}

/// Longest an ended space's `captions.vtt` waits for its last cues.
const FINISH_WAIT: Duration = Duration::from_secs(20);

/// `GET /spaces/{id}/captions.vtt`: every caption of the space, in ms into its recording.
#[utoipa::path(
    get,
    path = "/spaces/{id}/captions.vtt",
    tag = "spaces",
    params(("id" = String, Path, description = "Space id")),
    responses(
        (status = 200, description = "The space's captions, WebVTT, times in the recording (`no-cache` while live; `public, max-age=300` once ended and complete)", body = String, content_type = "text/vtt"),
        (status = 404, description = "No such space, or it has no captions", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn whole(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let space = find_space(&app, &id)?;
    let path = tribune_engine::space::captions::vtt_path(&app.cfg.data_dir, &space.id);
    let ended = space.lifecycle() == tribune_room::Lifecycle::Ended;
    let mut complete = ended;
    if let (true, Some(c)) = (ended, &space.captions) {
        // The last stretch of speech may still be in the engine: wait for it, a while.
        let t0 = std::time::Instant::now();
        while !c.is_finished() && t0.elapsed() < FINISH_WAIT {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        complete = c.is_finished();
    }
    let body = match tokio::fs::read_to_string(&path).await {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if space.captions.is_none() {
                return Err(ApiError::not_found(
                    "captions (none were made for this space)",
                ));
            }
            "WEBVTT\n".to_owned()
        }
        Err(e) => return Err(ApiError::internal(e)),
    };
    let cache = if complete {
        "public, max-age=300"
    } else {
        "no-cache"
    };
    let text = Text::new(body);
    let mut r = crate::hls_http::serve_text(&headers, &text, VTT, cache, app.cfg.clock.now_ms());
    if !complete && ended {
        r.headers_mut()
            .insert("retry-after", axum::http::HeaderValue::from_static("5"));
    }
    Ok(r)
}

/// The multivariant playlist of a captioned space: the audio variant with its subtitles.
pub fn index_text(space: &Space, bandwidth: u32) -> Option<Text> {
    let c = space.captions.as_ref()?;
    Some(Text::new(subtitles::multivariant(bandwidth, &c.language)))
}
