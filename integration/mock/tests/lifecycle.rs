//! A mock's life: HTTP/1.1 and h2c on one port, stopping and restarting on the same port, what
//! it records and shows on `/__mock/`, and the `tollgate-mock` binary.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Call;
use hyper::Version;
use serde_json::json;
use tollgate_mock::{spawn, Kind, MockConfig, MockError, MockHandle};

fn mock(kind: Kind) -> MockHandle {
    spawn(MockConfig::new(kind, "127.0.0.1:0".parse().unwrap())).unwrap()
}

fn openai_chat(text: &str) -> Call {
    Call::post(
        "/v1/chat/completions",
        json!({"model": "m", "messages": [{"role": "user", "content": text}]}).to_string(),
    )
}

#[test]
fn one_port_serves_http1_and_http2_prior_knowledge() {
    let mock = mock(Kind::Openai);
    let http1 = openai_chat("hi").send(mock.addr()).unwrap();
    let http2 = openai_chat("hi").http2().send(mock.addr()).unwrap();
    assert_eq!(http1.version, Version::HTTP_11);
    assert_eq!(http2.version, Version::HTTP_2);
    assert_eq!(http2.status, 200);
    assert_eq!(
        http1.json()["choices"][0]["message"],
        http2.json()["choices"][0]["message"]
    );
}

#[test]
fn a_stopped_mock_refuses_connections_and_comes_back_on_the_same_port() {
    let mut first = mock(Kind::Anthropic);
    let addr = first.addr();
    first.stop();
    assert!(
        TcpStream::connect(addr).is_err(),
        "port still open after stop"
    );
    first.stop(); // stopping twice is harmless

    let mut config = MockConfig::new(Kind::Openai, addr);
    config.name = "back-again".into();
    let second = spawn(config).unwrap();
    assert_eq!(second.addr(), addr);
    let reply = openai_chat("hi").send(addr).unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-mock-name"), Some("back-again"));
}

#[test]
fn dropping_the_handle_stops_the_mock() {
    let addr = mock(Kind::Gemini).addr();
    assert!(TcpStream::connect(addr).is_err());
}

/// Sends one keep-alive HTTP/1.1 request on `stream` and reads its response.
fn keep_alive_exchange(stream: &mut TcpStream, addr: SocketAddr) -> String {
    let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    write!(
        stream,
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = Vec::new();
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(&response).contains("words.\"") {
        let n = stream.read(&mut buffer).unwrap();
        assert!(n > 0, "connection closed early");
        response.extend_from_slice(&buffer[..n]);
    }
    String::from_utf8_lossy(&response).into_owned()
}

#[test]
fn stop_closes_connections_that_are_still_open() {
    let mut mock = mock(Kind::Openai);
    let mut stream = TcpStream::connect(mock.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let response = keep_alive_exchange(&mut stream, mock.addr());
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    mock.stop();
    let mut buffer = [0u8; 64];
    match stream.read(&mut buffer) {
        Ok(0) => {}
        Ok(n) => panic!("read {n} bytes after stop"),
        Err(error) => assert!(
            !matches!(
                error.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "connection still open after stop"
        ),
    }
}

#[test]
fn stop_cuts_a_stream_in_flight() {
    let mut mock = mock(Kind::Anthropic);
    let addr = mock.addr();
    let client = std::thread::spawn(move || {
        Call::post(
            "/v1/messages",
            r#"{"model":"m","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
        )
        .header("anthropic-version", "2023-06-01")
        .header("x-mock-fault", "chunk-delay-ms=100")
        .send(addr)
    });
    // Wait until the stream has started, then take the provider down.
    let deadline = Instant::now() + Duration::from_secs(5);
    while mock.request_count() == 0 {
        assert!(Instant::now() < deadline, "the request never arrived");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(150));
    mock.stop();
    let reply = client.join().unwrap().unwrap();
    assert_eq!(reply.status, 200);
    assert!(
        reply.body_error.is_some(),
        "stream ended cleanly: {}",
        reply.text()
    );
    assert!(!reply.text().contains("message_stop"));
}

#[test]
fn spawning_on_a_taken_port_fails_with_a_bind_error() {
    let running = mock(Kind::Openai);
    let result = spawn(MockConfig::new(Kind::Ollama, running.addr()));
    assert!(matches!(result, Err(MockError::Bind { .. })), "{result:?}");
}

#[test]
fn received_requests_keep_method_path_headers_and_body() {
    let mut config = MockConfig::new(Kind::Gemini, "127.0.0.1:0".parse().unwrap());
    config.api_key = Some("g-key".into());
    let mock = spawn(config).unwrap();
    let body = r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#;
    Call::post("/v1beta/models/m:streamGenerateContent?alt=sse", body)
        .header("x-goog-api-key", "g-key")
        .send(mock.addr())
        .unwrap();
    Call::get("/__mock/health").send(mock.addr()).unwrap();

    assert_eq!(mock.request_count(), 1);
    let received = mock.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.path,
        "/v1beta/models/m:streamGenerateContent?alt=sse"
    );
    assert_eq!(request.header("X-Goog-Api-Key"), Some("g-key"));
    assert_eq!(request.body, body.as_bytes());
    assert_eq!(
        request.body_json().unwrap()["contents"][0]["parts"][0]["text"],
        "hi"
    );
}

#[test]
fn only_the_last_64_requests_are_kept_but_all_are_counted() {
    let mock = mock(Kind::Ollama);
    for n in 0..70 {
        openai_chat(&format!("request {n}"))
            .send(mock.addr())
            .unwrap();
    }
    assert_eq!(mock.request_count(), 70);
    let received = mock.received();
    assert_eq!(received.len(), 64);
    let first_kept = received[0].body_json().unwrap();
    assert_eq!(first_kept["messages"][0]["content"], "request 6");
}

#[test]
fn the_received_endpoint_shows_count_and_bodies_without_keys() {
    let mut config = MockConfig::new(Kind::Openai, "127.0.0.1:0".parse().unwrap());
    config.api_key = Some("sk-very-secret".into());
    let mock = spawn(config).unwrap();
    openai_chat("first")
        .header("authorization", "Bearer sk-very-secret")
        .send(mock.addr())
        .unwrap();
    openai_chat("second").send(mock.addr()).unwrap(); // refused (401) but received

    let shown = Call::get("/__mock/received").send(mock.addr()).unwrap();
    assert_eq!(shown.status, 200);
    assert!(!shown.text().contains("sk-very-secret"), "{}", shown.text());
    let shown = shown.json();
    assert_eq!(shown["count"], 2);
    assert_eq!(shown["kind"], "openai");
    assert_eq!(shown["name"], "mock-openai");
    let requests = shown["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0]["path"], "/v1/chat/completions");
    assert_eq!(requests[0]["headers"]["authorization"], "[redacted]");
    assert_eq!(requests[0]["body"]["messages"][0]["content"], "first");
    assert_eq!(requests[1]["body"]["messages"][0]["content"], "second");

    let reset = Call::post("/__mock/reset", "").send(mock.addr()).unwrap();
    assert_eq!(reset.json()["count"], 0);
    assert_eq!(mock.request_count(), 0);
    assert!(mock.received().is_empty());
}

#[test]
fn an_unknown_control_endpoint_is_a_404() {
    let mock = mock(Kind::Openai);
    let reply = Call::get("/__mock/nothing").send(mock.addr()).unwrap();
    assert_eq!(reply.status, 404);
    assert_eq!(mock.request_count(), 0);
}

/// The binary with `args`, its stdout lines read until one per mock was printed.
fn start_binary(args: &[&str], mocks: usize) -> (Child, Vec<(String, SocketAddr)>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate-mock"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let listening = (0..mocks)
        .map(|_| {
            let line = lines.next().unwrap().unwrap();
            // tollgate-mock: <kind> <name> listening on http://<addr>
            let fields: Vec<&str> = line.split_whitespace().collect();
            let addr = fields[5].strip_prefix("http://").unwrap().parse().unwrap();
            (fields[1].to_string(), addr)
        })
        .collect();
    (child, listening)
}

fn wait_for_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "tollgate-mock did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_binary_serves_several_mocks_and_exits_cleanly_on_sigterm_and_sigint() {
    for signal in ["TERM", "INT"] {
        let (mut child, mocks) = start_binary(
            &[
                "--openai",
                "127.0.0.1:0",
                "--api-key",
                "sk-1",
                "--anthropic",
                "127.0.0.1:0",
                "--gemini",
                "127.0.0.1:0",
                "--ollama",
                "127.0.0.1:0",
                "--fail-first",
                "1",
                "--status",
                "429",
            ],
            4,
        );
        let kinds: Vec<&str> = mocks.iter().map(|(kind, _)| kind.as_str()).collect();
        assert_eq!(kinds, ["openai", "anthropic", "gemini", "ollama"]);

        let openai = mocks[0].1;
        let ollama = mocks[3].1;
        assert_eq!(openai_chat("hi").send(openai).unwrap().status, 401);
        let ok = openai_chat("hi")
            .header("authorization", "Bearer sk-1")
            .send(openai)
            .unwrap();
        assert_eq!(ok.status, 200);
        assert_eq!(openai_chat("hi").send(ollama).unwrap().status, 429);
        assert_eq!(openai_chat("hi").send(ollama).unwrap().status, 200);

        let killed = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = wait_for_exit(&mut child);
        assert!(status.success(), "SIG{signal}: {status:?}");
        for (_, addr) in mocks {
            assert!(TcpStream::connect(addr).is_err(), "{addr} still open");
        }
    }
}

#[test]
fn the_binary_rejects_a_bad_command_line_with_a_reason() {
    let output = Command::new(env!("CARGO_BIN_EXE_tollgate-mock"))
        .args(["--openai", "127.0.0.1:0", "--status", "200"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--status"), "{stderr}");
}

#[test]
fn debug_output_never_shows_the_key() {
    let mut config = MockConfig::new(Kind::Openai, "127.0.0.1:0".parse().unwrap());
    config.api_key = Some("sk-do-not-print".into());
    assert!(!format!("{config:?}").contains("sk-do-not-print"));
    let mock = spawn(config).unwrap();
    assert!(!format!("{mock:?}").contains("sk-do-not-print"));
}
