//! The native probe (integration/native-probe) in a real Envoy: an HTTP filter loaded as an
//! Envoy dynamic module (a `.so`) instead of a `.wasm` in V8, for the benchmark's `native`
//! setups and the test that holds it.
//!
//! Envoy 1.40 finds a module by name: `lib<name>.so` in `$ENVOY_DYNAMIC_MODULES_SEARCH_PATH`
//! (then the dynamic linker's paths). [`module_dir`] builds the library and copies it into a
//! folder of the caller's, so a rebuild never swaps the file under a running Envoy.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bootstrap::HttpFilter;
use crate::workspace_root;

/// The module name Envoy is given; the library is `lib<MODULE>.so`.
pub const MODULE: &str = "tollgate_native_probe";
/// The variable Envoy reads the module folder from.
pub const SEARCH_PATH_VAR: &str = "ENVOY_DYNAMIC_MODULES_SEARCH_PATH";

/// Why the native probe could not be made ready; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum NativeProbeError {
    /// `cargo build` failed or could not run.
    #[error(
        "building the native probe failed (cargo build --release -p tollgate-native-probe):\n{0}"
    )]
    Build(String),
    /// The build succeeded but the library is not where cargo puts it.
    #[error("{0} not found after cargo build --release -p tollgate-native-probe (CARGO_TARGET_DIR elsewhere?)")]
    Missing(PathBuf),
    /// Copying the library failed.
    #[error("copying the native probe to {path}: {source}")]
    Copy {
        /// Where it was copied to.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Builds `libtollgate_native_probe.so` (release) and copies it into `dir`: the folder to give
/// Envoy as [`SEARCH_PATH_VAR`].
pub fn module_dir(dir: &Path) -> Result<PathBuf, NativeProbeError> {
    let root = workspace_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(&root)
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "tollgate-native-probe",
        ])
        .output()
        .map_err(|e| NativeProbeError::Build(e.to_string()))?;
    if !out.status.success() {
        return Err(NativeProbeError::Build(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let built = target.join("release").join(format!("lib{MODULE}.so"));
    if !built.exists() {
        return Err(NativeProbeError::Missing(built));
    }
    // Copied beside, then renamed over: an Envoy that already mapped an earlier copy keeps its
    // file (overwriting it in place crashes that Envoy with SIGSEGV).
    let copy = dir.join(format!("lib{MODULE}.so"));
    let staging = dir.join(format!(".lib{MODULE}.so.{}", std::process::id()));
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::copy(&built, &staging))
        .and_then(|_| std::fs::rename(&staging, &copy))
        .map_err(|source| NativeProbeError::Copy {
            path: copy.clone(),
            source,
        })?;
    Ok(dir.to_path_buf())
}

/// The filter's name in `http_filters`.
pub const FILTER_NAME: &str = "tollgate.native_probe";

/// A counter the native probe's `replay` defines, incremented once per finished request (the
/// probe's `tollgate_native_probe::REQUESTS_COUNTER`), as it appears in Envoy's stats.
pub const REPLAY_REQUESTS_COUNTER: &str = "probe_replay_4_total";

/// The native probe's `typed_config` in `mode` (`empty`, `buffer`, `replay`); Envoy rejects the
/// config for any other mode.
pub fn typed_config(mode: &str) -> Value {
    json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
        "dynamic_module_config": {"name": MODULE},
        "filter_name": "probe",
        "filter_config": {
            "@type": "type.googleapis.com/google.protobuf.StringValue",
            "value": mode,
        },
    })
}

/// The native probe as a listener filter of [`crate::bootstrap::Listener`].
pub fn filter(mode: &str) -> HttpFilter {
    HttpFilter::typed(FILTER_NAME, typed_config(mode))
}
