//! Command line and configuration.
//!
//! Every setting comes from a flag or, more usually, an environment variable of the same
//! name; `--config FILE` (or `GATEWAY_CONFIG`) names an optional file of `KEY=VALUE` lines
//! using the same variable names, which fills in whatever the environment does not set.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    /// Manage users and their API tokens.
    #[command(subcommand)]
    User(UserCommand),
    /// Create the database if needed, apply migrations and exit.
    Migrate(StoreArgs),
}

/// User administration.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user and print a new API token as the last line of standard output.
    Create(UserCreateArgs),
    /// Issue another API token for an existing user (printed as the last line).
    Token(UserTokenArgs),
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
    /// The company the user belongs to (required for company_admin and support_agent).
    #[arg(long, value_name = "COMPANY_ID")]
    pub company: Vec<String>,
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `gateway user token`.
#[derive(Debug, Args)]
pub struct UserTokenArgs {
    /// The user's e-mail address.
    #[arg(long)]
    pub email: String,
    #[command(flatten)]
    pub store: StoreArgs,
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

    /// Base64 of 32 random bytes: the AES-256-GCM key that seals stored credentials.
    /// Without it a development key is generated in the data directory (refused with --production).
    #[arg(long, env = "GATEWAY_ENCRYPTION_KEY", hide_env_values = true)]
    pub encryption_key: Option<String>,

    /// Earlier encryption keys (comma-separated base64), still accepted for reading so
    /// keys can be rotated without re-entering credentials.
    #[arg(long, env = "GATEWAY_PREVIOUS_ENCRYPTION_KEYS", hide_env_values = true)]
    pub previous_encryption_keys: Option<String>,

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

    /// Seconds a widget call session (and its token) stays valid before the caller connects.
    #[arg(long, env = "GATEWAY_WIDGET_SESSION_TTL_SECONDS", default_value_t = 86_400)]
    pub widget_session_ttl_seconds: u64,

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
    fn public_url_loses_its_trailing_slash() {
        let cli = Cli::try_parse_from(["gateway", "--public-url", "https://voice.example.com/"]).unwrap();
        assert_eq!(cli.serve.public_base(), "https://voice.example.com");
    }
}
