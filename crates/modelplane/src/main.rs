use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use modelplane::config::{Config, FlagOverrides, LogFormat};
use modelplane::{shutdown_on_signals, telemetry, Application};
use modelplane_service::auth;
use modelplane_store::Store;

/// mimalloc: the request path allocates many small, short-lived buffers, and
/// glibc's malloc spent about a tenth of the gateway's CPU on them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Run one ingestion source now, with a progress bar (e.g. `modelplane ingest openai-api`).
    Ingest {
        /// openai-api, anthropic-api, google-api, mistral-api, cohere-api, xai-api,
        /// huggingface, deprecations-info, models-dev, openrouter, litellm-prices.
        source: String,
    },
    /// Print what a model file or folder holds: GGUF header facts, safetensors
    /// model, engine to serve it with, VRAM at the model's context.
    Inspect {
        /// A `.gguf` or `.safetensors` file, or a model folder.
        path: PathBuf,
    },
    /// Download a Hugging Face repo's files into the models base directory,
    /// with a progress bar (resumes a partial file; verifies LFS checksums).
    Pull {
        /// `owner/name`.
        repo: String,
        /// Files of the repo (one part of a split GGUF brings every part);
        /// default: every file.
        files: Vec<String>,
        /// Only files matching this pattern (`*` matches anything), repeatable.
        #[arg(long)]
        include: Vec<String>,
        /// Branch, tag or commit.
        #[arg(long, default_value = "main")]
        revision: String,
    },
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

/// mimalloc's options by their index in the vendored `mimalloc.h` (the same
/// in its v2 and v3 as pinned by Cargo.lock; the header exports no constants).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Commits arena pages only when they are used and gives freed memory back
/// to the OS at once: an idle server then holds about 6 MiB of heap, not 27.
/// It must run before the first allocation reserves an arena, so it is an
/// ELF constructor: after mimalloc's own (priority 101), before Rust's `main`.
/// Once start-up is over, [`steady_purge`] relaxes the purge.
#[allow(unsafe_code)]
#[used]
#[link_section = ".init_array"]
static TUNE_ALLOCATOR: extern "C" fn() = {
    extern "C" fn tune() {
        // SAFETY: plain setters of mimalloc's global options, called while
        // the process has one thread; an environment `MIMALLOC_*` loses.
        unsafe {
            libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        }
    }
    tune
};

/// How long freed memory stays committed once the server serves: giving it
/// back at once (or after 10 ms) made a streamed export of a million models
/// spend a fifth of its time in `madvise` and page faults; at 100 ms it runs
/// as with the allocator's defaults, and an idle server still holds none.
const STEADY_PURGE_DELAY_MS: std::ffi::c_long = 100;

/// Switches the allocator from start-up's immediate purge to
/// [`STEADY_PURGE_DELAY_MS`]; what start-up freed has been given back by now.
#[allow(unsafe_code)]
fn steady_purge() {
    // SAFETY: a setter of one word in mimalloc's option table, which its
    // readers load on each use; the option was initialised by the
    // constructor above, so no reader initialises it concurrently.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, STEADY_PURGE_DELAY_MS) };
}

/// mimalloc purges expired memory only when a thread allocates or frees, so
/// an idle server would keep what it freed in its last busy moment: once a
/// second this hands back whatever has waited out the delay.
async fn purge_when_idle() {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // SAFETY: mimalloc's public collection entry point, callable from
        // any thread at any time; `false` only purges what has expired.
        #[allow(unsafe_code)]
        unsafe {
            libmimalloc_sys::mi_collect(false)
        };
    }
}

fn main() -> anyhow::Result<()> {
    // Before anything opens a database.
    modelplane::sqlite_alloc::use_mimalloc();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
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
            // Each event loop's thread hands back its own freed memory too.
            let app = Application::build(&config).await?.on_event_loop_start(|| {
                tokio::spawn(purge_when_idle());
            });
            steady_purge();
            tokio::spawn(purge_when_idle());
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
        Command::Ingest { source } => ingest(&config, &source).await,
        Command::Inspect { path } => print(&modelplane::inspect::summary(&path)?),
        Command::Pull {
            repo,
            files,
            include,
            revision,
        } => pull(&config, repo, files, include, revision).await,
        Command::Openapi => Ok(()),
    }
}

/// `modelplane ingest <source>`: one run in this process, with a progress
/// bar on stderr; exits non-zero when the run fails.
async fn ingest(config: &Config, source: &str) -> anyhow::Result<()> {
    use indicatif::{ProgressBar, ProgressStyle};
    use modelplane_domain::ingestion::{RunStatus, RunTrigger};
    use modelplane_service::ingestion::{parse_source, Ingestion, Progress};

    let source = parse_source(source).map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = Store::connect(&config.database_url)
        .await
        .context("connecting to the database")?;
    store.migrate().await.context("applying migrations")?;
    let mut settings = config.ingestion_settings()?;
    // Its own node name, so a server on this host never mistakes the CLI's
    // run for one it left behind.
    settings.node = format!("{}-cli-{}", settings.node, std::process::id());
    let secrets = modelplane::secret_box(config)?;
    let engine = Ingestion::new(store.clone(), settings, Some(secrets));
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar.set_message(format!("{}: fetching…", source.as_str()));
    let shown = bar.clone();
    let progress = std::sync::Arc::new(move |p: Progress| match p {
        Progress::Fetched { records, changed } => shown.set_message(format!(
            "{}: fetched {records} records, {changed} new or changed",
            source.as_str()
        )),
        Progress::Applying { done, total } => {
            if shown.length() != Some(total) {
                shown.set_length(total);
                shown.set_style(
                    ProgressStyle::with_template("{bar:40} {pos}/{len} applied {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
            }
            shown.set_position(done);
        }
    });
    let run = engine
        .run_now(source, RunTrigger::Cli, Some(progress))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"));
    bar.finish_and_clear();
    store.close().await;
    let run = run?;
    let summary = format!(
        "run {} of {}: {} — {} added, {} updated, {} unchanged, {} unlisted{}\n",
        run.id,
        run.source.as_str(),
        run.status.as_str(),
        run.models_added,
        run.models_updated,
        run.models_unchanged,
        run.models_unlisted,
        run.error_message
            .as_deref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default()
    );
    print(&summary)?;
    if run.status != RunStatus::Completed {
        anyhow::bail!("ingestion of {} failed", run.source.as_str());
    }
    Ok(())
}

/// `modelplane pull <repo> [file…]`: downloads now, in this process, with a
/// progress bar per file on stderr.
async fn pull(
    config: &Config,
    repo: String,
    files: Vec<String>,
    include: Vec<String>,
    revision: String,
) -> anyhow::Result<()> {
    use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
    use modelplane_service::local::{DownloadRequest, LocalModels};
    use std::collections::HashMap;
    use std::sync::Mutex;

    let store = Store::connect(&config.database_url)
        .await
        .context("connecting to the database")?;
    store.migrate().await.context("applying migrations")?;
    let local = LocalModels::new(store.clone(), config.local_settings()?)?;
    let bars = MultiProgress::new();
    let style = ProgressStyle::with_template(
        "{msg:40!} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    let shown: Mutex<HashMap<String, ProgressBar>> = Mutex::new(HashMap::new());
    let progress = |file: &str, done: u64, total: u64| {
        let mut shown = shown.lock().unwrap_or_else(|p| p.into_inner());
        let bar = shown.entry(file.to_owned()).or_insert_with(|| {
            let bar = bars.add(ProgressBar::new(total));
            bar.set_style(style.clone());
            bar.set_message(file.to_owned());
            bar
        });
        bar.set_position(done);
        if done >= total {
            bar.finish();
        }
    };
    let cancel = shutdown_on_signals();
    let result = local
        .pull_now(
            DownloadRequest {
                repo_id: repo.clone(),
                revision: Some(revision),
                files,
                include,
                dest: None,
            },
            &progress,
            &cancel,
        )
        .await;
    store.close().await;
    let (dir, done) = result.map_err(|e| anyhow::anyhow!("{e}"))?;
    let bytes: u64 = done.iter().map(|f| f.bytes_done).sum();
    let verified = done.iter().filter(|f| f.verified).count();
    print(&format!(
        "{repo}: {} files, {bytes} bytes in {} ({verified} verified by SHA-256)\n",
        done.len(),
        dir.display()
    ))
}
