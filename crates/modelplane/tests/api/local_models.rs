//! Local model files end to end: the base directory, folder inspection,
//! GGUF metadata, VRAM estimates, the Hugging Face Hub (a fixture server
//! speaking its wire format: search, range probes, configs, 404, 429),
//! downloads (resumed after a cut and after a restart, checksum mismatch
//! quarantined), rescans, adapters, and the paths that must not escape.
//!
//! The model files are real: written by the `gguf` and `safetensors` Python
//! packages (crates/formats/tests/fixtures/make_fixtures.py).

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::StatusCode;
use modelplane_hub::fixture::{FixtureHub, RepoSpec};
use serde_json::{json, Value};

use crate::helpers::{assert_error, Backend, TestApp};

const TINY_LLAMA: &[u8] = include_bytes!("../../../formats/tests/fixtures/tiny_llama.gguf");
const SPLIT_1: &[u8] =
    include_bytes!("../../../formats/tests/fixtures/tiny-split-Q8_0-00001-of-00002.gguf");
const SPLIT_2: &[u8] =
    include_bytes!("../../../formats/tests/fixtures/tiny-split-Q8_0-00002-of-00002.gguf");
const ST_1: &[u8] =
    include_bytes!("../../../formats/tests/fixtures/model-00001-of-00002.safetensors");
const ST_2: &[u8] =
    include_bytes!("../../../formats/tests/fixtures/model-00002-of-00002.safetensors");
const LLAMA_CONFIG: &[u8] = include_bytes!("../../../formats/tests/fixtures/config_llama3_8b.json");
const LORA_GGUF: &[u8] = include_bytes!("../../../formats/tests/fixtures/tiny_lora.gguf");
const LORA_ST: &[u8] = include_bytes!("../../../formats/tests/fixtures/adapter_model.safetensors");
const LORA_CONFIG: &[u8] = include_bytes!("../../../formats/tests/fixtures/adapter_config.json");

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mp-{tag}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(path, bytes).expect("write fixture");
}

/// Sets the base directory to a fresh folder and returns it.
async fn with_base_dir(app: &TestApp) -> PathBuf {
    let base = temp_dir("models");
    let (status, body) = app
        .put(
            "/api/v1/admin/models/base-dir",
            json!({"path": base.display().to_string()}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["configured"], true);
    std::fs::canonicalize(base).expect("canonical")
}

/// A folder with everything: a single GGUF, a split GGUF, safetensors
/// shards with their config, and a file that claims to be GGUF but is not.
fn mixed_folder(dir: &Path) {
    write(dir, "tiny-llama.Q8_0.gguf", TINY_LLAMA);
    write(dir, "tiny-split-Q8_0-00001-of-00002.gguf", SPLIT_1);
    write(dir, "tiny-split-Q8_0-00002-of-00002.gguf", SPLIT_2);
    write(dir, "model-00001-of-00002.safetensors", ST_1);
    write(dir, "model-00002-of-00002.safetensors", ST_2);
    write(dir, "config.json", LLAMA_CONFIG);
    write(dir, "broken-Q4_K_M.gguf", b"GGUF\x03\x00\x00\x00 truncated");
}

async fn base_dir_folders_and_inspection(app: TestApp) {
    let (status, before) = app.get("/api/v1/admin/models/base-dir").await;
    assert_eq!(status, StatusCode::OK, "{before}");
    assert_eq!(before["configured"], false);
    let base = with_base_dir(&app).await;
    mixed_folder(&base.join("llama"));
    write(&base.join("TheOrg/gguf-only"), "only.Q8_0.gguf", TINY_LLAMA);
    std::fs::create_dir_all(base.join("empty")).expect("mkdir");

    let (status, listed) = app.get("/api/v1/admin/models/local-folders").await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let paths: Vec<&str> = listed["folders"]
        .as_array()
        .expect("folders")
        .iter()
        .map(|f| f["path"].as_str().expect("path"))
        .collect();
    assert!(paths.contains(&"llama"), "{listed}");
    assert!(paths.contains(&"TheOrg/gguf-only"), "{listed}");
    assert!(!paths.contains(&"empty"), "{listed}");

    let (status, i) = app
        .get("/api/v1/admin/models/inspect-folder?path=llama")
        .await;
    assert_eq!(status, StatusCode::OK, "{i}");
    assert_eq!(i["has_gguf"], true);
    assert_eq!(i["has_safetensors"], true);
    let groups = i["gguf_groups"].as_array().expect("groups");
    let split = groups
        .iter()
        .find(|g| g["is_multipart"] == true)
        .expect("split group");
    assert_eq!(split["files"].as_array().expect("files").len(), 2);
    assert_eq!(split["status"], "ready");
    assert_eq!(split["quant_type"], "Q8_0");
    let single = groups
        .iter()
        .find(|g| {
            g["files"]
                .as_array()
                .is_some_and(|f| f.iter().any(|n| n == "tiny-llama.Q8_0.gguf"))
        })
        .expect("single group");
    assert_eq!(single["metadata"]["architecture"], "llama");
    assert_eq!(single["metadata"]["context_length"], 2048);
    assert_eq!(single["metadata"]["block_count"], 1);
    assert_eq!(single["metadata"]["attention_head_count"], 4);
    assert_eq!(single["metadata"]["attention_head_count_kv"], 2);
    assert_eq!(single["metadata"]["embedding_length"], 64);
    assert_eq!(i["safetensor_info"]["architecture"], "LlamaForCausalLM");
    assert_eq!(i["safetensor_info"]["file_count"], 2);
    assert_eq!(i["safetensor_info"]["num_layers"], 32);
    assert_eq!(i["engine_recommendation"]["recommended_engine"], "vllm");
    assert_eq!(i["engine_recommendation"]["has_multipart_gguf"], true);
    assert_eq!(i["gguf_validation"]["invalid_files"], 1, "{i}");
    assert_eq!(
        i["gguf_validation"]["errors"][0]["file"],
        "broken-Q4_K_M.gguf"
    );

    let (status, g) = app
        .get("/api/v1/admin/models/inspect-folder?path=TheOrg/gguf-only")
        .await;
    assert_eq!(status, StatusCode::OK, "{g}");
    assert_eq!(g["engine_recommendation"]["recommended_engine"], "llamacpp");
    assert_eq!(g["engine_recommendation"]["recommended_format"], "gguf");

    // A file is not a folder; a missing folder is 404.
    assert_error(
        &app.get("/api/v1/admin/models/inspect-folder?path=llama/config.json")
            .await,
        StatusCode::BAD_REQUEST,
        "not_a_folder",
    );
    assert_error(
        &app.get("/api/v1/admin/models/inspect-folder?path=nope")
            .await,
        StatusCode::NOT_FOUND,
        "path_not_found",
    );
    // Relative base dirs are refused.
    assert_error(
        &app.put("/api/v1/admin/models/base-dir", json!({"path": "models"}))
            .await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    );
}

async fn paths_cannot_leave_the_base_dir(app: TestApp) {
    let base = with_base_dir(&app).await;
    let outside = temp_dir("outside");
    write(&outside, "secret.gguf", TINY_LLAMA);
    std::os::unix::fs::symlink(&outside, base.join("escape")).expect("symlink");
    std::os::unix::fs::symlink(outside.join("secret.gguf"), base.join("linked.gguf"))
        .expect("symlink");
    for path in ["../", "..%2F..%2Fetc", "%2Fetc", "a%2F..%2F..%2Fb"] {
        let got = app
            .get(&format!("/api/v1/admin/models/inspect-folder?path={path}"))
            .await;
        assert_error(&got, StatusCode::BAD_REQUEST, "validation_error");
    }
    assert_error(
        &app.get("/api/v1/admin/models/inspect-folder?path=escape")
            .await,
        StatusCode::BAD_REQUEST,
        "path_outside_base_dir",
    );
    assert_error(
        &app.get("/api/v1/admin/models/gguf-metadata?path=linked.gguf")
            .await,
        StatusCode::BAD_REQUEST,
        "path_outside_base_dir",
    );
    assert_error(
        &app.post(
            "/api/v1/vram-estimate",
            json!({"path": "escape/secret.gguf"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "path_outside_base_dir",
    );
    // The server's disk is the platform's: an org admin may not read it.
    let (_, admin) = app.org_with_admin("tenant").await;
    let got = app
        .call(
            reqwest::Method::GET,
            "/api/v1/admin/models/local-folders",
            Some(&admin),
            None,
        )
        .await;
    assert_error(&got, StatusCode::FORBIDDEN, "forbidden");
    let got = app
        .call(
            reqwest::Method::PUT,
            "/api/v1/admin/models/base-dir",
            Some(&admin),
            Some(json!({"path": "/tmp"})),
        )
        .await;
    assert_error(&got, StatusCode::FORBIDDEN, "forbidden");
}

async fn gguf_metadata_in_the_seed_shape(app: TestApp) {
    let base = with_base_dir(&app).await;
    write(&base, "m/tiny.gguf", TINY_LLAMA);
    write(&base, "m/notes.txt", b"not a model");
    let (status, m) = app
        .get("/api/v1/admin/models/gguf-metadata?path=m/tiny.gguf")
        .await;
    assert_eq!(status, StatusCode::OK, "{m}");
    assert_eq!(m["version"], 3);
    assert_eq!(m["general"]["architecture"], "llama");
    assert_eq!(m["general"]["name"], "tiny-llama-test");
    assert_eq!(m["general"]["architecture_supported"], true);
    assert_eq!(m["general"]["file_type"], 7);
    assert_eq!(m["general"]["quantization"], "Q8_0");
    assert_eq!(m["model"]["context_length"], 2048);
    assert_eq!(m["model"]["head_count_kv"], 2);
    assert_eq!(m["model"]["rope_freq_base"], 500000.0);
    assert_eq!(m["tokenizer"]["model"], "gpt2");
    assert_eq!(m["tokenizer"]["bos_token_id"], 1);
    assert_eq!(m["tokenizer"]["eos_token_id"], 2);
    assert!(m["tensors"]["count"].as_u64().expect("count") >= 3, "{m}");
    let raw = m["raw"].as_object().expect("raw");
    assert_eq!(raw["test.string"], "héllo wörld ✓");
    assert_eq!(raw["test.nested"], json!([[1, 2], [3, 4, 5]]));
    assert!(
        !raw.contains_key("tokenizer.ggml.tokens"),
        "vocabulary left out"
    );
    assert!(
        !raw.contains_key("tokenizer.ggml.merges"),
        "merges left out"
    );

    assert_error(
        &app.get("/api/v1/admin/models/gguf-metadata?path=m/notes.txt")
            .await,
        StatusCode::BAD_REQUEST,
        "not_gguf",
    );
    assert_error(
        &app.get("/api/v1/admin/models/gguf-metadata?path=m").await,
        StatusCode::BAD_REQUEST,
        "not_gguf",
    );
    assert_error(
        &app.get("/api/v1/admin/models/gguf-metadata").await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    );
}

async fn vram_estimates_follow_the_formula(app: TestApp) {
    let base = with_base_dir(&app).await;
    write(&base, "m/tiny.gguf", TINY_LLAMA);
    mixed_folder(&base.join("st"));
    std::fs::remove_file(base.join("st/tiny-llama.Q8_0.gguf")).expect("rm");
    // tiny_llama: 1 layer, 2 KV heads, head dimension 64 / 4 = 16, context 2048.
    // KV cache at f16: 2 × 1 × 2048 × 1 × 2 × 16 × 2 bytes = 262,144.
    let (status, e) = app
        .post(
            "/api/v1/vram-estimate",
            json!({"path": "m/tiny.gguf", "gpu_vram_bytes": 8u64 << 30}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{e}");
    assert_eq!(e["kv_cache_bytes"], 262_144, "{e}");
    assert_eq!(e["layers"], 1);
    assert_eq!(e["kv_heads"], 2);
    assert_eq!(e["head_dim"], 16);
    assert_eq!(e["context_length"], 2048);
    assert_eq!(e["fits"], true);
    assert_eq!(e["gpu_vram_source"], "request");
    let weights = e["weights_bytes"].as_u64().expect("weights");
    assert!(weights > 0 && weights < TINY_LLAMA.len() as u64, "{e}");
    assert_eq!(
        e["total_bytes"].as_u64(),
        Some(weights + 262_144 + e["overhead_bytes"].as_u64().expect("overhead"))
    );
    // 4096 tokens, 2 sequences, q8_0 cache (34 bytes per 32 elements):
    // 2 × 1 × 4096 × 2 × 2 × 16 = 524,288 elements × 34/32 = 557,056 bytes.
    let (status, e) = app
        .post(
            "/api/v1/vram-estimate",
            json!({"path": "m/tiny.gguf", "context_length": 4096, "parallel": 2,
                   "kv_cache_type": "q8_0", "gpu_vram_bytes": 1024}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{e}");
    assert_eq!(e["kv_cache_bytes"], 557_056, "{e}");
    assert_eq!(e["fits"], false);
    assert!(
        !e["warnings"].as_array().expect("warnings").is_empty(),
        "context past the model's and not fitting both warn: {e}"
    );
    // A safetensors folder: shape from config.json (Llama 3 8B: 32 layers,
    // 8 KV heads, 128 head dim), weights from the tensor data present.
    let (status, e) = app
        .post(
            "/api/v1/vram-estimate",
            json!({"path": "st", "context_length": 8192, "gpu_vram_bytes": 80u64 << 30}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{e}");
    assert_eq!(e["kv_cache_bytes"], 1_073_741_824u64, "{e}");
    assert_eq!(e["source"], "safetensors");
    // Bad input.
    assert_error(
        &app.post("/api/v1/vram-estimate", json!({})).await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    );
    assert_error(
        &app.post(
            "/api/v1/vram-estimate",
            json!({"path": "m/tiny.gguf", "repo_id": "a/b"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    );
    assert_error(
        &app.post(
            "/api/v1/vram-estimate",
            json!({"path": "m/tiny.gguf", "kv_cache_type": "q3"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    );
    assert_error(
        &app.post(
            "/api/v1/vram-estimate",
            json!({"path": "m/tiny.gguf", "tensor_parallel_size": 0}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    );
}

/// A fixture Hub holding a GGUF repo (a single file in two quantisations
/// and a split one) and a safetensors repo.
async fn hub() -> FixtureHub {
    let hub = FixtureHub::start().await;
    hub.add_repo(
        "TheOrg/Tiny-GGUF",
        RepoSpec {
            downloads: 5000,
            likes: 12,
            tags: vec!["gguf".into(), "llama".into()],
            library_name: Some("gguf".into()),
            gated: false,
        },
    );
    hub.add_file(
        "TheOrg/Tiny-GGUF",
        "tiny.Q8_0.gguf",
        TINY_LLAMA.to_vec(),
        true,
    );
    let mut bigger = TINY_LLAMA.to_vec();
    bigger.extend(std::iter::repeat_n(0u8, 4096));
    hub.add_file("TheOrg/Tiny-GGUF", "tiny.F16.gguf", bigger, true);
    hub.add_file(
        "TheOrg/Tiny-GGUF",
        "tiny-split-Q8_0-00001-of-00002.gguf",
        SPLIT_1.to_vec(),
        true,
    );
    hub.add_file(
        "TheOrg/Tiny-GGUF",
        "tiny-split-Q8_0-00002-of-00002.gguf",
        SPLIT_2.to_vec(),
        true,
    );
    hub.add_file("TheOrg/Tiny-GGUF", "README.md", b"# tiny".to_vec(), false);
    hub.add_repo(
        "TheOrg/Tiny-ST",
        RepoSpec {
            downloads: 10,
            tags: vec!["safetensors".into()],
            library_name: Some("transformers".into()),
            ..RepoSpec::default()
        },
    );
    hub.add_file(
        "TheOrg/Tiny-ST",
        "config.json",
        LLAMA_CONFIG.to_vec(),
        false,
    );
    hub.set_model_field(
        "TheOrg/Tiny-ST",
        "safetensors",
        json!({"parameters": {"BF16": 8_030_261_248u64}, "total": 8_030_261_248u64}),
    );
    hub
}

async fn spawn_with_hub(backend: Backend, hub: &FixtureHub) -> Option<TestApp> {
    let url = hub.base_url.clone();
    TestApp::spawn_with(backend, move |c| {
        c.local.hf_endpoint = Some(url);
        c.local.hf_max_attempts = Some(3);
        c.local.hf_backoff_ms = Some(10);
        c.local.hf_timeout_secs = Some(2);
    })
    .await
}

async fn hub_search_probe_and_config(backend: Backend) {
    let hub = hub().await;
    let Some(app) = spawn_with_hub(backend, &hub).await else {
        return;
    };
    let (status, found) = app
        .get(&format!(
            // Q8_0 (23,072 B) fits with its 20 % margin, F16 (27,168 B) does not.
            "/api/v1/admin/hf/search?query=tiny&gpu_vram_bytes={}",
            30_000
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    let results = found.as_array().expect("array");
    assert_eq!(results.len(), 1, "only GGUF repos: {found}");
    let r = &results[0];
    assert_eq!(r["repo_id"], "TheOrg/Tiny-GGUF");
    assert_eq!(r["downloads"], 5000);
    let variants = r["variants"].as_array().expect("variants");
    assert_eq!(variants.len(), 3, "{r}");
    let split = variants
        .iter()
        .find(|v| v["is_multipart"] == true)
        .expect("split variant");
    assert_eq!(
        split["size_bytes"].as_u64(),
        Some((SPLIT_1.len() + SPLIT_2.len()) as u64)
    );
    // F16 is bigger than the GPU allows; the best that fits is Q8_0.
    assert_eq!(r["recommended_variant"], "Q8_0", "{r}");
    assert_eq!(r["fits_vram"], true);

    hub.clear_requests();
    let (status, p) = app
        .get("/api/v1/admin/hf/probe?repo_id=TheOrg/Tiny-GGUF&filename=tiny.Q8_0.gguf")
        .await;
    assert_eq!(status, StatusCode::OK, "{p}");
    assert_eq!(p["size_bytes"].as_u64(), Some(TINY_LLAMA.len() as u64));
    assert_eq!(p["metadata"]["architecture"], "llama");
    assert_eq!(p["metadata"]["block_count"], 1);
    assert_eq!(p["header"]["general"]["name"], "tiny-llama-test");
    assert_eq!(p["is_multipart"], false);
    assert_eq!(
        p["sha256"].as_str(),
        hub.sha256("TheOrg/Tiny-GGUF", "tiny.Q8_0.gguf").as_deref()
    );
    let content: Vec<_> = hub
        .requests()
        .into_iter()
        .filter(|r| r.is_content_get())
        .collect();
    assert!(!content.is_empty());
    assert!(
        content.iter().all(|r| r.range.is_some()),
        "the probe reads by ranges only: {content:?}"
    );

    let (status, p) = app
        .get("/api/v1/admin/hf/probe?repo_id=TheOrg/Tiny-GGUF&filename=tiny-split-Q8_0-00001-of-00002.gguf")
        .await;
    assert_eq!(status, StatusCode::OK, "{p}");
    assert_eq!(p["is_multipart"], true);
    assert_eq!(p["shards"].as_array().expect("shards").len(), 2);

    assert_error(
        &app.get("/api/v1/admin/hf/probe?repo_id=TheOrg/Tiny-GGUF&filename=README.md")
            .await,
        StatusCode::BAD_REQUEST,
        "not_gguf",
    );
    assert_error(
        &app.get("/api/v1/admin/hf/probe?repo_id=TheOrg/Nope&filename=x.gguf")
            .await,
        StatusCode::NOT_FOUND,
        "hub_repo_not_found",
    );
    assert_error(
        &app.get("/api/v1/admin/hf/probe?repo_id=TheOrg/Tiny-GGUF&filename=missing.gguf")
            .await,
        StatusCode::NOT_FOUND,
        "hub_file_not_found",
    );
    assert_error(
        &app.get("/api/v1/admin/hf/probe?repo_id=..%2Fx&filename=a.gguf")
            .await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    );

    let (status, c) = app
        .get("/api/v1/admin/models/hf-config?repo_id=TheOrg/Tiny-ST")
        .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["architecture"], "LlamaForCausalLM");
    assert_eq!(c["num_layers"], 32);
    assert_eq!(c["num_key_value_heads"], 8);
    assert_eq!(c["head_dim"], 128);
    assert_eq!(c["config"]["model_type"], "llama");
    assert_error(
        &app.get("/api/v1/admin/models/hf-config?repo_id=TheOrg/Tiny-GGUF")
            .await,
        StatusCode::NOT_FOUND,
        "hub_file_not_found",
    );

    // A remote estimate: the GGUF header by ranges, or config.json with the
    // safetensors parameter count (8.03 B × 2 bytes).
    let (status, e) = app
        .post(
            "/api/v1/vram-estimate",
            json!({"repo_id": "TheOrg/Tiny-GGUF", "filename": "tiny.Q8_0.gguf"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{e}");
    assert_eq!(e["kv_cache_bytes"], 262_144);
    let (status, e) = app
        .post(
            "/api/v1/vram-estimate",
            json!({"repo_id": "TheOrg/Tiny-ST", "context_length": 8192}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{e}");
    assert_eq!(e["weights_bytes"], 16_060_522_496u64);
    assert_eq!(e["kv_cache_bytes"], 1_073_741_824u64);

    // The Hub rate-limiting us: 503 with its Retry-After, after our retries.
    hub.fail_next("/api/models", 429, 10, Some(55));
    let resp = app
        .client
        .get(app.url("/api/v1/admin/hf/search?query=tiny"))
        .bearer_auth(&app.token)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        resp.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("55")
    );
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["code"], "upstream_rate_limited");
}

/// Polls a download until it leaves `queued`/`running`.
async fn wait_done(app: &TestApp, id: &str) -> Value {
    for _ in 0..400 {
        let (status, d) = app.get(&format!("/api/v1/admin/downloads/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{d}");
        if d["status"] != "queued" && d["status"] != "running" {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("download {id} did not finish");
}

async fn downloads_resume_verify_and_quarantine(backend: Backend) {
    let hub = hub().await;
    let Some(app) = spawn_with_hub(backend, &hub).await else {
        return;
    };
    let base = with_base_dir(&app).await;
    // The connection breaks after 5000 bytes: the download resumes with a
    // range request and still verifies.
    hub.cut_after("tiny.Q8_0.gguf", 5000);
    let (status, d) = app
        .post(
            "/api/v1/admin/downloads",
            json!({"repo_id": "TheOrg/Tiny-GGUF", "files": ["tiny.Q8_0.gguf"]}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{d}");
    assert_eq!(d["status"], "queued");
    assert_eq!(d["source"], "huggingface");
    assert_eq!(d["bytes_total"].as_u64(), Some(TINY_LLAMA.len() as u64));
    let id = d["id"].as_str().expect("id").to_owned();
    let done = wait_done(&app, &id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["files"][0]["verified"], true);
    assert_eq!(done["files"][0]["status"], "done");
    assert_eq!(done["bytes_done"].as_u64(), Some(TINY_LLAMA.len() as u64));
    let file = base.join("TheOrg/Tiny-GGUF/tiny.Q8_0.gguf");
    assert_eq!(std::fs::read(&file).expect("downloaded"), TINY_LLAMA);
    assert!(hub
        .requests()
        .iter()
        .any(|r| r.range.as_deref() == Some("bytes=5000-")));
    // It is now a local folder, inspected.
    let (status, i) = app
        .get("/api/v1/admin/models/inspect-folder?path=TheOrg/Tiny-GGUF")
        .await;
    assert_eq!(status, StatusCode::OK, "{i}");
    assert_eq!(i["gguf_groups"][0]["metadata"]["architecture"], "llama");

    // Naming one part of a split file brings both parts.
    let (status, d) = app
        .post(
            "/api/v1/admin/downloads",
            json!({"repo_id": "TheOrg/Tiny-GGUF", "files": ["tiny-split-Q8_0-00001-of-00002.gguf"],
                   "dest": "split"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{d}");
    assert_eq!(d["files"].as_array().expect("files").len(), 2);
    let done = wait_done(&app, d["id"].as_str().expect("id")).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(base
        .join("split/tiny-split-Q8_0-00002-of-00002.gguf")
        .is_file());

    // The Hub publishes a hash the bytes do not have: the file is
    // quarantined, never placed under its name, and the error says why.
    hub.corrupt_lfs_hash("TheOrg/Tiny-GGUF", "tiny.F16.gguf");
    let (status, d) = app
        .post(
            "/api/v1/admin/downloads",
            json!({"repo_id": "TheOrg/Tiny-GGUF", "include": ["*F16*"], "dest": "bad"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{d}");
    let failed = wait_done(&app, d["id"].as_str().expect("id")).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let error = failed["error"].as_str().expect("error");
    assert!(
        error.to_lowercase().contains("sha-256") || error.to_lowercase().contains("checksum"),
        "{error}"
    );
    assert_eq!(failed["files"][0]["status"], "failed");
    assert!(!base.join("bad/tiny.F16.gguf").exists());
    assert!(base.join("bad/tiny.F16.gguf.corrupt").exists());

    // A finished download cannot be cancelled; unknown ones are 404.
    assert_error(
        &app.post(&format!("/api/v1/admin/downloads/{id}/cancel"), json!({}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_status_transition",
    );
    assert_error(
        &app.post(
            "/api/v1/admin/downloads/0190b7a4-0000-7000-8000-000000000000/cancel",
            json!({}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "download_not_found",
    );
    // Files the repo lacks, repos the Hub lacks, unsafe names: refused up front.
    assert_error(
        &app.post(
            "/api/v1/admin/downloads",
            json!({"repo_id": "TheOrg/Tiny-GGUF", "files": ["nope.gguf"]}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "hub_file_not_found",
    );
    assert_error(
        &app.post("/api/v1/admin/downloads", json!({"repo_id": "TheOrg/Nope"}))
            .await,
        StatusCode::NOT_FOUND,
        "hub_repo_not_found",
    );
    assert_error(
        &app.post(
            "/api/v1/admin/downloads",
            json!({"repo_id": "TheOrg/Tiny-GGUF", "dest": "../../etc"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    );
    let (status, list) = app.get("/api/v1/admin/downloads?limit=2").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["total"], 3);
    assert_eq!(list["downloads"].as_array().expect("downloads").len(), 2);
    assert_eq!(list["downloads"][0]["status"], "failed", "newest first");
}

async fn a_download_survives_a_restart_and_a_cancel(backend: Backend) {
    let hub = hub().await;
    let url = hub.base_url.clone();
    // A read timeout longer than the test: the stalled transfer is still
    // waiting for bytes when the server stops.
    let Some(app) = TestApp::spawn_with(backend, move |c| {
        c.local.hf_endpoint = Some(url);
        c.local.hf_max_attempts = Some(3);
        c.local.hf_backoff_ms = Some(10);
        c.local.hf_timeout_secs = Some(60);
    })
    .await
    else {
        return;
    };
    let base = with_base_dir(&app).await;
    // The body stalls after 7000 bytes: the download is running when the
    // server stops.
    hub.stall_after("tiny.Q8_0.gguf", 7000);
    let (status, d) = app
        .post(
            "/api/v1/admin/downloads",
            json!({"repo_id": "TheOrg/Tiny-GGUF", "files": ["tiny.Q8_0.gguf"]}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{d}");
    let id = d["id"].as_str().expect("id").to_owned();
    let mut running = Value::Null;
    for _ in 0..250 {
        running = app.get(&format!("/api/v1/admin/downloads/{id}")).await.1;
        if running["bytes_done"].as_u64() >= Some(7000) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(running["status"], "running", "{running}");
    assert_eq!(running["bytes_done"], 7000, "live progress: {running}");
    let final_name = base.join("TheOrg/Tiny-GGUF/tiny.Q8_0.gguf");
    assert!(!final_name.exists(), "no half file under the final name");
    hub.clear_requests();
    let app = app.restart().await;
    let done = wait_done(&app, &id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(std::fs::read(&final_name).expect("file"), TINY_LLAMA);
    assert!(
        hub.requests()
            .iter()
            .any(|r| r.range.as_deref() == Some("bytes=7000-")),
        "resumed from the partial file: {:?}",
        hub.requests()
    );

    // Cancel a running download: the partial file stays.
    hub.stall_after("tiny.F16.gguf", 3000);
    let (status, d) = app
        .post(
            "/api/v1/admin/downloads",
            json!({"repo_id": "TheOrg/Tiny-GGUF", "files": ["tiny.F16.gguf"], "dest": "c"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{d}");
    let id = d["id"].as_str().expect("id").to_owned();
    let part = base.join("c/tiny.F16.gguf.part");
    for _ in 0..200 {
        if std::fs::metadata(&part).is_ok_and(|m| m.len() >= 3000) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, c) = app
        .post(&format!("/api/v1/admin/downloads/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["status"], "cancelled");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, after) = app.get(&format!("/api/v1/admin/downloads/{id}")).await;
    assert_eq!(after["status"], "cancelled", "{after}");
    assert!(part.exists(), "the partial file is kept for a resume");
    assert!(!base.join("c/tiny.F16.gguf").exists());
}

async fn rescan_picks_up_files_placed_by_hand(app: TestApp) {
    let base = with_base_dir(&app).await;
    let (status, r) = app.post("/api/v1/admin/models/rescan", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["count"], 0);
    write(&base, "hand/placed.Q8_0.gguf", TINY_LLAMA);
    let (_, r) = app.post("/api/v1/admin/models/rescan", json!({})).await;
    assert_eq!(r["status"], "ok");
    assert_eq!(r["count"], 1);
    assert_eq!(r["folders_updated"], json!(["hand"]));
    // Unchanged: nothing to update.
    let (_, r) = app.post("/api/v1/admin/models/rescan", json!({})).await;
    assert_eq!(r["folders_updated"], json!([]));
    std::fs::remove_dir_all(base.join("hand")).expect("rm");
    let (_, r) = app.post("/api/v1/admin/models/rescan", json!({})).await;
    assert_eq!(r["folders_removed"], json!(["hand"]));
    assert_eq!(r["count"], 0);
}

async fn adapters_register_list_and_unregister(app: TestApp) {
    let base = with_base_dir(&app).await;
    let data_dir = app.config.local.data_dir.clone().expect("data dir");
    let adapters = data_dir.join("adapters");
    write(&adapters, "tiny-lora.gguf", LORA_GGUF);
    write(&adapters, "peft/adapter_model.safetensors", LORA_ST);
    write(&adapters, "peft/adapter_config.json", LORA_CONFIG);
    write(&base, "m/lora.gguf", LORA_GGUF);

    // Rank and alpha read from the GGUF adapter (alpha 16, rank 8).
    let (status, created) = app
        .post(
            "/api/v1/admin/adapters",
            json!({"id": "my-adapter", "name": "My Adapter", "base_model": "tiny-llama",
                   "path": "tiny-lora.gguf"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["status"], "ok");
    assert_eq!(created["adapter"]["rank"], 8);
    assert_eq!(created["adapter"]["alpha"], 16.0);
    assert_eq!(created["adapter"]["path"], "tiny-lora.gguf");
    // PEFT: from adapter_config.json; given values win; no id → UUIDv7.
    let (status, peft) = app
        .post(
            "/api/v1/admin/adapters",
            json!({"name": "peft", "base_model": "llama-3.2-1b", "alpha": 64.0,
                   "path": "peft/adapter_model.safetensors"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{peft}");
    let peft_id = peft["adapter"]["id"].as_str().expect("id").to_owned();
    assert!(uuid::Uuid::parse_str(&peft_id).is_ok(), "{peft}");
    assert_eq!(peft["adapter"]["alpha"], 64.0);
    assert!(peft["adapter"]["rank"].as_u64().is_some(), "{peft}");
    // An absolute path inside the models base directory is fine.
    let abs = base.join("m/lora.gguf").display().to_string();
    let (status, a) = app
        .post(
            "/api/v1/admin/adapters",
            json!({"name": "abs", "base_model": "x", "path": abs}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{a}");

    assert_error(
        &app.post(
            "/api/v1/admin/adapters",
            json!({"id": "my-adapter", "name": "again", "base_model": "x", "path": "tiny-lora.gguf"}),
        )
        .await,
        StatusCode::CONFLICT,
        "adapter_already_exists",
    );
    for path in ["../secret.gguf", "/etc/passwd"] {
        let got = app
            .post(
                "/api/v1/admin/adapters",
                json!({"name": "evil", "base_model": "x", "path": path}),
            )
            .await;
        assert!(
            got.0 == StatusCode::BAD_REQUEST,
            "{path}: {} {}",
            got.0,
            got.1
        );
    }
    assert_error(
        &app.post(
            "/api/v1/admin/adapters",
            json!({"name": "missing", "base_model": "x", "path": "missing.safetensors"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "path_not_found",
    );
    assert_error(
        &app.post(
            "/api/v1/admin/adapters",
            json!({"name": "r", "base_model": "x", "rank": 0, "path": "tiny-lora.gguf"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    );

    let (status, list) = app.get("/api/v1/admin/adapters").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["total"], 3);
    let (status, gone) = app.delete("/api/v1/admin/adapters/my-adapter").await;
    assert_eq!(status, StatusCode::OK, "{gone}");
    assert_eq!(gone["message"], "Adapter 'my-adapter' removed");
    assert!(adapters.join("tiny-lora.gguf").exists(), "the file stays");
    assert_error(
        &app.delete("/api/v1/admin/adapters/my-adapter").await,
        StatusCode::NOT_FOUND,
        "adapter_not_found",
    );
    let (_, list) = app.get("/api/v1/admin/adapters").await;
    assert_eq!(list["total"], 2);
    // Every write is in the audit trail.
    let (_, audit) = app.get("/api/v1/audit-events?entity_type=adapter").await;
    assert!(
        audit["events"].as_array().map_or(0, Vec::len) >= 4,
        "{audit}"
    );
}

crate::both_backends!(
    base_dir_folders_and_inspection,
    paths_cannot_leave_the_base_dir,
    gguf_metadata_in_the_seed_shape,
    vram_estimates_follow_the_formula,
    rescan_picks_up_files_placed_by_hand,
    adapters_register_list_and_unregister,
);

crate::both_backends_with!(
    hub_search_probe_and_config,
    downloads_resume_verify_and_quarantine,
    a_download_survives_a_restart_and_a_cancel,
);
