//! Every error path, asserted by its exact message. Each file in tests/errors/ is one case:
//! its `# error: ` comment lines are the messages expected, in order, when it is rendered alone.

use std::path::Path;
use tollgate_config::plan::PlanOptions;
use tollgate_config::render::{render, InputFile, RenderRequest};
use tollgate_config::secrets::SecretStore;

fn request(inputs: Vec<InputFile>) -> RenderRequest {
    let secrets = SecretStore {
        dir: Some("tests/fixtures/secrets".into()),
        env: Default::default(),
    };
    RenderRequest {
        inputs,
        plan: PlanOptions {
            secrets,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn errors_of(request: &RenderRequest) -> Vec<String> {
    match render(request) {
        Ok(_) => vec![],
        Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn every_error_case_reports_exactly_its_expected_messages() {
    let mut cases: Vec<_> = std::fs::read_dir("tests/errors")
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert!(cases.len() >= 15, "error cases missing");
    for path in cases {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let expected: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# error: "))
            .map(str::to_string)
            .collect();
        assert!(!expected.is_empty(), "{name} names no expected error");
        let actual = errors_of(&request(vec![InputFile {
            name: name.clone(),
            text,
        }]));
        assert_eq!(actual, expected, "case {name}");
    }
}

fn guide_inputs() -> Vec<InputFile> {
    let mut files: Vec<_> = std::fs::read_dir("guide")
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|p| input(p)).collect()
}

fn input(path: &Path) -> InputFile {
    InputFile {
        name: path.display().to_string(),
        text: std::fs::read_to_string(path).unwrap(),
    }
}

#[test]
fn guide_alone_fails_with_one_error_per_missing_reference() {
    let actual = errors_of(&request(guide_inputs()));
    let expected = [
        "guide/02-trafficpolicy-token-budget.yaml: TrafficPolicy/token-budget: spec.targetRefs[0]: HTTPRoute \"llm-routes\" is not defined",
        "guide/04-httproute-batch-route-and-stream-route.yaml: HTTPRoute/stream-route: spec.rules[0].backendRefs[0]: Backend \"fast-llm\" is not defined",
        "guide/05-backendconfigpolicy-connection-pool.yaml: BackendConfigPolicy/connection-pool: spec.targetRefs[0]: Backend \"openai\" is not defined",
        "guide/06-backendconfigpolicy-http2-config.yaml: BackendConfigPolicy/http2-config: spec.targetRefs[0]: Backend \"openai\" is not defined",
        "guide/07-backendconfigpolicy-keepalive.yaml: BackendConfigPolicy/keepalive: spec.targetRefs[0]: Backend \"openai\" is not defined",
        "guide/09-trafficpolicy-latency-routing.yaml: TrafficPolicy/latency-routing: spec.targetRefs[0]: Backend \"multi-provider\" is not defined",
        "guide/12-backendconfigpolicy-circuit-breaker.yaml: BackendConfigPolicy/circuit-breaker: spec.targetRefs[0]: Backend \"openai\" is not defined",
        "guide/13-trafficpolicy-response-cache.yaml: TrafficPolicy/response-cache: spec.targetRefs[0]: HTTPRoute \"llm-routes\" is not defined",
        "guide/14-trafficpolicy-semantic-cache.yaml: TrafficPolicy/semantic-cache: spec.targetRefs[0]: HTTPRoute \"llm-routes\" is not defined",
        "guide/15-trafficpolicy-tool-cache.yaml: TrafficPolicy/tool-cache: spec.targetRefs[0]: HTTPRoute \"mcp-routes\" is not defined",
    ];
    assert_eq!(actual, expected);
}

#[test]
fn guide_with_companion_renders_without_errors() {
    let mut inputs = guide_inputs();
    inputs.push(input(Path::new("examples/companion.yaml")));
    assert_eq!(errors_of(&request(inputs)), Vec::<String>::new());
}

#[test]
fn no_input_documents_is_an_error() {
    let actual = errors_of(&request(vec![InputFile {
        name: "empty.yaml".into(),
        text: "---\n".into(),
    }]));
    assert_eq!(actual, ["(inputs): no documents to render"]);
}

#[test]
fn a_bad_pricing_table_is_reported_with_its_path() {
    let mut request = request(guide_inputs());
    request
        .inputs
        .push(input(Path::new("examples/companion.yaml")));
    request.pricing = Some(InputFile {
        name: "prices.yaml".into(),
        text: "- {provider: openai, model: m, input: cheap, output: 1}\n".into(),
    });
    assert_eq!(
        errors_of(&request),
        ["prices.yaml: [0].input: expected a number, got \"cheap\""]
    );
}

#[test]
fn error_messages_never_contain_secret_values() {
    // The fixture secrets resolve; a broken document next to them must not print them.
    let mut inputs = guide_inputs();
    inputs.push(input(Path::new("examples/companion.yaml")));
    inputs.push(InputFile {
        name: "bad.yaml".into(),
        text: std::fs::read_to_string("tests/errors/bad-integer.yaml").unwrap(),
    });
    let all = errors_of(&request(inputs)).join("\n");
    assert!(all.contains("expected an integer"), "{all}");
    for secret in ["sk-test-openai", "test-google-key", "test-anthropic-key"] {
        assert!(!all.contains(secret), "{secret} leaked");
    }
}
