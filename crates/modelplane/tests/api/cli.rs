//! The binary as an operator runs it: configuration layers, bootstrap,
//! `keys create`, `migrate`, and a clean stop on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;

const BIN: &str = env!("CARGO_BIN_EXE_modelplane");

fn command(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir);
    // Only what a test sets reaches the binary's MODELPLANE_* layer.
    for (key, _) in std::env::vars() {
        if key.starts_with("MODELPLANE_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("RUST_LOG", "info");
    // No scheduled ingestion: tests never reach the internet.
    cmd.env("MODELPLANE_INGESTION__SCHEDULER", "false");
    cmd
}

/// Starts `modelplane serve` on a free port and returns the child and its base URL,
/// read from the address it logs.
fn serve(mut cmd: Command) -> (Child, String) {
    let mut child = cmd
        .arg("serve")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn modelplane");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .trim_end_matches('"')
                        .to_owned();
                    let _ = tx.send(addr);
                    sent = true;
                }
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("server logs its address");
    (child, format!("http://{addr}"))
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    for _ in 0..100 {
        if let Ok(Some(status)) = child.try_wait() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    panic!("server did not stop within 10 s of SIGTERM");
}

#[tokio::test]
async fn serve_bootstraps_from_the_admin_token_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let token = "mp_cli_bootstrap_token_1234567890";
    let mut cmd = command(dir.path());
    cmd.env("MODELPLANE_ADMIN_TOKEN", token);
    let (mut child, base) = serve(cmd);
    assert!(
        dir.path().join("data/modelplane.db").is_file(),
        "the default SQLite file is created under ./data"
    );
    let client = reqwest::Client::new();
    let resp = client
        .get(format!("{base}/api/v1/orgs"))
        .bearer_auth(token)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);
    let orgs: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(orgs["orgs"][0]["name"], "default");
    let resp = client
        .get(format!("{base}/api/v1/orgs"))
        .bearer_auth("mp_wrong")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let status = terminate(&mut child);
    assert!(status.success(), "graceful stop exits 0: {status:?}");
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_request_finish() {
    let dir = tempfile::tempdir().expect("temp dir");
    let token = "mp_cli_inflight_token_1234567890";
    let mut cmd = command(dir.path());
    cmd.env("MODELPLANE_ADMIN_TOKEN", token);
    let (mut child, base) = serve(cmd);
    // The body arrives in two parts, a second apart; SIGTERM lands in between.
    let (first, rest) = (
        r#"{"model_id": "in-flight", "provider": "p","#,
        r#" "risk_tier": "tier_3"}"#,
    );
    let body = futures::stream::unfold(0, move |step| async move {
        match step {
            0 => Some((Ok::<_, std::io::Error>(first.as_bytes().to_vec()), 1)),
            1 => {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                Some((Ok(rest.as_bytes().to_vec()), 2))
            }
            _ => None,
        }
    });
    let client = reqwest::Client::new();
    let request = client
        .post(format!("{base}/api/v1/models"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(body))
        .send();
    let pid = child.id().to_string();
    let signal = async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _ = Command::new("kill").arg("-TERM").arg(&pid).status();
    };
    let (response, ()) = tokio::join!(request, signal);
    let response = response.expect("the in-flight request is answered");
    assert_eq!(response.status(), StatusCode::CREATED);
    let status = terminate(&mut child);
    assert!(status.success(), "{status:?}");
    // New connections are refused once it has stopped.
    assert!(client.get(format!("{base}/healthz")).send().await.is_err());
}

#[tokio::test]
async fn keys_create_prints_a_working_superadmin_token() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}/mp.db", dir.path().display());
    let out = command(dir.path())
        .args(["keys", "create", "--superadmin", "--database-url", &db])
        .output()
        .expect("run keys create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_owned();
    assert!(token.starts_with("mp_") && token.len() == 67, "{token}");

    let mut cmd = command(dir.path());
    cmd.env("MODELPLANE_DATABASE_URL", &db);
    let (mut child, base) = serve(cmd);
    let resp = reqwest::Client::new()
        .get(format!("{base}/api/v1/orgs"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);
    terminate(&mut child);
}

#[test]
fn migrate_creates_the_database_and_exits() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = command(dir.path())
        .arg("migrate")
        .output()
        .expect("run migrate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("data/modelplane.db").is_file());
    let again = command(dir.path())
        .arg("migrate")
        .output()
        .expect("run migrate twice");
    assert!(again.status.success(), "migrations are idempotent");
}

#[test]
fn unknown_config_keys_are_refused_with_their_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("mp.toml"),
        "listen = \"127.0.0.1:0\"\ndatabase_urll = \"sqlite://x.db\"\n",
    )
    .expect("write config");
    let out = command(dir.path())
        .args(["--config", "mp.toml", "migrate"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("database_urll"), "{err}");

    let out = command(dir.path())
        .env("MODELPLANE_LISTN", "x")
        .arg("migrate")
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("listn"));

    let out = command(dir.path())
        .args(["--config", "missing.toml", "migrate"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}

#[test]
fn json_logs_on_request() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = command(dir.path())
        .args(["--log-format", "json", "migrate"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("migrations applied"))
        .expect("log line");
    let parsed: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
    assert_eq!(parsed["message"], "migrations applied");
}

/// `modelplane ingest <source>` runs one source to the end against a local
/// fixture of deprecations.info, reports the run, and fails loudly when the
/// source does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_runs_one_source_from_the_cli_and_exits_non_zero_when_it_fails() {
    use axum::routing::get;
    let records = serde_json::json!([
        {"provider": "OpenAI", "model_id": "gpt-4-0613", "announcement_date": "2025-04-14",
         "shutdown_date": "2025-07-14", "deprecation_date": "2025-04-14",
         "replacement_models": ["gpt-4.1"], "deprecation_context": "Legacy GPT-4",
         "url": "https://platform.openai.com/docs/deprecations", "content_hash": "0123456789abcdef",
         "scraped_at": "2026-07-24T02:00:00+00:00", "first_observed": "2025-04-14", "last_observed": "2026-07-24"},
        {"provider": "Anthropic", "model_id": "claude-3-opus-20240229", "announcement_date": "2025-06-30",
         "shutdown_date": "2099-01-05", "deprecation_date": "2025-06-30", "replacement_models": null,
         "deprecation_context": "", "url": "https://docs.anthropic.com/deprecations",
         "content_hash": "fedcba9876543210", "scraped_at": "2026-07-24T02:00:00+00:00",
         "first_observed": "2025-06-30", "last_observed": "2026-07-24"}
    ]);
    let ok = axum::Router::new().route(
        "/v1/deprecations.json",
        get(move || {
            let records = records.clone();
            async move { axum::Json(records) }
        }),
    );
    let good = crate::helpers::serve_fixture(ok).await;
    let failing = axum::Router::new().route(
        "/v1/deprecations.json",
        get(|| async { (axum::http::StatusCode::BAD_GATEWAY, "upstream down") }),
    );
    let bad = crate::helpers::serve_fixture(failing).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}", dir.path().join("mp.db").display());

    let run = |base: String, source: &'static str| {
        let mut cmd = command(dir.path());
        cmd.arg("--database-url")
            .arg(&db)
            .arg("ingest")
            .arg(source)
            .env("MODELPLANE_SOURCES__DEPRECATIONS_INFO__BASE_URL", base)
            .env("MODELPLANE_SOURCES__DEPRECATIONS_INFO__MAX_ATTEMPTS", "2")
            .env("MODELPLANE_SOURCES__DEPRECATIONS_INFO__BACKOFF_MS", "5");
        tokio::task::spawn_blocking(move || cmd.output().expect("run modelplane ingest"))
    };
    let out = run(good.clone(), "deprecations-info")
        .await
        .expect("joined");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("deprecations-info: completed — 2 added"),
        "{stdout}"
    );

    let again = run(good, "deprecations-info").await.expect("joined");
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(
        stdout.contains("0 added, 0 updated, 2 unchanged"),
        "{stdout}"
    );

    let failed = run(bad, "deprecations-info").await.expect("joined");
    assert!(!failed.status.success());
    let stdout = String::from_utf8_lossy(&failed.stdout);
    assert!(
        stdout.contains("failed") && stdout.contains("HTTP 502"),
        "{stdout}"
    );

    let unknown = run(String::from("http://127.0.0.1:9"), "nope")
        .await
        .expect("joined");
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("unknown source") && stderr.contains("openai-api"),
        "{stderr}"
    );
}

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../formats/tests/fixtures");

#[test]
fn inspect_prints_a_gguf_files_facts_and_its_vram_needs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = format!("{FIXTURES}/tiny_llama.gguf");
    let out = command(dir.path())
        .args(["inspect", &file])
        .output()
        .expect("run inspect");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("GGUF v3"), "{text}");
    assert!(
        text.contains(
            "llama · context 2048 · 1 layers · embedding 64 · heads 4/2 (KV) · vocab 300 · Q8_0"
        ),
        "{text}"
    );
    assert!(text.contains("3 tensors"), "{text}");
    // 2 × 1 layer × 2048 × 2 KV heads × 16 dims × 2 bytes = 256 KiB.
    assert!(text.contains("KV cache 256.0 KiB"), "{text}");
}

#[test]
fn inspect_groups_a_folders_split_gguf_and_names_the_engine() {
    let dir = tempfile::tempdir().expect("temp dir");
    let models = dir.path().join("m");
    std::fs::create_dir_all(&models).expect("mkdir");
    for part in [
        "tiny-split-Q8_0-00001-of-00002.gguf",
        "tiny-split-Q8_0-00002-of-00002.gguf",
    ] {
        std::fs::copy(format!("{FIXTURES}/{part}"), models.join(part)).expect("copy");
    }
    let out = command(dir.path())
        .args(["inspect", "m"])
        .output()
        .expect("run inspect");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("GGUF Q8_0"), "{text}");
    assert!(text.contains("split in 2 parts"), "{text}");
    assert!(text.contains("engine: llamacpp"), "{text}");
}

#[test]
fn inspect_refuses_a_file_that_is_not_gguf_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("fake.gguf"), b"not a model at all").expect("write");
    let out = command(dir.path())
        .env("RUST_BACKTRACE", "0")
        .args(["inspect", "fake.gguf"])
        .output()
        .expect("run inspect");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a GGUF file"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[tokio::test]
async fn pull_downloads_and_verifies_a_repos_files_from_the_hub() {
    use modelplane_hub::fixture::{FixtureHub, RepoSpec};

    let hub = FixtureHub::start().await;
    hub.add_repo("TheOrg/Tiny-GGUF", RepoSpec::default());
    let model = std::fs::read(format!("{FIXTURES}/tiny_llama.gguf")).expect("fixture");
    hub.add_file("TheOrg/Tiny-GGUF", "tiny.Q8_0.gguf", model.clone(), true);
    hub.add_file("TheOrg/Tiny-GGUF", "README.md", b"# tiny".to_vec(), false);
    let dir = tempfile::tempdir().expect("temp dir");
    let base = dir.path().join("models");
    let out = tokio::process::Command::from(command(dir.path()))
        .env("HF_ENDPOINT", &hub.base_url)
        .env("MODELPLANE_LOCAL__BASE_DIR", &base)
        .env("MODELPLANE_LOCAL__DATA_DIR", dir.path().join("data"))
        .args(["pull", "TheOrg/Tiny-GGUF", "--include", "*.gguf"])
        .output()
        .await
        .expect("run pull");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("1 files"), "{text}");
    assert!(text.contains("(1 verified by SHA-256)"), "{text}");
    let got = std::fs::read(base.join("TheOrg/Tiny-GGUF/tiny.Q8_0.gguf")).expect("downloaded");
    assert_eq!(got, model);
    assert!(
        !base.join("TheOrg/Tiny-GGUF/README.md").exists(),
        "only what --include names"
    );

    // A repo the Hub does not have: a clear error, non-zero exit.
    let out = tokio::process::Command::from(command(dir.path()))
        .env("HF_ENDPOINT", &hub.base_url)
        .env("MODELPLANE_LOCAL__BASE_DIR", &base)
        .env("RUST_BACKTRACE", "0")
        .args(["pull", "TheOrg/Missing"])
        .output()
        .await
        .expect("run pull");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TheOrg/Missing"), "{err}");
}
