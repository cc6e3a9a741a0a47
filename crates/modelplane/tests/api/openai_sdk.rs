//! The gateway as the official `openai` Python SDK sees it: models, chat,
//! streaming chat (with and without usage), embeddings and errors, against
//! a local OpenAI-compatible fixture upstream. The SDK lives in the
//! virtualenv `.ci/run` creates (`target/pyenv`, or `MP_TEST_PYTHON`);
//! outside CI the test is skipped with a notice when it is missing.

use std::path::PathBuf;

use reqwest::StatusCode;
use serde_json::json;

use crate::gateway::openai_upstream;
use crate::helpers::TestApp;

fn python() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("MP_TEST_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/pyenv/bin/python");
    if venv.exists() {
        return Some(venv);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!(
            "CI=true but the openai SDK virtualenv is missing: run .ci/run, or set MP_TEST_PYTHON"
        );
    }
    eprintln!("NOTICE: no Python with the openai SDK (target/pyenv); skipping the SDK test");
    None
}

async fn the_official_openai_sdk_speaks_to_the_gateway(app: TestApp) {
    let Some(python) = python() else { return };
    let (base, _) = openai_upstream().await;
    for (name, model) in [
        ("chat-default", "gpt-4o"),
        ("embed", "text-embedding-3-small"),
    ] {
        let (status, body) = app
            .post("/api/v1/routes", json!({"name": name, "upstreams": [{"provider": "openai", "model": model, "base_url": base}]}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let token = app.key_with(&["gateway"], None).await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/openai_sdk.py");
    let out = tokio::process::Command::new(&python)
        .arg(&script)
        .env("MP_BASE_URL", app.url("/v1"))
        .env("MP_TOKEN", &token)
        .output()
        .await
        .expect("python runs");
    assert!(
        out.status.success(),
        "the SDK script failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("openai sdk: ok"));
}

crate::both_backends!(the_official_openai_sdk_speaks_to_the_gateway);
