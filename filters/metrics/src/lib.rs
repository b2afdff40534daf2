//! tollgate metrics stage: pure decisions over [`tollgate_core::facts`], called by the pipeline in
//! the `tollgate` glue crate. No proxy-wasm here: the dependency graph keeps it out.
