//! Loading modules the way Envoy does: clear errors for what V8 rejects, both allocators and
//! both WASI module names, restricted callbacks during start-up, rejected configurations.

mod common;

use tollgate_host::{Host, HostError, LogLevel};

const MINIMAL: &str = include_str!("modules/minimal.wat");

fn build(wat: &str, configuration: &str) -> Result<Host, HostError> {
    Host::builder()
        .module_bytes(wat::parse_str(wat).unwrap())
        .root_id("t")
        .configuration(configuration)
        .build()
}

/// The minimal module with one line replaced.
fn variant(from: &str, to: &str) -> String {
    assert!(MINIMAL.contains(from), "fixture line {from:?} not found");
    MINIMAL.replace(from, to)
}

#[test]
fn a_wasi_module_with_proxy_on_memory_allocate_starts_and_logs_through_fd_write() {
    let host = build(MINIMAL, "yes").unwrap();
    // _initialize runs in the base VM, the canary and the worker VM: one INFO line each.
    assert_eq!(host.log_messages(LogLevel::Info), vec!["started"; 3]);
}

#[test]
fn a_configuration_the_module_rejects_fails_the_build() {
    let error = build(MINIMAL, "no").err().unwrap();
    assert!(
        matches!(
            error,
            HostError::ConfigureFailed {
                callback: "proxy_on_configure",
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn load_errors_name_what_is_wrong() {
    let cases = [
        (
            variant(r#"(func (export "proxy_abi_version_0_2_1"))"#, ""),
            "Missing or unknown Proxy-Wasm ABI version",
        ),
        (
            variant(r#"(export "proxy_on_memory_allocate")"#, ""),
            "missing malloc function",
        ),
        (
            variant(
                r#"(func (export "proxy_on_configure") (param $root i32) (param $size i32) (result i32)"#,
                r#"(func (export "proxy_on_configure") (param $root i32) (result i32) (local $size i32)"#,
            ),
            "Bad function signature for: proxy_on_configure: expected (i32, i32) -> i32, found (i32) -> i32",
        ),
        (
            variant(r#"(import "env" "proxy_log""#, r#"(import "env" "proxy_no_such_call""#),
            "missing import: env.proxy_no_such_call",
        ),
        (
            variant(
                r#"(import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))"#,
                r#"(import "env" "proxy_log" (func $log (param i32 i32) (result i32)))"#,
            ),
            "import type mismatch: env.proxy_log: Envoy provides (i32, i32, i32) -> i32, the module wants (i32, i32) -> i32",
        ),
    ];
    for (wat, expected) in cases {
        let error = build(&wat, "yes")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            error.contains(expected),
            "expected {expected:?} in {error:?}"
        );
    }
}

#[test]
fn a_restricted_hostcall_during_initialize_traps_like_v8() {
    let wat = variant(
        "(drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))",
        "(drop (call $get_buffer (i32.const 6) (i32.const 0) (i32.const 0) (i32.const 32) (i32.const 36))))",
    );
    let error = build(&wat, "yes")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(error.contains("_initialize"), "{error}");
    assert!(
        error.contains("restricted_callback: proxy_get_buffer_bytes"),
        "{error}"
    );
}

#[test]
fn memory_growth_beyond_one_gib_traps() {
    let wat = variant(
        "(drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))",
        "(if (i32.eq (memory.grow (i32.const 16384)) (i32.const -1)) (then unreachable)))",
    );
    let error = build(&wat, "yes")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(error.contains("_initialize"), "{error}");
}
