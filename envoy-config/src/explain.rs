//! `explain`: every field of every input document, its value, and what it became. Secret
//! values (`authToken.inline`) are withheld; a `secretRef` shows where the key was found.

use crate::fields;
use crate::input::SourceDocument;
use crate::output::OutputOptions;
use crate::plan::Plan;
use crate::secrets::SecretStore;
use serde_norway::Value;

/// What the operator should know before exposing the gateway: each HTTPRoute that spends
/// provider keys the gateway holds without requiring client authentication, on a listener
/// reachable beyond loopback. `render` prints these on stderr; `explain` lists them first.
pub fn warnings(plan: &Plan, options: &OutputOptions) -> Vec<String> {
    if is_loopback(&options.listen_address) {
        return Vec::new();
    }
    plan.routes
        .iter()
        .filter(|route| route.holds_provider_keys)
        .filter(|route| {
            !plan
                .route_policies
                .get(&route.name)
                .is_some_and(|p| p.requires_client_auth(plan))
        })
        .map(|route| {
            format!(
                "warning: HTTPRoute {:?} sends the gateway's provider keys, requires no client authentication (a TrafficPolicy with jwt, not optional, or apiKeyAuth) and listens on {}:{}: anyone who reaches the listener spends those keys",
                route.name, options.listen_address, options.listen_port
            )
        })
        .collect()
}

/// True for addresses only this machine reaches.
fn is_loopback(address: &str) -> bool {
    let address = address.trim_start_matches('[').trim_end_matches(']');
    address == "localhost"
        || address
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// One explained field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExplainedField {
    /// `file: Kind/name: path`.
    pub location: String,
    /// Field path with indices (`spec.rules[0].timeouts.request`).
    pub path: String,
    /// The value as written (withheld for inline secrets).
    pub value: String,
    /// What it became; `None` when the field table has no entry (a gap in the docs).
    pub effect: Option<&'static str>,
}

/// Every leaf field of the documents.
pub fn explain(documents: &[SourceDocument], secrets: &SecretStore) -> Vec<ExplainedField> {
    let mut fields = Vec::new();
    for document in documents {
        let mut leaves = Vec::new();
        collect_leaves(&document.value, String::new(), &mut leaves);
        for (path, value) in leaves {
            let pattern = strip_indices(&path);
            let value = if pattern.ends_with("authToken.inline") {
                "<withheld>".to_string()
            } else if pattern.ends_with("authToken.secretRef.name")
                || pattern.ends_with("apiKeyAuth.clients[].secretRef.name")
            {
                let origin =
                    match secrets.resolve(&value, secret_key(&document.value, &path).as_deref()) {
                        Ok((_, origin)) => format!("found in {origin}"),
                        Err(message) => message,
                    };
                format!("{value} ({origin})")
            } else {
                value
            };
            fields.push(ExplainedField {
                location: format!("{}: {}/{}", document.file, document.kind, document.name),
                effect: fields::effect(&document.kind, &pattern),
                path,
                value,
            });
        }
    }
    fields
}

/// The text `explain` prints: one line per field.
pub fn format(fields: &[ExplainedField]) -> String {
    fields
        .iter()
        .map(|f| {
            format!(
                "{}: {} = {}\n    -> {}\n",
                f.location,
                f.path,
                f.value,
                f.effect.unwrap_or("(not in the field table)")
            )
        })
        .collect()
}

fn collect_leaves(value: &Value, path: String, out: &mut Vec<(String, String)>) {
    match value {
        Value::Mapping(map) => {
            for (key, child) in map {
                let key = key
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{key:?}"));
                let child_path = if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                };
                collect_leaves(child, child_path, out);
            }
        }
        Value::Sequence(items) => {
            for (i, child) in items.iter().enumerate() {
                collect_leaves(child, format!("{path}[{i}]"), out);
            }
        }
        Value::Tagged(tagged) => collect_leaves(&tagged.value, path, out),
        scalar => {
            let text = serde_norway::to_string(scalar).unwrap_or_default();
            out.push((path, text.trim_end().to_string()));
        }
    }
}

/// `a[0].b[12]` -> `a[].b[]`.
fn strip_indices(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push('[');
            }
            ']' => {
                in_index = false;
                out.push(']');
            }
            _ if in_index => {}
            _ => out.push(c),
        }
    }
    out
}

/// The `key` next to a `secretRef.name`, if any.
fn secret_key(document: &Value, name_path: &str) -> Option<String> {
    let key_path = name_path.strip_suffix(".name")?.to_string() + ".key";
    let mut leaves = Vec::new();
    collect_leaves(document, String::new(), &mut leaves);
    leaves
        .into_iter()
        .find(|(p, _)| *p == key_path)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_count_as_loopback() {
        for address in ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"] {
            assert!(is_loopback(address), "{address}");
        }
        for address in ["0.0.0.0", "::", "10.0.0.1", "192.168.1.2", "gateway.local"] {
            assert!(!is_loopback(address), "{address}");
        }
    }

    #[test]
    fn indices_are_stripped_for_table_lookup() {
        assert_eq!(
            strip_indices("spec.rules[0].matches[12].path"),
            "spec.rules[].matches[].path"
        );
    }
}
