# tribune edge: Varnish 7.1 (VCL 4.1) as a caching reverse proxy in front of ONE tribune origin.
#
# Listeners fetch LL-HLS from the edge. Varnish coalesces identical requests (its waiting list)
# and STREAMS an object still being fetched to every request waiting for it, so a hinted part
# or a blocking playlist reload that the origin holds until it exists reaches all waiters the
# moment its first byte does (nginx's proxy_cache_lock makes waiters poll, up to ~500 ms late).
# The origin sees about one request per object per edge, not one per listener. The listener's
# web page is cached the same way: the HTML shell, the app's versioned files (immutable) and
# each space's public snapshot (snapshot.json, max-age=1), so opening the page and pressing
# Play reaches the origin a handful of times per edge, not per listener. The Ogg stream
# (live.opus) and the event stream pass through uncached; everything else (API, tokens, joins,
# count beacons, reactions, WHIP, admin, recordings) is never cached.
#
# Tokens to substitute (sed, your config management):
#   @ORIGIN_HOST@  the origin's address, e.g. 10.0.0.5 (Varnish resolves a name once, at load)
#   @ORIGIN_PORT@  the origin's port, e.g. 8080
# Run:  varnishd -F -a :80 -f /path/edge.vcl -s malloc,256m [-n WORKDIR]
# See README.md in this directory for the reasoning.

vcl 4.1;

backend origin {
    .host = "@ORIGIN_HOST@";
    .port = "@ORIGIN_PORT@";
    .connect_timeout = 2s;
    # The origin holds a blocking reload or a hinted part up to 3 target durations (6 s):
    # wait longer than that for the first byte.
    .first_byte_timeout = 10s;
    .between_bytes_timeout = 10s;
}

sub vcl_recv {
    # The Ogg/Opus stream is one endless response, the event stream too: a pipe each, so no
    # timeout between bytes and no buffering applies.
    if (req.url ~ "^/spaces/[^/]+/live\.opus(\?|$)" || req.url ~ "^/api/spaces/[^/]+/events(\?|$)") {
        return (pipe);
    }
    # LL-HLS objects and playlists are public and the same for everyone: cached, coalesced.
    # Credentials and cookies are dropped so they can neither split nor bypass the cache.
    if ((req.method == "GET" || req.method == "HEAD") && req.url ~ "^/spaces/[^/]+/hls/") {
        unset req.http.Cookie;
        unset req.http.Authorization;
        return (hash);
    }
    # The page, the same for everyone: the HTML shell (/, /spaces/ID, /spaces/ID/replay), the
    # app's files (/app/BUILD/FILE, immutable) and the public snapshot. The origin's
    # Cache-Control says for how long (a 404 shell is no-cache, so never kept).
    if ((req.method == "GET" || req.method == "HEAD") &&
        (req.url ~ "^/(\?|$)" || req.url ~ "^/app/" ||
         req.url ~ "^/spaces/[^/?]+(/replay|/snapshot\.json)?/?(\?|$)")) {
        unset req.http.Cookie;
        unset req.http.Authorization;
        return (hash);
    }
    # Everything else goes to the origin every time: joins, tokens, beacons, reactions, WHIP
    # (POST/DELETE/PATCH), stage actions, events, admin, recordings.
    return (pass);
}

sub vcl_pipe {
    # One request per piped connection: the next request on it gets its own decision.
    set bereq.http.Connection = "close";
}

sub vcl_hash {
    # The query is part of the key: live.m3u8?_HLS_msn=12&_HLS_part=3 is its own object (the
    # answer to that exact blocking reload), as is ...&_HLS_skip=YES.
    hash_data(req.url);
    return (lookup);
}

sub vcl_backend_response {
    if (bereq.url ~ "/snapshot\.json(\?|$)" && beresp.status == 200) {
        # max-age=1 while live: while one request refreshes it, the copy at most a second old
        # answers everyone else.
        set beresp.grace = 1s;
        set beresp.keep = 0s;
        return (deliver);
    }
    if (bereq.url ~ "^/spaces/[^/]+/hls/") {
        # The origin's Cache-Control decides how long (parts and segments immutable, live.m3u8
        # 1 s, a blocking answer 60 s). Errors (a 503 after a blocking timeout, a 404 for a part
        # not made yet) are kept only long enough to answer the requests already waiting for
        # them, never to stick.
        if (beresp.status >= 400) {
            set beresp.ttl = 0.2s;
            set beresp.grace = 0s;
            set beresp.keep = 0s;
            return (deliver);
        }
        # live.m3u8 without directives: while one request refreshes it, serve the copy that is
        # at most a second old rather than queue everyone behind the refresh.
        set beresp.grace = 1s;
        set beresp.keep = 0s;
        # Stream to every waiter as the bytes arrive (the default, stated because it matters).
        set beresp.do_stream = true;
    }
    return (deliver);
}

sub vcl_deliver {
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
}
