//! NodePorts on SQLite: the lowest free port of the policy, one per instance.

use std::collections::BTreeSet;

use async_trait::async_trait;
use dbtree_core::boundary::{BackendError, NodePortStore, ReservePortError};
use dbtree_core::ids::InstanceId;
use dbtree_core::instance::{NodePort, NodePortPolicy};
use sqlx::SqliteConnection;
use uuid::fmt::Hyphenated;

use super::{SqliteStore, commit, db};

/// A stored port number.
pub(super) fn node_port(n: i64) -> Result<NodePort, BackendError> {
    u16::try_from(n)
        .map(NodePort)
        .map_err(|_| BackendError::new("stored port out of range"))
}

/// Reserves the lowest free port for an instance (write lock held); idempotent.
pub(super) async fn reserve_port(
    conn: &mut SqliteConnection,
    instance: InstanceId,
    policy: &NodePortPolicy,
) -> Result<NodePort, ReservePortError> {
    let held: Option<(i64,)> = sqlx::query_as("SELECT port FROM node_ports WHERE instance_id = ?1")
        .bind(instance.as_uuid().hyphenated())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db("read a NodePort"))?;
    if let Some((port,)) = held {
        return Ok(node_port(port)?);
    }
    let taken: Vec<(i64,)> =
        sqlx::query_as("SELECT port FROM node_ports WHERE port BETWEEN ?1 AND ?2")
            .bind(i64::from(policy.first))
            .bind(i64::from(policy.last))
            .fetch_all(&mut *conn)
            .await
            .map_err(db("read held NodePorts"))?;
    let taken: BTreeSet<u16> = taken
        .into_iter()
        .map(|(p,)| node_port(p).map(NodePort::get))
        .collect::<Result<_, _>>()?;
    let port = policy
        .lowest_free(&taken)
        .map_err(ReservePortError::Exhausted)?;
    sqlx::query("INSERT INTO node_ports (port, instance_id) VALUES (?1, ?2)")
        .bind(i64::from(port.get()))
        .bind(instance.as_uuid().hyphenated())
        .execute(&mut *conn)
        .await
        .map_err(db("reserve a NodePort"))?;
    Ok(port)
}

#[async_trait]
impl NodePortStore for SqliteStore {
    async fn reserve_node_port(
        &self,
        instance: InstanceId,
        policy: &NodePortPolicy,
    ) -> Result<NodePort, ReservePortError> {
        let mut tx = self.begin().await?;
        let port = reserve_port(&mut tx, instance, policy).await?;
        commit(tx).await?;
        Ok(port)
    }

    async fn release_node_port(
        &self,
        instance: InstanceId,
    ) -> Result<Option<NodePort>, BackendError> {
        let row: Option<(i64,)> =
            sqlx::query_as("DELETE FROM node_ports WHERE instance_id = ?1 RETURNING port")
                .bind(instance.as_uuid().hyphenated())
                .fetch_optional(&self.pool)
                .await
                .map_err(db("release a NodePort"))?;
        row.map(|(p,)| node_port(p)).transpose()
    }

    async fn node_ports(&self) -> Result<Vec<(NodePort, InstanceId)>, BackendError> {
        let rows: Vec<(i64, Hyphenated)> =
            sqlx::query_as("SELECT port, instance_id FROM node_ports ORDER BY port")
                .fetch_all(&self.pool)
                .await
                .map_err(db("list NodePorts"))?;
        rows.into_iter()
            .map(|(p, i)| Ok((node_port(p)?, InstanceId::from_uuid(i.into_uuid()))))
            .collect()
    }
}
