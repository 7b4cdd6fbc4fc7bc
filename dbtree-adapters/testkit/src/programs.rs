//! The programs the tests run, where they are found, and the Debian package that provides each.

use std::fmt;
use std::path::{Path, PathBuf};

/// A program (or a pair of programs) some test needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Program {
    /// PostgreSQL's server programs, `initdb` and `postgres`, from one directory.
    PostgresServer,
    /// `redis-server`.
    RedisServer,
}

impl Program {
    /// Every program the test suite needs.
    pub const ALL: [Program; 2] = [Program::PostgresServer, Program::RedisServer];

    /// The Debian package that installs it.
    pub fn debian_package(self) -> &'static str {
        match self {
            Program::PostgresServer => "postgresql",
            Program::RedisServer => "redis-server",
        }
    }

    /// What it is called in messages.
    pub fn describe(self) -> &'static str {
        match self {
            Program::PostgresServer => "PostgreSQL's server programs (initdb and postgres)",
            Program::RedisServer => "redis-server",
        }
    }

    /// Where it is: the directory holding `initdb` and `postgres`, or the `redis-server` file.
    ///
    /// PostgreSQL is looked for on `PATH`, then in `/usr/lib/postgresql/<version>/bin` (where
    /// Debian puts it, off `PATH`), highest version first.
    ///
    /// # Errors
    /// [`Missing`] naming the Debian package to install.
    pub fn locate(self) -> Result<PathBuf, Missing> {
        let found = match self {
            Program::PostgresServer => path_dirs()
                .into_iter()
                .chain(versioned_dirs(Path::new("/usr/lib/postgresql")))
                .find(|dir| {
                    is_executable(&dir.join("initdb")) && is_executable(&dir.join("postgres"))
                }),
            Program::RedisServer => path_dirs()
                .into_iter()
                .map(|dir| dir.join("redis-server"))
                .find(|file| is_executable(file)),
        };
        found.ok_or(Missing(self))
    }
}

/// A program the tests need is not installed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Missing(pub Program);

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let program = self.0;
        let package = program.debian_package();
        write!(
            f,
            "{} not found (looked on PATH{}). Install the Debian package `{package}` \
             (`apt-get install {package}`), or run the tests with `cargo xtask test`, which \
             installs what is missing",
            program.describe(),
            match program {
                Program::PostgresServer => " and in /usr/lib/postgresql/*/bin",
                Program::RedisServer => "",
            },
        )?;
        match program {
            Program::PostgresServer => {
                f.write_str("; or set DBTREE_TEST_DATABASE_URL to an existing server")
            }
            Program::RedisServer => {
                f.write_str("; or set DBTREE_TEST_REDIS_URL to an existing server")
            }
        }
    }
}

impl std::error::Error for Missing {}

fn path_dirs() -> Vec<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default()
}

/// `root/<version>/bin` for every numeric version under `root`, highest first.
fn versioned_dirs(root: &Path) -> Vec<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by_key(|v| std::cmp::Reverse(v.0));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_names_its_debian_package() {
        let message = Missing(Program::PostgresServer).to_string();
        assert!(message.contains("`postgresql`"), "{message}");
        assert!(message.contains("DBTREE_TEST_DATABASE_URL"), "{message}");
        let message = Missing(Program::RedisServer).to_string();
        assert!(message.contains("`redis-server`"), "{message}");
    }

    #[test]
    fn versions_are_tried_highest_first() {
        let root =
            std::env::temp_dir().join(format!("dbtree-testkit-versions-{}", std::process::id()));
        for v in ["9", "15", "13", "not-a-version"] {
            std::fs::create_dir_all(root.join(v).join("bin")).unwrap();
        }
        let found = versioned_dirs(&root);
        std::fs::remove_dir_all(&root).unwrap();
        let names: Vec<_> = found
            .iter()
            .map(|d| {
                d.parent()
                    .unwrap()
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(names, ["15", "13", "9"]);
    }
}
