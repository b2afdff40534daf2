//! Prints the benchmark chain's pipeline configuration (`root_id: tollgate` in the generated
//! envoy.yaml for `scripts/bench/gateway.yaml`), the JSON text Envoy hands the plugin: the
//! input of the V8 harness (`scripts/profile-v8`, integration/v8/chain.mjs).
//!
//!     cargo run --release -p tollgate-e2e --bin bench_pipeline_config > config.json

fn main() {
    match tollgate_e2e::bench_config::pipeline_configuration() {
        Ok(text) => println!("{text}"),
        Err(e) => {
            eprintln!("bench_pipeline_config: {e}");
            std::process::exit(1);
        }
    }
}
