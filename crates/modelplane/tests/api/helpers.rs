//! The test harness: the real server on port 0 against a fresh database,
//! SQLite or PostgreSQL, spoken to over HTTP like any client.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::{json, Value};
use sqlx::Connection;
use tokio_util::sync::CancellationToken;

use modelplane::config::{Config, LogFormat};
use modelplane::Application;

pub const ADMIN_TOKEN: &str = "mp_test_superadmin_token_0000000000000000";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where the PostgreSQL half of the suite creates its databases.
pub fn postgres_admin_url() -> String {
    std::env::var("MP_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

enum TestDb {
    Sqlite(
        #[expect(dead_code, reason = "held so the directory lives as long as the app")]
        tempfile::TempDir,
    ),
    Postgres {
        name: String,
    },
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres { name } = self {
            let name = name.clone();
            // Drop runs outside async; a short-lived runtime on its own thread
            // removes the database even when the test panicked.
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async {
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&postgres_admin_url()).await {
                        let _ = sqlx::query(&format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        ))
                        .execute(&mut conn)
                        .await;
                    }
                });
            })
            .join();
        }
    }
}

pub struct TestApp {
    pub base: String,
    pub token: String,
    pub database_url: String,
    pub client: reqwest::Client,
    shutdown: CancellationToken,
    server: Option<tokio::task::JoinHandle<()>>,
    pub config: Config,
    _db: Option<TestDb>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// A fresh database URL for `backend`, or None when PostgreSQL is not
/// reachable outside CI (under CI it must be).
async fn fresh_database(backend: Backend) -> Option<(String, TestDb)> {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}/modelplane.db", dir.path().display());
            Some((url, TestDb::Sqlite(dir)))
        }
        Backend::Postgres => {
            let admin = postgres_admin_url();
            let conn =
                tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(&admin))
                    .await;
            let mut conn = match conn {
                Ok(Ok(c)) => c,
                Ok(Err(e)) if !in_ci() => {
                    eprintln!("NOTICE: PostgreSQL not reachable at {admin} ({e}); skipping the PostgreSQL half");
                    return None;
                }
                Err(_) if !in_ci() => {
                    eprintln!("NOTICE: PostgreSQL not reachable at {admin} (timeout); skipping the PostgreSQL half");
                    return None;
                }
                Ok(Err(e)) => panic!("CI=true but PostgreSQL is not reachable at {admin}: {e}"),
                Err(_) => panic!("CI=true but PostgreSQL is not reachable at {admin}: timeout"),
            };
            let name = format!("mp_test_{}", uuid::Uuid::new_v4().simple());
            sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                .execute(&mut conn)
                .await
                .expect("create test database");
            let url = match admin.rsplit_once('/') {
                Some((server, _)) => format!("{server}/{name}"),
                None => panic!("bad MP_TEST_POSTGRES_URL {admin}"),
            };
            Some((url, TestDb::Postgres { name }))
        }
    }
}

impl TestApp {
    /// Starts the server exactly as `modelplane serve` does, bootstrapped
    /// with [`ADMIN_TOKEN`] as its superadmin key.
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        Self::spawn_with(backend, |_| {}).await
    }

    /// [`TestApp::spawn`] with the test's own configuration changes. The
    /// scheduler is off and no source reaches the internet: every source's
    /// base URL points at a closed local port unless the test sets it.
    pub async fn spawn_with(
        backend: Backend,
        configure: impl FnOnce(&mut Config),
    ) -> Option<TestApp> {
        let (database_url, db) = fresh_database(backend).await?;
        let mut config = Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            database_url: database_url.clone(),
            admin_token: Some(SecretString::from(ADMIN_TOKEN)),
            log_format: LogFormat::Human,
            log_level: "warn".to_owned(),
            shutdown_grace_secs: 5,
            secret_key: Some(SecretString::from("11".repeat(32))),
            ..Config::default()
        };
        config.ingestion.scheduler = false;
        config.gateway.spill_dir = Some(
            std::env::temp_dir().join(format!("mp-test-spill-{}", uuid::Uuid::new_v4().simple())),
        );
        for source in modelplane_domain::catalog::Source::ALL {
            config.sources.insert(
                source.as_str().to_owned(),
                modelplane::config::SourceFile {
                    base_url: Some("http://127.0.0.1:9".to_owned()),
                    max_attempts: Some(1),
                    ..Default::default()
                },
            );
        }
        // Local model files in a directory of the test's own; the Hub at a
        // closed port unless the test points it at a fixture.
        config.local.data_dir = Some(
            std::env::temp_dir().join(format!("mp-test-local-{}", uuid::Uuid::new_v4().simple())),
        );
        config.local.hf_endpoint = Some("http://127.0.0.1:9".to_owned());
        config.local.hf_max_attempts = Some(1);
        config.local.gpu_vram_bytes = None;
        configure(&mut config);
        Some(Self::start(config, db).await)
    }

    /// Stops the server gracefully and starts it again on the same database
    /// with the same configuration (a new port).
    pub async fn restart(mut self) -> TestApp {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        let db = self._db.take().expect("database held");
        Self::start(self.config.clone(), db).await
    }

    /// A second replica: another server on the same database, with its own
    /// node name.
    pub async fn replica(&self, node: &str) -> TestApp {
        let mut config = self.config.clone();
        config.node = Some(node.to_owned());
        let mut app = Self::start_on(config).await;
        app._db = None;
        app
    }

    async fn start(config: Config, db: TestDb) -> TestApp {
        let mut app = Self::start_on(config).await;
        app._db = Some(db);
        app
    }

    async fn start_on(config: Config) -> TestApp {
        let database_url = config.database_url.clone();
        let app = Application::build(&config)
            .await
            .expect("application builds");
        let addr = app.local_addr().expect("bound");
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let server = tokio::spawn(async move {
            let _ = app.run_until(stop).await;
        });
        TestApp {
            base: format!("http://{addr}"),
            token: ADMIN_TOKEN.to_owned(),
            database_url,
            client: reqwest::Client::new(),
            shutdown,
            server: Some(server),
            config,
            _db: None,
        }
    }

    /// A direct connection to the app's database, bypassing the API, for
    /// checking what is stored (either backend, through sqlx's Any driver).
    pub async fn database(&self) -> sqlx::AnyConnection {
        sqlx::any::install_default_drivers();
        sqlx::AnyConnection::connect(&self.database_url)
            .await
            .expect("open the test database")
    }

    /// The app's store, opened again on its database: for seeding what no
    /// endpoint writes (the gateway's usage records).
    pub async fn store(&self) -> modelplane_store::Store {
        modelplane_store::Store::connect(&self.database_url)
            .await
            .expect("open the test database as a store")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends a request with `token` (None: no credentials) and returns the
    /// status and the JSON body (Null when there is none).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let text = resp.text().await.expect("body read");
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, json)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(&self.token), None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(&self.token), Some(body))
            .await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(&self.token), Some(body))
            .await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(&self.token), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, Some(&self.token), None)
            .await
    }

    /// Creates a model as the superadmin and returns it.
    pub async fn create_model(&self, body: Value) -> Value {
        let (status, model) = self.post("/api/v1/models", body).await;
        assert_eq!(status, StatusCode::CREATED, "{model}");
        model
    }

    /// Creates a key with `scopes` in `org_id` (None: the superadmin's org) and returns its token.
    pub async fn key_with(&self, scopes: &[&str], org_id: Option<&str>) -> String {
        let mut body = json!({"name": format!("test {}", scopes.join(" ")), "scopes": scopes});
        if let Some(org) = org_id {
            body["org_id"] = json!(org);
        }
        let (status, key) = self.post("/api/v1/keys", body).await;
        assert_eq!(status, StatusCode::CREATED, "{key}");
        key["token"].as_str().expect("token").to_owned()
    }

    /// Creates an org and an admin key in it; returns (org id, token).
    pub async fn org_with_admin(&self, name: &str) -> (String, String) {
        let (status, org) = self.post("/api/v1/orgs", json!({"name": name})).await;
        assert_eq!(status, StatusCode::CREATED, "{org}");
        let org_id = org["id"].as_str().expect("id").to_owned();
        let token = self.key_with(&["admin"], Some(&org_id)).await;
        (org_id, token)
    }
}

/// Asserts an error envelope: status, code, and that there is a message.
pub fn assert_error(got: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(got.0, status, "body: {}", got.1);
    assert_eq!(got.1["error"]["code"], code, "body: {}", got.1);
    assert!(
        got.1["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "body: {}",
        got.1
    );
}

/// Runs each named test, an `async fn(Backend)` that spawns its own app
/// (usually with [`TestApp::spawn_with`]), against SQLite and PostgreSQL.
#[macro_export]
macro_rules! both_backends_with {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use $crate::helpers::Backend;
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(Backend::Sqlite).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name(Backend::Postgres).await;
                }
            }
        )*
    };
}

/// Starts `router` on 127.0.0.1:0 and returns its origin: a local fixture
/// server speaking an outside service's wire format.
pub async fn serve_fixture(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind fixture server");
    let addr = listener.local_addr().expect("fixture address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

/// Runs each named test against SQLite and PostgreSQL: `name::sqlite` and
/// `name::postgres`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use $crate::helpers::{Backend, TestApp};
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    if let Some(app) = TestApp::spawn(Backend::Sqlite).await {
                        super::$name(app).await;
                    }
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(app) = TestApp::spawn(Backend::Postgres).await {
                        super::$name(app).await;
                    }
                }
            }
        )*
    };
}
