//! Which operations leave the gateway: the decision the downstream pipeline takes on request
//! headers, from the matched Envoy route, the method and the path.
//!
//! A gateway holding the operator's provider keys must not forward whatever a client asks for
//! (`GET /v1/files`, `DELETE /v1/files/abc`, stored completions, batches...). On an LLM route
//! only chat completions are forwarded, `GET …/models` is answered by the gateway itself, and
//! everything else is refused before any provider sees it. MCP and plain proxy routes are
//! passed through untouched. Paths are matched by their suffix, so a route's own prefix
//! (`/openai/v1/chat/completions`, `/v1/chat/completions`) is accepted; the query is ignored.

use crate::config::{RouteKind, RouteScope, RouterConfig};
use crate::errors::GatewayError;
use serde::Serialize;

/// The path suffix of OpenAI chat completions.
pub const CHAT_COMPLETIONS: &str = "/chat/completions";
/// The path suffix of OpenAI's model list (`…/models`, `…/models/<id>`).
pub const MODELS: &str = "/models";

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// `POST …/chat/completions` on an LLM route: read the body, route and translate.
    Chat,
    /// `GET …/models` or `GET …/models/<listed id>`: answer 200 with this JSON body
    /// (OpenAI's list or model object); nothing is forwarded.
    ListModels(Vec<u8>),
    /// Forward untouched: no body validation, no buffering (MCP and proxy routes, and the
    /// operations an operator opted in on an LLM route).
    PassThrough,
    /// Answer with this error (OpenAI format, its status); nothing is forwarded.
    Refuse(GatewayError),
}

/// The decision for one request. `route_name` is Envoy's matched route name
/// (`xds.route_name`, generated as `<httproute>/<rule>/<match>`); with no `routes` in the
/// configuration (hand-written configs) every route is an LLM route with no listed models.
pub fn decide(
    config: &RouterConfig,
    route_name: Option<&str>,
    method: &str,
    path: &str,
) -> Operation {
    let path = path_only(path);
    let llm_default = RouteScope::default();
    let scope = if config.routes.is_empty() {
        &llm_default
    } else {
        let http_route = route_name.and_then(|name| name.split('/').next());
        match http_route.and_then(|name| config.routes.get(name)) {
            Some(scope) => scope,
            None => return Operation::Refuse(unknown(method, path)),
        }
    };
    match scope.kind {
        RouteKind::Mcp | RouteKind::Proxy => Operation::PassThrough,
        RouteKind::Llm => decide_llm(scope, method, path),
    }
}

fn decide_llm(scope: &RouteScope, method: &str, path: &str) -> Operation {
    let only = |allowed: &'static str, then: Operation| {
        if method == allowed {
            then
        } else {
            Operation::Refuse(GatewayError::MethodNotAllowed {
                method: printable(method),
                path: printable(path),
                allow: allowed,
            })
        }
    };
    if path.ends_with(CHAT_COMPLETIONS) {
        return only("POST", Operation::Chat);
    }
    if scope
        .operations
        .iter()
        .any(|op| path.ends_with(op.as_str()))
    {
        return only("POST", Operation::PassThrough);
    }
    if path.ends_with(MODELS) {
        return only("GET", Operation::ListModels(model_list(&scope.models)));
    }
    let listed = scope.models.iter().find(|id| {
        path.strip_suffix(id.as_str())
            .is_some_and(|head| head.ends_with("/models/"))
    });
    if let Some(id) = listed {
        return only("GET", Operation::ListModels(model_object(id)));
    }
    match path.split_once("/models/") {
        // Another model than the route's: as OpenAI answers it.
        Some((_, id)) if method == "GET" => {
            Operation::Refuse(GatewayError::ModelNotFound(printable(id)))
        }
        _ => Operation::Refuse(unknown(method, path)),
    }
}

/// The path without its query string or fragment.
fn path_only(path: &str) -> &str {
    let end = path.find(['?', '#']).unwrap_or(path.len());
    &path[..end]
}

fn unknown(method: &str, path: &str) -> GatewayError {
    GatewayError::UnknownOperation {
        method: printable(method),
        path: printable(path),
    }
}

/// Longest piece of a client's path or method echoed in an error message.
const ECHO_LIMIT: usize = 200;

/// A client's string as echoed in an error message: control characters dropped, capped.
fn printable(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(ECHO_LIMIT)
        .collect()
}

/// One entry of OpenAI's model list.
#[derive(Serialize)]
struct Model<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
}

impl<'a> Model<'a> {
    fn new(id: &'a str) -> Self {
        Model {
            id,
            object: "model",
            created: 0,
            owned_by: "tollgate",
        }
    }
}

#[derive(Serialize)]
struct ModelList<'a> {
    object: &'static str,
    data: Vec<Model<'a>>,
}

/// `{"object":"list","data":[{"id":..,"object":"model","created":0,"owned_by":"tollgate"}..]}`.
pub fn model_list(models: &[String]) -> Vec<u8> {
    let list = ModelList {
        object: "list",
        data: models.iter().map(|id| Model::new(id)).collect(),
    };
    serde_json::to_vec(&list).unwrap_or_else(|_| br#"{"object":"list","data":[]}"#.to_vec())
}

/// `{"id":..,"object":"model","created":0,"owned_by":"tollgate"}`.
pub fn model_object(id: &str) -> Vec<u8> {
    serde_json::to_vec(&Model::new(id)).unwrap_or_else(|_| b"{}".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::BTreeMap;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// Rows `route <TAB> method <TAB> path <TAB> expected`; `#` starts a comment line.
    const CASES: &str = include_str!("../tests/fixtures/operations/cases.tsv");

    /// The routes the fixture rows name: an LLM route with models and one opted-in
    /// operation, an LLM route with nothing listed, an MCP route and a proxy route.
    fn config() -> RouterConfig {
        let scope = |kind, models: &[&str], operations: &[&str]| RouteScope {
            kind,
            models: models.iter().map(|s| s.to_string()).collect(),
            operations: operations.iter().map(|s| s.to_string()).collect(),
        };
        RouterConfig {
            routes: BTreeMap::from([
                (
                    "llm-routes".to_string(),
                    scope(
                        RouteKind::Llm,
                        &["claude-3-5-haiku-20241022", "gpt-4o-mini", "meta/llama-3"],
                        &["/embeddings"],
                    ),
                ),
                ("bare".to_string(), scope(RouteKind::Llm, &[], &[])),
                ("mcp-routes".to_string(), scope(RouteKind::Mcp, &[], &[])),
                ("plain".to_string(), scope(RouteKind::Proxy, &[], &[])),
            ]),
            ..RouterConfig::default()
        }
    }

    /// `chat`, `pass`, `list:<id,id>`, `model:<id>`, or the refusal's `<status>:<code>`.
    fn summary(operation: &Operation) -> String {
        match operation {
            Operation::Chat => "chat".into(),
            Operation::PassThrough => "pass".into(),
            Operation::ListModels(body) => {
                let body: Value = serde_json::from_slice(body).unwrap();
                if body["object"] == "list" {
                    let ids: Vec<&str> = body["data"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|m| m["id"].as_str().unwrap())
                        .collect();
                    format!("list:{}", ids.join(","))
                } else {
                    format!("model:{}", body["id"].as_str().unwrap())
                }
            }
            Operation::Refuse(error) => {
                let body = error.to_openai();
                format!(
                    "{}:{}",
                    error.status(),
                    body.error.code.as_deref().unwrap_or("-")
                )
            }
        }
    }

    fn rows() -> Vec<(usize, Vec<&'static str>)> {
        CASES
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|(n, l)| (n + 1, l.split('\t').collect::<Vec<_>>()))
            .collect()
    }

    #[test]
    fn every_fixture_row_gets_its_expected_decision() {
        let config = config();
        let rows = rows();
        assert!(
            rows.len() >= 30,
            "the fixture table has {} rows",
            rows.len()
        );
        for (line, row) in rows {
            let [route, method, path, expected] = row.as_slice() else {
                panic!("cases.tsv line {line}: expected 4 tab-separated fields, got {row:?}");
            };
            let route = (*route != "-").then_some(*route);
            let decided = summary(&decide(&config, route, method, path));
            assert_eq!(
                &decided, expected,
                "cases.tsv line {line}: {method} {path} on {route:?}"
            );
        }
    }

    #[test]
    fn without_routes_every_route_is_an_llm_route_with_no_listed_models() {
        let config = RouterConfig::default();
        let cases = [
            (Some("anything/0/0"), "POST", "/v1/chat/completions", "chat"),
            (None, "POST", "/x/v1/chat/completions?a=b", "chat"),
            (None, "GET", "/v1/models", "list:"),
            (None, "GET", "/v1/files", "404:unknown_url"),
            (None, "POST", "/v1/embeddings", "404:unknown_url"),
            (None, "GET", "/v1/models/gpt-4o", "404:model_not_found"),
        ];
        for (route, method, path, expected) in cases {
            assert_eq!(
                summary(&decide(&config, route, method, path)),
                expected,
                "{method} {path}"
            );
        }
    }

    #[test]
    fn the_model_list_is_in_the_openai_format() {
        let body: Value = serde_json::from_slice(&model_list(&["gpt-4o-mini".into()])).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"object":"list","data":[
                {"id":"gpt-4o-mini","object":"model","created":0,"owned_by":"tollgate"}
            ]})
        );
    }

    #[test]
    fn refusals_are_openai_errors_that_echo_no_query_and_no_control_characters() {
        let config = config();
        let Operation::Refuse(error) = decide(
            &config,
            Some("llm-routes/0/0"),
            "GET",
            "/v1/files\r\nx-evil: 1?api_key=secret",
        ) else {
            panic!("GET /v1/files is refused");
        };
        let body: Value = serde_json::from_slice(&error.to_openai().to_bytes()).unwrap();
        let message = body["error"]["message"].as_str().unwrap();
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert!(
            !message.contains('\r') && !message.contains('\n'),
            "{message}"
        );
        assert!(!message.contains("secret"), "{message}");
        let Operation::Refuse(error) = decide(
            &config,
            Some("llm-routes/1/0"),
            "DELETE",
            "/v1/chat/completions",
        ) else {
            panic!("DELETE on chat completions is refused");
        };
        assert_eq!(
            (error.status(), error.clone()),
            (
                405,
                GatewayError::MethodNotAllowed {
                    method: "DELETE".into(),
                    path: "/v1/chat/completions".into(),
                    allow: "POST",
                }
            )
        );
    }
}
