//! The committed OpenAPI document equals the generated one. Regenerate with
//! `DBTREE_WRITE_OPENAPI=1 cargo test -p dbtree-server --test api the_committed_spec`.

use super::helpers::*;

pub(crate) async fn the_committed_spec_is_up_to_date(app: &TestApp) {
    let generated = dbtree_server::openapi_json(app.state.clone());
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi/dbtree.json");
    if std::env::var_os("DBTREE_WRITE_OPENAPI").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("{generated}\n")).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        committed.trim_end(),
        generated.trim_end(),
        "openapi/dbtree.json is stale: run `DBTREE_WRITE_OPENAPI=1 cargo test -p dbtree-server --test api the_committed_spec` and commit it"
    );
}
