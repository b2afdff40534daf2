//! Request inspection and translation never panic, and a rewritten body is still valid JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_core::config::{ProviderEndpoint, ProviderKind};
use tollgate_core::request::inspect_chat_request;
use tollgate_core::translate::upstream_request;

fuzz_target!(|data: &[u8]| {
    if let Ok(inspected) = inspect_chat_request(data, 1 << 20) {
        if let Some(body) = inspected.rewritten_body {
            assert!(serde_json::from_slice::<serde_json::Value>(&body).is_ok());
        }
    }
    for kind in [ProviderKind::Openai, ProviderKind::Anthropic, ProviderKind::Gemini] {
        let provider = ProviderEndpoint {
            name: "p".into(),
            kind,
            model: Some("m".into()),
            override_model: true,
            authority: "a".into(),
            path_prefix: String::new(),
            api_key: None,
            api_key_env: None,
            api_version: None,
            allow_client_headers: Vec::new(),
        };
        let _ = upstream_request(&provider, data);
    }
});
