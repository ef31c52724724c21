//! The server as an embeddable library: shared state, the router, and start-up.
//!
//! Two runtimes keep the broadcast isolated from the audience: HTTP (API, listeners,
//! recordings) runs on the caller's tokio runtime; the media path (the shared UDP port and one
//! task per WHIP session) runs on a runtime of its own on a dedicated thread; each space's
//! mixer, pager and recorder are plain threads.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{MethodFilter, MethodRouter, on};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tribune_room::Role;

use crate::auth::Keys;
use crate::config::Config;
use crate::{api, events_http, hls_http, openapi, streams, web, whip};
use tribune_engine::batch;
use tribune_engine::rtc::mux::Mux;
use tribune_engine::space::{NewSpace, Space, Spaces};
use tribune_engine::store::Store;
use tribune_engine::writer::StoreWriter;
use tribune_metrics::Metrics;

/// State shared by every handler.
pub struct App {
    pub cfg: Config,
    pub keys: Keys,
    pub spaces: Spaces,
    pub metrics: Arc<Metrics>,
    pub mux: Arc<Mux>,
    pub media: tokio::runtime::Handle,
    /// ICE host candidates with their real ports.
    pub candidates: Vec<SocketAddr>,
    /// Durable state (read directly; written through [`App::writer`]).
    pub store: Arc<dyn tribune_engine::durable::Durable>,
    pub writer: StoreWriter,
    /// Reactions per participant: 5 per second, bursts of 10.
    pub reaction_limiter: DefaultKeyedRateLimiter<String>,
    /// Reaction requests this node takes per second, all spaces together
    /// ([`REACTION_REQUESTS_PER_SECOND`]); beyond it, 429 with `Retry-After`.
    pub reaction_budget: governor::DefaultDirectRateLimiter,
    /// Request classes, rate limits and in-flight limits on the audience listeners.
    pub guard: crate::guard::Guard,
    /// The waiting room in front of this node's listener cap.
    pub waiting: parking_lot::Mutex<tribune_admission::waiting::WaitingRoom>,
    /// Proof-of-work admission under attack.
    pub shield: crate::shield::Shield,
    /// This node's membership of a cluster (`--redis`), if any.
    pub cluster: Option<Arc<crate::cluster::Member>>,
}

/// Shared state as handlers see it.
pub type AppState = Arc<App>;

/// A space created through [`App::create_space`].
pub struct Created {
    pub space: Arc<Space>,
    pub host_token: String,
    pub host_sub: String,
}

/// Why a space could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("a space with id {0:?} exists")]
    Exists(String),
    #[error("invalid space id {0:?}: use 1-64 characters of [A-Za-z0-9_-]")]
    InvalidId(String),
    #[error("starting the space: {0}")]
    Io(#[from] std::io::Error),
}

/// Whether `id` may name a space: 1-64 characters of `[A-Za-z0-9_-]`.
pub fn valid_id(id: &str) -> Result<(), CreateError> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(CreateError::InvalidId(id.to_owned()))
    }
}

/// The SQLite file under the data directory.
pub const DB_FILE: &str = "tribune.db";

/// The token-signing secret kept under the data directory when `--jwt-secret` is not given: a
/// restarted server honours the tokens it gave (a host resumes an interrupted space with the
/// link it has), and a new data directory starts with a new secret.
pub const DATA_SECRET_FILE: &str = "jwt-secret";

/// The data directory's secret: read, or written from `fresh` (owner-only) on first start.
fn data_secret(dir: &std::path::Path, fresh: &str) -> std::io::Result<String> {
    let path = dir.join(DATA_SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(s) if s.trim().len() >= crate::config::options::MIN_SECRET_BYTES => {
            Ok(s.trim().to_owned())
        }
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{}: shorter than {} bytes (delete it to make a new one, which ends every token given)",
                path.display(),
                crate::config::options::MIN_SECRET_BYTES
            ),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?;
            f.write_all(fresh.as_bytes())?;
            f.sync_all()?;
            Ok(fresh.to_owned())
        }
        Err(e) => Err(std::io::Error::new(
            e.kind(),
            format!("{}: {e}", path.display()),
        )),
    }
}

impl App {
    /// Create a space (and its host's token): scheduled when `starts_at` is given, live
    /// otherwise. `id` is random when not given.
    pub fn create_space(
        &self,
        id: Option<&str>,
        title: &str,
        description: &str,
        host_name: &str,
        starts_at: Option<u64>,
    ) -> Result<Created, CreateError> {
        let id = match id {
            Some(id) => {
                valid_id(id)?;
                id.to_owned()
            }
            None => crate::auth::random_id(10),
        };
        if self.spaces.contains(&id) {
            return Err(CreateError::Exists(id));
        }
        let host_sub = format!("host-{}", crate::auth::random_id(8));
        let space = Space::create(
            NewSpace {
                id: &id,
                title,
                description,
                host: (&host_sub, host_name),
                starts_at,
            },
            &self.cfg.space_config(),
            self.metrics.clone(),
            self.writer.clone(),
        )?;
        if !self.spaces.insert(space.clone()) {
            space.end();
            return Err(CreateError::Exists(id));
        }
        if let Some(m) = &self.cluster {
            m.tap(&space);
        }
        tokio::spawn(batch::run(space.clone()));
        let (host_token, _) = self.mint(&id, &host_sub, host_name, Role::Host);
        tracing::info!(space = %id, title, "space created");
        Ok(Created {
            space,
            host_token,
            host_sub,
        })
    }

    /// Mint a token with the configured lifetime.
    pub fn mint(&self, space: &str, sub: &str, name: &str, role: Role) -> (String, u64) {
        let (tok, claims) = self.keys.mint(
            space,
            sub,
            name,
            role,
            self.cfg.token_ttl,
            SystemTime::now(),
        );
        (tok, claims.exp)
    }
}

/// Declares [`ROUTES`] and `routes()` from one table of `METHOD "path" => handler` lines, where
/// `METHOD` names a [`MethodFilter`] constant.
macro_rules! route_table {
    ($($method:ident $path:literal => $handler:expr,)*) => {
        /// Every route the router registers, as `(METHOD, axum path)`; axum's `{param}` syntax is
        /// OpenAPI's too. A `GET` also answers `HEAD`.
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path),)*];

        /// The routes of [`ROUTES`] (a path named twice gets one method router with both).
        fn routes() -> Router<AppState> {
            Router::new()$(.route($path, on(MethodFilter::$method, $handler)))*
        }
    };
}

// The route table, written once: the router is built from it and [`ROUTES`] is generated from
// the same lines, so the two cannot disagree. `tests/openapi.rs` checks that every entry is in
// the OpenAPI document (and every documented route here) and that the router serves it.
route_table! {
    GET "/healthz" => api::healthz,
    GET "/metrics" => api::metrics,
    GET "/api/admin/shield" => crate::shield::http::get_shield,
    GET "/api/cluster" => crate::cluster::cluster,
    GET "/api/cluster/spaces/{id}/follow" => crate::cluster::follow::serve,
    POST "/api/admin/shield" => crate::shield::http::set_shield,
    GET "/api/openapi.json" => openapi::openapi_json,
    POST "/api/spaces" => api::create_space,
    GET "/api/spaces" => api::list_spaces,
    GET "/api/spaces/{id}" => api::get_space,
    POST "/api/spaces/{id}/tokens" => api::mint_token,
    POST "/api/spaces/{id}/join" => api::join,
    GET "/api/spaces/{id}/challenge" => crate::shield::http::challenge,
    POST "/api/spaces/{id}/presence" => api::presence,
    POST "/api/spaces/{id}/beacon" => crate::public::beacon,
    POST "/api/spaces/{id}/reactions" => api::react,
    GET "/api/spaces/{id}/timeline" => api::timeline,
    GET "/api/spaces/{id}/audience" => api::audience,
    GET "/api/spaces/{id}/events" => events_http::events,
    POST "/api/spaces/{id}/events/ticket" => events_http::ticket,
    POST "/api/spaces/{id}/stage/{action}" => api::stage,
    POST "/api/spaces/{id}/{verb}" => api::lifecycle,
    POST "/api/spaces/{id}/whip" => whip::post,
    OPTIONS "/api/spaces/{id}/whip" => whip::options_endpoint,
    GET "/api/spaces/{id}/whip" => whip::get_empty,
    DELETE "/api/spaces/{id}/whip/{session}" => whip::delete,
    OPTIONS "/api/spaces/{id}/whip/{session}" => whip::options_session,
    PATCH "/api/spaces/{id}/whip/{session}" => whip::patch,
    GET "/api/spaces/{id}/whip/{session}" => whip::get_empty,
    GET "/" => web::home,
    GET "/spaces/{id}" => web::space_page,
    GET "/spaces/{id}/replay" => web::replay_page,
    GET "/app/{file}" => web::asset,
    GET "/app/{build}/{file}" => web::versioned_asset,
    GET "/spaces/{id}/snapshot.json" => crate::public::snapshot,
    GET "/spaces/{id}/calendar.ics" => crate::public::calendar,
    GET "/spaces/{id}/live.opus" => streams::live,
    GET "/spaces/{id}/recording.opus" => streams::recording,
    GET "/spaces/{id}/hls/index.m3u8" => hls_http::index,
    GET "/spaces/{id}/hls/live.m3u8" => hls_http::live,
    GET "/spaces/{id}/hls/dvr.m3u8" => hls_http::dvr,
    GET "/spaces/{id}/hls/init.mp4" => hls_http::init,
    GET "/spaces/{id}/hls/part/{name}" => hls_http::part,
    GET "/spaces/{id}/hls/seg/{name}" => hls_http::segment,
    GET "/spaces/{id}/hls/subs.m3u8" => crate::captions_http::playlist,
    GET "/spaces/{id}/hls/subs/{name}" => crate::captions_http::segment,
    GET "/spaces/{id}/captions.vtt" => crate::captions_http::whole,
}

/// The HTTP routes: [`ROUTES`], plus the WHIP resources' answer to any other method (405 with
/// `Allow`, as RFC 9725 wants), without state.
fn base_router(app: &AppState) -> Router<AppState> {
    let max_body = app.cfg.max_body;
    routes()
        .route(
            "/api/spaces/{id}/whip",
            MethodRouter::new().fallback(whip::endpoint_not_allowed),
        )
        .route(
            "/api/spaces/{id}/whip/{session}",
            MethodRouter::new().fallback(whip::session_not_allowed),
        )
        // In a cluster, a space owned by another node is served through it.
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::cluster::layer,
        ))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(
            max_body,
            crate::body::read_whole,
        ))
}

/// The router of the audience listeners (`--listen`, `--tls-listen`): every request passes the
/// [`crate::guard`] (classes, rate limits, capacity shares) first.
pub fn router(app: AppState) -> Router {
    base_router(&app)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::guard::layer,
        ))
        .with_state(app)
}

/// The router of the control listener (`--control-listen`): the same routes, none of the
/// audience limits, and every request marked [`ControlListener`].
pub fn control_router(app: AppState) -> Router {
    base_router(&app)
        .layer(axum::Extension(ControlListener))
        .with_state(app)
}

/// Marks a request that came in on the control listener: [`control_router`] adds it to every
/// request (a client cannot), so a handler that serves the control listener more freely
/// (`GET /metrics`) takes `Option<Extension<ControlListener>>` and treats its absence as an
/// audience listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlListener;

const REACTIONS_PER_SECOND: std::num::NonZeroU32 = std::num::NonZeroU32::new(5).unwrap();
const REACTION_BURST: std::num::NonZeroU32 = std::num::NonZeroU32::new(10).unwrap();
/// Reaction requests per second one node takes: a page sends at most one every two seconds
/// (batched), so this serves 10,000 reacting pages at once; each costs a JWT check and a few
/// atomic adds.
pub const REACTION_REQUESTS_PER_SECOND: std::num::NonZeroU32 =
    std::num::NonZeroU32::new(5000).unwrap();

/// Backlog of the HTTP listening socket. tokio's default (128) overflows when a flash crowd
/// connects at once, and a dropped SYN costs the client a one-second retransmit; the kernel caps
/// this at `net.core.somaxconn` (4096 by default).
const LISTEN_BACKLOG: u32 = 4096;

/// Longest a stopping server waits for its lean listeners to receive the end of their streams.
const LEAN_DRAIN_AT_EXIT: std::time::Duration = std::time::Duration::from_secs(2);

fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// A running server.
pub struct Server {
    pub app: AppState,
    pub http_addr: SocketAddr,
    pub udp_addr: SocketAddr,
    /// The HTTPS address, when `--tls-listen` is set.
    pub tls_addr: Option<SocketAddr>,
    /// The control listener's address, when `--control-listen` is set.
    pub control_addr: Option<SocketAddr>,
    listener: Option<tokio::net::TcpListener>,
    /// The HTTPS socket and its configuration, served next to `listener`.
    tls: Option<(tokio::net::TcpListener, Arc<rustls::ServerConfig>)>,
    /// The control listener's socket.
    control: Option<tokio::net::TcpListener>,
    _media_thread: std::thread::JoinHandle<()>,
}

impl Server {
    /// Bind the HTTP (and HTTPS, if configured) and UDP ports and start the media runtime.
    /// Call [`Server::serve`] next.
    pub async fn bind(mut cfg: Config) -> std::io::Result<Server> {
        // The certificate first: a bad one fails the start before anything is bound.
        let tls_config = match &cfg.tls {
            Some(t) => Some(
                tribune_net::tls::server_config(&t.cert, &t.key)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
            ),
            None => None,
        };
        let metrics = Arc::new(Metrics::default());
        let udp = std::net::UdpSocket::bind(cfg.udp)?;
        let udp_addr = udp.local_addr()?;
        let (tx, rx) = std::sync::mpsc::channel();
        let media_thread = std::thread::Builder::new()
            .name("media".into())
            .spawn(move || {
                tribune_engine::priority::raise_current_thread("media");
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let _ = tx.send(Ok(rt.handle().clone()));
                rt.block_on(std::future::pending::<()>());
            })?;
        let media = rx.recv().map_err(std::io::Error::other).and_then(|r| r)?;
        let mux = {
            let _guard = media.enter();
            Mux::new(udp, metrics.clone())?
        };
        media.spawn(mux.clone().run());
        let candidates = cfg
            .advertise
            .iter()
            .map(|a| {
                if a.port() == 0 {
                    SocketAddr::new(a.ip(), udp_addr.port())
                } else {
                    *a
                }
            })
            .collect();
        let listener = listen(cfg.listen)?;
        let http_addr = listener.local_addr()?;
        let tls = match (&cfg.tls, tls_config) {
            (Some(t), Some(config)) => Some((listen(t.listen)?, config)),
            _ => None,
        };
        let tls_addr = tls.as_ref().map(|(l, _)| l.local_addr()).transpose()?;
        let control = cfg.limits.control_listen.map(listen).transpose()?;
        let control_addr = control.as_ref().map(|l| l.local_addr()).transpose()?;
        std::fs::create_dir_all(&cfg.data_dir)?;
        if cfg.jwt_secret_made {
            cfg.jwt_secret = data_secret(&cfg.data_dir, &cfg.jwt_secret)?;
        }
        if let Some(dir) = &cfg.captions_model {
            // Loaded once for every space; refused with the reason, naming the directory.
            let engine = tribune_captions::engine::Whisper::load(dir, &cfg.captions_language, 1)
                .map_err(|e| {
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
                })?;
            tracing::info!(model = %dir.display(), language = %cfg.captions_language, "captions on");
            cfg.captions = Some(tribune_engine::CaptionsConfig {
                engine: Arc::new(engine),
                language: cfg.captions_language.clone(),
                settings: tribune_captions::worker::Settings {
                    slowdown: cfg.captions_slowdown,
                    ..Default::default()
                },
            });
        }
        let sqlite =
            Arc::new(Store::open(&cfg.data_dir.join(DB_FILE)).map_err(std::io::Error::other)?);
        // In a cluster the durable state is written through to Redis too (the shared copy).
        let held = tribune_cluster::Held::new(
            cfg.cluster
                .as_ref()
                .map(|c| c.node_id.as_str())
                .unwrap_or(""),
        );
        let store: Arc<dyn tribune_engine::durable::Durable> = match &cfg.cluster {
            Some(c) => Arc::new(tribune_engine::durable::Replicated::new(
                sqlite,
                Box::new(
                    tribune_cluster::RedisState::new(&c.redis, held.clone())
                        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
                ),
                metrics.clone(),
            )),
            None => sqlite,
        };
        let writer = StoreWriter::start(store.clone(), metrics.clone())?;
        let quota = Quota::per_second(REACTIONS_PER_SECOND).allow_burst(REACTION_BURST);
        let guard = crate::guard::Guard::new(&cfg.limits, &cfg.trusted_proxies);
        // Tickets are this process's: a restarted node, or another one, starts its own line, so
        // an old ticket is a newcomer there (numbers start again at 0).
        let waiting = parking_lot::Mutex::new(tribune_admission::waiting::WaitingRoom::new(
            &rand::random::<[u8; 32]>(),
        ));
        let shield = crate::shield::Shield::new(&cfg.shield, cfg.jwt_secret.as_bytes())
            .with_metrics(metrics.clone());
        let cluster = crate::cluster::member(&cfg, &metrics, held);
        let app = Arc::new(App {
            cluster,
            keys: Keys::new(&cfg.jwt_secret),
            cfg,
            spaces: Spaces::default(),
            metrics,
            mux,
            media,
            candidates,
            store,
            writer,
            reaction_limiter: RateLimiter::keyed(quota),
            reaction_budget: RateLimiter::direct(
                governor::Quota::per_second(REACTION_REQUESTS_PER_SECOND)
                    .allow_burst(REACTION_REQUESTS_PER_SECOND),
            ),
            guard,
            waiting,
            shield,
        });
        // Spaces from before a restart: scheduled stay scheduled, live ones are interrupted
        // (their host resumes them), ended ones keep serving their recording.
        let space_cfg = app.cfg.space_config();
        for r in app.store.spaces().map_err(std::io::Error::other)? {
            match Space::restore(&r, &space_cfg, app.metrics.clone(), app.writer.clone()) {
                Ok(space) => {
                    app.spaces.insert(space.clone());
                    if let Some(m) = &app.cluster {
                        m.tap(&space);
                    }
                    tokio::spawn(batch::run(space));
                }
                Err(e) => tracing::error!(space = %r.id, error = %e, "cannot restore space"),
            }
        }
        if app.cluster.is_some() {
            tokio::spawn(crate::cluster::run(app.clone()));
        }
        Ok(Server {
            app,
            http_addr,
            udp_addr,
            tls_addr,
            control_addr,
            listener: Some(listener),
            tls,
            control,
            _media_thread: media_thread,
        })
    }

    /// Serve HTTP (and HTTPS) until `shutdown` resolves.
    pub async fn serve(
        mut self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Some(listener) = self.listener.take() else {
            return Ok(());
        };
        let router = router(self.app.clone());
        let app = self.app.clone();
        // One shutdown for every listener, cancelled once the spaces are suspended.
        let stop = tokio_util::sync::CancellationToken::new();
        let stopping = stop.clone();
        // Ending the spaces first ends every live stream, so graceful shutdown does not wait
        // forever on listeners; the recordings are finished by their threads.
        let shutdown = async move {
            shutdown.await;
            // A restart is not the end of the show: spaces are suspended (their recording kept
            // open-ended, so a resumed space continues the same stream) and come back as
            // interrupted or scheduled. In a cluster, spaces with a hot standby are handed to
            // it first (the listeners keep serving meanwhile: its copy must drain).
            crate::cluster::failover::hand_over(&app).await;
            for s in app.spaces.all() {
                s.suspend();
            }
            stopping.cancel();
        };
        // Every listener has its own accept loop and its own serve task, so one that is flooded
        // (or out of file descriptors) never holds up another: the control listener above all.
        let cfg = &self.app.cfg;
        let http = tribune_net::serve::Http::new(tribune_net::serve::HttpLimits {
            head_timeout: cfg.head_timeout,
            idle_timeout: cfg.limits.idle_timeout,
            max_header_bytes: cfg.limits.max_header_bytes,
        });
        let metrics = self.app.metrics.clone();
        let limits = tribune_net::conn_limit::ConnLimits::new(
            self.app.cfg.limits.max_conns_per_ip,
            tribune_net::conn_limit::default_audience_cap(),
            &self.app.cfg.trusted_proxies,
            metrics.clone(),
        );
        let mut tasks = tokio::task::JoinSet::new();
        // live.opus listeners leave hyper at the accept step (see `plain`); everything else is
        // served by hyper, with `ConnectInfo<SocketAddr>`.
        let plain = crate::plain::spawn(listener, self.app.clone(), limits.clone())?;
        tasks.spawn(tribune_net::serve::serve(
            plain,
            router.clone(),
            http.clone(),
            metrics.clone(),
            shutdown,
        ));
        if let Some((tcp, config)) = self.tls.take() {
            let tls = tribune_net::tls::spawn(tcp, config, metrics.clone(), limits.clone())?;
            tasks.spawn(tribune_net::serve::serve(
                tls,
                router.layer(axum::Extension(crate::public::Secure)),
                http.clone(),
                metrics.clone(),
                stop.clone().cancelled_owned(),
            ));
        }
        if let Some(tcp) = self.control.take() {
            // The control listener runs on a thread and runtime of its own, at the highest
            // normal priority (not real-time: a busy control port must not delay a mixer tick):
            // when the audience saturates the cores, a host's request still gets CPU first.
            let tcp = tcp.into_std()?;
            let app = self.app.clone();
            let stopped = stop.clone().cancelled_owned();
            let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
            std::thread::Builder::new()
                .name("control".into())
                .spawn(move || {
                    tribune_engine::priority::favour_current_thread("control");
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            tracing::error!(error = %e, "control listener: no runtime");
                            return;
                        }
                    };
                    rt.block_on(async move {
                        let control = tokio::net::TcpListener::from_std(tcp)
                            .and_then(|tcp| tribune_net::serve::control(tcp, metrics.clone()));
                        match control {
                            Ok(control) => {
                                tribune_net::serve::serve(
                                    control,
                                    control_router(app),
                                    http,
                                    metrics,
                                    stopped,
                                )
                                .await
                            }
                            Err(e) => tracing::error!(error = %e, "control listener"),
                        }
                    });
                    let _ = done_tx.send(());
                })?;
            tasks.spawn(async move {
                let _ = done_rx.await;
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.map_err(std::io::Error::other)?;
        }
        // Lean listeners are not hyper's: let them take the last pages and the end of the body
        // (their streams ended with the spaces), within a bound.
        let spaces = self.app.spaces.all();
        let drained = futures_util::future::join_all(spaces.iter().map(|s| s.fanout.drained()));
        let _ = tokio::time::timeout(LEAN_DRAIN_AT_EXIT, drained).await;
        // Let every recording finish its last page before the process exits.
        let writer = self.app.writer.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for s in spaces {
                s.join();
            }
            writer.flush();
        })
        .await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::extract::connect_info::MockConnectInfo;
    use axum::http::{Request, StatusCode, header};
    use tower::ServiceExt;

    use super::*;

    async fn get_metrics(r: &Router, key: Option<&str>) -> (StatusCode, String) {
        let mut req = Request::get("/metrics");
        if let Some(k) = key {
            req = req.header(header::AUTHORIZATION, format!("Bearer {k}"));
        }
        let resp = r
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// Issue 14 item 8: `/metrics` answered anyone on the public listener.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn metrics_need_the_operator_key_except_on_the_control_listener() {
        let dir = std::env::temp_dir().join(format!("tribune-metrics-auth-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let server = Server::bind(Config::for_tests(dir.clone())).await.unwrap();
        let key = server.app.cfg.admin_key.clone();
        let peer: SocketAddr = "192.0.2.1:40000".parse().unwrap();
        let public = router(server.app.clone()).layer(MockConnectInfo(peer));
        let control = control_router(server.app.clone()).layer(MockConnectInfo(peer));

        let (status, body) = get_metrics(&public, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        let err: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(
            err["message"].as_str().unwrap().contains("operator key"),
            "{body}"
        );
        let (status, _) = get_metrics(&public, Some("not-the-operator-key")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, body) = get_metrics(&public, Some(&key)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("tribune_"), "{body}");
        let (status, body) = get_metrics(&control, None).await;
        assert_eq!(status, StatusCode::OK, "free on the control listener");
        assert!(body.contains("tribune_"), "{body}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
