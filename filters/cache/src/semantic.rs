//! The gateway's side of the semantic-cache protocol (`services/semantic-cache/PROTOCOL.md`):
//! what a chat request becomes in a lookup or a store call, and what the service's answer means.
//!
//! Only the final user message is compared by meaning. Everything else that shapes the answer
//! must match exactly and goes into the partition the service searches: the tenant `scope`
//! (route, backend and every identity the caller showed, hashed so no credential leaves the
//! gateway), the `model`, and `params` (a hash of the other request fields and the earlier
//! messages). So a paraphrase of the same question in the same conversation hits; the same words
//! after another system prompt, from another caller or for another model never do.

use crate::canonical;
use crate::entry::{replay_body, BodyKind, Entry};
use crate::key::CacheKey;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tollgate_core::config::cache::SemanticCachePolicy;
use tollgate_core::facts::{Answerer, RequestFacts, ResponseFacts};
use tollgate_core::names::{header, semantic_cache};
use tollgate_core::stage::{Callout, LocalReply};

/// Path of a lookup.
pub const LOOKUP_PATH: &str = "/lookup";
/// Path of a store.
pub const STORE_PATH: &str = "/store";
/// Longest prompt sent (bytes of UTF-8); longer prompts are not looked up (the service
/// refuses prompts over 32768 characters).
pub const MAX_PROMPT_BYTES: usize = 32 * 1024;
/// How long a store call may take; nothing waits for it, this only bounds Envoy's work.
pub const STORE_TIMEOUT_MS: u64 = 5_000;

/// Why a request is not looked up (and its answer not stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The body is not a JSON object.
    NotAnObject,
    /// No `model`.
    NoModel,
    /// No `messages`, or not an array, or empty.
    NoMessages,
    /// The last message is not the user's (a tool result, an assistant prefill).
    LastNotUser,
    /// The last message holds more than text (images, audio): its meaning is not in its text.
    NotText,
    /// The prompt is empty.
    EmptyPrompt,
    /// The prompt is longer than [`MAX_PROMPT_BYTES`].
    PromptTooLong,
    /// `n > 1` asks for several different answers.
    SeveralChoices,
}

impl Skip {
    /// Short reason, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::NotAnObject => "body is not a JSON object",
            Skip::NoModel => "no model",
            Skip::NoMessages => "no messages",
            Skip::LastNotUser => "last message is not the user's",
            Skip::NotText => "last message is not text only",
            Skip::EmptyPrompt => "empty prompt",
            Skip::PromptTooLong => "prompt too long",
            Skip::SeveralChoices => "n > 1",
        }
    }
}

/// What identifies the caller, as the glue read it from the request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Identity<'a> {
    /// The `Authorization` header, exact.
    pub authorization: Option<&'a str>,
    /// The verified JWT's `sub`.
    pub jwt_subject: Option<&'a str>,
    /// The client key name `api_key_auth` authenticated.
    pub client_key: Option<&'a str>,
}

/// One request's partition and prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Hex SHA-256 of the tenant scope.
    pub scope: String,
    /// The requested model.
    pub model: String,
    /// Hex SHA-256 of every other request field and the earlier messages.
    pub params: String,
    /// The final user message's text.
    pub prompt: String,
}

/// An answer as the service stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAnswer {
    /// HTTP status (only 200 is stored).
    pub status: u16,
    /// Its `content-type`.
    pub content_type: String,
    /// Its body (JSON or SSE text).
    pub body: String,
}

#[derive(Serialize)]
struct LookupBody<'a> {
    scope: &'a str,
    model: &'a str,
    params: &'a str,
    prompt: &'a str,
    threshold: f64,
}

#[derive(Serialize)]
struct StoreBody<'a> {
    scope: &'a str,
    model: &'a str,
    params: &'a str,
    prompt: &'a str,
    ttl_s: u64,
    answer: &'a StoredAnswer,
}

#[derive(Deserialize)]
struct LookupAnswer {
    hit: bool,
    #[serde(default)]
    similarity: Option<f64>,
    #[serde(default)]
    answer: Option<StoredAnswer>,
    #[serde(default)]
    age_s: Option<u64>,
}

/// Why a lookup gave nothing usable: the request goes on (fail open) and a metric counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No answer: the service is down, refused the connection or timed out.
    Unreachable,
    /// An HTTP status other than 200.
    Status(u16),
    /// A 200 whose body breaks the protocol.
    BadAnswer,
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// A similar enough prompt: answer with its stored answer.
    Hit {
        /// The stored answer.
        answer: StoredAnswer,
        /// Its prompt's similarity to this one.
        similarity: f64,
        /// Seconds since it was stored.
        age_s: u64,
    },
    /// Nothing similar enough: ask the provider, then store.
    Miss,
    /// The service could not say: ask the provider, do not store.
    Failed(Failure),
}

/// Checks a policy at configuration time; the error names the field.
pub fn validate(policy: &SemanticCachePolicy) -> Result<(), String> {
    if !(0.0..=1.0).contains(&policy.similarity_threshold) {
        return Err(format!(
            "semantic.similarity_threshold: expected a number from 0 to 1, got {}",
            policy.similarity_threshold
        ));
    }
    for (field, value) in [
        ("cluster", &policy.cluster),
        ("authority", &policy.authority),
    ] {
        if value.is_empty() || value.chars().any(char::is_control) {
            return Err(format!("semantic.{field}: expected a name, got {value:?}"));
        }
    }
    if policy.timeout_ms == 0 {
        return Err("semantic.timeout_ms: must be positive".into());
    }
    if policy.ttl_ms < 1000 {
        return Err("semantic.ttl_ms: must be at least 1000 (the service keeps seconds)".into());
    }
    Ok(())
}

fn sha256_hex(text: &str) -> String {
    let digest = crate::sha256::digest(text.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
        hex.push(char::from(b"0123456789abcdef"[usize::from(byte & 0xf)]));
    }
    hex
}

/// The tenant scope: route, backend and identities, canonical JSON, hashed.
pub fn scope(facts: &RequestFacts, identity: &Identity<'_>) -> String {
    let text = |v: Option<&str>| v.map_or(Value::Null, |s| Value::String(s.to_string()));
    let mut members = Map::new();
    members.insert("route".into(), text(facts.route.as_deref()));
    members.insert("backend".into(), text(facts.backend.as_deref()));
    members.insert("authorization".into(), text(identity.authorization));
    members.insert("jwt_sub".into(), text(identity.jwt_subject));
    members.insert("client_key".into(), text(identity.client_key));
    sha256_hex(&canonical::to_string(&Value::Object(members)))
}

/// The text of a message's `content`: a string, or text parts joined by newlines.
fn content_text(content: &Value) -> Result<String, Skip> {
    match content {
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => {
            let mut text = String::new();
            for part in parts {
                let is_text = part.get("type").and_then(Value::as_str) == Some("text");
                match part.get("text").and_then(Value::as_str) {
                    Some(t) if is_text => {
                        if !text.is_empty() {
                            text.push('\n');
                        }
                        text.push_str(t);
                    }
                    _ => return Err(Skip::NotText),
                }
            }
            Ok(text)
        }
        _ => Err(Skip::NotText),
    }
}

/// The partition and prompt of a chat-completions request, or why it is not looked up.
pub fn query(facts: &RequestFacts, identity: &Identity<'_>, body: &[u8]) -> Result<Query, Skip> {
    let Ok(Value::Object(mut request)) = serde_json::from_slice::<Value>(body) else {
        return Err(Skip::NotAnObject);
    };
    let model = match request.remove("model") {
        Some(Value::String(m)) if !m.is_empty() => m,
        _ => return Err(Skip::NoModel),
    };
    if request
        .get("n")
        .and_then(Value::as_f64)
        .is_some_and(|n| n > 1.0)
    {
        return Err(Skip::SeveralChoices);
    }
    let Some(Value::Array(mut messages)) = request.remove("messages") else {
        return Err(Skip::NoMessages);
    };
    let Some(last) = messages.pop() else {
        return Err(Skip::NoMessages);
    };
    if last.get("role").and_then(Value::as_str) != Some("user") {
        return Err(Skip::LastNotUser);
    }
    let prompt = content_text(last.get("content").unwrap_or(&Value::Null))?;
    if prompt.trim().is_empty() {
        return Err(Skip::EmptyPrompt);
    }
    if prompt.len() > MAX_PROMPT_BYTES {
        return Err(Skip::PromptTooLong);
    }
    // The last message's other members (`name`) still count exactly.
    let mut last_rest = last;
    if let Some(members) = last_rest.as_object_mut() {
        members.remove("content");
    }
    request.insert("messages".into(), Value::Array(messages));
    request.insert("last_message".into(), last_rest);
    Ok(Query {
        scope: scope(facts, identity),
        model,
        params: sha256_hex(&canonical::to_string(&Value::Object(request))),
        prompt,
    })
}

fn callout(policy: &SemanticCachePolicy, path: &str, body: Vec<u8>, timeout_ms: u64) -> Callout {
    Callout {
        cluster: policy.cluster.clone(),
        method: "POST".into(),
        path: path.into(),
        authority: policy.authority.clone(),
        body,
        timeout_ms,
    }
}

/// The lookup call: waits at most the policy's `timeout_ms`.
pub fn lookup_callout(policy: &SemanticCachePolicy, query: &Query) -> Callout {
    let body = LookupBody {
        scope: &query.scope,
        model: &query.model,
        params: &query.params,
        prompt: &query.prompt,
        threshold: policy.similarity_threshold,
    };
    // Serializing these plain strings and a finite f64 cannot fail.
    let body = serde_json::to_vec(&body).unwrap_or_default();
    callout(policy, LOOKUP_PATH, body, policy.timeout_ms)
}

/// The store call of an answer.
pub fn store_callout(
    policy: &SemanticCachePolicy,
    query: &Query,
    answer: &StoredAnswer,
) -> Callout {
    let body = StoreBody {
        scope: &query.scope,
        model: &query.model,
        params: &query.params,
        prompt: &query.prompt,
        ttl_s: (policy.ttl_ms / 1000).max(1),
        answer,
    };
    let body = serde_json::to_vec(&body).unwrap_or_default();
    callout(policy, STORE_PATH, body, STORE_TIMEOUT_MS)
}

/// What the lookup's answer means; `status` 0 is a call that failed or timed out.
pub fn read_lookup(status: u16, body: &[u8]) -> Lookup {
    match status {
        0 => return Lookup::Failed(Failure::Unreachable),
        200 => {}
        other => return Lookup::Failed(Failure::Status(other)),
    }
    let Ok(answer) = serde_json::from_slice::<LookupAnswer>(body) else {
        return Lookup::Failed(Failure::BadAnswer);
    };
    if !answer.hit {
        return Lookup::Miss;
    }
    match answer.answer {
        // Only 200s are stored; anything else from a service is not served.
        Some(stored) if stored.status == 200 => Lookup::Hit {
            answer: stored,
            similarity: answer.similarity.unwrap_or(1.0),
            age_s: answer.age_s.unwrap_or(0),
        },
        _ => Lookup::Failed(Failure::BadAnswer),
    }
}

/// A fresh completion id for a hit (`n`: a per-VM counter, so two hits in one millisecond
/// differ): the answer is another completion than the one stored.
pub fn fresh_id(query: &Query, now_ms: u64, n: u64) -> String {
    let seed = format!(
        "semantic:{}:{}:{}:{now_ms}:{n}",
        query.scope, query.params, query.prompt
    );
    format!("chatcmpl-{}", &sha256_hex(&seed)[..24])
}

/// The local reply of a hit: the stored answer with a fresh top-level `id` and `created`
/// (JSON, or every SSE frame as it came, as the response cache replays), marked as a hit.
pub fn hit_reply(
    answer: StoredAnswer,
    similarity: f64,
    age_s: u64,
    id: &str,
    now_ms: u64,
) -> LocalReply {
    let sse = answer.content_type.starts_with("text/event-stream");
    let mut headers = vec![
        ("content-type".into(), answer.content_type),
        (header::CACHE_STATUS.into(), "HIT".into()),
        ("age".into(), age_s.to_string()),
        (
            semantic_cache::SIMILARITY_HEADER.into(),
            format!("{similarity:.4}"),
        ),
    ];
    if sse {
        headers.push(("cache-control".into(), "no-cache".into()));
    }
    let entry = Entry {
        key: CacheKey([0; 32]),
        stored_ms: 0,
        expires_ms: 0,
        kind: if sse { BodyKind::Sse } else { BodyKind::Json },
        usage: None,
        model: None,
        provider: None,
        body: answer.body.into_bytes(),
    };
    LocalReply {
        status: answer.status,
        headers,
        body: replay_body(&entry, id, now_ms / 1000),
    }
}

/// The answer to store after a miss: a complete 200 from the provider, text, within the
/// policy's size; `None` otherwise (errors, truncated streams, local replies are never stored).
pub fn storable(
    policy: &SemanticCachePolicy,
    response: &ResponseFacts,
    content_type: Option<&str>,
    body: &[u8],
) -> Option<StoredAnswer> {
    if response.status != 200
        || !response.complete
        || response.answered_by != Answerer::Upstream
        || body.is_empty()
        || u64::try_from(body.len()).map_or(true, |n| n > policy.max_entry_bytes)
    {
        return None;
    }
    let text = std::str::from_utf8(body).ok()?;
    Some(StoredAnswer {
        status: 200,
        content_type: content_type.unwrap_or("application/json").to_string(),
        body: text.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_core::facts::Caller;

    fn policy() -> SemanticCachePolicy {
        SemanticCachePolicy {
            cluster: "service/semantic-cache-service".into(),
            authority: "semantic-cache-service:8080".into(),
            timeout_ms: 250,
            similarity_threshold: 0.95,
            ttl_ms: 86_400_000,
            max_entry_bytes: 1024,
        }
    }

    fn facts() -> RequestFacts {
        RequestFacts {
            route: Some("llm-routes/1/0".into()),
            backend: Some("multi-provider".into()),
            model: Some("gpt-4o-mini".into()),
            caller: Caller::default(),
            ..Default::default()
        }
    }

    const ALICE: Identity<'static> = Identity {
        authorization: Some("Bearer alice"),
        jwt_subject: None,
        client_key: None,
    };

    fn chat(extra: &str, messages: &str) -> Vec<u8> {
        format!(r#"{{"model":"gpt-4o-mini"{extra},"messages":[{messages}]}}"#).into_bytes()
    }

    fn q(body: &[u8]) -> Query {
        query(&facts(), &ALICE, body).unwrap()
    }

    #[test]
    fn the_prompt_is_the_last_user_message_and_the_model_is_sent_apart() {
        let got = q(&chat(
            "",
            r#"{"role":"system","content":"Be brief."},{"role":"user","content":"Say hello"}"#,
        ));
        assert_eq!(got.prompt, "Say hello");
        assert_eq!(got.model, "gpt-4o-mini");
        assert_eq!(got.scope.len(), 64);
        assert_eq!(got.params.len(), 64);
    }

    #[test]
    fn text_parts_are_joined_and_other_parts_skip_the_lookup() {
        let parts =
            r#"{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}"#;
        assert_eq!(q(&chat("", parts)).prompt, "a\nb");
        let image = r#"{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}"#;
        assert_eq!(
            query(&facts(), &ALICE, &chat("", image)),
            Err(Skip::NotText)
        );
    }

    #[test]
    fn requests_the_cache_cannot_judge_are_skipped_with_a_reason() {
        let user = r#"{"role":"user","content":"hi"}"#;
        let cases: [(Vec<u8>, Skip); 7] = [
            (b"[1]".to_vec(), Skip::NotAnObject),
            (br#"{"messages":[]}"#.to_vec(), Skip::NoModel),
            (br#"{"model":"m"}"#.to_vec(), Skip::NoMessages),
            (chat("", ""), Skip::NoMessages),
            (
                chat("", r#"{"role":"assistant","content":"hi"}"#),
                Skip::LastNotUser,
            ),
            (
                chat("", r#"{"role":"user","content":"  "}"#),
                Skip::EmptyPrompt,
            ),
            (chat(r#","n":2"#, user), Skip::SeveralChoices),
        ];
        for (body, skip) in cases {
            assert_eq!(
                query(&facts(), &ALICE, &body),
                Err(skip),
                "{}",
                String::from_utf8_lossy(&body)
            );
        }
        let long = format!(
            r#"{{"role":"user","content":"{}"}}"#,
            "a".repeat(MAX_PROMPT_BYTES + 1)
        );
        assert_eq!(
            query(&facts(), &ALICE, &chat("", &long)),
            Err(Skip::PromptTooLong)
        );
    }

    #[test]
    fn the_partition_changes_with_everything_but_the_prompt_text() {
        let user = r#"{"role":"user","content":"Say hello"}"#;
        let base = q(&chat("", user));
        // Same request, other spelling of the same JSON: same partition.
        let same =
            q(br#"{"messages":[{"content":"Say hello","role":"user"}],"model":"gpt-4o-mini"}"#);
        assert_eq!((&same.scope, &same.params), (&base.scope, &base.params));
        // A paraphrase: same partition, other prompt.
        let paraphrase = q(&chat("", r#"{"role":"user","content":"Say hi"}"#));
        assert_eq!(
            (&paraphrase.scope, &paraphrase.params),
            (&base.scope, &base.params)
        );
        // 0 and 0.0 are one temperature.
        assert_eq!(
            q(&chat(r#","temperature":0"#, user)).params,
            q(&chat(r#","temperature":0.0"#, user)).params
        );
        for other in [
            chat(r#","temperature":0.7"#, user),
            chat(r#","stream":true"#, user),
            chat(r#","max_tokens":5"#, user),
            chat(
                "",
                &format!(r#"{{"role":"system","content":"Be rude."}},{user}"#),
            ),
            chat("", r#"{"role":"user","content":"Say hello","name":"bob"}"#),
        ] {
            assert_ne!(
                q(&other).params,
                base.params,
                "{}",
                String::from_utf8_lossy(&other)
            );
        }
    }

    #[test]
    fn another_caller_route_or_backend_is_another_scope() {
        let body = chat("", r#"{"role":"user","content":"Say hello"}"#);
        let base = q(&body).scope;
        let bob = Identity {
            authorization: Some("Bearer bob"),
            ..ALICE
        };
        let with_sub = Identity {
            jwt_subject: Some("alice"),
            ..ALICE
        };
        let with_key = Identity {
            client_key: Some("team-a"),
            ..ALICE
        };
        for identity in [bob, with_sub, with_key, Identity::default()] {
            assert_ne!(query(&facts(), &identity, &body).unwrap().scope, base);
        }
        let mut other_route = facts();
        other_route.route = Some("llm-routes/0/0".into());
        let mut other_backend = facts();
        other_backend.backend = Some("openai".into());
        for f in [other_route, other_backend] {
            assert_ne!(query(&f, &ALICE, &body).unwrap().scope, base);
        }
    }

    #[test]
    fn no_credential_leaves_in_the_calls() {
        let query = q(&chat("", r#"{"role":"user","content":"Say hello"}"#));
        let answer = StoredAnswer {
            status: 200,
            content_type: "application/json".into(),
            body: "{}".into(),
        };
        for call in [
            lookup_callout(&policy(), &query),
            store_callout(&policy(), &query, &answer),
        ] {
            let text = String::from_utf8(call.body).unwrap();
            assert!(!text.contains("alice"), "{text}");
        }
    }

    #[test]
    fn the_lookup_call_carries_the_documented_body() {
        let query = q(&chat("", r#"{"role":"user","content":"Say hello"}"#));
        let call = lookup_callout(&policy(), &query);
        assert_eq!(
            (
                call.cluster.as_str(),
                call.method.as_str(),
                call.path.as_str()
            ),
            ("service/semantic-cache-service", "POST", "/lookup")
        );
        assert_eq!(call.authority, "semantic-cache-service:8080");
        assert_eq!(call.timeout_ms, 250);
        let body: Value = serde_json::from_slice(&call.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "scope": query.scope, "model": "gpt-4o-mini", "params": query.params,
                "prompt": "Say hello", "threshold": 0.95
            })
        );
    }

    #[test]
    fn the_store_call_carries_the_answer_and_the_ttl_in_seconds() {
        let query = q(&chat("", r#"{"role":"user","content":"Say hello"}"#));
        let answer = StoredAnswer {
            status: 200,
            content_type: "application/json".into(),
            body: r#"{"id":"1"}"#.into(),
        };
        let call = store_callout(&policy(), &query, &answer);
        assert_eq!(call.path, "/store");
        let body: Value = serde_json::from_slice(&call.body).unwrap();
        assert_eq!(body["ttl_s"], 86_400);
        assert_eq!(body["prompt"], "Say hello");
        assert_eq!(
            body["answer"],
            serde_json::json!({"status":200,"content_type":"application/json","body":"{\"id\":\"1\"}"})
        );
    }

    #[test]
    fn lookup_answers_are_read_as_hit_miss_or_failure() {
        let hit = br#"{"hit":true,"similarity":0.98,"age_s":7,"answer":{"status":200,"content_type":"application/json","body":"{}"}}"#;
        assert_eq!(
            read_lookup(200, hit),
            Lookup::Hit {
                answer: StoredAnswer {
                    status: 200,
                    content_type: "application/json".into(),
                    body: "{}".into()
                },
                similarity: 0.98,
                age_s: 7
            }
        );
        assert_eq!(
            read_lookup(200, br#"{"hit":false,"similarity":0.8}"#),
            Lookup::Miss
        );
        assert_eq!(read_lookup(200, br#"{"hit":false}"#), Lookup::Miss);
        let cases: [(u16, &[u8], Failure); 5] = [
            (0, b"", Failure::Unreachable),
            (503, b"down", Failure::Status(503)),
            (200, b"not json", Failure::BadAnswer),
            (200, br#"{"hit":true}"#, Failure::BadAnswer),
            (
                200,
                br#"{"hit":true,"answer":{"status":500,"content_type":"x","body":""}}"#,
                Failure::BadAnswer,
            ),
        ];
        for (status, body, failure) in cases {
            assert_eq!(read_lookup(status, body), Lookup::Failed(failure));
        }
    }

    #[test]
    fn a_hit_answers_with_the_stored_body_restamped_and_marked_as_a_hit() {
        let stored = r#"{"id":"chatcmpl-old","object":"chat.completion","created":1700000000,"choices":[{"index":0,"message":{"role":"assistant","content":"Hi"}}]}"#;
        let answer = StoredAnswer {
            status: 200,
            content_type: "application/json".into(),
            body: stored.into(),
        };
        let reply = hit_reply(answer, 0.98765, 12, "chatcmpl-new", 1_800_000_000_123);
        assert_eq!(reply.status, 200);
        assert_eq!(
            String::from_utf8(reply.body).unwrap(),
            stored
                .replace("chatcmpl-old", "chatcmpl-new")
                .replace("1700000000", "1800000000")
        );
        let frames = "data: {\"id\":\"a\",\"created\":1,\"choices\":[]}\n\ndata: [DONE]\n\n";
        let answer = StoredAnswer {
            status: 200,
            content_type: "text/event-stream".into(),
            body: frames.into(),
        };
        let reply = hit_reply(answer, 0.98765, 12, "b", 2_000);
        assert_eq!(
            String::from_utf8(reply.body).unwrap(),
            "data: {\"id\":\"b\",\"created\":2,\"choices\":[]}\n\ndata: [DONE]\n\n"
        );
        for (name, value) in [
            ("content-type", "text/event-stream"),
            ("cache-control", "no-cache"),
            ("x-cache-status", "HIT"),
            ("age", "12"),
            (semantic_cache::SIMILARITY_HEADER, "0.9877"),
        ] {
            assert!(
                reply.headers.iter().any(|(n, v)| n == name && v == value),
                "{name}: {:?}",
                reply.headers
            );
        }
    }

    #[test]
    fn fresh_ids_differ_by_time_and_counter() {
        let query = q(&chat("", r#"{"role":"user","content":"Say hello"}"#));
        let id = fresh_id(&query, 1, 1);
        assert!(id.starts_with("chatcmpl-") && id.len() == 33, "{id}");
        assert_ne!(id, fresh_id(&query, 1, 2));
        assert_ne!(id, fresh_id(&query, 2, 1));
        assert_eq!(id, fresh_id(&query, 1, 1));
    }

    #[test]
    fn only_complete_200s_from_the_provider_within_the_size_are_stored() {
        let ok = ResponseFacts {
            status: 200,
            complete: true,
            ..Default::default()
        };
        assert!(storable(&policy(), &ok, Some("application/json"), b"{}").is_some());
        let cases = [
            ResponseFacts {
                status: 500,
                ..ok.clone()
            },
            ResponseFacts {
                complete: false,
                ..ok.clone()
            },
            ResponseFacts {
                answered_by: Answerer::Cache,
                ..ok.clone()
            },
        ];
        for response in cases {
            assert!(
                storable(&policy(), &response, None, b"{}").is_none(),
                "{response:?}"
            );
        }
        assert!(storable(&policy(), &ok, None, &[b'a'; 1025]).is_none());
        assert!(storable(&policy(), &ok, None, &[0xff, 0xfe]).is_none());
        assert!(storable(&policy(), &ok, None, b"").is_none());
    }

    #[test]
    fn bad_policies_are_refused_with_the_field() {
        assert_eq!(validate(&policy()), Ok(()));
        let cases = [
            (
                SemanticCachePolicy {
                    similarity_threshold: 1.5,
                    ..policy()
                },
                "similarity_threshold",
            ),
            (
                SemanticCachePolicy {
                    similarity_threshold: f64::NAN,
                    ..policy()
                },
                "similarity_threshold",
            ),
            (
                SemanticCachePolicy {
                    cluster: String::new(),
                    ..policy()
                },
                "cluster",
            ),
            (
                SemanticCachePolicy {
                    authority: String::new(),
                    ..policy()
                },
                "authority",
            ),
            (
                SemanticCachePolicy {
                    cluster: "a\nb".into(),
                    ..policy()
                },
                "cluster",
            ),
            (
                SemanticCachePolicy {
                    timeout_ms: 0,
                    ..policy()
                },
                "timeout_ms",
            ),
            (
                SemanticCachePolicy {
                    ttl_ms: 10,
                    ..policy()
                },
                "ttl_ms",
            ),
        ];
        for (bad, field) in cases {
            let error = validate(&bad).unwrap_err();
            assert!(error.contains(field), "{error}");
        }
    }
}
