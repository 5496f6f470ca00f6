//! `gateway`: serve (the default), manage users, migrate.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use gateway::config::{Cli, Command, LogFormat, RoleArg, StoreArgs, UserCommand};
use gateway::logging::init as init_logging;
use gateway::store::{Role, Store};

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
    match command {
        UserCommand::Create(args) => {
            let store = connect(&args.store).await?;
            let role = match args.role {
                RoleArg::MasterAdmin => Role::MasterAdmin,
                RoleArg::CompanyAdmin => Role::CompanyAdmin,
                RoleArg::SupportAgent => Role::SupportAgent,
            };
            let mut companies = Vec::new();
            for raw in &args.company {
                let id = raw.parse().map_err(|_| anyhow::anyhow!("--company {raw:?} is not a company id"))?;
                store.company(id).await?.ok_or_else(|| anyhow::anyhow!("no company with id {raw}"))?;
                companies.push(id);
            }
            if role != Role::MasterAdmin && companies.is_empty() {
                anyhow::bail!(
                    "{role} users belong to a company: pass --company <COMPANY_ID> (list them with GET /api/admin/companies)"
                );
            }
            let user =
                store.create_user(&args.email, args.name.as_deref(), role, &companies).await.map_err(|e| match e {
                    gateway::store::StoreError::Conflict => anyhow::anyhow!("a user with e-mail {} exists", args.email),
                    other => other.into(),
                })?;
            let token = store.create_api_token(user.id, "cli").await?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "created {} {} ({})", user.role, user.email, user.id)?;
            writeln!(out, "{token}")?;
        }
        UserCommand::Token(args) => {
            let store = connect(&args.store).await?;
            let user =
                store.user_by_email(&args.email).await?.ok_or_else(|| anyhow::anyhow!("no user {}", args.email))?;
            let token = store.create_api_token(user.id, "cli").await?;
            writeln!(std::io::stdout().lock(), "{token}")?;
        }
    }
    Ok(())
}
