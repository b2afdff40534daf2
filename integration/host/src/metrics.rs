//! Custom metrics as Envoy stores them (`wasmcustom.<name>`, shared by every VM of the host) and
//! their Prometheus rendering through Envoy-style `stats_tags` regexes.

use std::collections::BTreeMap;

use regex::Regex;

use crate::error::HostError;

/// Envoy's custom stat namespace for wasm metrics; stripped on the Prometheus endpoint.
pub const CUSTOM_NAMESPACE: &str = "wasmcustom";

/// `proxy_metric_type_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Monotonic u64.
    Counter,
    /// Settable u64.
    Gauge,
    /// Recorded values.
    Histogram,
}

impl MetricKind {
    pub(crate) fn from_abi(kind: i32) -> Option<Self> {
        match kind {
            0 => Some(Self::Counter),
            1 => Some(Self::Gauge),
            2 => Some(Self::Histogram),
            _ => None,
        }
    }
}

/// One stat: its kind, its value (counter/gauge) and recorded samples (histogram).
#[derive(Debug, Clone)]
pub(crate) struct Metric {
    pub kind: MetricKind,
    pub value: u64,
    pub samples: Vec<u64>,
}

/// Every custom metric of the host, by full Envoy name.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub by_name: BTreeMap<String, Metric>,
}

impl Metrics {
    /// Creates the stat if new (a redefinition keeps the existing value, as Envoy's store does).
    pub fn define(&mut self, full_name: &str, kind: MetricKind) {
        self.by_name.entry(full_name.to_string()).or_insert(Metric {
            kind,
            value: 0,
            samples: Vec::new(),
        });
    }
}

/// One `stats_config.stats_tags` entry: a tag name and a regex whose first group is removed from
/// the stat name and whose second group (or the first if there is only one) is the tag value.
#[derive(Debug, Clone)]
pub struct StatsTag {
    name: String,
    regex: Regex,
}

impl StatsTag {
    /// Compiles the regex; the error names the tag.
    pub fn new(name: &str, regex: &str) -> Result<Self, HostError> {
        let regex =
            Regex::new(regex).map_err(|e| HostError::Config(format!("stats_tags {name}: {e}")))?;
        Ok(Self {
            name: name.to_string(),
            regex,
        })
    }
}

/// Applies the tag extractors to a full stat name as Envoy's `TagProducerImpl` does: every regex
/// runs on the original name, the removed ranges are elided afterwards.
pub(crate) fn extract_tags(full_name: &str, tags: &[StatsTag]) -> (String, Vec<(String, String)>) {
    let mut remove = vec![false; full_name.len()];
    let mut found = Vec::new();
    for tag in tags {
        let Some(captures) = tag.regex.captures(full_name) else {
            continue;
        };
        let Some(removed) = captures.get(1).or_else(|| captures.get(0)) else {
            continue;
        };
        let value = captures.get(2).unwrap_or(removed);
        found.push((tag.name.clone(), value.as_str().to_string()));
        for flag in &mut remove[removed.start()..removed.end()] {
            *flag = true;
        }
    }
    let kept: Vec<u8> = full_name
        .bytes()
        .zip(remove)
        .filter(|(_, removed)| !removed)
        .map(|(b, _)| b)
        .collect();
    (String::from_utf8_lossy(&kept).into_owned(), found)
}

/// Envoy's Prometheus metric name: the registered `wasmcustom.` prefix stripped (no `envoy_`),
/// every character outside `[a-zA-Z0-9_]` replaced by `_`; `None` when it would start with a digit.
pub(crate) fn prometheus_name(tag_extracted_name: &str) -> Option<String> {
    let stripped = tag_extracted_name
        .strip_prefix(CUSTOM_NAMESPACE)
        .and_then(|rest| rest.strip_prefix('.'))
        .map(str::to_string)
        .unwrap_or_else(|| format!("envoy_{tag_extracted_name}"));
    let sanitized: String = stripped
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    match sanitized.chars().next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => Some(sanitized),
        _ => None,
    }
}

/// The exposition line (`name{tag="value",...} value`) of a counter or gauge.
pub(crate) fn prometheus_line(full_name: &str, value: u64, tags: &[StatsTag]) -> Option<String> {
    let (name, found) = extract_tags(full_name, tags);
    let name = prometheus_name(&name)?;
    if found.is_empty() {
        return Some(format!("{name} {value}"));
    }
    let labels: Vec<String> = found
        .iter()
        .map(|(k, v)| format!("{}=\"{}\"", sanitize_label(k), escape_label_value(v)))
        .collect();
    Some(format!("{name}{{{}}} {value}", labels.join(",")))
}

fn sanitize_label(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn escape_label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_extracted_in_stats_tags_order_and_the_prefix_is_stripped() {
        let tags = [
            StatsTag::new("direction", r"(\.direction\.([^.]*))").unwrap(),
            StatsTag::new("provider", r"(\.provider\.([^.]*))").unwrap(),
        ];
        let line = prometheus_line(
            "wasmcustom.llm_tokens_total.provider.openai.direction.input",
            12,
            &tags,
        );
        assert_eq!(
            line.as_deref(),
            Some(r#"llm_tokens_total{direction="input",provider="openai"} 12"#)
        );
    }

    #[test]
    fn without_tags_dots_become_underscores() {
        assert_eq!(
            prometheus_line("wasmcustom.a.b-c", 1, &[]).as_deref(),
            Some("a_b_c 1")
        );
    }

    #[test]
    fn a_name_starting_with_a_digit_is_dropped() {
        assert_eq!(prometheus_line("wasmcustom.1abc", 1, &[]), None);
    }
}
