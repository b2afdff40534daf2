//! Embeds the translation fixture files (tests/fixtures/<pair>/...) for the fixture table, so
//! the same table runs natively and on wasm32 (wasm-bindgen-test under Node has no file
//! system). Only the tests include the generated list; the library does not.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut found = Vec::new();
    files(&root, &mut found);
    found.sort();
    let mut code = String::from("/// Every fixture file: (path under tests/fixtures, bytes).\npub static FIXTURE_FILES: &[(&str, &[u8])] = &[\n");
    for path in &found {
        println!("cargo:rerun-if-changed={}", path.display());
        let Ok(relative) = path.strip_prefix(&root) else {
            continue;
        };
        let _ = writeln!(
            code,
            "    ({:?}, include_bytes!({:?})),",
            relative.to_string_lossy().replace('\\', "/"),
            path.display().to_string()
        );
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("fixtures.rs");
    if let Err(e) = std::fs::write(&out, code) {
        println!("cargo:warning=could not write {}: {e}", out.display());
    }
}
