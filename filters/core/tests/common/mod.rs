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

use std::fs;
use std::path::{Path, PathBuf};
use tollgate_core::config::ProviderEndpoint;
use tollgate_core::translate::ResponseContext;

/// `created` used by every fixture.
pub const CREATED: u64 = 1_700_000_000;
/// Response id used when the provider gives none.
pub const FALLBACK_ID: &str = "chatcmpl-fixture";

/// One case of the table.
pub struct Case {
    pub name: String,
    pub dir: PathBuf,
    pub provider: ProviderEndpoint,
}

impl Case {
    pub fn read(&self, file: &str) -> Option<Vec<u8>> {
        fs::read(self.dir.join(file)).ok()
    }

    pub fn read_text(&self, file: &str) -> Option<String> {
        self.read(file).map(|b| String::from_utf8(b).unwrap())
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    pub fn context(&self, model: &str) -> ResponseContext {
        ResponseContext {
            model: model.to_string(),
            created: CREATED,
            fallback_id: FALLBACK_ID.to_string(),
        }
    }
}

fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Every case of every pair, sorted by name.
pub fn all_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut pairs: Vec<PathBuf> = fs::read_dir(fixtures_root())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    pairs.sort();
    // A pair is a folder with a provider.json (other folders hold other tables).
    for pair in pairs
        .into_iter()
        .filter(|p| p.is_dir() && p.join("provider.json").exists())
    {
        let provider: ProviderEndpoint =
            serde_json::from_slice(&fs::read(pair.join("provider.json")).unwrap()).unwrap();
        let mut dirs: Vec<PathBuf> = fs::read_dir(&pair)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        dirs.sort();
        for dir in dirs.into_iter().filter(|p| p.is_dir()) {
            let name = format!(
                "{}/{}",
                pair.file_name().unwrap().to_string_lossy(),
                dir.file_name().unwrap().to_string_lossy()
            );
            cases.push(Case {
                name,
                dir,
                provider: provider.clone(),
            });
        }
    }
    assert!(
        cases.len() >= 15,
        "fixture table went missing: {} cases",
        cases.len()
    );
    cases
}
