//! Fault injection, per request (`x-mock-fault`) and per instance: error statuses in each
//! provider's format, Retry-After, fail-first, latency, paced streams and resets, over HTTP/1.1
//! and HTTP/2.

mod common;

use std::time::Duration;

use common::{Call, Protocol, Reply};
use serde_json::{json, Value};
use tollgate_mock::{spawn, InstanceFaults, Kind, MockConfig, MockHandle};

fn mock_with(kind: Kind, faults: InstanceFaults) -> MockHandle {
    let mut config = MockConfig::new(kind, "127.0.0.1:0".parse().unwrap());
    config.faults = faults;
    spawn(config).unwrap()
}

fn mock(kind: Kind) -> MockHandle {
    mock_with(kind, InstanceFaults::default())
}

/// A valid request for `kind`, streamed or not.
fn chat(kind: Kind, stream: bool) -> Call {
    match kind {
        Kind::Openai | Kind::Ollama => Call::post(
            "/v1/chat/completions",
            json!({"model": "m", "stream": stream, "stream_options": {"include_usage": true},
                   "messages": [{"role": "user", "content": "hi there"}]})
            .to_string(),
        ),
        Kind::Anthropic => Call::post(
            "/v1/messages",
            json!({"model": "m", "max_tokens": 100, "stream": stream,
                   "messages": [{"role": "user", "content": "hi there"}]})
            .to_string(),
        )
        .header("anthropic-version", "2023-06-01"),
        Kind::Gemini if stream => Call::post(
            "/v1beta/models/m:streamGenerateContent?alt=sse",
            json!({"contents": [{"parts": [{"text": "hi there"}]}]}).to_string(),
        ),
        Kind::Gemini => Call::post(
            "/v1beta/models/m:generateContent",
            json!({"contents": [{"parts": [{"text": "hi there"}]}]}).to_string(),
        ),
    }
}

/// The number of SSE events a full answer to [`chat`] has: the answer has 9 words.
fn full_stream_events(kind: Kind) -> usize {
    match kind {
        // role chunk, 9 words, finish chunk, usage chunk, [DONE]
        Kind::Openai | Kind::Ollama => 13,
        // message_start, content_block_start, ping, 9 deltas, block_stop, message_delta, message_stop
        Kind::Anthropic => 15,
        // one per word
        Kind::Gemini => 9,
    }
}

/// The provider's error status/type field, to check an error is in the provider's own format.
fn error_format(kind: Kind, body: &Value) -> (Value, Value) {
    match kind {
        Kind::Openai | Kind::Ollama => {
            (body["error"]["type"].clone(), body["error"]["code"].clone())
        }
        Kind::Anthropic => (body["type"].clone(), body["error"]["type"].clone()),
        Kind::Gemini => (
            body["error"]["code"].clone(),
            body["error"]["status"].clone(),
        ),
    }
}

#[test]
fn injected_statuses_use_each_providers_error_format() {
    let cases = [
        (
            Kind::Openai,
            429,
            json!("requests"),
            json!("rate_limit_exceeded"),
        ),
        (Kind::Openai, 500, json!("server_error"), json!(null)),
        (Kind::Openai, 503, json!("server_error"), json!(null)),
        (Kind::Ollama, 503, json!("server_error"), json!(null)),
        (
            Kind::Anthropic,
            429,
            json!("error"),
            json!("rate_limit_error"),
        ),
        (Kind::Anthropic, 500, json!("error"), json!("api_error")),
        (
            Kind::Anthropic,
            529,
            json!("error"),
            json!("overloaded_error"),
        ),
        (Kind::Gemini, 429, json!(429), json!("RESOURCE_EXHAUSTED")),
        (Kind::Gemini, 500, json!(500), json!("INTERNAL")),
        (Kind::Gemini, 503, json!(503), json!("UNAVAILABLE")),
    ];
    for (kind, status, first, second) in cases {
        for stream in [false, true] {
            let mock = mock(kind);
            let reply = chat(kind, stream)
                .header("x-mock-fault", &format!("status={status}"))
                .send(mock.addr())
                .unwrap();
            assert_eq!(reply.status, status, "{kind} {status}");
            assert_eq!(reply.header("content-type"), Some("application/json"));
            assert_eq!(
                error_format(kind, &reply.json()),
                (first.clone(), second.clone()),
                "{kind} {status}"
            );
            let expected_retry_after = (status == 429).then_some("1");
            assert_eq!(
                reply.header("retry-after"),
                expected_retry_after,
                "{kind} {status}"
            );
        }
    }
}

#[test]
fn retry_after_can_be_chosen_for_429_and_for_other_statuses() {
    let mock = mock(Kind::Openai);
    for (fault, expected) in [
        ("status=429;retry-after=2", Some("2")),
        ("status=503;retry-after=7", Some("7")),
        ("status=503", None),
    ] {
        let reply = chat(Kind::Openai, false)
            .header("x-mock-fault", fault)
            .send(mock.addr())
            .unwrap();
        assert_eq!(reply.header("retry-after"), expected, "{fault}");
    }
}

#[test]
fn fail_first_fails_only_the_first_requests() {
    let mock = mock_with(
        Kind::Anthropic,
        InstanceFaults {
            fail_first: 2,
            ..Default::default()
        },
    );
    let statuses: Vec<u16> = (0..4)
        .map(|_| {
            chat(Kind::Anthropic, false)
                .send(mock.addr())
                .unwrap()
                .status
        })
        .collect();
    assert_eq!(statuses, [503, 503, 200, 200]);

    // Setting faults again restarts the count, with the chosen status.
    mock.set_faults(InstanceFaults {
        fail_first: 1,
        status: Some(429),
        retry_after_secs: Some(3),
        ..Default::default()
    })
    .unwrap();
    let first = chat(Kind::Anthropic, false).send(mock.addr()).unwrap();
    assert_eq!(first.status, 429);
    assert_eq!(first.header("retry-after"), Some("3"));
    assert_eq!(
        chat(Kind::Anthropic, false)
            .send(mock.addr())
            .unwrap()
            .status,
        200
    );
}

#[test]
fn fail_first_with_reset_cuts_only_the_first_streams() {
    let mock = mock_with(
        Kind::Openai,
        InstanceFaults {
            fail_first: 1,
            reset_after_chunks: Some(3),
            ..Default::default()
        },
    );
    let first = chat(Kind::Openai, true).send(mock.addr()).unwrap();
    assert_cut(&first, "first stream");
    assert_eq!(first.sse_data().len(), 3);
    let second = chat(Kind::Openai, true).send(mock.addr()).unwrap();
    assert!(second.body_error.is_none());
    assert_eq!(second.sse_data().len(), full_stream_events(Kind::Openai));
}

#[test]
fn fail_first_counts_exactly_under_concurrent_requests() {
    let mock = mock_with(
        Kind::Openai,
        InstanceFaults {
            fail_first: 5,
            ..Default::default()
        },
    );
    let addr = mock.addr();
    let clients: Vec<_> = (0..20)
        .map(|_| std::thread::spawn(move || chat(Kind::Openai, false).send(addr).unwrap().status))
        .collect();
    let mut statuses: Vec<u16> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [[200; 15].as_slice(), &[503; 5]].concat());
}

#[test]
fn instance_status_fails_every_request_until_cleared() {
    let mock = mock_with(
        Kind::Gemini,
        InstanceFaults {
            status: Some(500),
            ..Default::default()
        },
    );
    for _ in 0..3 {
        assert_eq!(
            chat(Kind::Gemini, false).send(mock.addr()).unwrap().status,
            500
        );
    }
    mock.set_faults(InstanceFaults::default()).unwrap();
    assert_eq!(
        chat(Kind::Gemini, false).send(mock.addr()).unwrap().status,
        200
    );
}

#[test]
fn the_request_header_overrides_the_instance_faults() {
    let mock = mock_with(
        Kind::Openai,
        InstanceFaults {
            status: Some(500),
            ..Default::default()
        },
    );
    let reply = chat(Kind::Openai, false)
        .header("x-mock-fault", "status=429")
        .send(mock.addr())
        .unwrap();
    assert_eq!(reply.status, 429);
}

#[test]
fn a_malformed_fault_header_is_a_400_naming_the_problem() {
    for (kind, fault) in [
        (Kind::Openai, "status=200"),
        (Kind::Anthropic, "latency=5"),
        (Kind::Gemini, "reset-after-chunks=two"),
    ] {
        let mock = mock(kind);
        let reply = chat(kind, false)
            .header("x-mock-fault", fault)
            .send(mock.addr())
            .unwrap();
        assert_eq!(reply.status, 400, "{kind} {fault}");
        assert!(
            reply.text().contains("x-mock-fault"),
            "{kind}: {}",
            reply.text()
        );
    }
}

#[test]
fn latency_delays_the_response_headers() {
    let mock = mock(Kind::Openai);
    let reply = chat(Kind::Openai, false)
        .header("x-mock-fault", "latency-ms=200")
        .send(mock.addr())
        .unwrap();
    assert_eq!(reply.status, 200);
    assert!(
        reply.headers_after >= Duration::from_millis(200),
        "headers after {:?}",
        reply.headers_after
    );

    // Instance latency applies to errors too.
    let slow = mock_with(
        Kind::Anthropic,
        InstanceFaults {
            latency_ms: 150,
            status: Some(503),
            ..Default::default()
        },
    );
    let reply = chat(Kind::Anthropic, false).send(slow.addr()).unwrap();
    assert_eq!(reply.status, 503);
    assert!(reply.headers_after >= Duration::from_millis(150));
}

#[test]
fn chunk_delay_sends_each_event_as_soon_as_it_is_produced() {
    let delay = Duration::from_millis(40);
    for kind in Kind::ALL {
        for protocol in [Protocol::Http1, Protocol::Http2] {
            let mock = mock(kind);
            let mut call = chat(kind, true).header("x-mock-fault", "chunk-delay-ms=40");
            call.protocol = protocol;
            let reply = call.send(mock.addr()).unwrap();
            let context = format!("{kind} over {protocol:?}");
            let events = full_stream_events(kind);
            assert_eq!(reply.sse_data().len(), events, "{context}");
            // Every event travels in a frame of its own.
            assert_eq!(reply.frames.len(), events, "{context}");
            // Paced: the last event cannot come before all the delays have passed.
            let paced = delay * (events as u32 - 1);
            let first = reply.frames[0].0;
            let last = reply.frames[events - 1].0;
            assert!(last >= paced, "{context}: last event at {last:?}");
            // Not buffered: the first event arrived long before the last was produced (the
            // margin of half the stream leaves room for a slow test machine).
            assert!(
                first + paced / 2 <= last,
                "{context}: first event at {first:?}, last at {last:?}"
            );
        }
    }
}

fn assert_cut(reply: &Reply, context: &str) {
    assert_eq!(reply.status, 200, "{context}");
    assert!(
        reply.body_error.is_some(),
        "{context}: the body ended cleanly: {}",
        reply.text()
    );
}

#[test]
fn reset_after_chunks_aborts_a_stream_after_that_many_events() {
    for kind in Kind::ALL {
        for protocol in [Protocol::Http1, Protocol::Http2] {
            let mock = mock(kind);
            let mut call = chat(kind, true).header("x-mock-fault", "reset-after-chunks=2");
            call.protocol = protocol;
            let reply = call.send(mock.addr()).unwrap();
            let context = format!("{kind} over {protocol:?}");
            assert_cut(&reply, &context);
            assert_eq!(reply.sse_data().len(), 2, "{context}: {}", reply.text());
        }
    }
}

#[test]
fn reset_before_headers_drops_the_request_without_any_response() {
    for kind in Kind::ALL {
        for protocol in [Protocol::Http1, Protocol::Http2] {
            let mock = mock(kind);
            let mut call = chat(kind, false).header("x-mock-fault", "reset-before-headers=true");
            call.protocol = protocol;
            let result = call.send(mock.addr());
            assert!(result.is_err(), "{kind} over {protocol:?}: {result:?}");
            assert_eq!(mock.request_count(), 1, "the request was received");
        }
    }
}

#[test]
fn fail_first_with_reset_before_headers_lets_a_retry_succeed() {
    let mock = mock_with(
        Kind::Gemini,
        InstanceFaults {
            fail_first: 1,
            reset_before_headers: true,
            ..Default::default()
        },
    );
    assert!(chat(Kind::Gemini, false).send(mock.addr()).is_err());
    assert_eq!(
        chat(Kind::Gemini, false).send(mock.addr()).unwrap().status,
        200
    );
}

#[test]
fn reset_cuts_a_whole_answer_in_the_middle() {
    for protocol in [Protocol::Http1, Protocol::Http2] {
        let mock = mock_with(
            Kind::Openai,
            InstanceFaults {
                reset_after_chunks: Some(0),
                ..Default::default()
            },
        );
        let mut call = chat(Kind::Openai, false);
        call.protocol = protocol;
        let reply = call.send(mock.addr()).unwrap();
        assert_cut(&reply, &format!("{protocol:?}"));
        let announced: usize = reply.header("content-length").unwrap().parse().unwrap();
        assert!(reply.body().len() < announced, "{protocol:?}");
        assert!(serde_json::from_slice::<Value>(&reply.body()).is_err());
    }
}

#[test]
fn a_stream_without_faults_ends_cleanly() {
    for kind in Kind::ALL {
        let mock = mock(kind);
        let reply = chat(kind, true).send(mock.addr()).unwrap();
        assert!(reply.body_error.is_none(), "{kind}");
        assert_eq!(reply.sse_data().len(), full_stream_events(kind), "{kind}");
    }
}

#[test]
fn faults_can_be_set_over_http() {
    let mock = mock(Kind::Openai);
    let url_faults = Call::post(
        "/__mock/faults",
        r#"{"fail_first":1,"status":429,"retry_after_secs":4}"#,
    );
    let set = url_faults.send(mock.addr()).unwrap();
    assert_eq!(set.status, 200);
    assert_eq!(set.json()["fail_first"], 1);
    assert_eq!(
        Call::get("/__mock/faults")
            .send(mock.addr())
            .unwrap()
            .json(),
        set.json()
    );

    let failed = chat(Kind::Openai, false).send(mock.addr()).unwrap();
    assert_eq!(failed.status, 429);
    assert_eq!(failed.header("retry-after"), Some("4"));
    assert_eq!(
        chat(Kind::Openai, false).send(mock.addr()).unwrap().status,
        200
    );

    for bad in [r#"{"status":200}"#, r#"{"fail_frist":1}"#, "nope"] {
        let reply = Call::post("/__mock/faults", bad).send(mock.addr()).unwrap();
        assert_eq!(reply.status, 400, "{bad}");
        assert!(reply.json()["error"].is_string());
    }
    assert_eq!(
        mock.faults().fail_first,
        1,
        "a rejected update changes nothing"
    );
}

#[test]
fn health_checks_are_never_faulted_or_counted() {
    let mock = mock_with(
        Kind::Openai,
        InstanceFaults {
            status: Some(503),
            fail_first: 1,
            ..Default::default()
        },
    );
    for protocol in [Protocol::Http1, Protocol::Http2] {
        let mut call = Call::get("/__mock/health");
        call.protocol = protocol;
        let reply = call.send(mock.addr()).unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.text(), "ok");
    }
    assert_eq!(mock.request_count(), 0);
    // The one failure fail_first allows is still there for the first provider request.
    assert_eq!(
        chat(Kind::Openai, false).send(mock.addr()).unwrap().status,
        503
    );
}

#[test]
fn invalid_instance_faults_are_refused() {
    let mut config = MockConfig::new(Kind::Openai, "127.0.0.1:0".parse().unwrap());
    config.faults.status = Some(302);
    assert!(spawn(config).is_err());

    let mock = mock(Kind::Openai);
    let result = mock.set_faults(InstanceFaults {
        status: Some(600),
        ..Default::default()
    });
    assert!(result.is_err());
    assert_eq!(mock.faults(), InstanceFaults::default());
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn gzip_compresses_answers_only_for_clients_that_accept_it_unless_forced() {
    let compressing = mock_with(
        Kind::Anthropic,
        InstanceFaults {
            gzip: true,
            ..InstanceFaults::default()
        },
    );
    let plain = chat(Kind::Anthropic, false)
        .send(compressing.addr())
        .unwrap();
    assert_eq!(plain.status, 200);
    assert!(plain.headers.get("content-encoding").is_none());
    let expected: Value = serde_json::from_slice(&plain.body()).unwrap();

    let gzipped = chat(Kind::Anthropic, false)
        .header("accept-encoding", "gzip, deflate")
        .send(compressing.addr())
        .unwrap();
    assert_eq!(gzipped.headers.get("content-encoding").unwrap(), "gzip");
    assert!(gzipped.headers.get("content-length").is_none());
    let decoded: Value = serde_json::from_slice(&gunzip(&gzipped.body())).unwrap();
    assert_eq!(decoded["content"], expected["content"]);

    // `identity` is ignored by a provider forced to compress.
    let forced = chat(Kind::Anthropic, false)
        .header("accept-encoding", "identity")
        .header("x-mock-fault", "gzip-regardless=1")
        .send(compressing.addr())
        .unwrap();
    assert_eq!(forced.headers.get("content-encoding").unwrap(), "gzip");
    assert!(serde_json::from_slice::<Value>(&gunzip(&forced.body())).is_ok());
}

#[test]
fn gzipped_streams_and_errors_stay_streams_and_errors() {
    let server = mock(Kind::Gemini);
    let stream = chat(Kind::Gemini, true)
        .header("accept-encoding", "gzip")
        .header("x-mock-fault", "gzip=1;chunk-delay-ms=20")
        .send(server.addr())
        .unwrap();
    assert_eq!(stream.headers.get("content-encoding").unwrap(), "gzip");
    assert!(
        stream.frames.len() > 3,
        "flushed frame by frame: {}",
        stream.frames.len()
    );
    let text = String::from_utf8(gunzip(&stream.body())).unwrap();
    assert_eq!(
        text.matches("data: ").count(),
        full_stream_events(Kind::Gemini),
        "{text}"
    );

    let error = chat(Kind::Gemini, false)
        .header("accept-encoding", "gzip")
        .header("x-mock-fault", "gzip=1;status=429")
        .send(server.addr())
        .unwrap();
    assert_eq!(error.status, 429);
    let body: Value = serde_json::from_slice(&gunzip(&error.body())).unwrap();
    assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
}
