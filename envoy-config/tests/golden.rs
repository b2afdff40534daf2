//! Golden files: every output of guide + companion (and envoy.yaml of the local stack) as
//! committed under tests/golden/. `UPDATE_GOLDEN=1 cargo test -p tollgate-config --test golden`
//! rewrites them; review the diff.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use tollgate_config::output::FilterForm;
use tollgate_config::render::{render, OutputFile};

fn check_golden(dir: &str, files: &BTreeMap<String, OutputFile>) {
    let dir = Path::new(dir);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let _ = std::fs::remove_dir_all(dir);
        for (name, file) in files {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, &file.text).unwrap();
        }
    }
    let mut expected = Vec::new();
    collect(dir, dir, &mut expected);
    expected.sort();
    let actual: Vec<&String> = files.keys().collect();
    assert_eq!(
        actual,
        expected.iter().collect::<Vec<_>>(),
        "file set of {}",
        dir.display()
    );
    for (name, file) in files {
        let golden = std::fs::read_to_string(dir.join(name)).unwrap();
        assert!(
            golden == file.text,
            "{} differs from its golden file (UPDATE_GOLDEN=1 to accept)",
            name
        );
    }
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(root, &path, out);
        } else {
            out.push(path.strip_prefix(root).unwrap().display().to_string());
        }
    }
}

#[test]
fn guide_and_companion_outputs_match_golden_files() {
    let files = render(&common::guide_and_companion()).unwrap();
    check_golden("tests/golden/guide-companion", &files);
}

#[test]
fn local_stack_envoy_yaml_matches_golden_file() {
    let files = render(&common::local_stack()).unwrap();
    let envoy: BTreeMap<String, OutputFile> = files
        .into_iter()
        .filter(|(name, _)| name == "envoy.yaml")
        .collect();
    check_golden("tests/golden/local", &envoy);
}

/// The separate form (`--filters separate`): envoy.yaml and the Istio WasmPlugins.
fn separate_form() -> BTreeMap<String, OutputFile> {
    let mut request = common::guide_and_companion();
    request.output.filters = FilterForm::Separate;
    render(&request)
        .unwrap()
        .into_iter()
        .filter(|(name, _)| name == "envoy.yaml" || name.starts_with("istio/"))
        .collect()
}

#[test]
fn separate_form_outputs_match_golden_files() {
    check_golden("tests/golden/separate", &separate_form());
}

/// (root_id, configuration) of each downstream wasm filter of an envoy.yaml, in chain order.
fn downstream_wasm_filters(envoy_yaml: &str) -> Vec<(String, serde_json::Value)> {
    let bootstrap: serde_json::Value = serde_norway::from_str(envoy_yaml).unwrap();
    let hcm = &bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0];
    hcm["typed_config"]["http_filters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["name"] == "envoy.filters.http.wasm")
        .map(|f| {
            let config = &f["typed_config"]["config"];
            let text = config["configuration"]["value"].as_str().unwrap();
            (
                config["root_id"].as_str().unwrap().to_string(),
                serde_json::from_str(text).unwrap(),
            )
        })
        .collect()
}

#[test]
fn separate_form_has_the_router_then_each_configured_capability_where_combined_has_one_pipeline() {
    let combined = render(&common::guide_and_companion()).unwrap();
    let combined = downstream_wasm_filters(&combined["envoy.yaml"].text);
    assert_eq!(combined.len(), 1, "{combined:?}");
    let (root, pipeline) = &combined[0];
    assert_eq!(root, "tollgate");

    let separate = downstream_wasm_filters(&separate_form()["envoy.yaml"].text);
    let mut expected = vec![("router".to_string(), pipeline["route"].clone())];
    for capability in ["cache", "budget", "metrics"] {
        if pipeline.get(capability).is_some() {
            expected.push((capability.to_string(), pipeline.clone()));
        }
    }
    assert_eq!(separate, expected);
}

#[test]
fn separate_form_has_one_wasm_plugin_per_filter_placed_by_capability() {
    let files = separate_form();
    let plugins: Vec<(String, String, i64)> = files
        .iter()
        .filter(|(name, _)| name.starts_with("istio/wasmplugin-"))
        .map(|(_, file)| {
            let manifest: serde_json::Value = serde_norway::from_str(&file.text).unwrap();
            let spec = &manifest["spec"];
            (
                spec["pluginName"].as_str().unwrap().to_string(),
                spec["phase"].as_str().unwrap().to_string(),
                spec["priority"].as_i64().unwrap(),
            )
        })
        .collect();
    let roots: Vec<String> = downstream_wasm_filters(&files["envoy.yaml"].text)
        .into_iter()
        .map(|(root, _)| root)
        .collect();
    let placement = |root: &str| match root {
        "router" => ("AUTHZ", 30),
        "cache" => ("AUTHZ", 20),
        "budget" => ("AUTHZ", 10),
        "metrics" => ("STATS", 0),
        other => panic!("unexpected root id {other}"),
    };
    let mut expected: Vec<(String, String, i64)> = roots
        .iter()
        .map(|root| {
            let (phase, priority) = placement(root);
            (root.clone(), phase.to_string(), priority)
        })
        .collect();
    expected.sort();
    let mut plugins = plugins;
    plugins.sort();
    assert_eq!(plugins, expected);
}

#[test]
fn only_secrets_env_is_marked_secret_and_no_other_file_holds_a_key() {
    let files = render(&common::guide_and_companion()).unwrap();
    let secret: Vec<&String> = files
        .iter()
        .filter(|(_, f)| f.secret)
        .map(|(n, _)| n)
        .collect();
    assert_eq!(secret, ["secrets.env"]);
    for key in ["sk-test-openai", "test-anthropic-key", "test-google-key"] {
        assert!(files["secrets.env"].text.contains(key), "{key}");
        for (name, file) in files.iter().filter(|(_, f)| !f.secret) {
            assert!(!file.text.contains(key), "{name} holds a key");
        }
    }
}
