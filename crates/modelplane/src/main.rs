use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use modelplane::config::{Config, FlagOverrides, LogFormat};
use modelplane::{shutdown_on_signals, telemetry, Application};
use modelplane_service::auth;
use modelplane_store::Store;

/// modelplane: one control plane for every AI model an organization uses.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Database URL (`sqlite://path` or `postgres://…`).
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
    /// Log format: human or json.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the server (applies migrations first).
    Serve {
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Print the OpenAPI document.
    Openapi,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key and print its token (shown once).
    Create {
        /// A platform-wide superadmin key (the only kind the CLI creates;
        /// create the others through the API).
        #[arg(long, required = true)]
        superadmin: bool,
        #[arg(long, default_value = "cli superadmin")]
        name: String,
    },
}

fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Openapi = cli.command {
        return print(&modelplane_api::openapi::document());
    }
    let listen = match &cli.command {
        Command::Serve { listen } => listen.clone(),
        _ => None,
    };
    let flags = FlagOverrides {
        listen,
        database_url: cli.database_url.clone(),
        log_format: cli.log_format,
    };
    let config = Config::load(cli.config.as_deref(), flags)?;
    telemetry::init(config.log_format, &config.log_level);

    match cli.command {
        Command::Serve { .. } => {
            let app = Application::build(&config).await?;
            app.run_until(shutdown_on_signals()).await
        }
        Command::Migrate => {
            let store = Store::connect(&config.database_url)
                .await
                .context("connecting to the database")?;
            store.migrate().await.context("applying migrations")?;
            tracing::info!(backend = store.backend().as_str(), "migrations applied");
            store.close().await;
            Ok(())
        }
        Command::Keys {
            command:
                KeysCommand::Create {
                    superadmin: _,
                    name,
                },
        } => {
            let store = Store::connect(&config.database_url)
                .await
                .context("connecting to the database")?;
            store.migrate().await.context("applying migrations")?;
            let (key, token) = auth::create_superadmin_key(&store, &name).await?;
            store.close().await;
            tracing::info!(key_id = %key.id, org_id = %key.org_id, "created superadmin key");
            print(&format!("{token}\n"))
        }
        Command::Openapi => Ok(()),
    }
}
