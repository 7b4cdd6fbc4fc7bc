//! Which FerretDB binary may serve MongoDB instances: only one built by `.ci/ferretdb`.
//!
//! FerretDB 1.24 answers a SCRAM client's final message with `done: false` and waits for an
//! extra empty `saslContinue`, ignoring the `skipEmptyExchange` the drivers ask for. The Rust
//! driver (which the local driver uses for each instance's administrator session, and tenants
//! may use too) does not send that message and fails ("expected SCRAM authentication to have
//! completed"). `.ci/ferretdb` builds FerretDB with a one-line patch that answers `done: true`
//! once the proof is verified (as MongoDB does) and marks the build in `ferretdb --version`
//! (`package: dbtree+scram-done`); any other FerretDB is reported, not run.

use std::path::PathBuf;

use super::{Program, version_of};

/// What `.ci/ferretdb` writes into `build/version/package.txt`.
pub(crate) const PATCHED_PACKAGE: &str = "dbtree+scram-done";

/// What `ferretdb --version` says: version and package.
#[derive(Debug, PartialEq, Eq)]
struct Build {
    version: String,
    package: String,
}

/// Parses `version: v1.24.2` and `package: …` lines.
fn parse(out: &str) -> Option<Build> {
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
    };
    Some(Build {
        version: field("version: ")?,
        package: field("package: ").unwrap_or_default(),
    })
}

/// The first candidate built by `.ci/ferretdb`; otherwise, if any was found, why the first
/// cannot serve.
pub(crate) fn choose(
    candidates: impl IntoIterator<Item = PathBuf>,
) -> (Option<Program>, Option<String>) {
    let mut refused = None;
    for path in candidates {
        let said = version_of(&path, "--version", |out| {
            parse(out).map(|b| format!("{}\n{}", b.version, b.package))
        });
        let build = said.split_once('\n').map(|(version, package)| Build {
            version: version.to_owned(),
            package: package.to_owned(),
        });
        match build {
            Some(b) if b.package == PATCHED_PACKAGE => {
                let server = format!(
                    "MongoDB-compatible: FerretDB {}",
                    b.version.trim_start_matches('v')
                );
                return (Some(Program { path, server }), None);
            }
            other => {
                let package = other.map_or_else(
                    || "no version".to_owned(),
                    |b| format!("package `{}`", b.package),
                );
                refused.get_or_insert_with(|| {
                    format!(
                        "the FerretDB at {} ({package}) was not built by .ci/ferretdb: its SCRAM \
                         sign-in does not complete with the Rust MongoDB driver; build it with \
                         .ci/ferretdb",
                        path.display()
                    )
                });
            }
        }
    }
    (None, refused)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn script(path: &std::path::Path, says: &str) {
        std::fs::write(path, format!("#!/bin/sh\nprintf '{says}'\n")).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn reads_the_version_and_the_package() {
        let out = "version: v1.24.2\ncommit: unknown\nbranch: unknown\ndirty: false\n\
                   package: dbtree+scram-done\ndebugBuild: false\n";
        assert_eq!(
            parse(out),
            Some(Build {
                version: "v1.24.2".to_owned(),
                package: PATCHED_PACKAGE.to_owned(),
            })
        );
        assert_eq!(parse("something else"), None);
    }

    #[test]
    fn a_ferretdb_not_built_here_is_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("ferretdb");
        script(&fake, "version: v1.24.2\\npackage: deb\\n");
        let (found, refused) = choose([fake.clone()]);
        assert!(found.is_none());
        let reason = refused.unwrap();
        assert!(
            reason.contains(".ci/ferretdb") && reason.contains("`deb`"),
            "{reason}"
        );

        let patched = dir.path().join("patched");
        script(
            &patched,
            &format!("version: v1.24.2\\npackage: {PATCHED_PACKAGE}\\n"),
        );
        let (found, refused) = choose([fake, patched.clone()]);
        let found = found.unwrap();
        assert_eq!(found.path, patched);
        assert_eq!(found.server, "MongoDB-compatible: FerretDB 1.24.2");
        assert_eq!(refused, None);
    }
}
