//! The administrator's session with a MongoDB-protocol server (`mongod` or FerretDB) over the
//! instance's private unix socket, through the official driver. Passwords go in commands,
//! never on a command line or in a log.

use std::path::Path;
use std::time::Duration;

use dbtree_core::boundary::{ClusterError, EngineUsage, UsageReport};
use dbtree_core::instance::{Engine, Password};
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::{ClientOptions, Credential, ServerAddress};

use super::ADMIN_USER;

/// The database the tenant's and the administrator's users live in.
pub(super) const AUTH_DB: &str = "admin";

/// A session on `socket`, signed in as the administrator (or anonymous with `None`, for the
/// first user through `mongod`'s localhost exception).
pub(super) fn client(socket: &Path, admin: Option<&Password>) -> Result<mongodb::Client, String> {
    let credential = admin.map(|password| {
        Credential::builder()
            .username(ADMIN_USER.to_owned())
            .password(password.expose().to_owned())
            .source(AUTH_DB.to_owned())
            .build()
    });
    let mut options = ClientOptions::builder()
        .hosts(vec![ServerAddress::Unix {
            path: socket.to_path_buf(),
        }])
        .direct_connection(true)
        .connect_timeout(Duration::from_secs(5))
        .server_selection_timeout(Duration::from_secs(5))
        .app_name("dbtree-local".to_owned())
        .build();
    options.credential = credential;
    mongodb::Client::with_options(options).map_err(|e| describe(&e))
}

/// Runs a command in the `admin` database.
pub(super) async fn command(client: &mongodb::Client, command: Document) -> Result<(), String> {
    client
        .database(AUTH_DB)
        .run_command(command)
        .await
        .map(|_| ())
        .map_err(|e| describe(&e))
}

/// The tenant's user: `dbOwner` of its database (FerretDB 1.x has no roles: an empty list).
pub(super) fn create_tenant(password: &Password, with_roles: bool) -> Document {
    let roles = if with_roles {
        vec![doc! { "role": "dbOwner", "db": Engine::Mongodb.database() }]
    } else {
        Vec::new()
    };
    doc! {
        "createUser": Engine::Mongodb.username(),
        "pwd": password.expose(),
        "roles": roles,
    }
}

/// A new password for the tenant.
pub(super) fn change_tenant_password(password: &Password) -> Document {
    doc! {
        "updateUser": Engine::Mongodb.username(),
        "pwd": password.expose(),
    }
}

/// Waits (up to `limit`) until the administrator can sign in on `socket`.
pub(super) async fn wait_for_admin(
    socket: &Path,
    admin: &Password,
    limit: Duration,
) -> Result<mongodb::Client, String> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let attempt = async {
            let client = client(socket, Some(admin))?;
            command(&client, doc! { "ping": 1 }).await?;
            Ok::<_, String>(client)
        };
        match attempt.await {
            Ok(client) => return Ok(client),
            Err(why) if tokio::time::Instant::now() >= deadline => return Err(why),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// What the server reports about itself, as the administrator on `socket`: the size of the
/// tenant's database on disk (`dbStats`: data and indexes), and where the server gives them
/// (`mongod` does, FerretDB 1.24 does not) its client connections and resident memory
/// (`serverStatus`). Nothing is estimated: a figure the server does not give is left out.
pub(super) async fn usage(socket: &Path, admin: &Password) -> Result<UsageReport, ClusterError> {
    let ask = async {
        let client = client(socket, Some(admin))?;
        let stats = client
            .database(Engine::Mongodb.database())
            .run_command(doc! { "dbStats": 1, "scale": 1 })
            .await
            .map_err(|e| describe(&e))?;
        let status = client
            .database(AUTH_DB)
            .run_command(doc! { "serverStatus": 1 })
            .await
            .map_err(|e| describe(&e))?;
        Ok::<_, String>((stats, status))
    };
    let (stats, status) = match tokio::time::timeout(Duration::from_secs(3), ask).await {
        Ok(Ok(answers)) => answers,
        Ok(Err(why)) => {
            return Err(ClusterError::transient(format!(
                "the MongoDB usage query failed: {why}"
            )));
        }
        Err(_) => return Err(ClusterError::transient("the MongoDB usage query timed out")),
    };
    let disk = match (number(&stats, "totalSize"), number(&stats, "storageSize")) {
        (Some(total), _) => Some(total),
        (None, Some(storage)) => Some(storage + number(&stats, "indexSize").unwrap_or(0)),
        (None, None) => None,
    };
    let connections = status
        .get_document("connections")
        .ok()
        .and_then(|c| number(c, "current"))
        .and_then(|n| u32::try_from(n.saturating_sub(1)).ok());
    let memory = status
        .get_document("mem")
        .ok()
        .and_then(|m| number(m, "resident"))
        .map(|mib| mib.saturating_mul(1024 * 1024));
    Ok(UsageReport::Measured(EngineUsage {
        memory_used_bytes: memory,
        disk_used_bytes: disk,
        connections,
    }))
}

/// A non-negative whole number in `doc` under `key`, whichever numeric type the server chose.
fn number(doc: &Document, key: &str) -> Option<u64> {
    match doc.get(key)? {
        Bson::Int32(n) => u64::try_from(*n).ok(),
        Bson::Int64(n) => u64::try_from(*n).ok(),
        Bson::Double(x) if x.is_finite() && *x >= 0.0 => Some(x.round() as u64),
        _ => None,
    }
}

/// A driver error in words, without anything a command carried.
fn describe(e: &mongodb::error::Error) -> String {
    use mongodb::error::ErrorKind;
    match e.kind.as_ref() {
        ErrorKind::Command(c) => format!("the server refused: {} ({})", c.code_name, c.code),
        ErrorKind::Authentication { .. } => "authentication failed".to_owned(),
        ErrorKind::ServerSelection { .. } | ErrorKind::Io(_) => {
            "the server does not answer on its socket".to_owned()
        }
        _ => "the MongoDB driver failed".to_owned(),
    }
}
