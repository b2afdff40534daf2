//! Parsing of the JSON plugin configuration every filter receives from Envoy.

use serde::de::DeserializeOwned;

/// Why a plugin configuration was rejected; Envoy then refuses to load the filter.
#[derive(Debug, thiserror::Error)]
pub enum PluginConfigError {
    /// The bytes are not the JSON the filter expects; the message names the field.
    #[error("invalid plugin configuration at {path}: {reason}")]
    Invalid {
        /// Where in the JSON document the problem is (`.` for the root).
        path: String,
        /// What was wrong there.
        reason: String,
    },
}

/// Parses a filter's plugin configuration; an empty configuration means the filter's defaults.
pub fn parse_plugin_config<T: DeserializeOwned + Default>(
    bytes: &[u8],
) -> Result<T, PluginConfigError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| PluginConfigError::Invalid {
        path: format!("line {} column {}", e.line(), e.column()),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[derive(Debug, Default, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        #[serde(default)]
        name: String,
    }

    #[test]
    fn empty_configuration_means_defaults() {
        let parsed: Sample = parse_plugin_config(b"  ").unwrap();
        assert_eq!(parsed, Sample::default());
    }

    #[test]
    fn unknown_field_is_rejected_with_its_name() {
        let err = parse_plugin_config::<Sample>(br#"{"nmae":"x"}"#).unwrap_err();
        assert!(err.to_string().contains("nmae"), "{err}");
    }
}
