//! Fault injection: what can go wrong, set per instance or per request, and how the two combine.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::MockError;

/// Name of the request header that injects faults into one request,
/// e.g. `x-mock-fault: status=429;retry-after=2`.
pub(crate) const FAULT_HEADER: &str = "x-mock-fault";

/// Status used by `fail_first` when no `status` is set.
const DEFAULT_FAIL_STATUS: u16 = 503;

/// `Retry-After` seconds sent with a 429 when none is set.
const DEFAULT_RETRY_AFTER_SECS: u64 = 1;

/// Faults applied to every request a mock receives (its provider endpoints, not `/__mock/`).
///
/// JSON form (for `POST /__mock/faults`), every field optional:
/// `{"status":503,"retry_after_secs":2,"latency_ms":100,"chunk_delay_ms":20,"reset_after_chunks":3,"reset_before_headers":false,"fail_first":2,"gzip":true,"gzip_regardless":false}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InstanceFaults {
    /// Answer with this error status (400..=599) in the provider's error format instead of a
    /// completion: every request, or only the first `fail_first` ones.
    pub status: Option<u16>,
    /// `Retry-After` seconds on injected errors. A 429 always has one (1 s by default); other
    /// statuses only when this is set.
    pub retry_after_secs: Option<u64>,
    /// Wait this long before sending the response headers (errors included).
    pub latency_ms: u64,
    /// Wait this long before every stream chunk after the first (streams only).
    pub chunk_delay_ms: u64,
    /// Abort the connection (HTTP/1.1) or the stream (HTTP/2 RST_STREAM) after sending the
    /// response headers and this many chunks of a streamed answer (0: right after the headers).
    /// A non-streamed answer is cut after half of its body, whatever the number. The client
    /// sees an incomplete body, never a clean end. Every request, or only the first `fail_first`.
    pub reset_after_chunks: Option<u32>,
    /// Abort the connection (HTTP/1.1) or the stream (HTTP/2 RST_STREAM) without any response,
    /// after the latency: what a proxy's "retry on reset" reacts to. Takes precedence over
    /// `status`. Every request, or only the first `fail_first`.
    pub reset_before_headers: bool,
    /// When non-zero, `status`, `reset_after_chunks` and `reset_before_headers` apply only to
    /// the first N requests (counted from when these faults were set), and with none of them
    /// set those N requests fail with 503. Later requests succeed. Latency and chunk delay
    /// always apply.
    pub fail_first: u32,
    /// Compress every answer (errors included, streams frame by frame) with gzip when the
    /// request's `accept-encoding` allows it, as real providers do.
    pub gzip: bool,
    /// Compress with gzip whatever the request's `accept-encoding` says (a provider, or a proxy
    /// in front of it, that ignores `identity`).
    pub gzip_regardless: bool,
}

impl InstanceFaults {
    /// Checks the values a mock cannot act on (a status outside 400..=599).
    pub fn validate(&self) -> Result<(), MockError> {
        match self.status {
            Some(status) => validate_status(status),
            None => Ok(()),
        }
    }
}

fn validate_status(status: u16) -> Result<(), MockError> {
    if (400..=599).contains(&status) {
        Ok(())
    } else {
        Err(MockError::InvalidFault(format!(
            "status {status} is not an error status (400..=599)"
        )))
    }
}

/// Faults asked for by one request's `x-mock-fault` header; unset knobs fall back to the instance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RequestFaults {
    status: Option<u16>,
    retry_after_secs: Option<u64>,
    latency_ms: Option<u64>,
    chunk_delay_ms: Option<u64>,
    reset_after_chunks: Option<u32>,
    reset_before_headers: Option<bool>,
    gzip: Option<bool>,
    gzip_regardless: Option<bool>,
}

impl RequestFaults {
    /// Parses `status=429;retry-after=2;latency-ms=200;chunk-delay-ms=50;reset-after-chunks=2`
    /// and `reset-before-headers=true` (or `1`).
    /// Unknown keys and malformed numbers are errors so a typo never silently tests nothing.
    pub(crate) fn parse(header: &str) -> Result<Self, MockError> {
        let mut faults = RequestFaults::default();
        for pair in header.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| MockError::InvalidFault(format!("`{pair}` is not key=value")))?;
            let (key, value) = (key.trim(), value.trim());
            match key {
                "status" => {
                    let status = parse_number(key, value)?;
                    validate_status(status)?;
                    faults.status = Some(status);
                }
                "retry-after" => faults.retry_after_secs = Some(parse_number(key, value)?),
                "latency-ms" => faults.latency_ms = Some(parse_number(key, value)?),
                "chunk-delay-ms" => faults.chunk_delay_ms = Some(parse_number(key, value)?),
                "reset-after-chunks" => faults.reset_after_chunks = Some(parse_number(key, value)?),
                "reset-before-headers" => {
                    faults.reset_before_headers = Some(parse_flag(key, value)?)
                }
                "gzip" => faults.gzip = Some(parse_flag(key, value)?),
                "gzip-regardless" => faults.gzip_regardless = Some(parse_flag(key, value)?),
                _ => {
                    return Err(MockError::InvalidFault(format!(
                        "unknown key `{key}` (expected status, retry-after, latency-ms, \
                         chunk-delay-ms, reset-after-chunks, reset-before-headers, gzip or \
                         gzip-regardless)"
                    )))
                }
            }
        }
        Ok(faults)
    }
}

fn parse_number<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, MockError> {
    value
        .parse()
        .map_err(|_| MockError::InvalidFault(format!("`{key}={value}` is not a valid number")))
}

fn parse_flag(key: &str, value: &str) -> Result<bool, MockError> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(MockError::InvalidFault(format!(
            "`{key}={value}` is not true, false, 1 or 0"
        ))),
    }
}

/// The faults that apply to one request, after combining instance and request settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Answer with this status instead of a completion.
    pub fail_status: Option<u16>,
    /// `Retry-After` seconds to send with the failure.
    pub retry_after_secs: Option<u64>,
    pub latency: Duration,
    pub chunk_delay: Duration,
    pub reset_after_chunks: Option<u32>,
    /// Abort without any response.
    pub reset_before_headers: bool,
    /// Gzip the answer if the request accepts it.
    pub gzip: bool,
    /// Gzip the answer whatever the request accepts.
    pub gzip_regardless: bool,
}

impl Plan {
    /// Combines the instance faults with the request's header. `requests_since_set` is how many
    /// requests arrived before this one since the instance faults were set (for `fail_first`).
    pub(crate) fn resolve(
        instance: &InstanceFaults,
        requests_since_set: u64,
        request: &RequestFaults,
    ) -> Plan {
        let failing =
            instance.fail_first == 0 || requests_since_set < u64::from(instance.fail_first);
        let knobs = (
            instance.status,
            instance.reset_after_chunks,
            instance.reset_before_headers,
        );
        let (instance_status, instance_reset, instance_abort) = match knobs {
            _ if !failing => (None, None, false),
            (None, None, false) if instance.fail_first > 0 => {
                (Some(DEFAULT_FAIL_STATUS), None, false)
            }
            knobs => knobs,
        };
        let fail_status = request.status.or(instance_status);
        let explicit_retry_after = request.retry_after_secs.or(instance.retry_after_secs);
        let retry_after_secs = match fail_status {
            Some(429) => Some(explicit_retry_after.unwrap_or(DEFAULT_RETRY_AFTER_SECS)),
            Some(_) => explicit_retry_after,
            None => None,
        };
        Plan {
            fail_status,
            retry_after_secs,
            latency: Duration::from_millis(request.latency_ms.unwrap_or(instance.latency_ms)),
            chunk_delay: Duration::from_millis(
                request.chunk_delay_ms.unwrap_or(instance.chunk_delay_ms),
            ),
            reset_after_chunks: request.reset_after_chunks.or(instance_reset),
            reset_before_headers: request.reset_before_headers.unwrap_or(instance_abort),
            gzip: request.gzip.unwrap_or(instance.gzip),
            gzip_regardless: request.gzip_regardless.unwrap_or(instance.gzip_regardless),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_with_every_key_is_parsed() {
        let faults = RequestFaults::parse(
            "status=429; retry-after=2;latency-ms=200;chunk-delay-ms=50;reset-after-chunks=2;\
             reset-before-headers=1;gzip=1;gzip-regardless=0",
        )
        .unwrap();
        assert_eq!(
            faults,
            RequestFaults {
                status: Some(429),
                retry_after_secs: Some(2),
                latency_ms: Some(200),
                chunk_delay_ms: Some(50),
                reset_after_chunks: Some(2),
                reset_before_headers: Some(true),
                gzip: Some(true),
                gzip_regardless: Some(false),
            }
        );
    }

    #[test]
    fn malformed_headers_are_rejected() {
        for header in [
            "status",
            "status=abc",
            "status=200",
            "status=600",
            "latency=5",
            "reset-after-chunks=-1",
            "reset-before-headers=yes",
        ] {
            assert!(RequestFaults::parse(header).is_err(), "{header} accepted");
        }
    }

    #[test]
    fn fail_first_fails_only_the_first_requests_with_503_by_default() {
        let instance = InstanceFaults {
            fail_first: 2,
            ..Default::default()
        };
        let statuses: Vec<_> = (0..4)
            .map(|n| Plan::resolve(&instance, n, &RequestFaults::default()).fail_status)
            .collect();
        assert_eq!(statuses, [Some(503), Some(503), None, None]);
    }

    #[test]
    fn fail_first_limits_resets_to_the_first_requests() {
        let instance = InstanceFaults {
            fail_first: 1,
            reset_after_chunks: Some(2),
            latency_ms: 5,
            ..Default::default()
        };
        let first = Plan::resolve(&instance, 0, &RequestFaults::default());
        let second = Plan::resolve(&instance, 1, &RequestFaults::default());
        assert_eq!(
            (first.fail_status, first.reset_after_chunks),
            (None, Some(2))
        );
        assert_eq!(
            (second.fail_status, second.reset_after_chunks),
            (None, None)
        );
        assert_eq!(second.latency, Duration::from_millis(5));
    }

    #[test]
    fn instance_status_without_fail_first_fails_every_request() {
        let instance = InstanceFaults {
            status: Some(500),
            ..Default::default()
        };
        let plan = Plan::resolve(&instance, 1000, &RequestFaults::default());
        assert_eq!(plan.fail_status, Some(500));
        assert_eq!(plan.retry_after_secs, None);
    }

    #[test]
    fn request_header_overrides_instance_knob_by_knob() {
        let instance = InstanceFaults {
            status: Some(500),
            latency_ms: 10,
            chunk_delay_ms: 5,
            ..Default::default()
        };
        let request = RequestFaults::parse("status=429;latency-ms=0").unwrap();
        let plan = Plan::resolve(&instance, 0, &request);
        assert_eq!(plan.fail_status, Some(429));
        assert_eq!(plan.retry_after_secs, Some(DEFAULT_RETRY_AFTER_SECS));
        assert_eq!(plan.latency, Duration::ZERO);
        assert_eq!(plan.chunk_delay, Duration::from_millis(5));
    }

    #[test]
    fn instance_faults_json_accepts_partial_objects_and_rejects_unknown_fields() {
        let faults: InstanceFaults = serde_json::from_str(r#"{"fail_first":3}"#).unwrap();
        assert_eq!(faults.fail_first, 3);
        assert!(serde_json::from_str::<InstanceFaults>(r#"{"fail_frist":3}"#).is_err());
    }
}
