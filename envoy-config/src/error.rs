//! Configuration errors: every one names the file, the document (Kind/name) and the field path,
//! so a user can find the line to fix without reading the generator.

use std::fmt;

/// Where an error was found; empty parts are left out of the message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// The input file as given on the command line.
    pub file: String,
    /// `Kind/name` of the document, when known.
    pub document: Option<String>,
    /// Dotted field path inside the document (`spec.rules[0].backendRefs[0]`), when known.
    pub path: Option<String>,
}

impl Location {
    /// A location naming only a file.
    pub fn file(file: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            ..Self::default()
        }
    }

    /// The same location, one field deeper.
    pub fn at(&self, path: impl Into<String>) -> Self {
        Self {
            path: Some(path.into()),
            ..self.clone()
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(document) = &self.document {
            write!(f, ": {document}")?;
        }
        if let Some(path) = &self.path {
            write!(f, ": {path}")?;
        }
        Ok(())
    }
}

/// One thing wrong with the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct ConfigError {
    /// Where it is.
    pub location: Location,
    /// What is wrong, in words; never contains a secret's value.
    pub message: String,
}

impl ConfigError {
    /// An error at `location`.
    pub fn new(location: Location, message: impl Into<String>) -> Self {
        Self {
            location,
            message: message.into(),
        }
    }
}

/// Every error found in one pass: users fix them all at once rather than one per run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> Self {
        Self(vec![error])
    }
}

/// Rewrites serde's wording (`invalid type: string "lots", expected u32`) into the user's
/// (`expected an integer, got "lots"`); other messages pass unchanged.
pub fn humanize_serde_message(message: &str) -> String {
    let Some(rest) = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
    else {
        return message.to_string();
    };
    let Some((got, expected)) = rest.rsplit_once(", expected ") else {
        return message.to_string();
    };
    // A well-typed number out of the field's range (e.g. -1 or 2^40 for a u32).
    let range = match expected {
        "u8" => Some(u64::from(u8::MAX)),
        "u16" => Some(u64::from(u16::MAX)),
        "u32" => Some(u64::from(u32::MAX)),
        "u64" | "usize" => Some(u64::MAX),
        _ => None,
    };
    if let (Some(max), Some(number)) = (range, got.strip_prefix("integer ")) {
        return format!(
            "expected an integer from 0 to {max}, got {}",
            number.trim_matches('`')
        );
    }
    let expected = match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" | "i8" | "i16" | "i32" | "i64" | "isize" => {
            "an integer"
        }
        "f32" | "f64" => "a number",
        "a boolean" | "bool" => "true or false",
        "a string" | "string" => "a string",
        other => other,
    };
    let got = got
        .strip_prefix("string ")
        .map(str::to_string)
        .or_else(|| got.strip_prefix("integer ").map(|n| n.to_string()))
        .or_else(|| {
            got.strip_prefix("floating point ")
                .map(|n| n.trim_matches('`').to_string())
        })
        .or_else(|| {
            got.strip_prefix("boolean ")
                .map(|b| b.trim_matches('`').to_string())
        })
        .unwrap_or_else(|| got.to_string());
    let got = got.trim_matches('`');
    format!("expected {expected}, got {got}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_type_errors_read_as_expected_and_got() {
        let cases = [
            (
                r#"invalid type: string "lots", expected u32"#,
                r#"expected an integer, got "lots""#,
            ),
            (
                "invalid type: boolean `true`, expected u64",
                "expected an integer, got true",
            ),
            (
                "invalid type: integer `3`, expected a string",
                "expected a string, got 3",
            ),
            (
                "invalid type: sequence, expected a map",
                "expected a map, got sequence",
            ),
            (
                "unknown field `x`, expected `a`",
                "unknown field `x`, expected `a`",
            ),
        ];
        for (serde, ours) in cases {
            assert_eq!(humanize_serde_message(serde), ours, "{serde}");
        }
    }

    #[test]
    fn location_leaves_out_missing_parts() {
        let mut location = Location::file("llm.yaml");
        assert_eq!(location.to_string(), "llm.yaml");
        location.document = Some("Backend/openai".into());
        assert_eq!(
            location.at("spec.ai").to_string(),
            "llm.yaml: Backend/openai: spec.ai"
        );
    }
}
