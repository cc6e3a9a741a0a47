//! `/mcp` spoken as an MCP client speaks the streamable HTTP transport:
//! JSON-RPC 2.0 POSTs, the `initialize` handshake, `tools/list`, `tools/call`.

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{TestApp, ADMIN_TOKEN};

both_backends!(
    an_agent_proposes_agent_changes_that_a_person_accepts,
    an_agent_reads_the_inventory_and_the_catalog_through_the_tools,
    mcp_needs_a_valid_api_key,
    the_tools_enforce_scopes_and_tenancy,
    bad_tool_arguments_are_tool_errors_naming_the_field,
);

const PROTOCOL_VERSION: &str = "2025-06-18";

/// A minimal MCP client over the streamable HTTP transport.
struct McpClient<'a> {
    app: &'a TestApp,
    token: Option<String>,
    /// The `Mcp-Session-Id` the server gave at `initialize`, sent back on
    /// every later request, as the transport asks of a client.
    session: Option<String>,
    next_id: i64,
}

impl<'a> McpClient<'a> {
    fn new(app: &'a TestApp, token: Option<&str>) -> Self {
        McpClient {
            app,
            token: token.map(str::to_owned),
            session: None,
            next_id: 1,
        }
    }

    async fn post(&self, message: &Value) -> reqwest::Response {
        let mut req = self
            .app
            .client
            .post(self.app.url("/mcp"))
            .header(ACCEPT, "application/json, text/event-stream")
            .header(CONTENT_TYPE, "application/json")
            .body(message.to_string());
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(session) = &self.session {
            req = req.header("Mcp-Session-Id", session);
        }
        if message["method"] != "initialize" {
            req = req.header("MCP-Protocol-Version", PROTOCOL_VERSION);
        }
        req.send().await.expect("request sent")
    }

    /// Sends a request and returns the JSON-RPC response carrying its id,
    /// read from a JSON body or from the `data:` lines of an SSE stream.
    async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let message = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let resp = self.post(&message).await;
        assert_eq!(resp.status(), StatusCode::OK, "{method}");
        if method == "initialize" {
            self.session = resp
                .headers()
                .get("mcp-session-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
        }
        let is_sse = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let text = resp.text().await.expect("body read");
        let messages: Vec<Value> = if is_sse {
            text.lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .filter_map(|data| serde_json::from_str(data.trim()).ok())
                .collect()
        } else {
            vec![serde_json::from_str(&text).expect("a JSON-RPC response")]
        };
        let answer = messages
            .into_iter()
            .find(|m| m["id"] == id)
            .unwrap_or_else(|| panic!("no response to {method} in {text}"));
        assert_eq!(answer["jsonrpc"], "2.0", "{answer}");
        answer
    }

    /// The handshake: `initialize`, then `notifications/initialized`.
    /// Returns the server's `initialize` result.
    async fn connect(app: &'a TestApp, token: &str) -> (McpClient<'a>, Value) {
        let mut client = McpClient::new(app, Some(token));
        let init = client
            .request(
                "initialize",
                json!({
                    "protocolVersion": PROTOCOL_VERSION,
                    "capabilities": {},
                    "clientInfo": {"name": "modelplane-tests", "version": "1.0"}
                }),
            )
            .await;
        let notified = client
            .post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        assert_eq!(notified.status(), StatusCode::ACCEPTED);
        (client, init["result"].clone())
    }

    /// Calls a tool and returns its result (`content`, `structuredContent`, `isError`).
    async fn call_tool(&mut self, name: &str, arguments: Value) -> Value {
        let answer = self
            .request("tools/call", json!({"name": name, "arguments": arguments}))
            .await;
        assert!(answer.get("error").is_none(), "{answer}");
        let result = answer["result"].clone();
        // The text content is the structured content as JSON, for clients
        // that read only text.
        let text = result["content"][0]["text"].as_str().expect("text content");
        let parsed: Value = serde_json::from_str(text).expect("JSON text");
        assert_eq!(parsed, result["structuredContent"], "{result}");
        result
    }

    /// Calls a tool that must answer, and returns its structured content.
    async fn ok(&mut self, name: &str, arguments: Value) -> Value {
        let result = self.call_tool(name, arguments).await;
        assert_eq!(result["isError"], false, "{result}");
        result["structuredContent"].clone()
    }

    /// Calls a tool that must refuse with `code`, and returns the error.
    async fn refused(&mut self, name: &str, arguments: Value, code: &str) -> Value {
        let result = self.call_tool(name, arguments).await;
        assert_eq!(result["isError"], true, "{result}");
        let text = result["content"][0]["text"].as_str().expect("text content");
        assert!(text.contains(code), "{code} in {text}");
        let error = result["structuredContent"]["error"].clone();
        assert_eq!(error["code"], code, "{result}");
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{result}"
        );
        error
    }
}

async fn an_agent_reads_the_inventory_and_the_catalog_through_the_tools(app: TestApp) {
    let (mut mcp, init) = McpClient::connect(&app, ADMIN_TOKEN).await;
    assert_eq!(init["serverInfo"]["name"], "modelplane", "{init}");
    assert_eq!(init["protocolVersion"], PROTOCOL_VERSION, "{init}");
    assert!(init["capabilities"]["tools"].is_object(), "{init}");
    assert!(
        mcp.session.is_none(),
        "the endpoint is stateless: every request carries its key"
    );

    let listed = mcp.request("tools/list", json!({})).await;
    let tools = listed["result"]["tools"].as_array().expect("tools");
    let mut names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "get_model",
            "list_staged_changes",
            "resolve_model",
            "search_catalog",
            "search_models",
            "stage_agent_create",
            "stage_agent_delete",
            "stage_agent_update"
        ]
    );
    assert_eq!(names, modelplane_api::mcp::TOOL_NAMES);
    for tool in tools {
        assert_eq!(tool["inputSchema"]["type"], "object", "{tool}");
        let writes = tool["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("stage_"));
        assert_eq!(tool["annotations"]["readOnlyHint"], !writes, "{tool}");
        assert!(
            tool["description"].as_str().is_some_and(|d| d.len() > 20),
            "{tool}"
        );
    }

    let gpt = app
        .create_model(
            json!({"model_id": "gpt-4o", "provider": "openai", "risk_tier": "tier_1",
            "description": "Drafts customer replies"}),
        )
        .await;
    app.create_model(
        json!({"model_id": "claude-sonnet", "provider": "anthropic", "risk_tier": "tier_2"}),
    )
    .await;
    app.create_model(json!({"model_id": "llama-3", "provider": "meta", "risk_tier": "tier_2"}))
        .await;

    let all = mcp.ok("search_models", json!({})).await;
    assert_eq!(all["total"], 3, "{all}");
    let (_, rest) = app.get("/api/v1/models").await;
    assert_eq!(all, rest, "the tool answers with the REST list's body");

    let tier_2 = mcp
        .ok(
            "search_models",
            json!({"risk_tier": "tier_2", "provider_id": ["meta", "anthropic"], "limit": 1}),
        )
        .await;
    assert_eq!(
        (tier_2["total"].clone(), tier_2["limit"].clone()),
        (json!(2), json!(1))
    );
    assert_eq!(tier_2["models"].as_array().map(Vec::len), Some(1));
    let (_, rest) = app
        .get("/api/v1/models?risk_tier=tier_2&provider_id=meta&provider_id=anthropic&limit=1")
        .await;
    assert_eq!(tier_2, rest);

    let searched = mcp.ok("search_models", json!({"search": "customer"})).await;
    assert_eq!(searched["total"], 1, "{searched}");
    assert_eq!(searched["models"][0]["id"], gpt["id"]);
    assert!(searched["facets"]["providers"].is_array(), "{searched}");

    let got = mcp.ok("get_model", json!({"id": gpt["id"]})).await;
    let (_, rest) = app
        .get(&format!(
            "/api/v1/models/{}",
            gpt["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(got, rest, "the tool answers with the REST model body");
    assert_eq!(got["model_id"], "gpt-4o");

    mcp.refused(
        "get_model",
        json!({"id": "0190a0a0-0000-7000-8000-000000000000"}),
        "model_not_found",
    )
    .await;

    let (status, created) = app
        .post(
            "/api/v1/catalog/models",
            json!({"provider": "openai", "model_id": "gpt-4o",
                "facts": {"display_name": "GPT-4o", "context_window": 128000}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");

    let resolved = mcp
        .ok("resolve_model", json!({"q": "openai/GPT-4o-2024-08-06"}))
        .await;
    assert_eq!(resolved["match_type"], "normalized", "{resolved}");
    assert_eq!(resolved["confidence"], 0.8);
    assert_eq!(resolved["model"]["id"], created["id"]);
    let (_, rest) = app.get("/api/v1/resolve?q=openai/GPT-4o-2024-08-06").await;
    assert_eq!(
        resolved, rest,
        "the tool answers with the REST resolve body"
    );
    mcp.refused(
        "resolve_model",
        json!({"q": "no-such-model-anywhere"}),
        "catalog_model_not_found",
    )
    .await;

    let catalog = mcp
        .ok(
            "search_catalog",
            json!({"provider": "openai", "search": "gpt"}),
        )
        .await;
    assert_eq!(catalog["total"], 1, "{catalog}");
    assert_eq!(catalog["models"][0]["context_window"], 128000);
    let (_, rest) = app
        .get("/api/v1/catalog/models?provider=openai&search=gpt")
        .await;
    assert_eq!(catalog, rest, "the tool answers with the REST catalog list");
    let none = mcp
        .ok("search_catalog", json!({"provider": "anthropic"}))
        .await;
    assert_eq!(none["total"], 0, "{none}");
}

async fn mcp_needs_a_valid_api_key(app: TestApp) {
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": PROTOCOL_VERSION, "capabilities": {},
        "clientInfo": {"name": "modelplane-tests", "version": "1.0"}}});

    let resp = McpClient::new(&app, None).post(&init).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = resp.json().await.expect("JSON envelope");
    assert_eq!(
        body,
        json!({"error": {"code": "unauthorized",
            "message": "missing API key: send Authorization: Bearer <token> or X-Api-Key"}})
    );

    let resp = McpClient::new(&app, Some("mp_not_a_real_token"))
        .post(&init)
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = resp.json().await.expect("JSON envelope");
    assert_eq!(body["error"]["code"], "unauthorized", "{body}");

    // Every request is authenticated, not only the handshake.
    let (mut mcp, _) = McpClient::connect(&app, ADMIN_TOKEN).await;
    mcp.token = None;
    let resp = mcp
        .post(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // X-Api-Key works as it does for REST.
    let resp = app
        .client
        .post(app.url("/mcp"))
        .header(ACCEPT, "application/json, text/event-stream")
        .header(CONTENT_TYPE, "application/json")
        .header("X-Api-Key", ADMIN_TOKEN)
        .body(init.to_string())
        .send()
        .await
        .expect("request sent");
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.expect("JSON-RPC response");
    assert_eq!(body["result"]["serverInfo"]["name"], "modelplane", "{body}");
}

async fn the_tools_enforce_scopes_and_tenancy(app: TestApp) {
    let model = app
        .create_model(json!({"model_id": "gpt-4o", "provider": "openai", "risk_tier": "tier_1"}))
        .await;
    app.post(
        "/api/v1/catalog/models",
        json!({"provider": "openai", "model_id": "gpt-4o"}),
    )
    .await;

    // A gateway key may use the API, but not read the registry.
    let gateway = app.key_with(&["gateway"], None).await;
    let (mut mcp, _) = McpClient::connect(&app, &gateway).await;
    let error = mcp.refused("search_models", json!({}), "forbidden").await;
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("registry:read")),
        "{error}"
    );
    mcp.refused("get_model", json!({"id": model["id"]}), "forbidden")
        .await;
    // The catalog is read by any valid key, as over REST.
    let resolved = mcp.ok("resolve_model", json!({"q": "gpt-4o"})).await;
    assert_eq!(resolved["match_type"], "exact", "{resolved}");
    let catalog = mcp.ok("search_catalog", json!({})).await;
    assert_eq!(catalog["total"], 1, "{catalog}");

    // Another org's key sees none of this org's models.
    let (_, other_admin) = app.org_with_admin("other").await;
    let (mut other, _) = McpClient::connect(&app, &other_admin).await;
    let listed = other.ok("search_models", json!({})).await;
    assert_eq!(listed["total"], 0, "{listed}");
    other
        .refused("get_model", json!({"id": model["id"]}), "model_not_found")
        .await;

    let reader = app.key_with(&["registry:read"], None).await;
    let (mut reader, _) = McpClient::connect(&app, &reader).await;
    let got = reader.ok("get_model", json!({"id": model["id"]})).await;
    assert_eq!(got["id"], model["id"]);
    assert_eq!(got["can_edit"], false, "a read-only key may not edit");
}

async fn bad_tool_arguments_are_tool_errors_naming_the_field(app: TestApp) {
    let (mut mcp, _) = McpClient::connect(&app, ADMIN_TOKEN).await;

    let error = mcp
        .refused("search_models", json!({"limit": 500}), "validation_error")
        .await;
    assert_eq!(error["details"]["field"], "limit", "{error}");
    let error = mcp
        .refused("search_catalog", json!({"offset": -1}), "validation_error")
        .await;
    assert_eq!(error["details"]["field"], "offset", "{error}");
    let error = mcp
        .refused("resolve_model", json!({"q": "  "}), "validation_error")
        .await;
    assert_eq!(error["details"]["field"], "q", "{error}");

    // Arguments that do not fit the tool's input schema are refused before
    // the tool runs, as a tool error the agent can read and correct.
    for (tool, arguments, naming) in [
        ("get_model", json!({"id": "not-a-uuid"}), "UUID"),
        ("get_model", json!({}), "id"),
        ("search_models", json!({"risk_tier": "tier_9"}), "tier_9"),
        ("search_models", json!({"nope": 1}), "nope"),
    ] {
        let answer = mcp
            .request("tools/call", json!({"name": tool, "arguments": arguments}))
            .await;
        let result = &answer["result"];
        assert_eq!(result["isError"], true, "{answer}");
        let text = result["content"][0]["text"].as_str().unwrap_or_default();
        assert!(text.contains(naming), "{naming} in {answer}");
    }

    let unknown = mcp
        .request(
            "tools/call",
            json!({"name": "delete_everything", "arguments": {}}),
        )
        .await;
    assert!(unknown["error"]["code"].is_i64(), "{unknown}");
}

async fn an_agent_proposes_agent_changes_that_a_person_accepts(app: TestApp) {
    let model = app
        .create_model(json!({"model_id": "gpt-4o", "provider": "openai", "risk_tier": "tier_1"}))
        .await;
    let writer = app
        .key_with(&["registry:read", "registry:write"], None)
        .await;
    let (mut mcp, _) = McpClient::connect(&app, &writer).await;
    let staged = mcp
        .ok(
            "stage_agent_create",
            json!({"name": "Support bot", "model_ids": [model["id"]], "idempotency_key": "mcp-create-1"}),
        )
        .await;
    assert_eq!(staged["idempotency_key"], "mcp-create-1");
    assert_eq!(staged["staged_change"]["status"], "pending");
    let (_, agents) = app.get("/api/v1/agents").await;
    assert_eq!(
        agents["total"], 0,
        "nothing applied before a person accepts"
    );
    let again = mcp
        .ok(
            "stage_agent_create",
            json!({"name": "Support bot", "model_ids": [model["id"]], "idempotency_key": "mcp-create-1"}),
        )
        .await;
    assert_eq!(
        again["staged_change"]["id"], staged["staged_change"]["id"],
        "staged once"
    );
    mcp.refused(
        "stage_agent_create",
        json!({"name": "Ghost", "model_ids": ["00000000-0000-7000-8000-000000000009"]}),
        "validation_error",
    )
    .await;
    mcp.refused(
        "stage_agent_delete",
        json!({"id": "00000000-0000-7000-8000-000000000009"}),
        "agent_not_found",
    )
    .await;

    let (status, decided) = app
        .post(
            "/api/v1/staged-changes/mcp-create-1",
            json!({"accept": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{decided}");
    assert_eq!(decided["status"], "applied");
    let (_, agents) = app.get("/api/v1/agents").await;
    assert_eq!(agents["agents"][0]["name"], "Support bot");
    let agent_id = agents["agents"][0]["id"].clone();

    let update = mcp
        .ok(
            "stage_agent_update",
            json!({"id": agent_id, "active": false}),
        )
        .await;
    let key = update["idempotency_key"]
        .as_str()
        .expect("generated key")
        .to_owned();
    let listed = mcp
        .ok("list_staged_changes", json!({"status": "pending"}))
        .await;
    assert_eq!(listed["total"], 1);
    assert_eq!(listed["staged_changes"][0]["idempotency_key"], key.as_str());
    let (status, _) = app
        .post(
            &format!("/api/v1/staged-changes/{key}"),
            json!({"accept": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, still) = app
        .get(&format!(
            "/api/v1/agents/{}",
            agent_id.as_str().expect("id")
        ))
        .await;
    assert_eq!(still["active"], true, "a rejected change is never applied");

    let reader = app.key_with(&["registry:read"], None).await;
    let (mut read_only, _) = McpClient::connect(&app, &reader).await;
    read_only
        .refused("stage_agent_delete", json!({"id": agent_id}), "forbidden")
        .await;
}
