//! API keys from `SecretRef`s, resolved at render time, Kubernetes style: a Secret mounted as a
//! folder holds one file per key, so `secretRef: {name: openai-secret}` reads
//! `<secrets-dir>/openai-secret/Authorization`. Without the file, the environment variable
//! `TOLLGATE_SECRET_OPENAI_SECRET` (name upper-cased, `-` and `.` as `_`; with an explicit
//! `key: api-key`, `TOLLGATE_SECRET_OPENAI_SECRET_API_KEY`) is used. Values never appear in
//! errors, logs or `explain`: only where they came from.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// Key read inside a Secret when `secretRef.key` is not given (kgateway's convention).
pub const DEFAULT_SECRET_KEY: &str = "Authorization";

/// Prefix of the environment variables that can hold secrets.
pub const SECRET_ENV_PREFIX: &str = "TOLLGATE_SECRET_";

/// Prefix of the Envoy process environment variables holding provider keys for the adapter.
pub const PROVIDER_KEY_ENV_PREFIX: &str = "TOLLGATE_KEY_";

/// Name of the file, next to envoy.yaml, that holds every provider key as `NAME=value` lines:
/// the launcher puts them into Envoy's environment, the adapter reads them through WASI
/// `environ` (`vm_config.environment_variables.host_env_keys`), so no key is in envoy.yaml,
/// in a plugin configuration or in Envoy's `/config_dump`.
pub const SECRETS_ENV_FILE: &str = "secrets.env";

/// A secret's value; its Debug and Display print nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    /// The value, for the one place that must write it (the adapter's configuration).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A value the plan already resolved (and normalized).
    pub fn resolved(value: String) -> Self {
        Self(value)
    }

    /// A value given inline in the YAML.
    pub fn inline(value: &str) -> Self {
        Self(normalize(value))
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<withheld>)")
    }
}

/// Where secrets are looked up.
#[derive(Debug, Clone, Default)]
pub struct SecretStore {
    /// The mounted-secrets folder, if any.
    pub dir: Option<PathBuf>,
    /// `TOLLGATE_SECRET_*` variables (a copy, so tests need not touch the process environment).
    pub env: BTreeMap<String, String>,
}

impl SecretStore {
    /// A store reading `dir` and the process's `TOLLGATE_SECRET_*` variables.
    pub fn from_process_env(dir: Option<PathBuf>) -> Self {
        let env = std::env::vars()
            .filter(|(name, _)| name.starts_with(SECRET_ENV_PREFIX))
            .collect();
        Self { dir, env }
    }

    /// The value of key `key` (default `Authorization`) of Secret `name`, and a description of
    /// where it was found. The error says where it was looked for.
    pub fn resolve(&self, name: &str, key: Option<&str>) -> Result<(SecretValue, String), String> {
        let file_key = key.unwrap_or(DEFAULT_SECRET_KEY);
        let variable = env_variable(name, key);
        let mut looked = Vec::new();
        if let Some(dir) = &self.dir {
            let path = dir.join(name).join(file_key);
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    return Ok((
                        SecretValue(normalize(&text)),
                        format!("file {}", path.display()),
                    ))
                }
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    looked.push(format!("file {}", path.display()));
                }
                Err(error) => return Err(format!("cannot read {}: {error}", path.display())),
            }
        }
        if let Some(value) = self.env.get(&variable) {
            return Ok((
                SecretValue(normalize(value)),
                format!("environment variable {variable}"),
            ));
        }
        looked.push(format!("environment variable {variable}"));
        Err(format!(
            "secret {name:?} (key {file_key:?}) not found: looked in {}",
            looked.join(" and ")
        ))
    }
}

/// Upper-cased, every character but ASCII letters and digits as `_`.
fn upper(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// `TOLLGATE_SECRET_<NAME>[_<KEY>]`.
pub fn env_variable(name: &str, key: Option<&str>) -> String {
    match key {
        Some(key) => format!("{SECRET_ENV_PREFIX}{}_{}", upper(name), upper(key)),
        None => format!("{SECRET_ENV_PREFIX}{}", upper(name)),
    }
}

/// `TOLLGATE_KEY_<BACKEND>_<PROVIDER>`: the Envoy environment variable holding the key of one
/// provider of one Backend (`cost-optimized-llm` / `gpt-4o-mini` ->
/// `TOLLGATE_KEY_COST_OPTIMIZED_LLM_GPT_4O_MINI`).
pub fn provider_key_variable(backend: &str, provider: &str) -> String {
    format!(
        "{PROVIDER_KEY_ENV_PREFIX}{}_{}",
        upper(backend),
        upper(provider)
    )
}

/// The text of [`SECRETS_ENV_FILE`]: one `NAME=value` line per key, in name order, as Docker's
/// `env_file` and the launchers' `export "$line"` read it (no quoting: values are taken whole).
/// A value holding a line break cannot be written so; the error names the variable only.
pub fn env_file(keys: &BTreeMap<String, SecretValue>) -> Result<String, String> {
    let mut text = String::new();
    for (name, value) in keys {
        if value.0.contains(['\n', '\r', '\0']) {
            return Err(format!(
                "the key for {name} contains a line break or NUL: it cannot be passed in the environment"
            ));
        }
        text.push_str(name);
        text.push('=');
        text.push_str(&value.0);
        text.push('\n');
    }
    Ok(text)
}

/// Parses [`env_file`]'s text back into (name, value) pairs (for launchers written in Rust).
pub fn parse_env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

/// Trims whitespace (mounted files often end in a newline) and a `Bearer ` prefix: the adapter
/// adds the scheme each provider wants.
fn normalize(value: &str) -> String {
    let value = value.trim();
    value
        .strip_prefix("Bearer ")
        .unwrap_or(value)
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_in_secret_folder_wins_and_is_trimmed_of_bearer() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("openai-secret")).unwrap();
        std::fs::write(
            dir.path().join("openai-secret/Authorization"),
            "Bearer sk-file\n",
        )
        .unwrap();
        let env = BTreeMap::from([(
            "TOLLGATE_SECRET_OPENAI_SECRET".to_string(),
            "sk-env".to_string(),
        )]);
        let store = SecretStore {
            dir: Some(dir.path().into()),
            env,
        };
        let (value, origin) = store.resolve("openai-secret", None).unwrap();
        assert_eq!(value.expose(), "sk-file");
        assert!(origin.ends_with("openai-secret/Authorization"), "{origin}");
    }

    #[test]
    fn environment_is_used_when_no_file_exists() {
        let env = BTreeMap::from([(
            "TOLLGATE_SECRET_GOOGLE_AI_SECRET_API_KEY".to_string(),
            "g-key".to_string(),
        )]);
        let store = SecretStore { dir: None, env };
        let (value, origin) = store.resolve("google-ai-secret", Some("api-key")).unwrap();
        assert_eq!(value.expose(), "g-key");
        assert_eq!(
            origin,
            "environment variable TOLLGATE_SECRET_GOOGLE_AI_SECRET_API_KEY"
        );
    }

    #[test]
    fn missing_secret_says_where_it_was_looked_for() {
        let store = SecretStore {
            dir: Some("/nonexistent".into()),
            env: BTreeMap::new(),
        };
        let error = store.resolve("openai-secret", None).unwrap_err();
        assert_eq!(
            error,
            "secret \"openai-secret\" (key \"Authorization\") not found: looked in file \
             /nonexistent/openai-secret/Authorization and environment variable TOLLGATE_SECRET_OPENAI_SECRET"
        );
    }

    #[test]
    fn provider_key_variables_are_upper_case_with_underscores() {
        assert_eq!(
            provider_key_variable("cost-optimized-llm", "gpt-4o-mini"),
            "TOLLGATE_KEY_COST_OPTIMIZED_LLM_GPT_4O_MINI"
        );
        assert_eq!(provider_key_variable("a.b", "c"), "TOLLGATE_KEY_A_B_C");
    }

    #[test]
    fn env_file_round_trips_and_refuses_line_breaks() {
        let keys = BTreeMap::from([
            ("TOLLGATE_KEY_B".to_string(), SecretValue::inline("x=y z")),
            ("TOLLGATE_KEY_A".to_string(), SecretValue::inline("sk-1")),
        ]);
        let text = env_file(&keys).unwrap();
        assert_eq!(text, "TOLLGATE_KEY_A=sk-1\nTOLLGATE_KEY_B=x=y z\n");
        assert_eq!(
            parse_env_file(&text),
            vec![
                ("TOLLGATE_KEY_A".to_string(), "sk-1".to_string()),
                ("TOLLGATE_KEY_B".to_string(), "x=y z".to_string()),
            ]
        );
        let bad = BTreeMap::from([(
            "TOLLGATE_KEY_C".to_string(),
            SecretValue("a\nb".to_string()),
        )]);
        let error = env_file(&bad).unwrap_err();
        assert!(error.contains("TOLLGATE_KEY_C"), "{error}");
        assert!(!error.contains("a\nb"), "{error}");
    }

    #[test]
    fn debug_output_withholds_the_value() {
        assert_eq!(
            format!("{:?}", SecretValue::inline("sk-123")),
            "SecretValue(<withheld>)"
        );
    }
}
