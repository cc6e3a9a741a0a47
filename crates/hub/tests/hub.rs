//! The client against the fixture Hub, over real HTTP.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use modelplane_hub::fixture::{FixtureHub, RecordedRequest, RepoSpec};
use modelplane_hub::{DownloadRequest, HubClient, HubError, HubSettings, ProbeError, ProbeStep};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

const REPO: &str = "ggml-org/tiny-GGUF";

fn client(hub: &FixtureHub) -> HubClient {
    HubClient::new(hub.settings()).expect("a client")
}

fn client_with(hub: &FixtureHub, change: impl FnOnce(&mut HubSettings)) -> HubClient {
    let mut settings = hub.settings();
    change(&mut settings);
    HubClient::new(settings).expect("a client")
}

/// Deterministic bytes that do not repeat at small periods.
fn content(len: usize, seed: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut block = Sha256::digest([seed]);
    while out.len() < len {
        out.extend_from_slice(&block);
        block = Sha256::digest(block);
    }
    out.truncate(len);
    out
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn spec(downloads: u64, tags: &[&str]) -> RepoSpec {
    RepoSpec {
        downloads,
        likes: downloads / 10,
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        library_name: tags.first().map(|t| (*t).to_owned()),
        gated: false,
    }
}

fn request(file: &str, dest: &Path) -> DownloadRequest {
    DownloadRequest {
        repo: REPO.to_owned(),
        revision: "main".to_owned(),
        file: file.to_owned(),
        dest: dest.to_owned(),
        expected_size: None,
        expected_sha256: None,
    }
}

fn part_of(dest: &Path) -> PathBuf {
    PathBuf::from(format!("{}.part", dest.display()))
}

fn corrupt_of(dest: &Path) -> PathBuf {
    PathBuf::from(format!("{}.corrupt", dest.display()))
}

fn quiet(_: u64, _: Option<u64>) {}

fn content_gets(hub: &FixtureHub) -> Vec<RecordedRequest> {
    hub.requests()
        .into_iter()
        .filter(RecordedRequest::is_content_get)
        .collect()
}

fn cdn_gets(hub: &FixtureHub) -> Vec<RecordedRequest> {
    content_gets(hub)
        .into_iter()
        .filter(RecordedRequest::on_cdn)
        .collect()
}

/// A repo with one LFS model file and one regular config file.
async fn hub_with_model(model_len: usize) -> (FixtureHub, Vec<u8>) {
    let hub = FixtureHub::start().await;
    hub.add_repo(REPO, spec(100, &["gguf"]));
    let model = content(model_len, 1);
    hub.add_file(REPO, "tiny-Q4_K_M.gguf", model.clone(), true);
    hub.add_file(
        REPO,
        "config.json",
        br#"{"model_type":"gemma3"}"#.to_vec(),
        false,
    );
    (hub, model)
}

#[tokio::test]
async fn search_filters_sorts_and_follows_pages() {
    let hub = FixtureHub::start().await;
    hub.add_repo("ggml-org/llama-a-GGUF", spec(500, &["gguf"]));
    hub.add_repo(
        "TheBloke/Llama-b-GGUF",
        spec(900, &["gguf", "text-generation"]),
    );
    hub.add_repo("meta-llama/Llama-c", spec(1000, &["transformers"]));
    hub.add_repo("x/llama-d-GGUF", spec(100, &["gguf"]));
    hub.add_repo("x/other-GGUF", spec(5000, &["gguf"]));
    hub.add_repo(
        "x/llama-gated-GGUF",
        RepoSpec {
            gated: true,
            ..spec(50, &["gguf"])
        },
    );
    hub.set_search_page_size(2);
    let hub_client = client(&hub);

    let found = hub_client
        .search_models("llama", Some("gguf"), 10)
        .await
        .expect("search");
    let ids: Vec<&str> = found.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "TheBloke/Llama-b-GGUF",
            "ggml-org/llama-a-GGUF",
            "x/llama-d-GGUF",
            "x/llama-gated-GGUF"
        ]
    );
    let first = &found[0];
    assert_eq!(first.downloads, 900);
    assert_eq!(first.likes, 90);
    assert_eq!(first.tags, ["gguf", "text-generation"]);
    assert_eq!(first.library_name.as_deref(), Some("gguf"));
    assert_eq!(first.pipeline_tag.as_deref(), Some("text-generation"));
    assert!(first.last_modified.is_some());
    assert!(!first.gated && found[3].gated);

    let pages: Vec<String> = hub
        .requests()
        .into_iter()
        .map(|r| r.path_and_query)
        .collect();
    assert_eq!(pages.len(), 2, "{pages:?}");
    for expected in [
        "search=llama",
        "filter=gguf",
        "sort=downloads",
        "direction=-1",
        "limit=10",
        "expand%5B%5D=downloads",
        "expand%5B%5D=gated",
    ] {
        assert!(pages[0].contains(expected), "{expected} in {}", pages[0]);
    }
    assert!(pages[1].ends_with("cursor=2"), "{}", pages[1]);

    hub.clear_requests();
    let two = hub_client
        .search_models("llama", Some("gguf"), 2)
        .await
        .expect("search");
    assert_eq!(two.len(), 2);
    assert_eq!(hub.requests().len(), 1, "the first page had enough");

    let everything = hub_client
        .search_models("", None, 100)
        .await
        .expect("search");
    assert_eq!(everything[0].id, "x/other-GGUF");
    assert_eq!(everything.len(), 6);
    assert!(hub_client
        .search_models("llama", None, 0)
        .await
        .expect("search")
        .is_empty());
}

#[tokio::test]
async fn model_info_reads_siblings_revisions_and_summaries() {
    let (hub, _) = hub_with_model(1000).await;
    hub.set_model_field(
        REPO,
        "gguf",
        serde_json::json!({"total": 999885952u64, "architecture": "gemma3", "context_length": 32768}),
    );
    hub.add_repo("gpt2", spec(7, &["transformers"]));
    let hub_client = client(&hub);
    let commit = hub.commit(REPO).expect("a commit");

    let info = hub_client.model_info(REPO, "main").await.expect("info");
    assert_eq!(info.id, REPO);
    assert_eq!(info.sha.as_deref(), Some(commit.as_str()));
    assert_eq!(info.siblings, ["config.json", "tiny-Q4_K_M.gguf"]);
    assert!(!info.gated);
    assert_eq!(info.downloads, 100);
    assert_eq!(
        info.gguf.as_ref().and_then(|g| g.get("architecture")),
        Some(&serde_json::json!("gemma3"))
    );
    assert_eq!(info.safetensors, None);
    assert_eq!(info.raw["modelId"], REPO);

    let at_commit = hub_client.model_info(REPO, &commit).await.expect("info");
    assert_eq!(at_commit.siblings, info.siblings);
    let last = hub.requests().pop().expect("a request");
    assert_eq!(
        last.path_and_query,
        format!("/api/models/{REPO}/revision/{commit}")
    );

    let legacy = hub_client.model_info("gpt2", "main").await.expect("info");
    assert_eq!(legacy.id, "gpt2");

    match hub_client.model_info(REPO, "v9").await {
        Err(HubError::NotFound { what }) => assert!(what.starts_with("revision v9"), "{what}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(
        hub_client.model_info("nobody/none", "main").await,
        Err(HubError::NotFound {
            what: "repository nobody/none".to_owned()
        })
    );
}

#[tokio::test]
async fn list_files_follows_tree_pagination() {
    let hub = FixtureHub::start().await;
    let b = content(5000, 2);
    let c = content(7000, 3);
    hub.add_file(REPO, "a.txt", b"hello\n".to_vec(), false);
    hub.add_file(REPO, "dir/b.gguf", b.clone(), true);
    hub.add_file(REPO, "dir/sub/c.bin", c.clone(), true);
    hub.add_file(REPO, "z.json", b"{}".to_vec(), false);
    hub.set_tree_page_size(2);
    let files = client(&hub).list_files(REPO, "main").await.expect("tree");

    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["a.txt", "dir/b.gguf", "dir/sub/c.bin", "z.json"]);
    let a = &files[0];
    assert_eq!(a.size, 6);
    assert!(!a.is_lfs && a.sha256.is_none());
    // `git hash-object` of "hello\n".
    assert_eq!(
        a.blob_id.as_deref(),
        Some("ce013625030ba8dba906f756967f9e9ca394464a")
    );
    let lfs = &files[1];
    assert!(lfs.is_lfs);
    assert_eq!(lfs.size, 5000);
    assert_eq!(lfs.sha256.as_deref(), Some(sha256(&b).as_str()));
    assert_eq!(files[2].sha256.as_deref(), Some(sha256(&c).as_str()));

    let tree: Vec<String> = hub
        .requests()
        .into_iter()
        .map(|r| r.path_and_query)
        .collect();
    // Six entries (two directories) at two a page.
    assert_eq!(tree.len(), 3, "{tree:?}");
    assert_eq!(
        tree[0],
        format!("/api/models/{REPO}/tree/main?recursive=true")
    );
    assert!(tree[1].ends_with("cursor=2") && tree[2].ends_with("cursor=4"));

    assert!(matches!(
        client(&hub).list_files("nobody/none", "main").await,
        Err(HubError::NotFound { .. })
    ));
}

#[tokio::test]
async fn fetch_small_reads_whole_files_within_a_limit() {
    let (hub, model) = hub_with_model(3000).await;
    let hub_client = client(&hub);
    let config = hub_client
        .fetch_small(REPO, "main", "config.json", 16 * 1024 * 1024)
        .await
        .expect("config");
    assert_eq!(&config[..], br#"{"model_type":"gemma3"}"#);
    assert_eq!(
        hub_client.fetch_small(REPO, "main", "config.json", 5).await,
        Err(HubError::TooLarge { limit: 5 })
    );
    // An LFS file comes through the CDN redirect.
    let lfs = hub_client
        .fetch_small(REPO, "main", "tiny-Q4_K_M.gguf", 1 << 20)
        .await
        .expect("lfs file");
    assert_eq!(&lfs[..], &model[..]);
    assert!(matches!(
        hub_client.fetch_small(REPO, "main", "missing.json", 100).await,
        Err(HubError::NotFound { what }) if what.contains("missing.json")
    ));
}

#[tokio::test]
async fn file_meta_reads_the_lfs_redirect_without_following_it() {
    let (hub, model) = hub_with_model(4321).await;
    let hub_client = client(&hub);
    let commit = hub.commit(REPO).expect("commit");

    let lfs = hub_client
        .file_meta(REPO, "main", "tiny-Q4_K_M.gguf")
        .await
        .expect("meta");
    assert_eq!(lfs.size, Some(4321));
    assert_eq!(lfs.sha256.as_deref(), Some(sha256(&model).as_str()));
    assert_eq!(lfs.etag, lfs.sha256);
    assert_eq!(lfs.commit.as_deref(), Some(commit.as_str()));
    assert!(
        hub.requests()
            .iter()
            .all(|r| !r.on_cdn() && r.method == "HEAD"),
        "{:?}",
        hub.requests()
    );

    let regular = hub_client
        .file_meta(REPO, "main", "config.json")
        .await
        .expect("meta");
    let blob = client(&hub)
        .list_files(REPO, "main")
        .await
        .expect("tree")
        .into_iter()
        .find(|f| f.path == "config.json")
        .and_then(|f| f.blob_id);
    assert_eq!(regular.sha256, None);
    assert_eq!(regular.size, Some(23));
    assert_eq!(regular.etag, blob);
    assert_eq!(regular.commit.as_deref(), Some(commit.as_str()));

    assert!(matches!(
        hub_client.file_meta(REPO, "main", "nope.gguf").await,
        Err(HubError::NotFound { what }) if what.contains("nope.gguf")
    ));
}

#[tokio::test]
async fn read_range_asks_for_exact_bytes() {
    let (hub, model) = hub_with_model(1000).await;
    let hub_client = client(&hub);
    let got = hub_client
        .read_range(REPO, "main", "tiny-Q4_K_M.gguf", 10, 10)
        .await
        .expect("range");
    assert_eq!(&got[..], &model[10..20]);
    let gets = content_gets(&hub);
    assert_eq!(gets.len(), 2, "the resolve and the CDN hop: {gets:?}");
    assert!(gets
        .iter()
        .all(|r| r.range.as_deref() == Some("bytes=10-19")));

    let tail = hub_client
        .read_range(REPO, "main", "tiny-Q4_K_M.gguf", 995, 10)
        .await
        .expect("range");
    assert_eq!(&tail[..], &model[995..]);
    let past = hub_client
        .read_range(REPO, "main", "tiny-Q4_K_M.gguf", 5000, 10)
        .await
        .expect("range");
    assert!(past.is_empty());
    let regular = hub_client
        .read_range(REPO, "main", "config.json", 2, 4)
        .await
        .expect("range");
    assert_eq!(&regular[..], b"mode");
}

#[tokio::test]
async fn probe_prefix_grows_the_prefix_with_ranges_only() {
    let (hub, model) = hub_with_model(3 * 1024 * 1024 + 100).await;
    let hub_client = client(&hub);
    let need = 2_621_440u64; // 2.5 MiB
    let probed = hub_client
        .probe_prefix(
            REPO,
            "main",
            "tiny-Q4_K_M.gguf",
            64 << 20,
            |prefix: &[u8]| -> Result<String, ProbeStep<String>> {
                if (prefix.len() as u64) < need {
                    Err(ProbeStep::NeedMore(need))
                } else {
                    Ok(sha256(prefix))
                }
            },
        )
        .await
        .expect("probe");
    assert_eq!(probed.bytes_read, need);
    assert_eq!(probed.requests, 2);
    assert_eq!(probed.value, sha256(&model[..need as usize]));
    let ranges: Vec<Option<String>> = cdn_gets(&hub).into_iter().map(|r| r.range).collect();
    assert_eq!(
        ranges,
        [
            Some("bytes=0-1048575".to_owned()),
            Some("bytes=1048576-2621439".to_owned())
        ]
    );
    assert!(
        content_gets(&hub).iter().all(|r| r.range.is_some()),
        "no full GET: {:?}",
        hub.requests()
    );

    // Always one more byte: the prefix doubles until the file ends.
    hub.clear_requests();
    let short = hub_client
        .probe_prefix(REPO, "main", "tiny-Q4_K_M.gguf", 64 << 20, |p: &[u8]| {
            Err::<(), ProbeStep<String>>(ProbeStep::NeedMore(p.len() as u64 + 1))
        })
        .await;
    assert!(
        matches!(&short, Err(ProbeError::Hub(HubError::Malformed(m))) if m.contains("ends after")),
        "{short:?}"
    );
    let ranges: Vec<String> = cdn_gets(&hub).into_iter().filter_map(|r| r.range).collect();
    assert_eq!(
        ranges,
        [
            "bytes=0-1048575",
            "bytes=1048576-2097151",
            "bytes=2097152-4194303"
        ]
    );

    let too_large = hub_client
        .probe_prefix(REPO, "main", "tiny-Q4_K_M.gguf", 2 << 20, |_: &[u8]| {
            Err::<(), ProbeStep<String>>(ProbeStep::NeedMore(3 << 20))
        })
        .await;
    assert!(matches!(
        too_large,
        Err(ProbeError::Hub(HubError::TooLarge { limit })) if limit == 2 << 20
    ));
    let failed = hub_client
        .probe_prefix(REPO, "main", "tiny-Q4_K_M.gguf", 2 << 20, |_: &[u8]| {
            Err::<(), ProbeStep<&str>>(ProbeStep::Fail("bad magic"))
        })
        .await;
    assert!(matches!(failed, Err(ProbeError::Parse("bad magic"))));
}

#[tokio::test]
async fn download_fresh_files_verified_and_atomic() {
    let (hub, model) = hub_with_model(300_000).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let hub_client = client(&hub);
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = calls.clone();
    let progress = move |done: u64, total: Option<u64>| {
        seen.lock().expect("progress log").push((done, total));
    };

    let dest = dir.path().join("models/tiny/tiny-Q4_K_M.gguf");
    let outcome = hub_client
        .download_file(
            &DownloadRequest {
                expected_size: Some(300_000),
                expected_sha256: Some(sha256(&model).to_uppercase()),
                ..request("tiny-Q4_K_M.gguf", &dest)
            },
            &progress,
            &CancellationToken::new(),
        )
        .await
        .expect("download");
    assert_eq!(outcome.bytes, 300_000);
    assert_eq!(outcome.sha256, sha256(&model));
    assert_eq!(outcome.resumed_from, 0);
    assert!(outcome.verified);
    assert_eq!(std::fs::read(&dest).expect("the file"), model);
    assert!(!part_of(&dest).exists());
    let calls = calls.lock().expect("progress log").clone();
    assert_eq!(calls.last(), Some(&(300_000, Some(300_000))));
    assert!(calls.len() <= 3, "throttled: {calls:?}");

    // A regular file: nothing advertised to verify against.
    let config_dest = dir.path().join("config.json");
    let outcome = hub_client
        .download_file(
            &request("config.json", &config_dest),
            &quiet,
            &CancellationToken::new(),
        )
        .await
        .expect("download");
    assert!(!outcome.verified);
    assert_eq!(outcome.bytes, 23);

    // Without an expected digest, the Hub's advertised one is checked.
    let again = dir.path().join("again.gguf");
    let outcome = hub_client
        .download_file(
            &request("tiny-Q4_K_M.gguf", &again),
            &quiet,
            &CancellationToken::new(),
        )
        .await
        .expect("download");
    assert!(outcome.verified);
}

#[tokio::test]
async fn an_interrupted_download_resumes_with_a_range() {
    let (hub, model) = hub_with_model(250_000).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let dest = dir.path().join("tiny.gguf");
    let req = DownloadRequest {
        expected_sha256: Some(sha256(&model)),
        ..request("tiny-Q4_K_M.gguf", &dest)
    };

    hub.cut_after("tiny-Q4_K_M.gguf", 100_000);
    let once = client_with(&hub, |s| s.max_attempts = 1);
    let cut = once
        .download_file(&req, &quiet, &CancellationToken::new())
        .await;
    assert!(matches!(cut, Err(HubError::Transport(_))), "{cut:?}");
    assert!(!dest.exists(), "no file under the final name");
    assert_eq!(
        std::fs::metadata(part_of(&dest)).expect("a .part").len(),
        100_000
    );

    hub.clear_requests();
    let outcome = client(&hub)
        .download_file(&req, &quiet, &CancellationToken::new())
        .await
        .expect("resumed");
    assert_eq!(outcome.resumed_from, 100_000);
    assert_eq!(outcome.sha256, sha256(&model));
    assert_eq!(std::fs::read(&dest).expect("the file"), model);
    let ranges: Vec<Option<String>> = cdn_gets(&hub).into_iter().map(|r| r.range).collect();
    assert_eq!(ranges, [Some("bytes=100000-".to_owned())]);
    assert!(!part_of(&dest).exists());
}

#[tokio::test]
async fn a_server_that_ignores_range_makes_the_download_start_over() {
    let (hub, model) = hub_with_model(120_000).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let dest = dir.path().join("tiny.gguf");
    std::fs::write(part_of(&dest), &model[..30_000]).expect("a .part");
    hub.set_ignore_range(true);
    let outcome = client(&hub)
        .download_file(
            &request("tiny-Q4_K_M.gguf", &dest),
            &quiet,
            &CancellationToken::new(),
        )
        .await
        .expect("download");
    assert_eq!(outcome.resumed_from, 0);
    assert_eq!(outcome.bytes, 120_000);
    assert_eq!(std::fs::read(&dest).expect("the file"), model);
    let ranges: Vec<Option<String>> = cdn_gets(&hub).into_iter().map(|r| r.range).collect();
    assert_eq!(ranges, [Some("bytes=30000-".to_owned())]);

    // A ranged read refuses a whole body, unless the file fits the range.
    let hub_client = client(&hub);
    let refused = hub_client
        .read_range(REPO, "main", "tiny-Q4_K_M.gguf", 10, 10)
        .await;
    assert!(
        matches!(refused, Err(HubError::Malformed(_))),
        "{refused:?}"
    );
    let refused = hub_client
        .read_range(REPO, "main", "tiny-Q4_K_M.gguf", 0, 10)
        .await;
    assert!(
        matches!(refused, Err(HubError::Malformed(_))),
        "{refused:?}"
    );
    let whole = hub_client
        .read_range(REPO, "main", "config.json", 0, 1 << 20)
        .await
        .expect("a small file whole");
    assert_eq!(&whole[..], br#"{"model_type":"gemma3"}"#);
}

#[tokio::test]
async fn retries_resume_from_the_bytes_written() {
    let (hub, model) = hub_with_model(200_000).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let dest = dir.path().join("tiny.gguf");
    hub.cut_after("tiny-Q4_K_M.gguf", 50_000);
    let outcome = client(&hub)
        .download_file(
            &request("tiny-Q4_K_M.gguf", &dest),
            &quiet,
            &CancellationToken::new(),
        )
        .await
        .expect("download");
    assert_eq!(outcome.resumed_from, 0);
    assert_eq!(std::fs::read(&dest).expect("the file"), model);
    let ranges: Vec<Option<String>> = cdn_gets(&hub).into_iter().map(|r| r.range).collect();
    assert_eq!(ranges, [None, Some("bytes=50000-".to_owned())]);
}

#[tokio::test]
async fn a_stalled_body_is_retried_after_the_read_timeout() {
    let (hub, model) = hub_with_model(200_000).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let dest = dir.path().join("tiny.gguf");
    hub.stall_after("tiny-Q4_K_M.gguf", 40_000);
    let outcome = client_with(&hub, |s| s.timeout = Duration::from_millis(300))
        .download_file(
            &request("tiny-Q4_K_M.gguf", &dest),
            &quiet,
            &CancellationToken::new(),
        )
        .await
        .expect("download");
    assert_eq!(outcome.sha256, sha256(&model));
    let ranges: Vec<Option<String>> = cdn_gets(&hub).into_iter().map(|r| r.range).collect();
    assert_eq!(ranges, [None, Some("bytes=40000-".to_owned())]);
}

#[tokio::test]
async fn a_checksum_mismatch_quarantines_the_download() {
    let (hub, model) = hub_with_model(10_000).await;
    hub.corrupt_lfs_hash(REPO, "tiny-Q4_K_M.gguf");
    let dir = tempfile::tempdir().expect("a temp dir");
    let hub_client = client(&hub);
    let listed = hub_client
        .list_files(REPO, "main")
        .await
        .expect("tree")
        .into_iter()
        .find(|f| f.path == "tiny-Q4_K_M.gguf")
        .expect("the model");
    let advertised = listed.sha256.clone().expect("an LFS digest");
    assert_ne!(advertised, sha256(&model));

    let dest = dir.path().join("tiny.gguf");
    let result = hub_client
        .download_file(
            &DownloadRequest {
                expected_size: Some(listed.size),
                expected_sha256: Some(advertised.clone()),
                ..request("tiny-Q4_K_M.gguf", &dest)
            },
            &quiet,
            &CancellationToken::new(),
        )
        .await;
    assert_eq!(
        result,
        Err(HubError::ChecksumMismatch {
            expected: advertised,
            actual: sha256(&model),
            quarantined: corrupt_of(&dest),
        })
    );
    assert!(!dest.exists());
    assert!(!part_of(&dest).exists());
    assert_eq!(
        std::fs::read(corrupt_of(&dest)).expect("quarantined"),
        model
    );

    // The digest on the Hub's redirect is checked when none is given.
    let other = dir.path().join("other.gguf");
    let result = hub_client
        .download_file(
            &request("tiny-Q4_K_M.gguf", &other),
            &quiet,
            &CancellationToken::new(),
        )
        .await;
    assert!(matches!(result, Err(HubError::ChecksumMismatch { .. })));
    assert!(!other.exists());
}

#[tokio::test]
async fn a_wrong_expected_size_is_refused() {
    let (hub, _) = hub_with_model(10_000).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let dest = dir.path().join("tiny.gguf");
    let result = client(&hub)
        .download_file(
            &DownloadRequest {
                expected_size: Some(10_001),
                ..request("tiny-Q4_K_M.gguf", &dest)
            },
            &quiet,
            &CancellationToken::new(),
        )
        .await;
    assert_eq!(
        result,
        Err(HubError::SizeMismatch {
            expected: 10_001,
            actual: 10_000
        })
    );
    assert!(!dest.exists());
    assert!(!part_of(&dest).exists(), "no empty .part left behind");
}

#[tokio::test]
async fn a_complete_part_is_verified_without_a_request() {
    let (hub, model) = hub_with_model(10_000).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let dest = dir.path().join("tiny.gguf");
    std::fs::write(part_of(&dest), &model).expect("a .part");
    let outcome = client(&hub)
        .download_file(
            &DownloadRequest {
                expected_size: Some(10_000),
                expected_sha256: Some(sha256(&model)),
                ..request("tiny-Q4_K_M.gguf", &dest)
            },
            &quiet,
            &CancellationToken::new(),
        )
        .await
        .expect("download");
    assert_eq!(outcome.resumed_from, 10_000);
    assert!(outcome.verified);
    assert!(hub.requests().is_empty());
    assert_eq!(std::fs::read(&dest).expect("the file"), model);
}

#[tokio::test]
async fn missing_files_are_not_found_and_leave_nothing() {
    let (hub, _) = hub_with_model(100).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let dest = dir.path().join("missing.gguf");
    let result = client(&hub)
        .download_file(
            &request("missing.gguf", &dest),
            &quiet,
            &CancellationToken::new(),
        )
        .await;
    assert_eq!(
        result,
        Err(HubError::NotFound {
            what: format!("file missing.gguf in repository {REPO} at revision main")
        })
    );
    assert!(!dest.exists() && !part_of(&dest).exists());
}

#[tokio::test]
async fn rate_limits_are_retried_then_reported() {
    let (hub, model) = hub_with_model(5000).await;
    hub.fail_next("/api/models", 429, 2, Some(1));
    // A one-second Retry-After is within the cap: waited, then retried.
    let hub_client = client_with(&hub, |s| s.max_backoff = Duration::from_secs(2));
    let found = hub_client
        .search_models("tiny", None, 5)
        .await
        .expect("search");
    assert_eq!(found.len(), 1);
    assert_eq!(hub.requests().len(), 3);

    hub.clear_requests();
    hub.fail_next("/api/models", 429, 4, Some(1));
    let limited = hub_client.model_info(REPO, "main").await;
    assert_eq!(
        limited,
        Err(HubError::RateLimited {
            retry_after_secs: Some(1)
        })
    );
    assert_eq!(hub.requests().len(), 4, "max_attempts");

    // A longer pause than we ever wait is reported at once, hint included.
    hub.clear_requests();
    hub.fail_next("/api/models", 429, 100, Some(55));
    let limited = hub_client.model_info(REPO, "main").await;
    assert_eq!(
        limited,
        Err(HubError::RateLimited {
            retry_after_secs: Some(55)
        })
    );
    assert_eq!(hub.requests().len(), 1, "not retried");

    // A 503 from the CDN in the middle of a download is retried too.
    hub.fail_next("/cdn/", 503, 1, None);
    let dir = tempfile::tempdir().expect("a temp dir");
    let dest = dir.path().join("tiny.gguf");
    let outcome = hub_client
        .download_file(
            &request("tiny-Q4_K_M.gguf", &dest),
            &quiet,
            &CancellationToken::new(),
        )
        .await
        .expect("download");
    assert_eq!(outcome.sha256, sha256(&model));
}

#[tokio::test]
async fn the_token_goes_to_the_hub_only() {
    let hub = FixtureHub::start().await;
    hub.add_repo(
        "meta-llama/Llama-3.2-1B",
        RepoSpec {
            gated: true,
            ..spec(10, &["gguf"])
        },
    );
    let model = content(20_000, 9);
    hub.add_file("meta-llama/Llama-3.2-1B", "model.gguf", model.clone(), true);
    let dir = tempfile::tempdir().expect("a temp dir");
    let req = DownloadRequest {
        repo: "meta-llama/Llama-3.2-1B".to_owned(),
        ..request("model.gguf", &dir.path().join("model.gguf"))
    };

    let anonymous = client(&hub)
        .download_file(&req, &quiet, &CancellationToken::new())
        .await;
    assert_eq!(
        anonymous,
        Err(HubError::Gated {
            repo: "meta-llama/Llama-3.2-1B".to_owned()
        })
    );

    hub.clear_requests();
    let with_token = client_with(&hub, |s| s.token = Some("hf_secret".to_owned()));
    with_token
        .download_file(&req, &quiet, &CancellationToken::new())
        .await
        .expect("download");
    let requests = hub.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    let (resolve, cdn) = (&requests[0], &requests[1]);
    assert!(!resolve.on_cdn() && cdn.on_cdn());
    assert_eq!(resolve.authorization.as_deref(), Some("Bearer hf_secret"));
    assert_eq!(cdn.authorization, None, "never sent to another origin");

    hub.set_valid_token(Some("hf_other"));
    assert!(matches!(
        with_token
            .read_range("meta-llama/Llama-3.2-1B", "main", "model.gguf", 0, 10)
            .await,
        Err(HubError::Gated { .. })
    ));
}

#[tokio::test]
async fn unsafe_names_are_refused_before_any_request() {
    let (hub, _) = hub_with_model(100).await;
    let hub_client = client(&hub);
    let dir = tempfile::tempdir().expect("a temp dir");
    let invalid = |r: Result<(), HubError>| matches!(r, Err(HubError::InvalidName(_)));

    for repo in ["../etc", "a/b/c", "", "owner/..", "owner/na me", "/abs"] {
        assert!(
            invalid(hub_client.model_info(repo, "main").await.map(drop)),
            "{repo:?}"
        );
        assert!(
            invalid(hub_client.list_files(repo, "main").await.map(drop)),
            "{repo:?}"
        );
    }
    for file in ["../x", "/etc/passwd", "a//b", "a\\b", "a/./b", "nul\0", ""] {
        assert!(invalid(
            hub_client
                .fetch_small(REPO, "main", file, 10)
                .await
                .map(drop)
        ));
        assert!(invalid(
            hub_client.file_meta(REPO, "main", file).await.map(drop)
        ));
        assert!(invalid(
            hub_client
                .read_range(REPO, "main", file, 0, 10)
                .await
                .map(drop)
        ));
        let probe = hub_client
            .probe_prefix(REPO, "main", file, 1 << 20, |_: &[u8]| {
                Ok::<(), ProbeStep<()>>(())
            })
            .await;
        assert!(matches!(
            probe,
            Err(ProbeError::Hub(HubError::InvalidName(_)))
        ));
        let download = hub_client
            .download_file(
                &request(file, &dir.path().join("x")),
                &quiet,
                &CancellationToken::new(),
            )
            .await;
        assert!(invalid(download.map(drop)), "{file:?}");
    }
    for revision in ["..", "", "a//b"] {
        assert!(invalid(
            hub_client.model_info(REPO, revision).await.map(drop)
        ));
    }
    assert!(hub.requests().is_empty(), "{:?}", hub.requests());
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
}

#[tokio::test]
async fn cancellation_keeps_the_part_for_a_later_resume() {
    let (hub, model) = hub_with_model(150_000).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let dest = dir.path().join("tiny.gguf");
    let req = request("tiny-Q4_K_M.gguf", &dest);
    hub.stall_after("tiny-Q4_K_M.gguf", 60_000);

    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        trigger.cancel();
    });
    let result = client(&hub).download_file(&req, &quiet, &cancel).await;
    assert_eq!(result, Err(HubError::Cancelled));
    assert!(!dest.exists());
    assert_eq!(
        std::fs::metadata(part_of(&dest)).expect("a .part").len(),
        60_000
    );

    let outcome = client(&hub)
        .download_file(&req, &quiet, &CancellationToken::new())
        .await
        .expect("resumed");
    assert_eq!(outcome.resumed_from, 60_000);
    assert_eq!(std::fs::read(&dest).expect("the file"), model);
}

#[test]
fn futures_are_send() {
    fn send<T: Send>(_: &T) {}
    let hub_client = HubClient::new(HubSettings::default()).expect("client");
    let cancel = CancellationToken::new();
    let req = request("a.gguf", Path::new("/tmp/x"));
    send(&hub_client.download_file(&req, &quiet, &cancel));
    // The parser's argument type is inferred from the signature.
    send(&hub_client.probe_prefix(REPO, "main", "a.gguf", 1, |buf| {
        if buf.is_empty() {
            Err(ProbeStep::NeedMore(1))
        } else {
            Ok::<usize, ProbeStep<String>>(buf.len())
        }
    }));
    send(&hub_client.search_models("", None, 1));
    send(&hub_client.list_files(REPO, "main"));
}
