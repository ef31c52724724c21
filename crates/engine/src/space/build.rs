//! Making a space: created new, or restored from the store after a restart, and its threads.

use super::*;

impl Space {
    /// Create a new space (scheduled when `starts_at` is given, live otherwise).
    pub fn create(
        p: NewSpace<'_>,
        cfg: &SpaceConfig,
        metrics: Arc<Metrics>,
        store: StoreWriter,
    ) -> std::io::Result<Arc<Space>> {
        let lifecycle = if p.starts_at.is_some() {
            Lifecycle::Scheduled
        } else {
            Lifecycle::Live
        };
        let mut room = Room::new(
            room_config(cfg),
            lifecycle,
            Some((p.host.0.to_owned(), p.host.1.to_owned())),
        );
        room.opened(cfg.clock.now_ms());
        let space = Self::build(
            p.id,
            p.title,
            p.description,
            cfg.clock.now_s(),
            p.starts_at,
            rand::random(),
            room,
            true,
            cfg,
            metrics,
            store,
        )?;
        if lifecycle == Lifecycle::Live {
            space.started_at.store(cfg.clock.now_s(), Relaxed);
        }
        space.persist_record();
        if lifecycle == Lifecycle::Live {
            space.start_recording(false);
        }
        Ok(space)
    }

    /// Bring back a space from the store after a restart. A space that was live is marked
    /// interrupted: its listeners hear silence until its host resumes it.
    pub fn restore(
        r: &SpaceRecord,
        cfg: &SpaceConfig,
        metrics: Arc<Metrics>,
        store: StoreWriter,
    ) -> std::io::Result<Arc<Space>> {
        let durable = serde_json::from_str(&r.room).map_err(std::io::Error::other)?;
        let mut room = Room::restore(room_config(cfg), durable);
        if matches!(room.lifecycle(), Lifecycle::Live) {
            room.mark_interrupted();
        }
        let running = room.lifecycle() != Lifecycle::Ended;
        let space = Self::build(
            &r.id,
            &r.title,
            &r.description,
            r.created_at,
            r.starts_at,
            r.serial,
            room,
            running,
            cfg,
            metrics,
            store,
        )?;
        space.started_at.store(r.started_at.unwrap_or(0), Relaxed);
        space.ended_at.store(r.ended_at.unwrap_or(0), Relaxed);
        space.persist_record();
        Ok(space)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn build(
        id: &str,
        title: &str,
        description: &str,
        created_at: u64,
        starts_at: Option<u64>,
        serial: u32,
        room: Room,
        running: bool,
        cfg: &SpaceConfig,
        metrics: Arc<Metrics>,
        store: StoreWriter,
    ) -> std::io::Result<Arc<Space>> {
        let tags = vec![
            ("TITLE".to_owned(), title.to_owned()),
            ("ENCODER".to_owned(), "tribune".to_owned()),
        ];
        let mut threads = Vec::new();
        let ending = Arc::new(AtomicBool::new(false));
        let fence = Arc::new(crate::fence::Fence::default());
        let rec_origin_ms = Arc::new(AtomicU64::new(0));
        let mut captions = None;
        let (media, pre_skip) = if running {
            let mcfg = mixer::Config {
                bitrate: cfg.bitrate,
                mix_minus_bitrate: cfg.bitrate,
                ..mixer::Config::default()
            };
            let tap = match &cfg.captions {
                Some(c) => {
                    let (tap, caps) = captions::SpaceCaptions::start(
                        id,
                        c,
                        &cfg.data_dir,
                        rec_origin_ms.clone(),
                        metrics.clone(),
                    )?;
                    captions = Some(caps);
                    Some((tap, cfg.clock.clone()))
                }
                None => None,
            };
            let spawned = crate::mixer::spawn(id, mcfg, metrics.clone(), tap)?;
            threads.push(spawned.thread);
            let (attach_tx, attach_rx) = crossbeam_channel::bounded(1);
            (
                Some((
                    spawned.handle,
                    spawned.levels,
                    attach_tx,
                    spawned.packets,
                    attach_rx,
                )),
                spawned.pre_skip,
            )
        } else {
            (None, 0)
        };
        let header = OggOpusWriter::new(serial, 1, pre_skip, tags.clone());
        let live = Arc::new(LiveStream::new(
            header,
            cfg.page,
            cfg.burst,
            cfg.slow_listener,
        ));
        let fanout = crate::fanout::Fanout::new(
            live.clone(),
            metrics.clone(),
            (cfg.live_head)(title, description, cfg.bitrate).into(),
            cfg.bitrate,
            cfg.fanout_shard,
            cfg.slow_listener,
        );
        let mut hls = None;
        let media = match media {
            Some((handle, levels, attach, packets, attach_rx)) => {
                let track = tribune_media::fmp4::Track {
                    channels: 1,
                    pre_skip,
                    input_sample_rate: 48_000,
                    track_id: tribune_media::fmp4::TRACK_ID,
                };
                let h = crate::hls::Hls::new(
                    &track,
                    cfg.hls,
                    cfg.bitrate,
                    cfg.data_dir.join("hls").join(id),
                    cfg.clock.clone(),
                )?;
                let packager = crate::hls::Packager::new(h.clone())?;
                hls = Some(h);
                threads.push(live::spawn_pager(
                    id,
                    live::Pager {
                        writer: OggOpusWriter::new(serial, 1, pre_skip, tags),
                        page: cfg.page,
                        input: packets,
                        stream: live.clone(),
                        attach: attach_rx,
                        ending: ending.clone(),
                        metrics: metrics.clone(),
                        hls: Some(packager),
                        fence: fence.clone(),
                        clock: cfg.clock.clone(),
                    },
                )?);
                metrics.spaces_live.fetch_add(1, Relaxed);
                Some(Media {
                    mixer: handle,
                    levels,
                    attach,
                    pre_skip,
                })
            }
            None => {
                live.close_now();
                None
            }
        };
        Ok(Arc::new(Space {
            id: id.to_owned(),
            title: title.to_owned(),
            description: description.to_owned(),
            created_at,
            starts_at,
            serial,
            live,
            fanout,
            recording: recording::path(&cfg.data_dir, id),
            events: EventHub::default(),
            hls,
            room: Mutex::new(room),
            inner: Mutex::new(Inner {
                sessions: Vec::new(),
                media,
                muted: HashMap::new(),
                addrs: tribune_room::Addresses::new(MAX_ADDRS),
                recording_started: false,
                streams: HashMap::new(),
            }),
            reactions: Default::default(),
            viewers: Mutex::new(Default::default()),
            remote_listeners: Default::default(),
            remote_streams: Default::default(),
            public: Mutex::new(None),
            presence: Mutex::new(Presence::new(cfg.presence_window.as_millis() as u64)),
            audience: Mutex::new(tribune_room::Audience::new(AUDIENCE_REMEMBERED)),
            turned_away: Mutex::new(Default::default()),
            timeline: Mutex::new(Timeline::new()),
            rec_origin_ms,
            captions,
            started_at: AtomicU64::new(0),
            ended_at: AtomicU64::new(0),
            fence,
            continue_from: Mutex::new(None),
            ending,
            threads: Mutex::new(threads),
            going_live: Mutex::new(()),
            prepared: Mutex::new(None),
            metrics,
            store,
            cfg: cfg.clone(),
        }))
    }
}
