//! Loading of the translation fixture table: `tests/fixtures/<pair>/<case>/`.
//!
//! Each pair directory holds `provider.json` (the provider endpoint, as the generator writes
//! it). Each case holds `request.json` (what the client sends), `upstream_path.txt` and
//! `upstream_request.json` (what the provider must receive), the provider's answer
//! (`upstream_response.json`, `.sse` or `.txt`, with `upstream_status.txt` when it is an error)
//! and the answer the client must get (`client_response.json` or `.sse`, with
//! `client_status.txt` when the client's status is not the provider's, e.g. a 401 that
//! becomes a 502).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use tollgate_core::config::ProviderEndpoint;
use tollgate_core::translate::ResponseContext;

// `FIXTURE_FILES`: every file under tests/fixtures, embedded by build.rs, so the table runs
// the same natively and on wasm32 (no file system under wasm-bindgen-test).
include!(concat!(env!("OUT_DIR"), "/fixtures.rs"));

/// `created` used by every fixture.
pub const CREATED: u64 = 1_700_000_000;
/// Response id used when the provider gives none.
pub const FALLBACK_ID: &str = "chatcmpl-fixture";

/// One case of the table.
pub struct Case {
    pub name: String,
    pub provider: ProviderEndpoint,
}

/// An embedded fixture file by its path under tests/fixtures.
pub fn fixture_file(path: &str) -> Option<&'static [u8]> {
    FIXTURE_FILES
        .iter()
        .find(|(name, _)| *name == path)
        .map(|(_, bytes)| *bytes)
}

impl Case {
    pub fn read(&self, file: &str) -> Option<Vec<u8>> {
        fixture_file(&format!("{}/{file}", self.name)).map(<[u8]>::to_vec)
    }

    pub fn read_text(&self, file: &str) -> Option<String> {
        self.read(file).map(|b| String::from_utf8(b).unwrap())
    }

    /// Where a case's file lives in the source tree (for BLESS, natively).
    pub fn path(&self, file: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(&self.name)
            .join(file)
    }

    pub fn context(&self, model: &str) -> ResponseContext {
        ResponseContext {
            model: model.to_string(),
            created: CREATED,
            fallback_id: FALLBACK_ID.to_string(),
        }
    }
}

/// Every case of every pair, sorted by name. A pair is a folder with a provider.json (other
/// folders hold other tables); a case is a folder of a pair.
pub fn all_cases() -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    for (path, _) in FIXTURE_FILES {
        let mut parts = path.splitn(3, '/');
        let (Some(pair), Some(case), Some(_file)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let Some(provider) = fixture_file(&format!("{pair}/provider.json")) else {
            continue;
        };
        let name = format!("{pair}/{case}");
        if cases.iter().any(|c| c.name == name) {
            continue;
        }
        let provider: ProviderEndpoint = serde_json::from_slice(provider).unwrap();
        cases.push(Case { name, provider });
    }
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(
        cases.len() >= 15,
        "fixture table went missing: {} cases",
        cases.len()
    );
    cases
}
