//! Golden files: every output of guide + companion (and envoy.yaml of the local stack) as
//! committed under tests/golden/. `UPDATE_GOLDEN=1 cargo test -p tollgate-config --test golden`
//! rewrites them; review the diff.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
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
