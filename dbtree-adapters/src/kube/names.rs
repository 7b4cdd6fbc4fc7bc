//! How dbtree names and labels its Kubernetes objects: by id, never by the user's instance
//! name, so a name can be reused while an old object is still being torn down.

use dbtree_core::ids::{InstanceId, UserId};

/// Field manager of the server's server-side applies.
pub const FIELD_MANAGER: &str = "dbtree-server";
/// Label marking every object dbtree manages.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY_VALUE: &str = "dbtree";
/// Label carrying the dbtree instance id.
pub const INSTANCE_LABEL: &str = "dbtree.cloud/instance-id";
/// Label carrying the owner's dbtree user id.
pub const OWNER_LABEL: &str = "dbtree.cloud/owner";

/// The namespace of a user's instances.
pub fn namespace_for(owner: UserId) -> String {
    format!("dbtree-user-{owner}")
}

/// The `DBInstance` object of an instance.
pub fn object_name(instance: InstanceId) -> String {
    format!("dbi-{instance}")
}

/// The Secret holding an instance's credentials.
pub fn secret_name(instance: InstanceId) -> String {
    format!("dbi-{instance}-credentials")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_kubernetes_limits() {
        let owner = UserId::from_random_bytes([1; 16]);
        let id = InstanceId::from_random_bytes([2; 16]);
        for name in [namespace_for(owner), object_name(id), secret_name(id)] {
            assert!(name.len() <= 63, "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{name}"
            );
        }
    }
}
