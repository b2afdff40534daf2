//! The V8 harness (`integration/v8/chain.mjs`, run by `scripts/profile-v8`) times the benchmark
//! chain in Node's V8 outside Envoy. Its numbers only mean something while it serves every host
//! call the chain makes and the chain does its whole work: this holds both, so a new host call
//! in the pipeline fails here instead of quietly timing a different request.

use std::process::Command;
use tollgate_e2e::{bench_config, wasm_path, workspace_root};

#[test]
fn the_v8_harness_serves_every_host_call_of_the_benchmark_chain_and_each_request_stores_its_answer()
{
    let root = workspace_root();
    let dir = root.join("target/v8-harness-test");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.json");
    std::fs::write(&config, bench_config::pipeline_configuration().unwrap()).unwrap();
    let module = wasm_path("tollgate").unwrap();
    let out = Command::new("node")
        .arg(root.join("integration/v8/chain.mjs"))
        .arg(&module)
        .arg(&config)
        .args(["300", "1"])
        .output()
        .expect("node runs (scripts/setup installs Debian's nodejs)");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // Every request missed and stored (unique bodies): the 300 timed plus 2 warm-up requests.
    assert!(
        stdout.contains("cache stores counted: 302;"),
        "{stdout}\n{stderr}"
    );
    assert!(stdout.contains("µs per request"), "{stdout}");
}
