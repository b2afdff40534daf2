//! Client authentication where it is aimed, on a real Envoy with the generated configuration
//! of `envoy-config/tests/fixtures/auth.yaml`: a JWT policy on `with-jwt` (/jwt), static client
//! keys on `with-keys` (/keyed) and on the MCP route (/mcp), nothing on `open` (/openai, /v1).
//! Each refusal is a 401 in the OpenAI error format and reaches no provider.

use serde_json::json;
use std::process::Command;
use tollgate_e2e::bootstrap::{Bootstrap, HttpFilter, Listener, Route, Wasm};
use tollgate_e2e::gateway::{mint_dev_jwt, Gateway, GatewaySpec};
use tollgate_e2e::http::Response;
use tollgate_e2e::{raw_request, workspace_root, Envoy};
use tollgate_mock::{spawn, Kind, MockConfig, MockHandle};

const OPENAI_KEY: &str = "sk-edges-auth-operator";
const TEAM_A_KEY: &str = "sk-edges-auth-team-a";
const TEAM_B_KEY: &str = "sk-edges-auth-team-b";
const CHAT: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello"}]}"#;

struct Setup {
    gpt: MockHandle,
    tools: MockHandle,
    gateway: Gateway,
}

fn mock(kind: Kind, key: Option<&str>) -> MockHandle {
    let mut config = MockConfig::new(kind, "127.0.0.1:0".parse().unwrap());
    config.api_key = key.map(str::to_string);
    spawn(config).unwrap()
}

fn setup() -> Setup {
    let gpt = mock(Kind::Openai, Some(OPENAI_KEY));
    let tools = mock(Kind::Openai, None);
    let spec = GatewaySpec {
        inputs: vec!["envoy-config/tests/fixtures/auth.yaml".into()],
        ..Default::default()
    }
    .endpoint("gpt", gpt.base_url())
    .endpoint("claude", "http://127.0.0.1:9")
    .endpoint("embedder", "http://127.0.0.1:9")
    .endpoint("tools", tools.base_url())
    .secret("openai-secret", OPENAI_KEY)
    .secret("anthropic-secret", "sk-ant-unused")
    .secret("google-ai-secret", "google-unused")
    .endpoint("gemini-flash", "http://127.0.0.1:9")
    .secret("client-team-a", TEAM_A_KEY)
    .secret("client-team-b", TEAM_B_KEY);
    let gateway = Gateway::start(&spec).unwrap();
    Setup {
        gpt,
        tools,
        gateway,
    }
}

impl Setup {
    fn chat(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        raw_request(self.gateway.port, "POST", path, &all, CHAT).unwrap()
    }
}

/// An RS256 JWT signed with the companion's development key (the fixture's JWKS).
fn jwt(sub: &str, audience: &str, expires_in: i64) -> String {
    mint_dev_jwt(sub, audience, expires_in).unwrap()
}

/// A 401 in the OpenAI error format, JSON labelled.
fn assert_openai_401(response: &Response, what: &str) {
    assert_openai_error(response, 401, "authentication_error", what);
}

/// An error in the OpenAI format, JSON labelled.
fn assert_openai_error(response: &Response, status: u16, kind: &str, what: &str) {
    assert_eq!(response.status, status, "{what}: {}", response.body);
    assert_eq!(
        response.header("content-type"),
        Some("application/json"),
        "{what}"
    );
    let body: serde_json::Value = serde_json::from_str(&response.body)
        .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", response.body));
    assert_eq!(body["error"]["type"], kind, "{what}: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{what}: {body}"
    );
    assert!(body["error"].get("param").is_some(), "{what}: {body}");
}

#[test]
fn a_jwt_policy_on_one_route_leaves_an_sdk_client_with_its_own_key_on_another_route_alone() {
    let s = setup();
    for path in ["/openai/v1/chat/completions", "/v1/chat/completions"] {
        let response = s.chat(path, &[("authorization", "Bearer sk-its-own-key")]);
        assert_eq!(response.status, 200, "{path}: {}", response.body);
    }
    let received = s.gpt.received();
    assert_eq!(received.len(), 2);
    assert!(
        received
            .iter()
            .all(|r| r.header("authorization") == Some(&format!("Bearer {OPENAI_KEY}")[..])),
        "the provider sees the operator's key, never the client's"
    );
}

#[test]
fn the_jwt_route_refuses_requests_without_a_valid_token_and_serves_a_valid_one() {
    let s = setup();
    let path = "/jwt/v1/chat/completions";
    let refused = [
        ("no token", None),
        (
            "an API key instead of a JWT",
            Some("Bearer sk-its-own-key".to_string()),
        ),
        (
            "an expired token",
            Some(format!("Bearer {}", jwt("alice", "tollgate", -600))),
        ),
        (
            "a forged signature",
            Some(format!("Bearer {}x", jwt("alice", "tollgate", 600))),
        ),
    ];
    for (what, authorization) in refused {
        let headers: Vec<(&str, &str)> = authorization
            .as_deref()
            .map(|a| vec![("authorization", a)])
            .unwrap_or_default();
        assert_openai_401(&s.chat(path, &headers), what);
    }
    // A token for someone else: Envoy's 403, in the OpenAI format too.
    let elsewhere = format!("Bearer {}", jwt("alice", "someone-else", 600));
    let forbidden = s.chat(path, &[("authorization", &elsewhere)]);
    assert_openai_error(&forbidden, 403, "permission_error", "another audience");
    assert_eq!(
        s.gpt.request_count(),
        0,
        "no refused request reached the provider"
    );

    let token = format!("Bearer {}", jwt("alice", "tollgate", 600));
    let served = s.chat(path, &[("authorization", &token)]);
    assert_eq!(served.status, 200, "{}", served.body);
    assert_eq!(s.gpt.request_count(), 1);
}

#[test]
fn a_static_client_key_is_a_way_in_and_a_wrong_one_is_refused() {
    let s = setup();
    let path = "/keyed/v1/chat/completions";
    let team_a = format!("Bearer {TEAM_A_KEY}");
    let token = format!("Bearer {}", jwt("alice", "tollgate", 600));
    let operator = format!("Bearer {OPENAI_KEY}");
    let refused = [
        ("no key", vec![]),
        (
            "an unknown key",
            vec![("authorization", "Bearer sk-not-a-client")],
        ),
        (
            "the operator's provider key",
            vec![("authorization", operator.as_str())],
        ),
        (
            "a valid JWT (the route takes keys)",
            vec![("authorization", token.as_str())],
        ),
    ];
    for (what, headers) in refused {
        assert_openai_401(&s.chat(path, &headers), what);
    }
    assert_eq!(
        s.gpt.request_count(),
        0,
        "no refused request reached the provider"
    );

    let served = s.chat(path, &[("authorization", &team_a)]);
    assert_eq!(served.status, 200, "{}", served.body);
    let received = s.gpt.received();
    assert_eq!(
        received[0].header("authorization"),
        Some(&format!("Bearer {OPENAI_KEY}")[..]),
        "the client's key is replaced by the operator's"
    );
    let on_jwt_route = s.chat("/jwt/v1/chat/completions", &[("authorization", &team_a)]);
    assert_openai_401(&on_jwt_route, "a client key on the JWT route");

    let dump = s.gateway.envoy.admin_get("/config_dump").unwrap();
    assert!(
        !dump.contains(TEAM_A_KEY) && !dump.contains(TEAM_B_KEY),
        "admin /config_dump shows client keys"
    );
    assert!(
        dump.contains("[redacted]"),
        "api_key_auth credentials are redacted"
    );
}

#[test]
fn the_authenticated_client_is_forwarded_by_name_and_a_client_cannot_claim_one() {
    let s = setup();
    let spoof = [("x-tollgate-client", "team-b")];
    // The MCP route takes client keys and is passed through, so the server shows what arrives.
    let team_a = format!("Bearer {TEAM_A_KEY}");
    let mut headers = vec![("authorization", team_a.as_str())];
    headers.extend_from_slice(&spoof);
    let response = raw_request(s.gateway.port, "GET", "/mcp", &headers, "").unwrap();
    assert_ne!(response.status, 401, "{}", response.body);
    let arrived = s.tools.received();
    let last = arrived.last().expect("the MCP server got the request");
    assert_eq!(last.header("x-tollgate-client"), Some("team-a"));
    assert_eq!(
        last.header("authorization"),
        None,
        "the client's key stops at the gateway"
    );

    // On a route without authentication the client's own claim is dropped.
    let open = s.chat("/openai/v1/chat/completions", &spoof);
    assert_eq!(open.status, 200, "{}", open.body);
    let received = s.gpt.received();
    assert_eq!(received.last().unwrap().header("x-tollgate-client"), None);
}

#[test]
fn auth_filters_local_replies_skip_the_downstream_wasm_response_path() {
    // Measured with the fixture filter, which stamps x-fixture-response on every response it
    // sees: jwt_authn's and api_key_auth's 401s never pass through a wasm filter placed after
    // them, so the generator rewrites them with local_reply_config instead.
    let port = tollgate_e2e::free_port();
    let fixture = tollgate_e2e::wasm_path("tollgate_fixture_filter").unwrap();
    // The JWKS is a quoted YAML scalar there; the builder takes the string itself.
    let jwks: String =
        std::fs::read_to_string(workspace_root().join("envoy-config/examples/companion.yaml"))
            .unwrap()
            .lines()
            .find_map(|l| l.trim().strip_prefix("inline: ").map(str::to_string))
            .map(|quoted| serde_norway::from_str(&quoted).unwrap())
            .unwrap();
    let yaml = Bootstrap::new()
        .listener(
            Listener::new("l", port)
                .route(
                    Route::direct(200, "ok")
                        .name("jwt")
                        .prefix("/jwt")
                        .per_filter_config(
                            "envoy.filters.http.jwt_authn",
                            json!({
                                "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig",
                                "requirement_name": "required",
                            }),
                        ),
                )
                .route(
                    Route::direct(200, "ok")
                        .name("key")
                        .prefix("/key")
                        .per_filter_config(
                            "envoy.filters.http.api_key_auth",
                            json!({
                                "@type": "type.googleapis.com/envoy.extensions.filters.http.api_key_auth.v3.ApiKeyAuthPerRoute",
                                "credentials": [{"key": "k", "client": "c"}],
                                "key_sources": [{"header": "authorization"}],
                            }),
                        ),
                )
                .route(Route::direct(200, "ok").name("open"))
                .filter(HttpFilter::typed(
                    "envoy.filters.http.jwt_authn",
                    json!({
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
                        "providers": {"dev": {"issuer": "https://auth.tollgate.dev", "local_jwks": {"inline_string": jwks}}},
                        "requirement_map": {"required": {"provider_name": "dev"}},
                    }),
                ))
                .filter(
                    HttpFilter::typed(
                        "envoy.filters.http.api_key_auth",
                        json!({"@type": "type.googleapis.com/envoy.extensions.filters.http.api_key_auth.v3.ApiKeyAuth"}),
                    )
                    .disabled(),
                )
                .filter(Wasm::new("fixture", &fixture, "fixture")),
        )
        .render();
    let _envoy = Envoy::start(&yaml).unwrap();
    let open = raw_request(port, "GET", "/", &[], "").unwrap();
    assert_eq!(
        (open.status, open.header("x-fixture-response")),
        (200, Some("200")),
        "the fixture sees a normal answer"
    );
    for path in ["/jwt", "/key"] {
        let refused = raw_request(port, "GET", path, &[], "").unwrap();
        assert_eq!(refused.status, 401, "{path}");
        assert_eq!(
            refused.header("x-fixture-response"),
            None,
            "{path}: the 401 did not pass through the wasm filter"
        );
        assert_eq!(refused.header("content-type"), Some("text/plain"), "{path}");
    }
}

/// The official OpenAI Python SDK (installed into .tools/venv by scripts/setup) against the
/// gateway: `models.list()` on the open route, a chat with the client's own key beside the
/// JWT route, and what the SDK raises on the JWT route without a token.
const SDK_SCRIPT: &str = r#"
import json, sys, openai
base = sys.argv[1]
own_key = openai.OpenAI(base_url=base + "/v1", api_key="sk-its-own-key", max_retries=0)
models = [m.id for m in own_key.models.list()]
chat = own_key.chat.completions.create(
    model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello"}])
jwt_route = openai.OpenAI(base_url=base + "/jwt/v1", api_key="sk-its-own-key", max_retries=0)
try:
    jwt_route.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello"}])
    refused = None
except openai.AuthenticationError as e:
    refused = {"status": e.status_code, "type": (e.body or {}).get("type")}
print(json.dumps({"models": models, "content": chat.choices[0].message.content, "refused": refused}))
"#;

#[test]
fn the_openai_python_sdk_lists_the_routes_models_and_chats_with_its_own_key_beside_a_jwt_route() {
    let s = setup();
    let python = workspace_root().join(".tools/venv/bin/python");
    let output = Command::new(&python)
        .args(["-c", SDK_SCRIPT, &s.gateway.url("")])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup)", python.display()));
    assert!(
        output.status.success(),
        "the SDK failed (scripts/setup installs openai): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        result["models"],
        serde_json::json!([
            "claude-3-5-haiku-20241022",
            "gemini-1.5-flash",
            "gpt-4o-mini"
        ]),
        "models.list() shows the open route's models"
    );
    assert!(
        result["content"].as_str().is_some_and(|c| !c.is_empty()),
        "{result}"
    );
    assert_eq!(
        result["refused"],
        serde_json::json!({"status": 401, "type": "authentication_error"}),
        "the SDK raises AuthenticationError with the OpenAI error type"
    );
    assert_eq!(
        s.gpt.request_count(),
        1,
        "only the served chat reached the provider"
    );
}
