//! `explain` covers every field of the guide, companion and local files, withholds secrets,
//! and FIELDS.md carries the same table.

mod common;

use tollgate_config::explain::{explain, format};
use tollgate_config::fields::markdown_table;
use tollgate_config::render::plan;

#[test]
fn every_field_of_guide_companion_and_local_has_a_documented_effect() {
    let request = common::local_stack();
    let (_, documents, _) = plan(&request).unwrap();
    let fields = explain(&documents, &request.plan.secrets);
    assert!(fields.len() > 150, "only {} fields", fields.len());
    let missing: Vec<String> = fields
        .iter()
        .filter(|f| f.effect.is_none())
        .map(|f| format!("{}: {}", f.location, f.path))
        .collect();
    assert_eq!(missing, Vec::<String>::new());
}

#[test]
fn explain_says_where_keys_came_from_and_never_prints_them() {
    let request = common::guide_and_companion();
    let (_, documents, _) = plan(&request).unwrap();
    let text = format(&explain(&documents, &request.plan.secrets));
    assert!(
        text.contains(
            "openai-secret (found in file tests/fixtures/secrets/openai-secret/Authorization)"
        ),
        "{text}"
    );
    assert!(text.contains("spec.connectionPool.tcp.maxConnections = 1000\n    -> cluster circuit_breakers.thresholds[DEFAULT].max_connections"));
    for secret in ["sk-test-openai", "test-google-key", "test-anthropic-key"] {
        assert!(!text.contains(secret), "{secret} printed");
    }
}

#[test]
fn inline_keys_are_withheld() {
    let text = "apiVersion: v1\nkind: Backend\nmetadata: {name: b}\nspec:\n  type: AI\n  ai: {priorityGroups: [{providers: [{name: p, openai: {authToken: {kind: Inline, inline: sk-inline-123}}}]}]}\n";
    let documents = tollgate_config::input::read_documents("b.yaml", text).unwrap();
    let output = format(&explain(&documents, &Default::default()));
    assert!(output.contains("authToken.inline = <withheld>"), "{output}");
    assert!(!output.contains("sk-inline-123"));
}

#[test]
fn fields_md_carries_the_field_table() {
    let path = "FIELDS.md";
    let text = std::fs::read_to_string(path).unwrap();
    let (start, end) = ("<!-- table:start -->\n", "<!-- table:end -->");
    let (before, rest) = text.split_once(start).unwrap();
    let (_, after) = rest.split_once(end).unwrap();
    let expected = format!("{before}{start}{}{end}{after}", markdown_table());
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, &expected).unwrap();
        return;
    }
    assert!(
        text == expected,
        "FIELDS.md's table is stale: UPDATE_GOLDEN=1 cargo test -p tollgate-config --test explain"
    );
}
