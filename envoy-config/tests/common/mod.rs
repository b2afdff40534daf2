//! Shared by the integration tests: the guide + companion (+ local) inputs and a request for them.
#![allow(dead_code)]

use std::path::Path;
use tollgate_config::plan::PlanOptions;
use tollgate_config::render::{InputFile, RenderRequest};
use tollgate_config::secrets::SecretStore;

/// Reads one input file, named as given.
pub fn input(path: &str) -> InputFile {
    InputFile {
        name: path.to_string(),
        text: std::fs::read_to_string(Path::new(path)).unwrap(),
    }
}

/// Every guide block, in guide order.
pub fn guide() -> Vec<InputFile> {
    let mut paths: Vec<_> = std::fs::read_dir("guide")
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| input(&p.display().to_string()))
        .collect()
}

/// Guide + companion, with the fixture secrets.
pub fn guide_and_companion() -> RenderRequest {
    let mut inputs = guide();
    inputs.push(input("examples/companion.yaml"));
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

/// Guide + companion + local overrides (mocks on loopback).
pub fn local_stack() -> RenderRequest {
    let mut request = guide_and_companion();
    request.inputs.push(input("examples/local.yaml"));
    request
}
