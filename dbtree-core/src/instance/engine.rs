//! Database engines dbtree can run.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A database engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// PostgreSQL.
    Postgresql,
    /// Redis.
    Redis,
    /// MongoDB (standalone).
    Mongodb,
}

/// An engine name dbtree does not run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown engine `{0}` (expected postgresql, redis or mongodb)")]
pub struct UnknownEngine(pub String);

impl Engine {
    /// Every engine.
    pub const ALL: [Engine; 3] = [Engine::Postgresql, Engine::Redis, Engine::Mongodb];

    /// The stable lower-case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Engine::Postgresql => "postgresql",
            Engine::Redis => "redis",
            Engine::Mongodb => "mongodb",
        }
    }

    /// The port the engine listens on inside its container.
    pub const fn container_port(self) -> u16 {
        match self {
            Engine::Postgresql => 5432,
            Engine::Redis => 6379,
            Engine::Mongodb => 27017,
        }
    }

    /// The user name a client signs in with: a tenant user that owns the instance's database
    /// and nothing else (never the engine's built-in administrator, never Redis's `default`).
    pub const fn username(self) -> &'static str {
        match self {
            Engine::Postgresql | Engine::Mongodb | Engine::Redis => "dbtree",
        }
    }

    /// The database the tenant owns (PostgreSQL and MongoDB; Redis has numbered databases).
    pub const fn database(self) -> &'static str {
        "dbtree"
    }

    /// A connection URI; `password` is inserted verbatim (dbtree's passwords are alphanumeric).
    pub fn connection_uri(self, host: &str, port: u16, password: &str) -> String {
        let user = self.username();
        match self {
            Engine::Postgresql => {
                let db = self.database();
                format!("postgresql://{user}:{password}@{host}:{port}/{db}")
            }
            Engine::Redis => format!("redis://{user}:{password}@{host}:{port}/0"),
            Engine::Mongodb => {
                let db = self.database();
                format!("mongodb://{user}:{password}@{host}:{port}/{db}?authSource=admin")
            }
        }
    }

    /// The connection URI with a `{password}` placeholder, safe to show at any time.
    pub fn uri_template(self, host: &str, port: u16) -> String {
        self.connection_uri(host, port, "{password}")
    }

    /// The engine's own command-line client.
    pub const fn cli_tool(self) -> &'static str {
        match self {
            Engine::Postgresql => "psql",
            Engine::Redis => "redis-cli",
            Engine::Mongodb => "mongosh",
        }
    }

    /// A command that opens the engine's command-line client on the instance and asks for the
    /// password at its prompt, so it can be copied and run as it is (it holds no placeholder).
    pub fn cli_command(self, host: &str, port: u16) -> String {
        let user = self.username();
        match self {
            Engine::Postgresql => {
                let db = self.database();
                format!("psql \"host={host} port={port} user={user} dbname={db}\"")
            }
            Engine::Redis => format!("redis-cli -h {host} -p {port} --user {user} --askpass"),
            Engine::Mongodb => {
                let db = self.database();
                format!(
                    "mongosh \"mongodb://{host}:{port}/{db}?authSource=admin\" --username {user}"
                )
            }
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Engine {
    type Err = UnknownEngine;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Engine::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| UnknownEngine(s.chars().take(40).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_per_engine() {
        assert_eq!(
            Engine::Postgresql.uri_template("db.example.org", 30001),
            "postgresql://dbtree:{password}@db.example.org:30001/dbtree"
        );
        assert_eq!(
            Engine::Redis.connection_uri("h", 30002, "pw"),
            "redis://dbtree:pw@h:30002/0"
        );
        assert!(
            Engine::Mongodb
                .uri_template("h", 1)
                .ends_with("/dbtree?authSource=admin")
        );
        assert_eq!("redis".parse::<Engine>(), Ok(Engine::Redis));
        let table = [
            (
                Engine::Postgresql,
                "psql \"host=h port=30001 user=dbtree dbname=dbtree\"",
            ),
            (
                Engine::Redis,
                "redis-cli -h h -p 30001 --user dbtree --askpass",
            ),
            (
                Engine::Mongodb,
                "mongosh \"mongodb://h:30001/dbtree?authSource=admin\" --username dbtree",
            ),
        ];
        for (engine, command) in table {
            assert_eq!(engine.cli_command("h", 30001), command);
            assert!(command.starts_with(engine.cli_tool()));
            assert!(
                !command.contains('{'),
                "no placeholder to fill in: {command}"
            );
        }
        assert!("mysql".parse::<Engine>().is_err());
    }
}
