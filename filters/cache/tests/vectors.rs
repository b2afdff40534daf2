//! The key vectors of `tests/vectors/*.json`: the canonical document and the key each request
//! gives, computed by the cache's own code paths (the response cache's and the tool cache's) and
//! by the independent Python implementation `tests/reference_key.py`. `UPDATE_VECTORS=1` writes
//! what the Rust code computes into the files (then check the diff, and that Python agrees).

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use tollgate_cache::key::{body_part, JsonPath, KeyInputs};
use tollgate_cache::policy::ClientDirectives;
use tollgate_cache::response::{caller_part, RequestInput, ResponseCache};
use tollgate_cache::tools::{ToolCache, ToolPlan};
use tollgate_core::config::cache::{
    CacheMode, KeyConfig, ResponseCachePolicy, ToolCachePolicy, ToolCacheRule,
};
use tollgate_core::facts::Caller;

fn vector_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 7, "vectors missing in {}", dir.display());
    files
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

fn opt(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

/// The key inputs the generic way (what KEYS.md describes).
fn documented_inputs(vector: &Value) -> KeyInputs {
    let (config, request) = (&vector["config"], &vector["request"]);
    let paths: Vec<JsonPath> = strings(&config["json_paths"])
        .iter()
        .map(|p| JsonPath::parse(p).unwrap())
        .collect();
    let sent: BTreeMap<String, String> = request["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str().unwrap().to_string()))
        .collect();
    let headers = strings(&config["headers"])
        .iter()
        .filter_map(|h| {
            let h = h.to_ascii_lowercase();
            sent.get(&h).map(|v| (h, v.clone()))
        })
        .collect();
    KeyInputs {
        protocol: match request["protocol"].as_str().unwrap() {
            "openai.chat" => "openai.chat",
            "mcp.tools/call" => "mcp.tools/call",
            other => panic!("protocol {other}"),
        },
        route: opt(&request["route"]),
        backend: opt(&request["backend"]),
        stream: request["stream"].as_bool().unwrap(),
        caller: caller_part(&caller(request)),
        headers,
        body: body_part(request["body"].as_str().unwrap().as_bytes(), &paths).unwrap(),
    }
}

fn caller(request: &Value) -> Caller {
    Caller {
        jwt_subject: opt(&request["caller"]["jwt_sub"]),
        client_key: opt(&request["caller"]["client"]),
        address: None,
    }
}

/// The key the stage itself computes for the vector's request.
fn stage_key(vector: &Value) -> String {
    let (config, request) = (&vector["config"], &vector["request"]);
    let body = request["body"].as_str().unwrap().as_bytes();
    let headers: BTreeMap<String, Vec<u8>> = request["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.to_ascii_lowercase(),
                v.as_str().unwrap().as_bytes().to_vec(),
            )
        })
        .collect();
    let caller = caller(request);
    if request["protocol"] == "mcp.tools/call" {
        let name = serde_json::from_slice::<Value>(body).unwrap()["params"]["name"].clone();
        let cache = ToolCache::new(
            &ToolCachePolicy {
                rules: vec![ToolCacheRule {
                    json_path: "$.params.name".into(),
                    values: vec![name.as_str().unwrap().to_string()],
                    ttl_ms: Some(1000),
                    enabled: true,
                }],
                ..Default::default()
            },
            "t",
        )
        .unwrap();
        let route = opt(&request["route"]).map(|r| format!("{r}/0/0"));
        match cache.plan(body, route.as_deref(), &caller, &headers, &BTreeSet::new()) {
            ToolPlan::Cached { key, .. } => key.hex(),
            other => panic!("{other:?}"),
        }
    } else {
        let policy = ResponseCachePolicy {
            mode: CacheMode::Aggressive,
            key: KeyConfig {
                headers: strings(&config["headers"]),
                json_paths: strings(&config["json_paths"]),
            },
            ..Default::default()
        };
        let cache = ResponseCache::new(&policy, "t").unwrap();
        let configured: BTreeMap<String, Vec<u8>> = cache
            .header_names()
            .iter()
            .filter_map(|h| headers.get(h).map(|v| (h.clone(), v.clone())))
            .collect();
        let (route, backend) = (opt(&request["route"]), opt(&request["backend"]));
        cache
            .key_inputs(&RequestInput {
                route: route.as_deref(),
                backend: backend.as_deref(),
                stream: request["stream"].as_bool().unwrap(),
                caller: &caller,
                headers: &configured,
                directives: ClientDirectives::default(),
                body,
            })
            .unwrap()
            .key()
            .hex()
    }
}

#[test]
fn every_vector_gives_its_documented_canonical_form_and_key() {
    let update = std::env::var_os("UPDATE_VECTORS").is_some();
    for file in vector_files() {
        let mut vector: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let inputs = documented_inputs(&vector);
        let (canonical, key) = (inputs.canonical(), inputs.key().hex());
        assert_eq!(
            stage_key(&vector),
            key,
            "{}: the stage computes another key",
            file.display()
        );
        if update {
            vector["canonical"] = Value::from(canonical);
            vector["key"] = Value::from(key);
            let text = serde_json::to_string_pretty(&vector).unwrap() + "\n";
            std::fs::write(&file, text).unwrap();
        } else {
            assert_eq!(
                vector["canonical"],
                Value::from(canonical),
                "{}",
                file.display()
            );
            assert_eq!(vector["key"], Value::from(key), "{}", file.display());
        }
    }
}

#[test]
fn the_independent_python_implementation_agrees_with_every_vector() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference_key.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .args(vector_files())
        .output()
        .expect("python3 runs the reference implementation (Debian's python3)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn absent_and_null_vectors_differ_and_reformatting_does_not_change_a_key() {
    let read = |name: &str| -> Value {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/vectors/{name}.json"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let null = read("absent-vs-null");
    let mut absent = null.clone();
    absent["request"]["body"] =
        Value::from(r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#);
    assert_ne!(
        documented_inputs(&null).key(),
        documented_inputs(&absent).key()
    );
    let mut reformatted = null.clone();
    reformatted["request"]["body"] = Value::from(
        "{ \"messages\" : [ { \"content\" : \"hi\" , \"role\" : \"user\" } ] ,\n \"temperature\" : null, \"model\":\"gpt-4o-mini\" }",
    );
    assert_eq!(
        documented_inputs(&null).key(),
        documented_inputs(&reformatted).key()
    );
}
