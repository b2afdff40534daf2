//! The command line as a user runs it: files written (keys only in secrets.env, 0600), errors on stderr with
//! exit status 1, keys never printed.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

const SECRETS: [&str; 3] = ["sk-test-openai", "test-google-key", "test-anthropic-key"];

fn tollgate_config(args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tollgate-config"));
    let mut files: Vec<_> = std::fs::read_dir("guide")
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    command.args(&args[..1]);
    for file in &files {
        command.arg("-f").arg(file);
    }
    command
        .args([
            "-f",
            "examples/companion.yaml",
            "--secrets-dir",
            "tests/fixtures/secrets",
        ])
        .args(&args[1..]);
    command.output().unwrap()
}

fn printed(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr)
}

#[test]
fn render_writes_every_output_and_keeps_the_keys_in_a_private_secrets_env() {
    let out = tempfile::tempdir().unwrap();
    let output = tollgate_config(&[
        "render",
        "-o",
        out.path().to_str().unwrap(),
        "--wasm-dir",
        "/opt/tollgate/wasm",
    ]);
    assert!(output.status.success(), "{}", printed(&output));
    for file in [
        "envoy.yaml",
        "prometheus-rules.yaml",
        "istio/wasmplugin-tollgate.yaml",
        "kubernetes/horizontalpodautoscaler-agentgateway-hpa.yaml",
    ] {
        assert!(out.path().join(file).is_file(), "{file} missing");
    }
    let mode = |file: &str| {
        std::fs::metadata(out.path().join(file))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("secrets.env"), 0o600);
    assert_eq!(mode("envoy.yaml"), 0o644);
    let envoy = std::fs::read_to_string(out.path().join("envoy.yaml")).unwrap();
    assert!(envoy.contains("/opt/tollgate/wasm/tollgate.wasm"));
    assert!(
        SECRETS.iter().all(|s| !envoy.contains(s)),
        "a key in envoy.yaml"
    );
    let env = std::fs::read_to_string(out.path().join("secrets.env")).unwrap();
    assert!(
        env.lines()
            .any(|l| l == "TOLLGATE_KEY_MULTI_PROVIDER_GPT_4O_MINI=sk-test-openai"),
        "the adapter's key variable"
    );
    let text = printed(&output);
    assert!(SECRETS.iter().all(|s| !text.contains(s)), "{text}");
}

#[test]
fn render_errors_go_to_stderr_with_status_1() {
    let output = tollgate_config(&[
        "render",
        "-o",
        "/nonexistent",
        "-f",
        "tests/errors/bad-integer.yaml",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim(),
        "tests/errors/bad-integer.yaml: BackendConfigPolicy/connection-pool: spec.connectionPool.tcp.maxConnections: expected an integer, got \"lots\""
    );
}

#[test]
fn endpoint_flag_needs_name_equals_url() {
    let output = tollgate_config(&["render", "--endpoint", "openai"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        printed(&output).starts_with("--endpoint wants NAME=URL, got \"openai\""),
        "{}",
        printed(&output)
    );
}

#[test]
fn explain_prints_fields_but_no_keys() {
    let output = tollgate_config(&["explain"]);
    assert!(output.status.success(), "{}", printed(&output));
    let text = printed(&output);
    assert!(text.contains("spec.outlierDetection.consecutive5xxErrors = 5\n    -> outlier_detection.consecutive_5xx"), "{text}");
    assert!(SECRETS.iter().all(|s| !text.contains(s)));
}

#[test]
fn validate_runs_envoy_on_the_rendered_configuration() {
    let module = tollgate_e2e::wasm_path("tollgate").unwrap_or_else(|e| panic!("{e}"));
    let wasm = module.parent().unwrap().to_path_buf();
    let output = tollgate_config(&["validate", "--wasm-dir", wasm.to_str().unwrap()]);
    let text = printed(&output);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("configuration: ok") && text.contains("envoy --mode validate"),
        "{text}"
    );
    assert!(text.contains("promtool check rules: ok"), "{text}");
}

#[test]
fn render_warns_on_stderr_and_explain_lists_routes_spending_keys_without_client_auth() {
    let out = tempfile::tempdir().unwrap();
    let exposed = "warning: HTTPRoute \"batch-route\" sends the gateway's provider keys";
    let render = tollgate_config(&["render", "-o", out.path().to_str().unwrap()]);
    assert!(render.status.success(), "{}", printed(&render));
    let stderr = String::from_utf8_lossy(&render.stderr);
    assert!(stderr.contains(exposed), "{stderr}");
    assert!(stderr.contains("listens on 0.0.0.0:10000"), "{stderr}");
    let explain = tollgate_config(&["explain"]);
    let stdout = String::from_utf8_lossy(&explain.stdout);
    assert!(stdout.starts_with("warning: "), "{stdout}");
    assert!(stdout.contains(exposed), "{stdout}");
    let loopback = tollgate_config(&[
        "render",
        "-o",
        out.path().to_str().unwrap(),
        "--listen",
        "127.0.0.1:10000",
    ]);
    assert!(
        !String::from_utf8_lossy(&loopback.stderr).contains("warning:"),
        "{}",
        printed(&loopback)
    );
}

#[test]
fn no_compression_renders_an_envoy_yaml_without_the_compressor() {
    for (flag, present) in [(None, true), (Some("--no-compression"), false)] {
        let out = tempfile::tempdir().unwrap();
        let mut args = vec!["render", "-o", out.path().to_str().unwrap()];
        args.extend(flag);
        let output = tollgate_config(&args);
        assert!(output.status.success(), "{}", printed(&output));
        let envoy = std::fs::read_to_string(out.path().join("envoy.yaml")).unwrap();
        assert_eq!(
            envoy.contains("envoy.filters.http.compressor"),
            present,
            "{flag:?}"
        );
    }
}
