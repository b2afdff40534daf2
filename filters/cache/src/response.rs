//! The response cache's decisions for one chat request: its key and what may be done with it
//! (lookup, store), the reply a hit becomes, the entry a miss stores.

use crate::entry::{replay_body, BodyKind, Entry};
use crate::key::{body_part_of, top_level, JsonPath, KeyInputs, PathError};
use crate::policy::{answer_storable, request_cacheable, ClientDirectives, NotCacheable};
use crate::status;
use crate::store::SlotStore;
use std::collections::BTreeMap;
use tollgate_core::config::cache::{CacheMode, ResponseCachePolicy};
use tollgate_core::facts::Caller;
use tollgate_core::names::header;
use tollgate_core::observe::Finishes;
use tollgate_core::stage::LocalReply;
use tollgate_core::usage::TokenUsage;

/// The `protocol` of a chat completion's key.
pub const PROTOCOL_CHAT: &str = "openai.chat";

/// One route's response cache, compiled from its policy.
#[derive(Debug, Clone)]
pub struct ResponseCache {
    mode: CacheMode,
    ttl_ms: u64,
    headers: Vec<String>,
    paths: Vec<JsonPath>,
    /// Where its entries live.
    pub store: SlotStore,
}

/// What the glue read of a request, for its key.
#[derive(Debug, Clone, Copy)]
pub struct RequestInput<'a> {
    /// Envoy's route name.
    pub route: Option<&'a str>,
    /// The backend the router chose.
    pub backend: Option<&'a str>,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// Who is calling.
    pub caller: &'a Caller,
    /// The configured headers that were present (lower-case names), as the host gave them.
    pub headers: &'a BTreeMap<String, Vec<u8>>,
    /// The client's `Cache-Control`.
    pub directives: ClientDirectives,
    /// The request body as it goes upstream.
    pub body: &'a [u8],
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Neither looked up nor stored.
    Bypass(NotCacheable),
    /// Keyed.
    Keyed {
        /// Its key.
        key: crate::key::CacheKey,
        /// Look it up (not when the client sent `no-cache`).
        lookup: bool,
        /// Store the answer on a miss (not when the client sent `no-store`).
        store: bool,
    },
}

impl ResponseCache {
    /// Compiles a policy; an unusable JSON path is an error (`key.json_paths[i]`).
    pub fn new(policy: &ResponseCachePolicy, namespace: &str) -> Result<Self, String> {
        let paths = policy
            .key
            .json_paths
            .iter()
            .enumerate()
            .map(|(i, p)| {
                JsonPath::parse(p).map_err(|e: PathError| format!("key.json_paths[{i}]: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if policy.ttl_ms == 0 {
            return Err("ttl_ms: must be above 0".into());
        }
        if policy.store.max_size_bytes == 0 {
            return Err("store.max_size_bytes: must be above 0".into());
        }
        Ok(Self {
            mode: policy.mode,
            ttl_ms: policy.ttl_ms,
            headers: policy
                .key
                .headers
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            paths,
            store: SlotStore::new(namespace, &policy.store),
        })
    }

    /// The request headers the key takes (lower case).
    pub fn header_names(&self) -> &[String] {
        &self.headers
    }

    /// The key of a request and what may be done with it.
    pub fn plan(&self, input: &RequestInput<'_>) -> Plan {
        match self.key_inputs(input) {
            Ok(inputs) => Plan::Keyed {
                key: inputs.key(),
                lookup: !input.directives.no_cache,
                store: !input.directives.no_store,
            },
            Err(reason) => Plan::Bypass(reason),
        }
    }

    /// Everything the key of a request is made of.
    pub fn key_inputs(&self, input: &RequestInput<'_>) -> Result<KeyInputs, NotCacheable> {
        let top = top_level(input.body).map_err(|_| NotCacheable::Malformed)?;
        request_cacheable(self.mode, &top)?;
        let body = if self.paths.is_empty() {
            crate::key::body_part(input.body, &[]).map_err(|_| NotCacheable::Malformed)?
        } else {
            body_part_of(&top, &self.paths).map_err(|_| NotCacheable::Malformed)?
        };
        let mut headers = BTreeMap::new();
        for (name, value) in input.headers {
            let value = std::str::from_utf8(value).map_err(|_| NotCacheable::Malformed)?;
            headers.insert(name.clone(), value.to_string());
        }
        Ok(KeyInputs {
            protocol: PROTOCOL_CHAT,
            route: input.route.map(str::to_string),
            backend: input.backend.map(str::to_string),
            stream: input.stream,
            caller: caller_part(input.caller),
            headers,
            body,
        })
    }

    /// The client's answer on a hit: the stored body replayed, marked as cached.
    pub fn hit_reply(&self, entry: &Entry, now_ms: u64, id: &str) -> LocalReply {
        hit_reply(entry, now_ms, id)
    }

    /// Whether an answer may be stored, from what the observer read of it (the body is not
    /// parsed again).
    pub fn storable(
        &self,
        status: u16,
        complete: bool,
        stream: bool,
        finishes: Option<&Finishes>,
    ) -> bool {
        answer_storable(self.mode, status, complete, stream, finishes)
    }

    /// The entry a stored answer becomes.
    pub fn entry(
        &self,
        key: crate::key::CacheKey,
        now_ms: u64,
        stream: bool,
        usage: Option<TokenUsage>,
        model: Option<String>,
        body: Vec<u8>,
    ) -> Entry {
        Entry {
            key,
            stored_ms: now_ms,
            expires_ms: now_ms.saturating_add(self.ttl_ms),
            kind: if stream {
                BodyKind::Sse
            } else {
                BodyKind::Json
            },
            usage,
            model,
            provider: None,
            body,
        }
    }
}

/// The caller identities the gateway verified, always in the key: one tenant's answer is
/// never another's.
pub fn caller_part(caller: &Caller) -> BTreeMap<&'static str, String> {
    let mut part = BTreeMap::new();
    if let Some(sub) = &caller.jwt_subject {
        part.insert("jwt_sub", sub.clone());
    }
    if let Some(client) = &caller.client_key {
        part.insert("client", client.clone());
    }
    part
}

/// A hit's local reply: status 200, the stored body with a fresh `id`/`created`,
/// `x-cache-status: HIT`, `age` in seconds, the serving model.
pub fn hit_reply(entry: &Entry, now_ms: u64, id: &str) -> LocalReply {
    let created = now_ms / 1000;
    let content_type = match entry.kind {
        BodyKind::Json => "application/json",
        BodyKind::Sse => "text/event-stream",
    };
    let mut headers = vec![
        ("content-type".to_string(), content_type.to_string()),
        (header::CACHE_STATUS.to_string(), status::HIT.to_string()),
        (
            "age".to_string(),
            (now_ms.saturating_sub(entry.stored_ms) / 1000).to_string(),
        ),
    ];
    if entry.kind == BodyKind::Sse {
        headers.push(("cache-control".to_string(), "no-cache".to_string()));
    }
    if let Some(model) = &entry.model {
        headers.push((header::MODEL.to_string(), model.clone()));
    }
    if let Some(provider) = &entry.provider {
        headers.push((header::PROVIDER.to_string(), provider.clone()));
    }
    LocalReply {
        status: 200,
        headers,
        body: replay_body(entry, id, created),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_core::config::cache::KeyConfig;

    fn guide_cache() -> ResponseCache {
        let policy = ResponseCachePolicy {
            key: KeyConfig {
                headers: vec!["Authorization".into()],
                json_paths: vec![
                    "$.model".into(),
                    "$.messages".into(),
                    "$.temperature".into(),
                ],
            },
            ..Default::default()
        };
        ResponseCache::new(&policy, "t").unwrap()
    }

    fn plan(cache: &ResponseCache, auth: &str, caller: &Caller, body: &str) -> Plan {
        let headers = BTreeMap::from([("authorization".to_string(), auth.as_bytes().to_vec())]);
        cache.plan(&RequestInput {
            route: Some("llm-routes/0/0"),
            backend: None,
            stream: false,
            caller,
            headers: &headers,
            directives: ClientDirectives::default(),
            body: body.as_bytes(),
        })
    }

    #[test]
    fn another_authorization_or_another_caller_is_another_key() {
        let cache = guide_cache();
        let body = r#"{"model":"m","temperature":0,"messages":[{"role":"user","content":"hi"}]}"#;
        let nobody = Caller::default();
        let alice = plan(&cache, "Bearer alice", &nobody, body);
        assert_eq!(alice, plan(&cache, "Bearer alice", &nobody, body));
        assert_ne!(alice, plan(&cache, "Bearer bob", &nobody, body));
        let jwt = Caller {
            jwt_subject: Some("alice".into()),
            ..Default::default()
        };
        assert_ne!(alice, plan(&cache, "Bearer alice", &jwt, body));
    }

    #[test]
    fn a_bad_json_path_is_refused_with_its_field() {
        let policy = ResponseCachePolicy {
            key: KeyConfig {
                headers: vec![],
                json_paths: vec!["$.model".into(), "messages".into()],
            },
            ..Default::default()
        };
        let error = ResponseCache::new(&policy, "t").unwrap_err();
        assert!(error.starts_with("key.json_paths[1]: "), "{error}");
    }

    #[test]
    fn a_hit_says_hit_and_its_age() {
        let cache = guide_cache();
        let entry = cache.entry(
            crate::key::CacheKey([1; 32]),
            10_000,
            false,
            None,
            Some("gpt-4o-mini".into()),
            br#"{"id":"x","created":1}"#.to_vec(),
        );
        let reply = cache.hit_reply(&entry, 75_500, "chatcmpl-y");
        assert_eq!(reply.status, 200);
        let get = |n: &str| {
            reply
                .headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("x-cache-status"), Some("HIT"));
        assert_eq!(get("age"), Some("65"));
        assert_eq!(get("content-type"), Some("application/json"));
        assert_eq!(reply.body, br#"{"id":"chatcmpl-y","created":75}"#);
    }
}
