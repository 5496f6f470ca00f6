//! `gateway`: serve (the default), manage users and encryption keys, migrate.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use gateway::auth::password;
use gateway::config::{
    Cli, Command, KeysCommand, LogFormat, RoleArg, StoreArgs, TokenArgs, UserCommand, UserCreateArgs,
};
use gateway::crypto::Sealer;
use gateway::ids::{CompanyId, UserId};
use gateway::logging::init as init_logging;
use gateway::store::{DAY_MS, Role, Store, User};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // A user error (bad configuration, unreachable database): one clear line. Bugs
            // panic, and keep their backtraces.
            let _ = writeln!(std::io::stderr().lock(), "error: {}", gateway::logging::one_line(&err));
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    // Before any thread exists: the config file fills in the environment.
    gateway::config::load_config_file_into_env()?;
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(async move {
        match cli.command {
            None => serve(cli.serve).await,
            Some(Command::Serve(args)) => serve(args).await,
            Some(Command::Migrate(store)) => {
                init_logging(LogFormat::Text);
                connect(&store).await?;
                tracing::info!("migrations applied");
                Ok(())
            }
            Some(Command::User(command)) => {
                init_logging(LogFormat::Text);
                user(command).await
            }
            Some(Command::Keys(KeysCommand::Rotate(args))) => {
                init_logging(LogFormat::Text);
                rotate_keys(args).await
            }
        }
    });
    // Whatever is still running (a client cut at the shutdown deadline, a write still
    // retrying) must not keep the process alive.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

async fn serve(args: gateway::config::ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let app = gateway::app::App::build(args).await?;
    let state = app.state();
    tracing::info!(
        address = %app.addr(),
        public_url = %state.public_base,
        database = ?state.store.backend(),
        node = %state.node_id,
        "gateway listening"
    );
    if state.config.demo {
        tracing::info!("demo page: {}/", state.public_base);
    }
    app.run(true).await
}

async fn connect(store: &StoreArgs) -> anyhow::Result<Store> {
    Store::connect(&store.database_url(), store.database_max_connections).await.context("connecting to the database")
}

async fn user(command: UserCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match command {
        UserCommand::Create(args) => create_user(args, &mut out).await?,
        UserCommand::Token(args) => {
            let store = connect(&args.store).await?;
            let user = existing_user(&store, &args.email).await?;
            writeln!(out, "{}", issue_token(&store, user.id, &args.token).await?)?;
        }
        UserCommand::Passwd(args) => {
            let store = connect(&args.store).await?;
            let user = existing_user(&store, &args.email).await?;
            let hash = password::hash_password(&read_password()?);
            let ended = store.set_password(user.id, &hash).await?;
            writeln!(out, "password of {} changed; {ended} sign-in session(s) ended", user.email)?;
        }
        UserCommand::RevokeTokens(args) => {
            let store = connect(&args.store).await?;
            let user = existing_user(&store, &args.email).await?;
            let revoked = store.revoke_tokens(user.id).await?;
            let ended = store.end_sessions(user.id).await?;
            writeln!(out, "revoked {revoked} API token(s) of {} and ended {ended} sign-in session(s)", user.email)?;
        }
    }
    Ok(())
}

/// `gateway user create`: creates the user, or for an existing user with the same role adds
/// the missing companies (and a password if they have none), so the README's first steps
/// can be run again. Prints a new API token as the last line either way.
async fn create_user(args: UserCreateArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let store = connect(&args.store).await?;
    let role = match args.role {
        RoleArg::MasterAdmin => Role::MasterAdmin,
        RoleArg::CompanyAdmin => Role::CompanyAdmin,
        RoleArg::SupportAgent => Role::SupportAgent,
    };
    let mut companies = Vec::new();
    for raw in &args.company {
        companies.push(company_named(&store, raw).await?);
    }
    if role != Role::MasterAdmin && companies.is_empty() {
        anyhow::bail!(
            "{role} users belong to a company: pass --company <COMPANY_ID or name> (list them with GET /api/admin/companies)"
        );
    }
    let password = if args.password_stdin { Some(read_password()?) } else { None };
    let user = match store.login_candidate(&args.email).await? {
        Some((user, stored)) => {
            if user.role != role {
                anyhow::bail!("a user with e-mail {} exists with role {}, not {role}", user.email, user.role);
            }
            let added = store.add_memberships(user.id, &companies).await?;
            let membership = match (companies.len(), added) {
                (0, _) => String::new(),
                (_, 0) => "; already in the companies named".to_owned(),
                (_, 1) => "; added to 1 more company".to_owned(),
                (_, n) => format!("; added to {n} more companies"),
            };
            writeln!(out, "user {} exists ({}){membership}", user.email, user.role)?;
            match (password, stored) {
                (Some(password), None) => {
                    store.set_password(user.id, &password::hash_password(&password)).await?;
                    writeln!(out, "password set")?;
                }
                (Some(_), Some(_)) => writeln!(out, "password unchanged (`gateway user passwd` changes it)")?,
                (None, _) => {}
            }
            user
        }
        None => {
            let user =
                store.create_user(&args.email, args.name.as_deref(), role, &companies).await.map_err(|e| match e {
                    gateway::store::StoreError::Conflict => anyhow::anyhow!("a user with e-mail {} exists", args.email),
                    other => other.into(),
                })?;
            if let Some(password) = password {
                store.set_password(user.id, &password::hash_password(&password)).await?;
            }
            writeln!(out, "created {} {} ({})", user.role, user.email, user.id)?;
            user
        }
    };
    writeln!(out, "{}", issue_token(&store, user.id, &args.token).await?)?;
    Ok(())
}

async fn existing_user(store: &Store, email: &str) -> anyhow::Result<User> {
    store.user_by_email(email).await?.ok_or_else(|| anyhow::anyhow!("no user with e-mail {email}"))
}

/// A company by id, or by its exact name (which must be unambiguous).
async fn company_named(store: &Store, raw: &str) -> anyhow::Result<CompanyId> {
    if let Ok(id) = raw.parse::<CompanyId>() {
        store.company(id).await?.ok_or_else(|| anyhow::anyhow!("no company with id {raw}"))?;
        return Ok(id);
    }
    let named: Vec<CompanyId> =
        store.list_companies().await?.into_iter().filter(|c| c.name == raw).map(|c| c.id).collect();
    match named.as_slice() {
        [id] => Ok(*id),
        [] => anyhow::bail!("no company is named {raw:?} (--company takes a company id or an exact name)"),
        _ => anyhow::bail!("several companies are named {raw:?}: pass one of their ids ({named:?})"),
    }
}

/// A new API token valid for the configured number of days.
async fn issue_token(store: &Store, user: UserId, args: &TokenArgs) -> anyhow::Result<String> {
    let expires_at = gateway::time::now_ms() + i64::from(args.token_ttl_days) * DAY_MS;
    Ok(store.create_api_token_until(user, "cli", expires_at).await?)
}

/// A new password from standard input: its first line (without the line break), checked
/// against the password rules.
fn read_password() -> anyhow::Result<String> {
    use std::io::{BufRead, IsTerminal};
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        // Prompts go to stderr so that stdout stays the command's answer.
        let mut err = std::io::stderr().lock();
        write!(err, "New password (at least {} characters; it is shown as you type): ", password::MIN_PASSWORD_CHARS)?;
        err.flush()?;
    }
    let mut line = String::new();
    stdin.lock().take(password::MAX_PASSWORD_BYTES as u64 + 3).read_line(&mut line).context("reading the password")?;
    let line = line.strip_suffix('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).unwrap_or(&line);
    password::check_new_password(line)?;
    Ok(line.to_owned())
}

/// `gateway keys rotate`.
async fn rotate_keys(args: gateway::config::KeysRotateArgs) -> anyhow::Result<()> {
    let sealer =
        Sealer::load_existing(&args.keys.settings(), &args.store.data_dir).context("loading the encryption keys")?;
    let store = connect(&args.store).await?;
    let rotation = gateway::integrations::reseal_all(&store, &sealer).await?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "re-sealed {} integration account(s) with key {}; {} already used it",
        rotation.resealed,
        sealer.key_id(),
        rotation.already_current
    )?;
    if rotation.changed_meanwhile > 0 {
        writeln!(
            out,
            "{} account(s) changed while rotating: run `gateway keys rotate` again",
            rotation.changed_meanwhile
        )?;
    }
    for account in &rotation.unreadable {
        writeln!(
            out,
            "cannot open account {} ({:?}, company {}): {}",
            account.id, account.name, account.company_id, account.reason
        )?;
    }
    if rotation.unreadable.is_empty() && rotation.changed_meanwhile == 0 {
        writeln!(out, "every sealed value uses key {}: older keys can be removed", sealer.key_id())?;
    } else {
        anyhow::bail!("some sealed values still use other keys: keep them until those accounts are repaired");
    }
    Ok(())
}
