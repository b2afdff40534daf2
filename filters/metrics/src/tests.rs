//! Table of finished requests → observations.

use super::*;
use tollgate_core::config::metrics::MetricNaming;
use tollgate_core::usage::TokenUsage;

fn recorder(naming: MetricNaming, max_models: usize) -> Recorder {
    let config = MetricsConfig {
        naming,
        max_models,
        providers: BTreeMap::from([
            ("cheap-cloud".to_string(), "openai".to_string()),
            ("claude".to_string(), "anthropic".to_string()),
        ]),
        ..MetricsConfig::default()
    };
    Recorder::new(&config).unwrap()
}

fn request(model: &str) -> RequestFacts {
    RequestFacts {
        model: Some(model.into()),
        started_ms: 1_000,
        ..RequestFacts::default()
    }
}

fn answer(provider: &str, model: &str, usage: (u64, u64, u64)) -> ResponseFacts {
    answer_writing(provider, model, usage, 0)
}

/// An answer whose prompt also wrote `written` tokens to the prompt cache.
fn answer_writing(
    provider: &str,
    model: &str,
    usage: (u64, u64, u64),
    written: u64,
) -> ResponseFacts {
    ResponseFacts {
        status: 200,
        provider: Some(provider.into()),
        model: Some(model.into()),
        usage: Some(TokenUsage {
            input_tokens: usage.0,
            output_tokens: usage.1,
            cached_input_tokens: usage.2,
            cache_write_tokens: written,
        }),
        answered_by: Answerer::Upstream,
        ttfb_ms: Some(120),
        complete: true,
        finishes: None,
    }
}

fn lines(r: &Recorder, obs: &[Observation]) -> Vec<String> {
    obs.iter()
        .map(|o| {
            let def = r.naming().def(o.metric);
            let labels: Vec<String> = def
                .tags
                .iter()
                .zip(&o.values)
                .map(|(t, v)| format!("{}={v}", r.naming().tag_name(*t)))
                .collect();
            format!("{}{{{}}} {}", def.name, labels.join(","), o.value)
        })
        .collect()
}

#[test]
fn an_upstream_answer_counts_request_tokens_cost_and_latencies_by_the_serving_provider() {
    let mut r = recorder(MetricNaming::Agentgateway, 10);
    let obs = r.finish(
        &request("fast"),
        &answer("cheap-cloud", "gpt-4o-mini", (1000, 100, 400)),
        3_500,
    );
    assert_eq!(
        lines(&r, &obs),
        [
            "agentgateway_llm_requests_total{provider=openai,model=gpt-4o-mini,status=200} 1",
            "agentgateway_llm_tokens_total{provider=openai,model=gpt-4o-mini,direction=input} 600",
            "agentgateway_llm_tokens_total{provider=openai,model=gpt-4o-mini,direction=output} 100",
            "agentgateway_llm_tokens_total{provider=openai,model=gpt-4o-mini,direction=cached_input} 400",
            "agentgateway_llm_cost_micro_usd_total{provider=openai,model=gpt-4o-mini} 180",
            "agentgateway_llm_request_duration_ms{provider=openai,model=gpt-4o-mini} 2500",
            "agentgateway_llm_time_to_first_token_ms{provider=openai,model=gpt-4o-mini} 120",
        ]
    );
}

#[test]
fn anthropic_cache_writes_count_as_input_tokens_and_cost_the_write_price() {
    // Anthropic reported input 1000, cache_read 2000, cache_creation 500, output 200 (the
    // adapter's OpenAI usage: prompt_tokens 3500, cached_tokens 2000, cache_creation_tokens 500).
    let mut r = recorder(MetricNaming::Agentgateway, 10);
    let obs = r.finish(
        &request("sonnet"),
        &answer_writing(
            "claude",
            "claude-3-5-sonnet-20241022",
            (3_500, 200, 2_000),
            500,
        ),
        1_100,
    );
    let got = lines(&r, &obs);
    let m = "provider=anthropic,model=claude-3-5-sonnet-20241022";
    // 1000 × 3 + 2000 × 0.30 + 500 × 3.75 + 200 × 15 = 8475 µUSD (as plain input: 7975).
    for line in [
        format!("agentgateway_llm_tokens_total{{{m},direction=input}} 1500"),
        format!("agentgateway_llm_tokens_total{{{m},direction=cached_input}} 2000"),
        format!("agentgateway_llm_cost_micro_usd_total{{{m}}} 8475"),
    ] {
        assert!(got.contains(&line), "{line} not in {got:?}");
    }
}

#[test]
fn the_genai_naming_records_token_histograms_with_request_and_response_models() {
    let mut r = recorder(MetricNaming::Genai, 10);
    let obs = r.finish(
        &request("fast"),
        &answer("claude", "claude-3-5-haiku-20241022", (10, 5, 0)),
        1_050,
    );
    let got = lines(&r, &obs);
    assert_eq!(got[1], "gen_ai_client_token_usage{gen_ai_operation_name=chat,gen_ai_provider_name=anthropic,gen_ai_request_model=fast,gen_ai_response_model=claude-3-5-haiku-20241022,gen_ai_token_type=input} 10");
    assert!(got.iter().all(|l| !l.contains("cached_input")), "{got:?}");
    assert!(got
        .iter()
        .any(|l| l.starts_with("gen_ai_server_request_duration{")
            && l.ends_with("http_response_status_code=200} 50")));
}

#[test]
fn models_past_the_cap_are_other() {
    let mut r = recorder(MetricNaming::Agentgateway, 2);
    for model in ["a", "b", "c"] {
        let obs = r.finish(&request(model), &answer("p", model, (1, 1, 0)), 1_001);
        let want = if model == "c" { "other" } else { model };
        assert_eq!(obs[0].values[1], want);
    }
    // a known model keeps its name after the cap is reached
    let obs = r.finish(&request("a"), &answer("p", "a", (1, 1, 0)), 1_001);
    assert_eq!(obs[0].values[1], "a");
}

#[test]
fn unknown_models_are_priced_with_the_default_and_counted() {
    let config = MetricsConfig {
        default_price: tollgate_core::config::metrics::TokenPrices {
            input: 1.0,
            output: 2.0,
            ..Default::default()
        },
        ..MetricsConfig::default()
    };
    let mut r = Recorder::new(&config).unwrap();
    let obs = r.finish(
        &request("x"),
        &answer("openai", "new-model", (1000, 1000, 0)),
        1_001,
    );
    let got = lines(&r, &obs);
    assert!(
        got.contains(
            &"agentgateway_llm_cost_micro_usd_total{provider=openai,model=new-model} 3000"
                .to_string()
        ),
        "{got:?}"
    );
    assert!(
        got.contains(
            &"agentgateway_llm_unpriced_requests_total{provider=openai,model=new-model} 1"
                .to_string()
        ),
        "{got:?}"
    );
}

#[test]
fn a_cache_hit_counts_as_a_hit_with_the_tokens_and_cost_it_saved_and_no_provider_tokens() {
    let mut r = recorder(MetricNaming::Agentgateway, 10);
    let mut hit = answer("cheap-cloud", "gpt-4o-mini", (1000, 100, 0));
    hit.answered_by = Answerer::Cache;
    let obs = r.finish(&request("fast"), &hit, 1_002);
    let got = lines(&r, &obs);
    assert_eq!(
        got,
        [
            "agentgateway_llm_cache_hits_total{request_model=fast} 1",
            "agentgateway_llm_cache_saved_tokens_total{request_model=fast,direction=input} 1000",
            "agentgateway_llm_cache_saved_tokens_total{request_model=fast,direction=output} 100",
            "agentgateway_llm_cache_saved_cost_micro_usd_total{request_model=fast} 210",
        ]
    );
}

#[test]
fn a_budget_refusal_is_counted_by_the_model_asked() {
    let mut r = recorder(MetricNaming::Agentgateway, 10);
    let refused = ResponseFacts {
        status: 429,
        answered_by: Answerer::Budget,
        ..ResponseFacts::default()
    };
    let obs = r.finish(&request("fast"), &refused, 1_000);
    assert_eq!(
        lines(&r, &obs),
        ["agentgateway_llm_budget_rejections_total{request_model=fast} 1"]
    );
}

#[test]
fn requests_without_a_model_are_not_llm_calls_and_count_nothing() {
    let mut r = recorder(MetricNaming::Agentgateway, 10);
    let obs = r.finish(&RequestFacts::default(), &ResponseFacts::default(), 5);
    assert!(obs.is_empty());
}

#[test]
fn the_log_record_has_tokens_by_category_cost_and_caller_but_no_prompt() {
    let r = recorder(MetricNaming::Agentgateway, 10);
    let mut facts = request("fast");
    facts.caller.jwt_subject = Some("alice".into());
    let record = r.log_record(
        &facts,
        &answer("cheap-cloud", "gpt-4o-mini", (1000, 100, 400)),
    );
    assert_eq!(
        record,
        LogRecord {
            provider: "openai".into(),
            model: "gpt-4o-mini".into(),
            user: "alice".into(),
            input_tokens: 600,
            output_tokens: 100,
            cached_input_tokens: 400,
            cost_micro_usd: 180,
            cache: "-",
            budget: "-",
            answered_by: "upstream",
            ttfb_ms: Some(120),
        }
    );
}

/// The generator's access-log format is `{<Envoy's fields>` + this tail + `}`.
#[test]
fn the_log_record_closes_a_json_line_with_numbers_escaped_strings_and_null_ttfb() {
    let record = LogRecord {
        provider: "openai".into(),
        model: "llama3.2:8b".into(),
        user: "eve\"},\"admin\":true,\n".into(),
        input_tokens: u64::MAX,
        output_tokens: 100,
        cached_input_tokens: 0,
        cost_micro_usd: 180,
        cache: "hit",
        budget: "-",
        answered_by: "cache",
        ttfb_ms: None,
    };
    let mut line = br#"{"status":200"#.to_vec();
    record.write_json_tail(&mut line);
    line.push(b'}');
    let parsed: serde_json::Value = serde_json::from_slice(&line).unwrap();
    assert_eq!(
        parsed,
        serde_json::json!({
            "status": 200,
            "provider": "openai",
            "model": "llama3.2:8b",
            "user": "eve\"},\"admin\":true,\n",
            "input_tokens": u64::MAX,
            "output_tokens": 100,
            "cached_input_tokens": 0,
            "cost_micro_usd": 180,
            "cache": "hit",
            "budget": "-",
            "answered_by": "cache",
            "ttfb_ms": null,
        })
    );
    let keys: Vec<&str> = parsed
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), metric::LOG_FIELDS.len() + 1, "{keys:?}");
}

#[test]
fn a_zero_model_cap_is_refused() {
    let config = MetricsConfig {
        max_models: 0,
        ..MetricsConfig::default()
    };
    assert_eq!(Recorder::new(&config).unwrap_err(), ConfigError::NoModels);
}

/// The recorder hands label values to its sink in a fixed array of `MAX_TAGS`: a metric with
/// more tags would lose labels.
#[test]
fn no_metric_in_either_naming_has_more_labels_than_the_recorder_passes() {
    for naming in [MetricNaming::Agentgateway, MetricNaming::Genai] {
        let names = recorder(naming, 10).naming();
        for m in metric::ALL {
            assert!(names.def(m).tags.len() <= MAX_TAGS, "{naming:?} {m:?}");
        }
    }
}

#[test]
fn labels_and_log_counts_are_written_in_decimal() {
    for n in [0u64, 7, 200, 429, 65535, u64::MAX] {
        assert_eq!(decimal(n, &mut [0u8; 20]), n.to_string());
    }
}
