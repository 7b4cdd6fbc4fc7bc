//! The invariant checker and the schema's own guards catch a corrupted database.

use dbtree_adapters::sql::Violation;

use crate::contract::backends::StoreEnv;
use crate::contract::fixtures::*;

pub(crate) async fn corruption_is_caught(env: &StoreEnv) {
    let s = &env.store;
    let u = user(s, 900).await;
    grant(s, u.id, 10, "t:checker").await;
    created(s, u.id, 900, "checked", tiny_redis()).await;
    let clean = env.invariants().await.unwrap();
    assert!(clean.is_clean(), "{clean}");
    assert_eq!((clean.users, clean.entries, clean.node_ports), (1, 3, 1));

    // the ledger is immutable and a balance cannot go negative, whatever the SQL
    for refused in [
        "UPDATE ledger_entries SET delta = 99",
        "DELETE FROM ledger_entries",
        &format!("UPDATE users SET balance = -1 WHERE id = '{}'", u.id),
    ] {
        let outcome = env.raw(refused).await.unwrap();
        assert!(outcome.is_err(), "the database accepted `{refused}`");
    }

    // a balance changed behind the ledger's back, and a port held for nobody, are reported
    env.raw(&format!(
        "UPDATE users SET balance = balance + 1 WHERE id = '{}'",
        u.id
    ))
    .await
    .unwrap()
    .unwrap();
    let ghost = "00000000-0000-4000-8000-00000000beef";
    env.raw(&format!(
        "INSERT INTO node_ports (port, instance_id) VALUES (31234, '{ghost}')"
    ))
    .await
    .unwrap()
    .unwrap();
    let report = env.invariants().await.unwrap();
    assert!(!report.is_clean());
    assert!(
        report.violations.contains(&Violation::BalanceMismatch {
            user: u.id.to_string(),
            balance: 23,
            ledger_sum: 22
        }),
        "{report}"
    );
    assert!(
        report.violations.contains(&Violation::OrphanNodePort {
            port: 31234,
            instance: ghost.into()
        }),
        "{report}"
    );
    assert_eq!(report.violations.len(), 2, "{report}");
}
