//! Running `envoy --mode validate` on a rendered bootstrap: it loads the .wasm modules, runs
//! their `on_configure` with the plugin configurations, and checks every reference.

use std::path::PathBuf;
use std::process::Command;

/// The Envoy binary: `$TOLLGATE_ENVOY`, else `.tools/bin/envoy` in this workspace, else `envoy`
/// on PATH.
pub fn find_envoy() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("TOLLGATE_ENVOY").map(PathBuf::from) {
        return path.is_file().then_some(path);
    }
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let tools = workspace.join(".tools/bin/envoy");
    if tools.is_file() {
        return Some(tools);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("envoy"))
            .find(|p| p.is_file())
    })
}

/// Validates `yaml` with `envoy`; the error carries Envoy's own message.
pub fn validate(envoy: &std::path::Path, yaml: &str) -> Result<(), String> {
    validate_with_env(envoy, yaml, &[])
}

/// Validates `yaml` with `envoy` started with `env` in its environment: the provider keys of
/// `secrets.env`, which the adapter reads when it is configured (it refuses to load without
/// them, as Envoy would at start).
pub fn validate_with_env(
    envoy: &std::path::Path,
    yaml: &str,
    env: &[(String, String)],
) -> Result<(), String> {
    let dir = tempfile_dir()?;
    let config = dir.join("envoy.yaml");
    std::fs::write(&config, yaml).map_err(|e| format!("{}: {e}", config.display()))?;
    let output = Command::new(envoy)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(["--mode", "validate", "--log-level", "error", "-c"])
        .arg(&config)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", envoy.display()));
    let _ = std::fs::remove_dir_all(&dir);
    let output = output?;
    if output.status.success() {
        Ok(())
    } else {
        let mut message = String::from_utf8_lossy(&output.stderr).to_string();
        message.push_str(&String::from_utf8_lossy(&output.stdout));
        Err(format!(
            "envoy --mode validate rejected the configuration:\n{}",
            message.trim()
        ))
    }
}

/// `promtool check rules` on the rules file; `None` when promtool is not on PATH.
pub fn promtool_check_rules(rules: &str) -> Option<Result<(), String>> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("promtool"))
            .find(|p| p.is_file())
    })?;
    let check = || {
        let dir = tempfile_dir()?;
        let file = dir.join("prometheus-rules.yaml");
        std::fs::write(&file, rules).map_err(|e| format!("{}: {e}", file.display()))?;
        let output = Command::new(&found)
            .args(["check", "rules"])
            .arg(&file)
            .output();
        let _ = std::fs::remove_dir_all(&dir);
        let output = output.map_err(|e| format!("cannot run {}: {e}", found.display()))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "promtool check rules rejected the rules:\n{}",
                String::from_utf8_lossy(&output.stdout).trim()
            ))
        }
    };
    Some(check())
}

/// A private folder for the config (it holds resolved keys).
fn tempfile_dir() -> Result<PathBuf, String> {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "tollgate-config-validate-{}-{n}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    }
    Ok(dir)
}
