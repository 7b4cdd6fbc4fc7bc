//! dbtree's own administrative credential for an instance's engine: a Secret the operator
//! creates once with a random password, controlled by the `DBInstance`, separate from the
//! tenant's credentials Secret. The engine's setup step applies it (rotation, readiness probes
//! and maintenance use it); the tenant's user never gets the administrator's rights.

use std::collections::BTreeMap;

use dbtree_adapters::kube::{DBInstance, EngineKind};
use k8s_openapi::api::core::v1::Secret;
use kube::Resource;

use super::{ChildMeta, ChildNames, Children, SpecError, child_meta};

/// The Secret keys, like the tenant's credentials Secret.
const USERNAME_KEY: &str = "username";
/// See [`USERNAME_KEY`].
const PASSWORD_KEY: &str = "password";

/// The environment variable that carries the administrator's password into the pods.
pub const ADMIN_PASSWORD_ENV: &str = "DBTREE_ADMIN_PASSWORD";

/// Characters of a generated administrator password.
pub const ADMIN_PASSWORD_LEN: usize = 32;

/// The administrator each engine is managed as: PostgreSQL's bootstrap superuser, a Redis ACL
/// user with every command, MongoDB's `root` in the `admin` database.
pub fn admin_username(engine: EngineKind) -> &'static str {
    match engine {
        EngineKind::Postgresql => "postgres",
        EngineKind::Redis | EngineKind::Mongodb => "dbtree-admin",
    }
}

/// A password of [`ADMIN_PASSWORD_LEN`] letters and digits drawn from `random` without modulo
/// bias (bytes at or above the largest multiple of 62 are skipped). `None` if `random` ran out
/// before enough characters were drawn.
pub fn admin_password(random: &[u8]) -> Option<String> {
    const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let limit = 62 * (256 / 62);
    let password: String = random
        .iter()
        .filter(|b| usize::from(**b) < limit)
        .take(ADMIN_PASSWORD_LEN)
        .map(|b| char::from(ALPHABET[usize::from(*b) % 62]))
        .collect();
    (password.len() == ADMIN_PASSWORD_LEN).then_some(password)
}

/// dbtree's administrative Secret for `dbi`'s engine, holding `password` (drawn by the caller:
/// this function is pure), to be created with a name the API server completes from
/// [`ChildNames::admin_secret`]. The operator creates it once and never changes it.
///
/// # Errors
/// [`SpecError`] as for [`super::desired_children`].
pub fn admin_secret(dbi: &DBInstance, password: &str) -> Result<Secret, SpecError> {
    let meta = child_meta(dbi)?;
    let name = dbi.meta().name.clone().unwrap_or_default();
    let prefix = ChildNames::for_instance(&name).admin_secret;
    Ok(render(&meta, &prefix, dbi.spec.engine, password))
}

impl Children {
    /// The same children with the pods reading the administrator's password from the Secret
    /// `name` (see [`ChildNames::admin_secret`]).
    #[must_use]
    pub fn with_admin_secret(mut self, name: &str) -> Self {
        let pod = self
            .stateful_set
            .spec
            .as_mut()
            .and_then(|s| s.template.spec.as_mut());
        if let Some(pod) = pod {
            let env = pod
                .containers
                .iter_mut()
                .chain(pod.init_containers.iter_mut().flatten())
                .flat_map(|c| c.env.iter_mut().flatten());
            for var in env.filter(|v| v.name == ADMIN_PASSWORD_ENV) {
                if let Some(r) = var
                    .value_from
                    .as_mut()
                    .and_then(|v| v.secret_key_ref.as_mut())
                {
                    r.name = name.to_owned();
                }
            }
        }
        self
    }
}

/// The administrator Secret of an instance, with `password`, named by the API server from
/// `generate_name`.
fn render(meta: &ChildMeta, generate_name: &str, engine: EngineKind, password: &str) -> Secret {
    let mut metadata = meta.object(generate_name);
    metadata.name = None;
    metadata.generate_name = Some(generate_name.to_owned());
    Secret {
        metadata,
        type_: Some("Opaque".into()),
        string_data: Some(BTreeMap::from([
            (USERNAME_KEY.to_owned(), admin_username(engine).to_owned()),
            (PASSWORD_KEY.to_owned(), password.to_owned()),
        ])),
        immutable: Some(true),
        ..Secret::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_alphanumeric_of_fixed_length_and_unbiased() {
        let random: Vec<u8> = (0..=255).cycle().take(512).collect();
        let p = admin_password(&random).unwrap();
        assert_eq!(p.len(), ADMIN_PASSWORD_LEN);
        assert!(p.chars().all(|c| c.is_ascii_alphanumeric()));
        // 248..=255 would wrap onto the first letters: they are skipped.
        let high = [250u8; 64];
        assert_eq!(admin_password(&high), None);
        assert_eq!(admin_password(&[0u8; 10]), None, "too little randomness");
    }
}
