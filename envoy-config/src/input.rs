//! Reading the input files: multi-document YAML, any order, each document identified by
//! `kind` and `metadata.name` before it is parsed into its typed model.

use crate::error::{humanize_serde_message, ConfigError, ConfigErrors, Location};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_norway::Value;

/// One YAML document of an input file, not yet typed.
#[derive(Debug, Clone)]
pub struct SourceDocument {
    /// The file as given by the user.
    pub file: String,
    /// `kind` of the document.
    pub kind: String,
    /// `metadata.name` of the document.
    pub name: String,
    /// The whole document.
    pub value: Value,
}

impl SourceDocument {
    /// Where this document is, for error messages.
    pub fn location(&self) -> Location {
        Location {
            file: self.file.clone(),
            document: Some(format!("{}/{}", self.kind, self.name)),
            path: None,
        }
    }

    /// Parses the document into `T`; a bad field is reported with its full path.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        serde_path_to_error::deserialize(self.value.clone()).map_err(|error| {
            let path = error.path().to_string();
            let message = humanize_serde_message(&error.inner().to_string());
            let location = if path == "." {
                self.location()
            } else {
                self.location().at(path)
            };
            ConfigError::new(location, message)
        })
    }
}

/// Splits `text` (the contents of `file`) into its documents; empty documents are skipped.
pub fn read_documents(file: &str, text: &str) -> Result<Vec<SourceDocument>, ConfigErrors> {
    let mut documents = Vec::new();
    let mut errors = Vec::new();
    for (index, document) in serde_norway::Deserializer::from_str(text).enumerate() {
        let value = match Value::deserialize(document) {
            Ok(value) => value,
            Err(error) => {
                errors.push(ConfigError::new(
                    Location::file(file),
                    format!("not valid YAML: {error}"),
                ));
                // The parser cannot resynchronise after a syntax error.
                break;
            }
        };
        if value.is_null() {
            continue;
        }
        let document_label = Location {
            document: Some(format!("document {}", index + 1)),
            ..Location::file(file)
        };
        let Some(kind) = value.get("kind").and_then(Value::as_str) else {
            errors.push(ConfigError::new(
                document_label.at("kind"),
                "every document needs a kind",
            ));
            continue;
        };
        let Some(name) = value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
        else {
            errors.push(ConfigError::new(
                document_label.at("metadata.name"),
                format!("the {kind} needs a name"),
            ));
            continue;
        };
        documents.push(SourceDocument {
            file: file.to_string(),
            kind: kind.to_string(),
            name: name.to_string(),
            value,
        });
    }
    if errors.is_empty() {
        Ok(documents)
    } else {
        Err(ConfigErrors(errors))
    }
}
