//! Generates the dbtree client from the committed OpenAPI spec with progenitor, into `OUT_DIR`
//! (under `target/`): the generated code is never committed.

use std::path::{Path, PathBuf};

fn main() {
    let spec_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../openapi/dbtree.json");
    println!("cargo:rerun-if-changed={}", spec_path.display());
    let file = std::fs::File::open(&spec_path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", spec_path.display()));
    let spec =
        serde_json::from_reader(file).expect("openapi/dbtree.json is an OpenAPI 3.0 document");
    let mut generator = progenitor::Generator::default();
    let tokens = generator
        .generate_tokens(&spec)
        .expect("progenitor generates a client from openapi/dbtree.json");
    let ast = syn::parse2(tokens).expect("progenitor's output parses as Rust");
    let out =
        PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("codegen.rs");
    std::fs::write(&out, prettyplease::unparse(&ast))
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
}
