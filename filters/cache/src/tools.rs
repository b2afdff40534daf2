//! The MCP tool-result cache: JSON-RPC 2.0 `tools/call` requests over Streamable HTTP
//! (answers in JSON or SSE), cached by rules on the request, first match wins.
//!
//! - Key: `protocol` `mcp.tools/call`, the route (the MCP server), the tool name and its
//!   canonical arguments (`$.params.name`, `$.params.arguments`), the caller's credentials
//!   (`authorization` and the configured headers) and verified identity. The JSON-RPC `id`,
//!   the session id and `_meta` are not in the key.
//! - Never cached: a tool the server listed with `annotations.destructiveHint: true` (seen in a
//!   `tools/list` answer passing through), whatever the rules say; a rule with
//!   `enabled: false`; a call no rule matches; an answer with `error` or `result.isError: true`.
//! - A hit answers with the stored JSON-RPC response, its `id` replaced by the request's.
//! - Every other method passes through untouched.

use crate::entry::{BodyKind, Entry};
use crate::key::{body_part_of, CacheKey, JsonPath, KeyInputs};
use crate::response::caller_part;
use crate::status;
use crate::store::SlotStore;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use tollgate_core::config::cache::{ToolCachePolicy, DEFAULT_TOOL_TTL_MS};
use tollgate_core::facts::Caller;
use tollgate_core::names::header;
use tollgate_core::sse::SseParser;
use tollgate_core::stage::LocalReply;

/// The `protocol` of a tool call's key.
pub const PROTOCOL_TOOL_CALL: &str = "mcp.tools/call";

/// Most destructive tool names remembered per server, and their longest name.
const MAX_DESTRUCTIVE: usize = 1024;
const MAX_TOOL_NAME: usize = 256;

/// One compiled rule.
#[derive(Debug, Clone)]
struct Rule {
    path: JsonPath,
    values: BTreeSet<String>,
    ttl_ms: Option<u64>,
}

/// One route's tool-result cache.
#[derive(Debug, Clone)]
pub struct ToolCache {
    rules: Vec<Rule>,
    headers: Vec<String>,
    /// Where its entries live.
    pub store: SlotStore,
    destructive_key: String,
}

/// A JSON-RPC request as far as the cache reads it.
#[derive(Deserialize)]
struct Request<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(default)]
    method: Option<String>,
}

/// What a request is to the tool cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolPlan {
    /// Not a `tools/call` (or a batch, or not JSON-RPC): untouched.
    Untouched,
    /// A `tools/list`: its answer is read for destructive tools.
    ListTools,
    /// A `tools/call` that is not cached.
    Bypass(&'static str),
    /// A cacheable `tools/call`.
    Cached {
        /// Its key.
        key: CacheKey,
        /// The request's JSON-RPC id, raw.
        id: String,
        /// Lifetime of its result.
        ttl_ms: u64,
    },
}

impl ToolCache {
    /// Compiles a policy; an unusable JSON path is an error (`rules[i].json_path`).
    pub fn new(policy: &ToolCachePolicy, namespace: &str) -> Result<Self, String> {
        let mut rules = Vec::new();
        for (i, rule) in policy.rules.iter().enumerate() {
            let path = JsonPath::parse(&rule.json_path)
                .map_err(|e| format!("rules[{i}].json_path: {e}"))?;
            if rule.ttl_ms == Some(0) && rule.enabled {
                return Err(format!("rules[{i}].ttl_ms: must be above 0"));
            }
            rules.push(Rule {
                path,
                values: rule.values.iter().cloned().collect(),
                ttl_ms: rule
                    .enabled
                    .then(|| rule.ttl_ms.unwrap_or(DEFAULT_TOOL_TTL_MS)),
            });
        }
        let mut headers: Vec<String> = policy
            .headers
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect();
        if !headers.iter().any(|h| h == "authorization") {
            headers.push("authorization".to_string());
        }
        Ok(Self {
            rules,
            headers,
            store: SlotStore::new(namespace, &policy.store),
            destructive_key: format!("{namespace}/destructive"),
        })
    }

    /// The request headers the key takes (lower case; `authorization` always).
    pub fn header_names(&self) -> &[String] {
        &self.headers
    }

    /// The shared-data key of the server's destructive tool names.
    pub fn destructive_key(&self) -> &str {
        &self.destructive_key
    }

    /// What a request is; `destructive` holds the tools the server listed as destructive.
    pub fn plan(
        &self,
        body: &[u8],
        route: Option<&str>,
        caller: &Caller,
        headers: &BTreeMap<String, Vec<u8>>,
        destructive: &BTreeSet<String>,
    ) -> ToolPlan {
        let Ok(top) = crate::key::top_level(body) else {
            return ToolPlan::Untouched; // a batch, or not JSON
        };
        let Ok(request) = serde_json::from_slice::<Request<'_>>(body) else {
            return ToolPlan::Untouched;
        };
        match request.method.as_deref() {
            Some("tools/call") => {}
            Some("tools/list") => return ToolPlan::ListTools,
            _ => return ToolPlan::Untouched,
        }
        let Some(id) = request.id.map(|r| r.get().to_string()) else {
            return ToolPlan::Untouched; // a notification has no answer to cache
        };
        let name_path = JsonPath::parse("$.params.name").ok();
        let name = name_path
            .as_ref()
            .and_then(|p| p.select(&top).ok().flatten())
            .and_then(|raw| serde_json::from_str::<String>(raw).ok());
        let Some(name) = name else {
            return ToolPlan::Bypass("no tool name");
        };
        if destructive.contains(&name) {
            return ToolPlan::Bypass("destructive tool");
        }
        let rule = self.rules.iter().find(|rule| {
            rule.path
                .select(&top)
                .ok()
                .flatten()
                .and_then(|raw| serde_json::from_str::<String>(raw).ok())
                .is_some_and(|v| rule.values.contains(&v))
        });
        let ttl_ms = match rule {
            None => return ToolPlan::Bypass("no rule"),
            Some(Rule { ttl_ms: None, .. }) => return ToolPlan::Bypass("disabled by rule"),
            Some(Rule {
                ttl_ms: Some(ttl), ..
            }) => *ttl,
        };
        // The name was read as a string above: only the arguments can be malformed.
        let key_paths: Vec<JsonPath> = ["$.params.name", "$.params.arguments"]
            .into_iter()
            .filter_map(|p| JsonPath::parse(p).ok())
            .collect();
        let Ok(body_part) = body_part_of(&top, &key_paths) else {
            return ToolPlan::Bypass("malformed arguments");
        };
        let mut key_headers = BTreeMap::new();
        for (name, value) in headers {
            match std::str::from_utf8(value) {
                Ok(v) => key_headers.insert(name.clone(), v.to_string()),
                Err(_) => return ToolPlan::Bypass("header not UTF-8"),
            };
        }
        let inputs = KeyInputs {
            protocol: PROTOCOL_TOOL_CALL,
            route: route.map(|r| r.split('/').next().unwrap_or(r).to_string()),
            backend: None,
            stream: false,
            caller: caller_part(caller),
            headers: key_headers,
            body: body_part,
        };
        ToolPlan::Cached {
            key: inputs.key(),
            id,
            ttl_ms,
        }
    }
}

/// The JSON-RPC response to request `id` in a whole answer (JSON, or the SSE events of
/// Streamable HTTP), when it is a success worth storing: not `error`, not `isError`.
pub fn storable_result(status: u16, content_type: &[u8], body: &[u8], id: &str) -> Option<Vec<u8>> {
    match find_result(status, content_type, body, id, true) {
        Found::Store(message) => Some(message),
        Found::NotYet | Found::Never => None,
    }
}

/// What an answer read so far says about the response to request `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Its response has not arrived yet (an SSE stream still open).
    NotYet,
    /// Its response is a success: store this message.
    Store(Vec<u8>),
    /// Its response is an error, or the answer cannot hold one: nothing to store.
    Never,
}

/// Looks for the response to `id` in `body`; with `whole` false, `body` is an SSE stream read
/// so far (only its complete events count). SDK clients send their next request as soon as
/// the response event arrives, before the stream ends: so it is stored then.
pub fn find_result(status: u16, content_type: &[u8], body: &[u8], id: &str, whole: bool) -> Found {
    if status != 200 {
        return Found::Never;
    }
    let kind = tollgate_core::observe::BodyKind::of_content_type(content_type);
    let messages: Vec<Vec<u8>> = match kind {
        tollgate_core::observe::BodyKind::Json if whole => vec![body.to_vec()],
        tollgate_core::observe::BodyKind::Json => return Found::NotYet,
        tollgate_core::observe::BodyKind::EventStream => match sse_messages(body, whole) {
            Some(messages) => messages,
            None => return Found::Never,
        },
        tollgate_core::observe::BodyKind::Other => return Found::Never,
    };
    let Ok(wanted) = serde_json::from_str::<Value>(id) else {
        return Found::Never;
    };
    for message in messages {
        let Ok(value) = serde_json::from_slice::<Value>(&message) else {
            continue;
        };
        if value.get("id") != Some(&wanted) {
            continue;
        }
        if value.get("error").is_some() {
            return Found::Never;
        }
        let Some(result) = value.get("result") else {
            return Found::Never;
        };
        if result.get("isError") == Some(&Value::Bool(true)) {
            return Found::Never;
        }
        return Found::Store(message);
    }
    if whole {
        Found::Never
    } else {
        Found::NotYet
    }
}

fn sse_messages(body: &[u8], whole: bool) -> Option<Vec<Vec<u8>>> {
    let mut parser = SseParser::new();
    let mut out = Vec::new();
    parser.push(body, |e| out.push(e.data.as_bytes().to_vec()));
    if whole {
        parser.finish(|e| out.push(e.data.as_bytes().to_vec()));
    }
    (!parser.overflowed()).then_some(out)
}

/// The tools a `tools/list` answer marks `destructiveHint: true`.
pub fn destructive_tools(content_type: &[u8], body: &[u8]) -> Vec<String> {
    listed_destructive(content_type, body, true).unwrap_or_default()
}

/// The destructive tools of a `tools/list` answer read so far: `Some` once its result has
/// arrived (with `whole` false, only complete SSE events count: SDK clients send their next
/// request as soon as the list arrives, before the stream ends).
pub fn listed_destructive(content_type: &[u8], body: &[u8], whole: bool) -> Option<Vec<String>> {
    let kind = tollgate_core::observe::BodyKind::of_content_type(content_type);
    let messages = match kind {
        tollgate_core::observe::BodyKind::Json if whole => vec![body.to_vec()],
        tollgate_core::observe::BodyKind::Json => return None,
        tollgate_core::observe::BodyKind::EventStream => sse_messages(body, whole)?,
        tollgate_core::observe::BodyKind::Other => return None,
    };
    #[derive(Deserialize)]
    struct Listed {
        #[serde(default)]
        result: Option<ToolList>,
    }
    #[derive(Deserialize)]
    struct ToolList {
        #[serde(default)]
        tools: Vec<Tool>,
    }
    #[derive(Deserialize)]
    struct Tool {
        name: String,
        #[serde(default)]
        annotations: Option<Annotations>,
    }
    #[derive(Deserialize)]
    struct Annotations {
        #[serde(default, rename = "destructiveHint")]
        destructive_hint: Option<bool>,
    }
    let mut names = None;
    for message in messages {
        if let Ok(Listed { result: Some(list) }) = serde_json::from_slice::<Listed>(&message) {
            names.get_or_insert_with(Vec::new).extend(
                list.tools
                    .into_iter()
                    .filter(|t| {
                        t.annotations
                            .as_ref()
                            .and_then(|a| a.destructive_hint)
                            .unwrap_or(false)
                    })
                    .map(|t| t.name)
                    .filter(|n| n.len() <= MAX_TOOL_NAME),
            );
        }
    }
    names
}

/// Reads the stored set of destructive tool names (one per line).
pub fn decode_destructive(bytes: &[u8]) -> BTreeSet<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// The stored set with `more` added (bounded; `None` when nothing changed).
pub fn merge_destructive(stored: &BTreeSet<String>, more: &[String]) -> Option<Vec<u8>> {
    let mut set = stored.clone();
    for name in more {
        if set.len() >= MAX_DESTRUCTIVE {
            break;
        }
        if !name.contains('\n') {
            set.insert(name.clone());
        }
    }
    if set.len() == stored.len() {
        return None;
    }
    Some(set.into_iter().collect::<Vec<_>>().join("\n").into_bytes())
}

/// The entry a tool result becomes.
pub fn entry(key: CacheKey, now_ms: u64, ttl_ms: u64, message: Vec<u8>) -> Entry {
    Entry {
        key,
        stored_ms: now_ms,
        expires_ms: now_ms.saturating_add(ttl_ms),
        kind: BodyKind::Json,
        usage: None,
        model: None,
        provider: None,
        body: message,
    }
}

/// A hit's local reply: the stored JSON-RPC response with the request's `id`.
pub fn hit_reply(entry: &Entry, now_ms: u64, id: &str) -> LocalReply {
    LocalReply {
        status: 200,
        headers: vec![
            ("content-type".to_string(), "application/json".to_string()),
            (header::CACHE_STATUS.to_string(), status::HIT.to_string()),
            (
                "age".to_string(),
                (now_ms.saturating_sub(entry.stored_ms) / 1000).to_string(),
            ),
        ],
        body: with_id(&entry.body, id),
    }
}

/// A JSON-RPC message with its top-level `id` replaced by `id` (raw JSON).
pub fn with_id(message: &[u8], id: &str) -> Vec<u8> {
    #[derive(Deserialize)]
    struct Id<'a> {
        #[serde(borrow, default)]
        id: Option<&'a RawValue>,
    }
    let Ok(text) = std::str::from_utf8(message) else {
        return message.to_vec();
    };
    let Ok(Id { id: Some(raw) }) = serde_json::from_str::<Id<'_>>(text) else {
        return message.to_vec();
    };
    let start = raw.get().as_ptr() as usize - text.as_ptr() as usize;
    let end = start + raw.get().len();
    let mut out = Vec::with_capacity(message.len() + id.len());
    out.extend_from_slice(&message[..start]);
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(&message[end..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_core::config::cache::ToolCacheRule;

    /// The guide's tool-cache.
    fn guide() -> ToolCache {
        let policy = ToolCachePolicy {
            rules: vec![
                ToolCacheRule {
                    json_path: "$.params.name".into(),
                    values: vec![
                        "kubectl-get".into(),
                        "list-pods".into(),
                        "list-services".into(),
                    ],
                    ttl_ms: Some(300_000),
                    enabled: true,
                },
                ToolCacheRule {
                    json_path: "$.params.name".into(),
                    values: vec!["kubectl-apply".into(), "kubectl-delete".into()],
                    ttl_ms: None,
                    enabled: false,
                },
            ],
            ..Default::default()
        };
        ToolCache::new(&policy, "t").unwrap()
    }

    fn call(id: &str, name: &str, args: &str) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{name}","arguments":{args}}}}}"#
        )
    }

    fn plan(cache: &ToolCache, body: &str, auth: &str, destructive: &[&str]) -> ToolPlan {
        let headers = BTreeMap::from([("authorization".to_string(), auth.as_bytes().to_vec())]);
        let destructive = destructive.iter().map(|s| s.to_string()).collect();
        cache.plan(
            body.as_bytes(),
            Some("mcp-routes/0/0"),
            &Caller::default(),
            &headers,
            &destructive,
        )
    }

    #[test]
    fn rules_decide_by_tool_name_first_match_wins() {
        let cache = guide();
        let cached = plan(&cache, &call("1", "list-pods", r#"{"ns":"a"}"#), "t", &[]);
        assert!(matches!(cached, ToolPlan::Cached { ttl_ms: 300_000, ref id, .. } if id == "1"));
        assert_eq!(
            plan(&cache, &call("1", "kubectl-apply", "{}"), "t", &[]),
            ToolPlan::Bypass("disabled by rule")
        );
        assert_eq!(
            plan(&cache, &call("1", "other", "{}"), "t", &[]),
            ToolPlan::Bypass("no rule")
        );
        assert_eq!(
            plan(&cache, &call("1", "list-pods", "{}"), "t", &["list-pods"]),
            ToolPlan::Bypass("destructive tool")
        );
    }

    #[test]
    fn the_key_ignores_the_id_and_argument_order_but_not_arguments_or_credentials() {
        let cache = guide();
        let key = |body: &str, auth: &str| match plan(&cache, body, auth, &[]) {
            ToolPlan::Cached { key, .. } => key,
            other => panic!("{other:?}"),
        };
        let a = key(&call("1", "list-pods", r#"{"ns":"a","all":true}"#), "t");
        assert_eq!(
            a,
            key(
                &call(r#""x""#, "list-pods", r#"{"all":true,"ns":"a"}"#),
                "t"
            )
        );
        assert_ne!(
            a,
            key(&call("1", "list-pods", r#"{"ns":"b","all":true}"#), "t")
        );
        assert_ne!(
            a,
            key(&call("1", "list-pods", r#"{"ns":"a","all":true}"#), "u")
        );
    }

    #[test]
    fn other_methods_and_notifications_are_untouched() {
        let cache = guide();
        let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
        assert_eq!(plan(&cache, list, "t", &[]), ToolPlan::ListTools);
        let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}"#;
        assert_eq!(plan(&cache, init, "t", &[]), ToolPlan::Untouched);
        let batch = format!("[{}]", call("1", "list-pods", "{}"));
        assert_eq!(plan(&cache, &batch, "t", &[]), ToolPlan::Untouched);
    }

    #[test]
    fn only_successful_results_for_the_request_id_are_stored() {
        let ok =
            br#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"pods"}]}}"#;
        let json = b"application/json";
        assert_eq!(
            storable_result(200, json, ok, "7").as_deref(),
            Some(&ok[..])
        );
        assert_eq!(storable_result(200, json, ok, "8"), None);
        assert_eq!(storable_result(500, json, ok, "7"), None);
        let tool_error = br#"{"jsonrpc":"2.0","id":7,"result":{"isError":true,"content":[]}}"#;
        assert_eq!(storable_result(200, json, tool_error, "7"), None);
        let rpc_error = br#"{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"x"}}"#;
        assert_eq!(storable_result(200, json, rpc_error, "7"), None);
        let sse = b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{}}\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"content\":[]}}\n\n";
        assert_eq!(
            storable_result(200, b"text/event-stream", sse, "7").as_deref(),
            Some(&br#"{"jsonrpc":"2.0","id":7,"result":{"content":[]}}"#[..])
        );
    }

    #[test]
    fn a_streamed_result_is_found_as_soon_as_its_event_is_complete() {
        let sse = b"event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"content\":[]}}\r\n\r\n";
        let ct = b"text/event-stream";
        assert_eq!(
            find_result(200, ct, &sse[..sse.len() - 2], "7", false),
            Found::NotYet
        );
        assert!(matches!(
            find_result(200, ct, sse, "7", false),
            Found::Store(_)
        ));
        assert_eq!(
            find_result(200, b"application/json", b"{", "7", false),
            Found::NotYet
        );
    }

    #[test]
    fn a_hit_carries_the_new_requests_id() {
        let stored = br#"{"jsonrpc":"2.0","id":7,"result":{"content":[]}}"#;
        let e = entry(CacheKey([0; 32]), 1_000, 300_000, stored.to_vec());
        let reply = hit_reply(&e, 61_000, r#""abc""#);
        assert_eq!(
            reply.body,
            br#"{"jsonrpc":"2.0","id":"abc","result":{"content":[]}}"#
        );
        assert!(reply
            .headers
            .contains(&("age".to_string(), "60".to_string())));
    }

    #[test]
    fn destructive_tools_are_read_from_a_tools_list_answer() {
        let listed = br#"{"jsonrpc":"2.0","id":2,"result":{"tools":[
            {"name":"list-pods","inputSchema":{},"annotations":{"readOnlyHint":true}},
            {"name":"kubectl-delete","inputSchema":{},"annotations":{"destructiveHint":true}},
            {"name":"plain","inputSchema":{}}]}}"#;
        let names = destructive_tools(b"application/json", listed);
        assert_eq!(names, vec!["kubectl-delete".to_string()]);
        let sse = format!(
            "event: message\ndata: {}\n\n",
            String::from_utf8_lossy(listed).replace('\n', "")
        );
        let ct = b"text/event-stream";
        assert_eq!(
            listed_destructive(ct, &sse.as_bytes()[..sse.len() - 1], false),
            None
        );
        assert_eq!(
            listed_destructive(ct, sse.as_bytes(), false),
            Some(names.clone())
        );
        let merged = merge_destructive(&BTreeSet::new(), &names).unwrap();
        assert_eq!(decode_destructive(&merged).len(), 1);
        assert_eq!(
            merge_destructive(&decode_destructive(&merged), &names),
            None
        );
    }
}
