//! A MongoDB client the way a tenant makes one: the official Rust driver with the URI dbtree
//! hands out.
#![allow(dead_code, unreachable_pub)]

use dbtree_core::instance::{Engine, Password};
use mongodb::bson::doc;

/// A client signed in with `password` on the instance at `port` (the sign-in happens on the
/// first command, a `ping` in the tenant's database).
pub async fn mongo_with(
    port: u16,
    password: &Password,
) -> Result<mongodb::Client, mongodb::error::Error> {
    let uri = format!(
        "{}&serverSelectionTimeoutMS=5000&connectTimeoutMS=5000",
        Engine::Mongodb.connection_uri("127.0.0.1", port, password.expose())
    );
    let client = mongodb::Client::with_uri_str(uri).await?;
    client
        .database(Engine::Mongodb.database())
        .run_command(doc! { "ping": 1 })
        .await?;
    Ok(client)
}

/// Whether the server refused the sign-in (not a dead port or a timeout).
pub fn is_auth_failure(e: &mongodb::error::Error) -> bool {
    use mongodb::error::ErrorKind;
    match e.kind.as_ref() {
        ErrorKind::Authentication { .. } => true,
        ErrorKind::Command(c) => c.code == 18,
        _ => false,
    }
}
