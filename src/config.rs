//! Command line and configuration.
//!
//! Every setting comes from a flag or, more usually, an environment variable of the same
//! name; `--config FILE` (or `GATEWAY_CONFIG`) names an optional file of `KEY=VALUE` lines
//! using the same variable names, which fills in whatever the environment does not set.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::crypto::KeySettings;

/// `gateway --help`: the voice gateway and its admin commands.
#[derive(Debug, Parser)]
#[command(
    name = "gateway",
    version,
    about = "Voice gateway: lets website, WhatsApp and phone callers talk to an AI support agent",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// A file of KEY=VALUE lines (the environment variable names below); the environment wins.
    #[arg(long, env = "GATEWAY_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,

    /// `gateway` with no subcommand serves, like `gateway serve`.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// What the binary should do.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant, reason = "parsed once at start-up; boxing buys nothing")]
pub enum Command {
    /// Run the gateway (the default).
    Serve(ServeArgs),
    /// Manage users, their passwords and their API tokens.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage the encryption keys that seal stored credentials.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Create the database if needed, apply migrations and exit.
    Migrate(StoreArgs),
}

/// User administration.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user (or, run again for an existing user with the same role, add any
    /// missing companies) and print a new API token as the last line of standard output.
    Create(UserCreateArgs),
    /// Issue another API token for an existing user (printed alone on standard output).
    Token(UserTokenArgs),
    /// Set a user's password, read from standard input; ends the user's sign-in sessions.
    Passwd(UserEmailArgs),
    /// Revoke every API token of a user and end their sign-in sessions.
    RevokeTokens(UserEmailArgs),
}

/// `gateway user create`.
#[derive(Debug, Args)]
pub struct UserCreateArgs {
    /// The user's e-mail address (unique).
    #[arg(long)]
    pub email: String,
    /// The user's role.
    #[arg(long, value_enum)]
    pub role: RoleArg,
    /// A company the user belongs to, by id or exact name (required for company_admin and
    /// support_agent; repeat for several).
    #[arg(long, value_name = "COMPANY")]
    pub company: Vec<String>,
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
    /// Read a password for signing in from standard input (one line). For an existing
    /// user it is set only if they have none (`gateway user passwd` changes it).
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub token: TokenArgs,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// How long the API tokens the CLI issues work.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// Days an issued API token works (1–3650); expired tokens get 401 `token_expired`.
    #[arg(long, env = "GATEWAY_API_TOKEN_TTL_DAYS", default_value_t = crate::store::DEFAULT_API_TOKEN_TTL_DAYS,
          value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub token_ttl_days: u32,
}

/// `gateway user token`.
#[derive(Debug, Args)]
pub struct UserTokenArgs {
    /// The user's e-mail address.
    #[arg(long)]
    pub email: String,
    #[command(flatten)]
    pub token: TokenArgs,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Commands that name one user.
#[derive(Debug, Args)]
pub struct UserEmailArgs {
    /// The user's e-mail address.
    #[arg(long)]
    pub email: String,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Encryption key administration.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Seal every stored credential again with the newest key, so older keys can be
    /// dropped; prints what it did and names the accounts no configured key opens.
    Rotate(KeysRotateArgs),
}

/// `gateway keys rotate`: the same key settings as `gateway serve`.
#[derive(Debug, Args)]
pub struct KeysRotateArgs {
    #[command(flatten)]
    pub keys: KeyArgs,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// The encryption keys that seal stored credentials (docs/deployment.md): one of
/// GATEWAY_ENCRYPTION_KEYS, GATEWAY_ENCRYPTION_KEY_FILE or GATEWAY_ENCRYPTION_KEY.
#[derive(Debug, Clone, Args)]
pub struct KeyArgs {
    /// Base64 of 32 random bytes: the AES-256-GCM key that seals stored credentials.
    /// Without a key (this, GATEWAY_ENCRYPTION_KEYS or GATEWAY_ENCRYPTION_KEY_FILE) a
    /// development key is generated in the data directory (refused with --production).
    #[arg(long, env = "GATEWAY_ENCRYPTION_KEY", hide_env_values = true)]
    pub encryption_key: Option<String>,

    /// Earlier encryption keys (comma-separated base64) beside GATEWAY_ENCRYPTION_KEY, still
    /// accepted for reading.
    #[arg(long, env = "GATEWAY_PREVIOUS_ENCRYPTION_KEYS", hide_env_values = true)]
    pub previous_encryption_keys: Option<String>,

    /// Several named keys for rotation, `id:base64` comma-separated, newest last: the newest
    /// seals, all open (docs/deployment.md). Instead of GATEWAY_ENCRYPTION_KEY.
    #[arg(long, env = "GATEWAY_ENCRYPTION_KEYS", hide_env_values = true)]
    pub encryption_keys: Option<String>,

    /// A file of `id:base64` lines (newest last, `#` comments), instead of GATEWAY_ENCRYPTION_KEYS.
    #[arg(long, env = "GATEWAY_ENCRYPTION_KEY_FILE")]
    pub encryption_key_file: Option<PathBuf>,
}

impl KeyArgs {
    /// The settings `Sealer::load` takes.
    pub fn settings(&self) -> KeySettings {
        KeySettings {
            keys: self.encryption_keys.clone(),
            key_file: self.encryption_key_file.clone(),
            key: self.encryption_key.clone(),
            previous: self.previous_encryption_keys.clone(),
        }
    }
}

/// Roles as given on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum RoleArg {
    /// Runs the platform: companies, AI models.
    MasterAdmin,
    /// Configures one company's chatbots and integrations.
    CompanyAdmin,
    /// Takes over calls and chats escalated to a human.
    SupportAgent,
}

/// Where the data lives.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Database URL: `sqlite://PATH` (default: a file in the data directory, created and
    /// migrated at start) or `postgres://USER@HOST/DB` for production.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// Directory for the default SQLite database and the development encryption key.
    #[arg(long, env = "GATEWAY_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Maximum database connections in the pool.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub database_max_connections: u32,
}

impl StoreArgs {
    /// The database URL to connect to, defaulting to `<data_dir>/gateway.db`.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) if !url.is_empty() => url.clone(),
            _ => format!("sqlite://{}?mode=rwc", self.data_dir.join("gateway.db").display()),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// `gateway serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address the HTTP server listens on.
    #[arg(long, env = "GATEWAY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Public base URL of this gateway as callers and webhooks reach it (used in the
    /// webhook URLs shown to admins and the widget's WebSocket URL). Defaults to
    /// `http://<listen>`.
    #[arg(long, env = "GATEWAY_PUBLIC_URL")]
    pub public_url: Option<url::Url>,

    #[command(flatten)]
    pub store: StoreArgs,

    #[command(flatten)]
    pub keys: KeyArgs,

    /// Production mode: refuse to start without GATEWAY_ENCRYPTION_KEY.
    #[arg(long, env = "GATEWAY_PRODUCTION")]
    pub production: bool,

    /// Create a demo company with calls enabled, a call chatbot, and serve a demo page at `/`.
    #[arg(long, env = "GATEWAY_DEMO")]
    pub demo: bool,

    /// This node's id, recorded on the calls it holds (calls are sticky to their node).
    #[arg(long, env = "GATEWAY_NODE_ID")]
    pub node_id: Option<String>,

    /// OpenAI API key for the Realtime API.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub openai_api_key: Option<String>,

    /// OpenAI Realtime WebSocket URL (the model is added as `?model=`).
    #[arg(long, env = "OPENAI_REALTIME_URL", default_value = "wss://api.openai.com/v1/realtime")]
    pub openai_realtime_url: url::Url,

    /// Gemini API key for the Live API.
    #[arg(long, env = "GEMINI_API_KEY", hide_env_values = true)]
    pub gemini_api_key: Option<String>,

    /// Gemini Live base URL; the path `/ws/google.ai.generativelanguage.<version>.GenerativeService.BidiGenerateContent` is appended.
    #[arg(long, env = "GEMINI_LIVE_URL", default_value = "wss://generativelanguage.googleapis.com")]
    pub gemini_live_url: url::Url,

    /// Twilio REST API base URL.
    #[arg(long, env = "TWILIO_API_BASE_URL", default_value = "https://api.twilio.com")]
    pub twilio_api_base_url: url::Url,

    /// Meta Graph API base URL.
    #[arg(long, env = "META_GRAPH_BASE_URL", default_value = "https://graph.facebook.com")]
    pub meta_graph_base_url: url::Url,

    /// Meta Graph API version used in request paths.
    #[arg(long, env = "META_GRAPH_API_VERSION", default_value = "v23.0")]
    pub meta_graph_api_version: String,

    /// Lowest UDP port for WebRTC media (with --rtc-port-max; default: OS-assigned ports).
    #[arg(long, env = "GATEWAY_RTC_PORT_MIN", requires = "rtc_port_max")]
    pub rtc_port_min: Option<u16>,

    /// Highest UDP port for WebRTC media. Each call uses one port of the range.
    #[arg(long, env = "GATEWAY_RTC_PORT_MAX", requires = "rtc_port_min")]
    pub rtc_port_max: Option<u16>,

    /// IP address the media sockets bind to.
    #[arg(long, env = "GATEWAY_RTC_BIND_IP", default_value = "0.0.0.0")]
    pub rtc_bind_ip: IpAddr,

    /// Public IPs to advertise in ICE candidates when behind 1:1 NAT (comma-separated).
    #[arg(long, env = "GATEWAY_RTC_PUBLIC_IPS", value_delimiter = ',')]
    pub rtc_public_ips: Vec<IpAddr>,

    /// Also offer passive ICE-TCP candidates, for callers whose networks block UDP (each call
    /// listens on TCP at the same port number as its UDP port).
    #[arg(long, env = "GATEWAY_RTC_ICE_TCP")]
    pub rtc_ice_tcp: bool,

    /// STUN/TURN server URLs given to browsers and used by the gateway (comma-separated),
    /// e.g. `stun:stun.example.com:3478,turn:turn.example.com:3478?transport=udp`.
    #[arg(long, env = "GATEWAY_ICE_SERVERS", value_delimiter = ',')]
    pub ice_servers: Vec<String>,

    /// Shared secret of the TURN servers in GATEWAY_ICE_SERVERS (coturn: `use-auth-secret`
    /// with `static-auth-secret`). Each caller gets a credential of its own that expires
    /// (the TURN REST API scheme): the way to run TURN for anonymous callers.
    #[arg(long, env = "GATEWAY_TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<String>,

    /// Seconds a caller's TURN credential stays valid. TURN servers check it again on every
    /// allocation refresh, so it must outlast the longest call (60 minutes at most) plus the
    /// time to connect.
    #[arg(long, env = "GATEWAY_TURN_CREDENTIAL_TTL_SECONDS", default_value_t = 7200)]
    pub turn_credential_ttl_seconds: u64,

    /// Long-term username for the TURN servers, handed to callers only with
    /// --turn-static-credentials (prefer GATEWAY_TURN_SECRET).
    #[arg(long, env = "GATEWAY_TURN_USERNAME")]
    pub turn_username: Option<String>,

    /// Long-term credential for the TURN servers, handed to callers only with
    /// --turn-static-credentials (prefer GATEWAY_TURN_SECRET).
    #[arg(long, env = "GATEWAY_TURN_CREDENTIAL", hide_env_values = true)]
    pub turn_credential: Option<String>,

    /// Hand GATEWAY_TURN_USERNAME / GATEWAY_TURN_CREDENTIAL to every anonymous caller:
    /// anyone who opens a call session can then relay anything through the TURN server for
    /// as long as that password lives. Without this flag the gateway refuses to start with them.
    #[arg(long, env = "GATEWAY_TURN_STATIC_CREDENTIALS")]
    pub turn_static_credentials: bool,

    /// New call sessions allowed per client IP per minute on the public widget API.
    #[arg(long, env = "GATEWAY_WIDGET_SESSIONS_PER_MINUTE", default_value_t = 10)]
    pub widget_sessions_per_minute: u32,

    /// Call WebSockets one client IP may hold open before sending an offer; more are refused.
    #[arg(long, env = "GATEWAY_MAX_PENDING_SOCKETS_PER_IP", default_value_t = 8)]
    pub max_pending_sockets_per_ip: usize,

    /// Seconds a widget call session (and its token) stays valid before the caller connects.
    #[arg(long, env = "GATEWAY_WIDGET_SESSION_TTL_SECONDS", default_value_t = 86_400)]
    pub widget_session_ttl_seconds: u64,

    /// Hours a sign-in session lasts (absolute: from sign-in, not from the last request).
    #[arg(long, env = "GATEWAY_SESSION_TTL_HOURS", default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=720))]
    pub session_ttl_hours: u32,

    /// Sign-in attempts allowed per account per 15 minutes (refilling evenly).
    #[arg(long, env = "GATEWAY_LOGIN_ATTEMPTS_PER_ACCOUNT", default_value_t = 10)]
    pub login_attempts_per_account: u32,

    /// Sign-in attempts allowed per client IP per 15 minutes (refilling evenly).
    #[arg(long, env = "GATEWAY_LOGIN_ATTEMPTS_PER_IP", default_value_t = 30)]
    pub login_attempts_per_ip: u32,

    /// Take the client's address from the last `X-Forwarded-For` entry, the one your proxy
    /// appended (only behind a proxy you run; earlier entries come from the client).
    #[arg(long, env = "GATEWAY_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,

    /// Seconds a caller's media may stay disconnected before the call ends (`network_lost`).
    #[arg(long, env = "GATEWAY_RTC_DISCONNECTED_TIMEOUT_SECONDS", default_value_t = 10)]
    pub rtc_disconnected_timeout_seconds: u64,

    /// Seconds a caller has to complete ICE and DTLS before the call ends (`network_lost`).
    #[arg(long, env = "GATEWAY_RTC_CONNECT_TIMEOUT_SECONDS", default_value_t = 20)]
    pub rtc_connect_timeout_seconds: u64,

    /// Seconds a call may take to become active (media connected, AI session ready) before it ends.
    #[arg(long, env = "GATEWAY_CALL_CONNECT_LIMIT_SECONDS", default_value_t = 60)]
    pub call_connect_limit_seconds: u64,

    /// Attempts after the first when the AI provider cannot be reached (exponential back-off).
    #[arg(long, env = "GATEWAY_PROVIDER_RETRIES", default_value_t = 3)]
    pub provider_retries: u32,

    /// First back-off delay in milliseconds before retrying the AI provider (doubles each time).
    #[arg(long, env = "GATEWAY_PROVIDER_BACKOFF_MS", default_value_t = 500)]
    pub provider_backoff_ms: u64,

    /// Where call recordings are stored: `s3://BUCKET/PREFIX` for S3-compatible storage
    /// (credentials and region from the usual AWS_* variables), or a directory (a path or
    /// `file:///PATH`). Default: `recordings/` in the data directory.
    #[arg(long, env = "GATEWAY_RECORDINGS_URL")]
    pub recordings_url: Option<String>,

    /// Endpoint of S3-compatible storage other than AWS (MinIO, R2, a local test server),
    /// e.g. `http://127.0.0.1:9000`; AWS_ENDPOINT_URL is read too.
    #[arg(long, env = "GATEWAY_RECORDINGS_ENDPOINT")]
    pub recordings_endpoint: Option<String>,

    /// Allow plain-HTTP recordings storage endpoints (tests and local servers only).
    #[arg(long, env = "GATEWAY_RECORDINGS_ALLOW_HTTP")]
    pub recordings_allow_http: bool,

    /// Access key id for the recordings bucket (default: AWS_ACCESS_KEY_ID).
    #[arg(long, env = "GATEWAY_RECORDINGS_ACCESS_KEY_ID", hide_env_values = true)]
    pub recordings_access_key_id: Option<String>,

    /// Secret access key for the recordings bucket (default: AWS_SECRET_ACCESS_KEY).
    #[arg(long, env = "GATEWAY_RECORDINGS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub recordings_secret_access_key: Option<String>,

    /// Region of the recordings bucket (default: AWS_REGION / AWS_DEFAULT_REGION, else us-east-1).
    #[arg(long, env = "GATEWAY_RECORDINGS_REGION")]
    pub recordings_region: Option<String>,

    /// Seconds between two runs of the recording retention sweep.
    #[arg(long, env = "GATEWAY_RECORDING_SWEEP_SECONDS", default_value_t = 3600)]
    pub recording_sweep_seconds: u64,

    /// Log format.
    #[arg(long, env = "GATEWAY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Seconds shutdown may take: live calls end (reason `shutdown`, stored) and open
    /// requests finish within it; whatever is still open then is cut.
    #[arg(long, env = "GATEWAY_SHUTDOWN_GRACE_SECONDS", default_value_t = 5)]
    pub shutdown_grace_seconds: u64,

    /// Seconds a client has to send a complete request head: on a new connection from when
    /// it is accepted, on a kept-alive one from the request's first byte.
    #[arg(long, env = "GATEWAY_HTTP_HEADER_TIMEOUT_SECONDS", default_value_t = 10)]
    pub http_header_timeout_seconds: u64,

    /// Seconds a kept-alive connection may sit idle between requests before it is closed.
    /// (WebSockets are not HTTP requests: their own pings keep them.)
    #[arg(long, env = "GATEWAY_HTTP_IDLE_TIMEOUT_SECONDS", default_value_t = 30)]
    pub http_idle_timeout_seconds: u64,

    /// Slowest request body accepted, in bytes per second on average once the body grace
    /// has passed: a slow but steady upload goes through, a trickle is cut (408). 0: no check.
    #[arg(long, env = "GATEWAY_HTTP_BODY_MIN_RATE", default_value_t = 1024)]
    pub http_body_min_rate: u64,

    /// Seconds a request body may take before the minimum rate applies.
    #[arg(long, env = "GATEWAY_HTTP_BODY_GRACE_SECONDS", default_value_t = 10)]
    pub http_body_grace_seconds: u64,

    /// Most client connections open at once, WebSockets included; further ones wait in the
    /// listen backlog until one closes. Keep `ulimit -n` well above it.
    #[arg(long, env = "GATEWAY_HTTP_MAX_CONNECTIONS", default_value_t = 1000)]
    pub http_max_connections: usize,

    #[command(flatten)]
    pub webhooks: WebhookArgs,
}

/// Delivery of call events to the companies' webhook endpoints (docs/webhooks.md).
#[derive(Debug, Clone, Args)]
pub struct WebhookArgs {
    /// Let webhooks go to loopback, private and link-local addresses (refused by default,
    /// at registration and on every delivery, after DNS resolution).
    #[arg(long = "webhooks-allow-private", env = "GATEWAY_WEBHOOKS_ALLOW_PRIVATE")]
    pub allow_private: bool,

    /// Seconds a delivery is retried after its event before it is given up (and its
    /// endpoint disabled).
    #[arg(
        long = "webhooks-retry-window-seconds",
        env = "GATEWAY_WEBHOOKS_RETRY_WINDOW_SECONDS",
        default_value_t = 86_400
    )]
    pub retry_window_seconds: u64,

    /// Milliseconds before the first retry; the delay doubles per failure (with jitter), up to an hour.
    #[arg(long = "webhooks-backoff-ms", env = "GATEWAY_WEBHOOKS_BACKOFF_MS", default_value_t = 10_000)]
    pub backoff_ms: u64,

    /// Seconds a delivery request may take, response included.
    #[arg(long = "webhooks-timeout-seconds", env = "GATEWAY_WEBHOOKS_TIMEOUT_SECONDS", default_value_t = 10)]
    pub timeout_seconds: u64,

    /// Milliseconds between looks at the outbox for due deliveries.
    #[arg(long = "webhooks-poll-ms", env = "GATEWAY_WEBHOOKS_POLL_MS", default_value_t = 1000)]
    pub poll_ms: u64,

    /// Deliveries this node sends at once.
    #[arg(long = "webhooks-concurrency", env = "GATEWAY_WEBHOOKS_CONCURRENCY", default_value_t = 8)]
    pub concurrency: usize,
}

impl WebhookArgs {
    /// The retry policy these settings describe.
    pub fn retry_policy(&self) -> crate::events::policy::RetryPolicy {
        let ms = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        crate::events::policy::RetryPolicy {
            first_delay_ms: ms(self.backoff_ms).max(1),
            max_delay_ms: crate::events::policy::RetryPolicy::DEFAULT.max_delay_ms,
            window_ms: ms(self.retry_window_seconds).saturating_mul(1000),
        }
    }
}

impl ServeArgs {
    /// The public base URL, without a trailing slash.
    pub fn public_base(&self) -> String {
        let url = match &self.public_url {
            Some(url) => url.to_string(),
            None => format!("http://{}", self.listen),
        };
        url.trim_end_matches('/').to_owned()
    }

    /// How long a sign-in session lasts.
    pub fn session_ttl(&self) -> Duration {
        Duration::from_secs(u64::from(self.session_ttl_hours) * 3600)
    }

    /// How long shutdown waits for live calls.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_seconds)
    }

    /// The default settings with the given store, for tests.
    pub fn for_tests(store: StoreArgs) -> Self {
        let mut args = Self::parse_defaults(["gateway"]);
        args.store = store;
        args.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        args.rtc_bind_ip = IpAddr::from([127, 0, 0, 1]);
        args
    }

    fn parse_defaults<I: IntoIterator<Item = &'static str>>(args: I) -> Self {
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            serve: ServeArgs,
        }
        Wrapper::parse_from(args).serve
    }
}

/// Loads `KEY=VALUE` lines from the config file named by `--config`/`GATEWAY_CONFIG`
/// into the process environment, without overriding variables that are already set.
/// Must run before any thread starts (it mutates the environment).
pub fn load_config_file_into_env() -> anyhow::Result<()> {
    let mut path = std::env::var_os("GATEWAY_CONFIG").map(PathBuf::from);
    let args: Vec<String> = std::env::args().collect();
    for (i, arg) in args.iter().enumerate() {
        if let Some(value) = arg.strip_prefix("--config=") {
            path = Some(PathBuf::from(value));
        } else if arg == "--config" {
            path = args.get(i + 1).map(PathBuf::from);
        }
    }
    let Some(path) = path else { return Ok(()) };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            anyhow::bail!("{}:{}: expected KEY=VALUE", path.display(), number + 1);
        };
        let key = key.trim().trim_start_matches("export ").trim();
        let value = value.trim().trim_matches('"');
        if std::env::var_os(key).is_none() {
            set_env(key, value);
        }
    }
    Ok(())
}

#[allow(unsafe_code)]
fn set_env(key: &str, value: &str) {
    // SAFETY: called from `main` before the runtime or any other thread exists, so no
    // other thread can be reading the environment concurrently.
    unsafe { std::env::set_var(key, value) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_subcommand_means_serve_with_defaults() {
        let cli = Cli::try_parse_from(["gateway"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.serve.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(cli.serve.public_base(), "http://127.0.0.1:8080");
    }

    #[test]
    fn default_database_is_a_sqlite_file_in_the_data_dir() {
        let cli = Cli::try_parse_from(["gateway", "serve", "--data-dir", "/tmp/x"]).unwrap();
        let Some(Command::Serve(serve)) = cli.command else { panic!("expected serve") };
        assert_eq!(serve.store.database_url(), "sqlite:///tmp/x/gateway.db?mode=rwc");
    }

    #[test]
    fn user_create_takes_role_and_companies() {
        let cli = Cli::try_parse_from([
            "gateway",
            "user",
            "create",
            "--email",
            "a@b.c",
            "--role",
            "company_admin",
            "--company",
            "x",
        ])
        .unwrap();
        let Some(Command::User(UserCommand::Create(args))) = cli.command else { panic!() };
        assert!(matches!(args.role, RoleArg::CompanyAdmin));
        assert_eq!(args.company, vec!["x".to_owned()]);
    }

    #[test]
    fn the_forwarded_for_help_names_the_address_the_code_uses() {
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string();
        let start = help.find("--trust-forwarded-for").expect("the flag is documented");
        let text = &help[start..start + 400];
        assert!(text.contains("last"), "{text}");
        assert!(!text.contains("first"), "{text}");
    }

    #[test]
    fn user_passwords_come_from_stdin_and_tokens_expire_in_ninety_days_by_default() {
        let cli = Cli::try_parse_from([
            "gateway",
            "user",
            "create",
            "--email",
            "a@b.c",
            "--role",
            "master_admin",
            "--password-stdin",
        ])
        .unwrap();
        let Some(Command::User(UserCommand::Create(args))) = cli.command else { panic!() };
        assert!(args.password_stdin);
        assert_eq!(args.token.token_ttl_days, 90);
        let cli = Cli::try_parse_from(["gateway", "user", "passwd", "--email", "a@b.c"]).unwrap();
        assert!(matches!(cli.command, Some(Command::User(UserCommand::Passwd(_)))));
        let cli = Cli::try_parse_from(["gateway", "user", "revoke-tokens", "--email", "a@b.c"]).unwrap();
        assert!(matches!(cli.command, Some(Command::User(UserCommand::RevokeTokens(_)))));
        assert!(
            Cli::try_parse_from(["gateway", "user", "token", "--email", "a@b.c", "--token-ttl-days", "0"]).is_err()
        );
        let cli = Cli::try_parse_from(["gateway", "keys", "rotate", "--encryption-keys", "a:x"]).unwrap();
        let Some(Command::Keys(KeysCommand::Rotate(args))) = cli.command else { panic!() };
        assert_eq!(args.keys.settings().keys.as_deref(), Some("a:x"));
    }

    #[test]
    fn sessions_last_twelve_hours_by_default() {
        let cli = Cli::try_parse_from(["gateway"]).unwrap();
        assert_eq!(cli.serve.session_ttl(), Duration::from_secs(12 * 3600));
        assert!(Cli::try_parse_from(["gateway", "--session-ttl-hours", "0"]).is_err());
    }

    #[test]
    fn webhooks_refuse_private_destinations_and_retry_for_a_day_by_default() {
        let cli = Cli::try_parse_from(["gateway"]).unwrap();
        assert!(!cli.serve.webhooks.allow_private);
        assert_eq!(cli.serve.webhooks.retry_policy(), crate::events::policy::RetryPolicy::DEFAULT);
        let cli = Cli::try_parse_from(["gateway", "--webhooks-allow-private", "--webhooks-backoff-ms", "50"]).unwrap();
        assert!(cli.serve.webhooks.allow_private);
        assert_eq!(cli.serve.webhooks.retry_policy().first_delay_ms, 50);
    }

    #[test]
    fn public_url_loses_its_trailing_slash() {
        let cli = Cli::try_parse_from(["gateway", "--public-url", "https://voice.example.com/"]).unwrap();
        assert_eq!(cli.serve.public_base(), "https://voice.example.com");
    }
}
