//! The application as a value: [`App::build`] connects the database, binds the listener
//! (port 0 in tests) and assembles the router; [`App::run`] serves until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api;
use crate::auth::SignIn;
use crate::call::CallManager;
use crate::call::session::SessionDeps;
use crate::config::ServeArgs;
use crate::crypto::{KeySource, Sealer};
use crate::providers::ProviderSettings;
use crate::rate_limit::IpRateLimiter;
use crate::store::Store;
use crate::telephony::twilio::TwilioRest;
use crate::telephony::whatsapp::GraphApi;

/// Everything a request handler may need; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub sealer: Arc<Sealer>,
    pub config: Arc<ServeArgs>,
    /// `GATEWAY_PUBLIC_URL` without a trailing slash.
    pub public_base: Arc<str>,
    /// This node's id, recorded on the calls it holds.
    pub node_id: Arc<str>,
    pub twilio: TwilioRest,
    pub graph: GraphApi,
    /// WhatsApp calls this node is answering or holding, and what each webhook event means.
    pub whatsapp: Arc<crate::telephony::whatsapp::LiveCalls>,
    /// Endpoints and keys of the AI providers.
    pub providers: Arc<ProviderSettings>,
    /// Live calls on this node.
    pub calls: Arc<CallManager>,
    /// New call sessions per client IP.
    pub widget_limiter: Arc<IpRateLimiter>,
    /// Call WebSockets per IP that have not sent an offer yet.
    pub pending_sockets: Arc<crate::rate_limit::PendingPerIp>,
    /// Sign-in settings and limits.
    pub sign_in: Arc<SignIn>,
    /// The knowledge-base search, shared by the agent's tool and the admin search route.
    pub knowledge: Arc<dyn crate::knowledge::KnowledgeSearch>,
    /// Spoken samples of the voices.
    pub voice_previews: Arc<crate::voice_previews::VoicePreviews>,
    /// Call recordings: taps for sessions, links, deletion, retention.
    pub recordings: Arc<crate::recording::Recordings>,
    /// Escalations to human agents: offers, accepts, join tokens, tickets (and the agent bus).
    pub escalations: Arc<crate::escalation::Escalations>,
    /// Cancelled when the server shuts down.
    pub shutdown: CancellationToken,
}

/// A built, bound, not yet serving gateway.
pub struct App {
    listener: TcpListener,
    router: axum::Router,
    state: AppState,
    /// The webhook delivery worker and the metrics monitor.
    events: crate::events::Background,
}

impl App {
    /// Connects and migrates the database, loads the encryption key, binds the listener.
    pub async fn build(config: ServeArgs) -> anyhow::Result<Self> {
        let has_turn_urls = config.ice_servers.iter().any(|u| u.starts_with("turn"));
        crate::turn::check_settings(
            has_turn_urls,
            config.turn_secret.as_deref(),
            (config.turn_username.as_deref(), config.turn_credential.as_deref()),
            config.turn_static_credentials,
        )
        .map_err(anyhow::Error::msg)?;
        if config.turn_static_credentials && config.turn_secret.as_deref().is_none_or(str::is_empty) {
            tracing::warn!("GATEWAY_TURN_STATIC_CREDENTIALS: every caller gets the long-term TURN password");
        }
        let (sealer, key_source) =
            Sealer::load(&config.keys.settings(), &config.store.data_dir).context("loading the encryption keys")?;
        match key_source {
            KeySource::Configured => {}
            _ if config.production => {
                anyhow::bail!(
                    "--production needs GATEWAY_ENCRYPTION_KEY (base64 of 32 random bytes, e.g. `openssl rand -base64 32`), \
                     GATEWAY_ENCRYPTION_KEYS or GATEWAY_ENCRYPTION_KEY_FILE"
                )
            }
            KeySource::GeneratedNow | KeySource::DevelopmentFile => tracing::warn!(
                path = %config.store.data_dir.join("encryption.key").display(),
                "!!! GATEWAY_ENCRYPTION_KEY is not set: credentials are sealed with a development key kept next to the \
                 database. Set GATEWAY_ENCRYPTION_KEY (and --production) for real deployments !!!"
            ),
        }

        let store = Store::connect(&config.store.database_url(), config.store.database_max_connections)
            .await
            .context("connecting to the database")?;
        let node_id: Arc<str> = config.node_id.clone().unwrap_or_else(default_node_id).into();
        let orphans = store.fail_orphaned_calls(&node_id).await?;
        if orphans > 0 {
            tracing::warn!(calls = orphans, "marked calls left open by an earlier run of this node as failed");
        }
        for account in crate::integrations::unreadable_accounts(&store, &sealer).await? {
            tracing::warn!(
                account_id = %account.id,
                company_id = %account.company_id,
                account = %account.name,
                key_id = %account.key_id,
                "integration account's credentials cannot be opened: {}",
                account.reason
            );
        }

        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("voice-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the HTTP client")?;
        let listener = TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
        let mut config = config;
        if config.public_url.is_none() {
            // With port 0 the real port is only known now.
            let addr = listener.local_addr()?;
            config.public_url = Some(format!("http://{addr}").parse()?);
        }
        let providers = Arc::new(ProviderSettings {
            openai_url: config.openai_realtime_url.clone(),
            openai_key: config.openai_api_key.clone().filter(|k| !k.is_empty()),
            gemini_url: config.gemini_live_url.clone(),
            gemini_key: config.gemini_api_key.clone().filter(|k| !k.is_empty()),
            retries: config.provider_retries,
            backoff: Duration::from_millis(config.provider_backoff_ms),
        });
        let signaling = signaling::PeerFactory::new(signaling_config(&config)).context("setting up WebRTC")?;
        let shutdown = CancellationToken::new();
        let sealer = Arc::new(sealer);
        let recordings = Arc::new(
            crate::recording::Recordings::new(
                store.clone(),
                crate::recording::RecordingStorage::from_config(&recording_storage_config(&config))
                    .context("setting up recordings storage")?,
                crate::recording::LinkSigner::new(sealer.clone()),
                config.public_base().into(),
                config.store.data_dir.join("recordings-spool"),
                shutdown.clone(),
            )
            .context("setting up recordings")?,
        );
        tracing::debug!(storage = %recordings.storage().describe(), "call recordings storage");
        recordings.spawn_recovery();
        recordings.spawn_retention_sweep(Duration::from_secs(config.recording_sweep_seconds));
        let escalations = start_escalations(&config, &store, &node_id, &shutdown).await?;
        let knowledge: Arc<dyn crate::knowledge::KnowledgeSearch> =
            Arc::new(crate::knowledge::DatabaseSearch::new(store.clone()));
        let calls = Arc::new(CallManager::new(
            SessionDeps {
                store: store.clone(),
                knowledge: knowledge.clone(),
                signaling,
                providers: providers.clone(),
                connect_limit: Duration::from_secs(config.call_connect_limit_seconds),
                recordings: recordings.clone(),
                escalations: escalations.clone(),
            },
            shutdown.clone(),
        ));
        let widget_limiter = Arc::new(IpRateLimiter::per_minute(config.widget_sessions_per_minute));
        let public_url: url::Url = config.public_base().parse().context("GATEWAY_PUBLIC_URL")?;
        let sign_in = Arc::new(SignIn::new(
            &public_url,
            config.session_ttl(),
            config.login_attempts_per_ip,
            config.login_attempts_per_account,
        ));
        // Housekeeping once a minute: forget idle rate-limit entries, expire call sessions
        // nobody connected to and sign-in sessions past their end.
        let (limiter, sweep, sweep_store) = (widget_limiter.clone(), shutdown.clone(), store.clone());
        let sweep_sign_in = sign_in.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = sweep.cancelled() => break,
                    _ = every.tick() => {
                        limiter.forget_idle();
                        sweep_sign_in.forget_idle();
                        if let Err(err) = sweep_store.purge_expired_sessions(crate::time::now_ms()).await {
                            tracing::warn!(error = %err, "could not delete expired sign-in sessions");
                        }
                        match sweep_store.expire_pending_calls().await {
                            Ok(0) => {}
                            Ok(n) => tracing::info!(calls = n, "expired call sessions nobody connected to"),
                            Err(err) => tracing::warn!(error = %err, "could not expire stale call sessions"),
                        }
                    }
                }
            }
        });
        crate::metrics::handle();
        let events =
            crate::events::Background::start(store.clone(), sealer.clone(), &config.webhooks, shutdown.clone())
                .context("starting the webhook worker")?;
        let state = AppState {
            escalations,
            store,
            sealer,
            public_base: config.public_base().into(),
            node_id,
            twilio: TwilioRest::new(http.clone(), config.twilio_api_base_url.clone()),
            graph: GraphApi::new(http, config.meta_graph_base_url.clone(), config.meta_graph_api_version.clone()),
            whatsapp: Arc::default(),
            providers,
            calls,
            widget_limiter,
            pending_sockets: Arc::new(crate::rate_limit::PendingPerIp::new(config.max_pending_sockets_per_ip)),
            sign_in,
            knowledge,
            voice_previews: Arc::new(crate::voice_previews::VoicePreviews::new(&config.store.data_dir)),
            recordings,
            shutdown,
            config: Arc::new(config),
        };
        if state.config.demo {
            crate::demo::ensure_demo(&state).await.context("creating the demo company")?;
        }
        let router = api::router(state.clone());
        Ok(Self { listener, router, state, events })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// The shared state (tests use its store).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` is cancelled (or Ctrl-C / SIGTERM when `signals` is set),
    /// then shuts down within the grace period, whatever clients do: no new connections;
    /// live calls end (`shutdown`) and are stored while open requests finish; at the
    /// deadline every connection still open is cut, and the database pool is closed.
    pub async fn run(self, signals: bool) -> anyhow::Result<()> {
        let shutdown = self.state.shutdown.clone();
        if signals {
            let token = shutdown.clone();
            tokio::spawn(async move {
                wait_for_signal().await;
                tracing::info!("shutdown requested");
                token.cancel();
            });
        }
        let config = &self.state.config;
        let limits = crate::server::Limits {
            header_timeout: Duration::from_secs(config.http_header_timeout_seconds.max(1)),
            idle_timeout: Duration::from_secs(config.http_idle_timeout_seconds.max(1)),
            body_grace: Duration::from_secs(config.http_body_grace_seconds),
            body_min_rate: config.http_body_min_rate,
            max_connections: config.http_max_connections.max(1),
        };
        let draining = crate::server::Server::new(self.listener, self.router, limits).run(shutdown.clone()).await;
        let grace = config.shutdown_grace();
        let deadline = tokio::time::Instant::now() + grace;
        tracing::info!(grace_seconds = grace.as_secs(), "shutting down: ending calls and open requests");
        tokio::join!(self.state.calls.shut_down(grace), draining.finish_by(deadline));
        // Recordings of the calls just ended are finalised on disk and stored in what is
        // left of the grace period; one not stored by then stays in the spool and is stored
        // at the next start. Webhook deliveries in flight get the same time; an event not
        // delivered is delivered after the restart (the outbox keeps it).
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        tokio::join!(self.state.recordings.shut_down(left), async {
            if tokio::time::timeout_at(deadline, self.events.finish()).await.is_err() {
                tracing::info!("webhook deliveries still in flight at shutdown: they are retried after the restart");
            }
        });
        // Connections hold no pool connection past the cut; a write still retrying may.
        let close_by = deadline.max(tokio::time::Instant::now()) + Duration::from_millis(250);
        if tokio::time::timeout_at(close_by, self.state.store.close()).await.is_err() {
            tracing::warn!("the database pool did not close in time");
        }
        tracing::info!("shut down");
        Ok(())
    }
}

/// The escalation service on the agent bus of the database: Postgres `LISTEN/NOTIFY`
/// when nodes share Postgres, an in-process bus on SQLite (one node). Agent presence rows
/// this node left at its last run are gone with its sockets.
async fn start_escalations(
    config: &ServeArgs,
    store: &Store,
    node_id: &Arc<str>,
    shutdown: &CancellationToken,
) -> anyhow::Result<Arc<crate::escalation::Escalations>> {
    use crate::escalation::{AgentBus, Escalations, InProcessBus, PgBus};
    let cleared = store.clear_node_presence(node_id).await?;
    if cleared > 0 {
        tracing::info!(consoles = cleared, "forgot the agent consoles of this node's last run");
    }
    let bus: Arc<dyn AgentBus> = match store.backend() {
        crate::store::Backend::Postgres => PgBus::start(&config.store.database_url(), store.clone(), shutdown.clone())
            .await
            .context("listening for agent events (Postgres LISTEN)")?,
        crate::store::Backend::Sqlite => Arc::new(InProcessBus::new()),
    };
    Ok(Escalations::start(store.clone(), bus, node_id.clone(), config.public_base().into(), shutdown.clone()))
}

/// Recordings storage settings from the configuration.
fn recording_storage_config(config: &ServeArgs) -> crate::recording::StorageConfig {
    crate::recording::StorageConfig {
        url: config.recordings_url.clone(),
        data_dir: config.store.data_dir.clone(),
        endpoint: config.recordings_endpoint.clone(),
        allow_http: config.recordings_allow_http,
        access_key_id: config.recordings_access_key_id.clone(),
        secret_access_key: config.recordings_secret_access_key.clone(),
        region: config.recordings_region.clone(),
    }
}

/// WebRTC settings from the configuration. The gateway's own ICE agent only uses STUN
/// (it never allocates TURN relays for itself), so only STUN URLs go to it.
fn signaling_config(config: &ServeArgs) -> signaling::SignalingConfig {
    let ice_servers = config
        .ice_servers
        .iter()
        .filter(|u| u.starts_with("stun"))
        .map(|url| signaling::IceServer { urls: vec![url.clone()], username: None, credential: None })
        .collect();
    signaling::SignalingConfig {
        bind_ip: config.rtc_bind_ip,
        udp_port_range: config.rtc_port_min.zip(config.rtc_port_max),
        public_ips: config.rtc_public_ips.clone(),
        ice_tcp: config.rtc_ice_tcp,
        ice_servers,
        disconnected_timeout: Duration::from_secs(config.rtc_disconnected_timeout_seconds),
        connect_timeout: Duration::from_secs(config.rtc_connect_timeout_seconds),
    }
}

fn default_node_id() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node-1".to_owned())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
