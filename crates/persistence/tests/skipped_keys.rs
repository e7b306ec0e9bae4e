//! Skipped keys are written incrementally: a save touches only its delta; cap evicts the
//! oldest; expiry is one delete over the installation's keys.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use domain_chat::{ConversationStore, Direction, MailboxStore, NewHistoryEntry};
use domain_ratchet::Timestamp;
use domain_ratchet::testing::{sample_key, sample_state};
use domain_ratchet::{RatchetStore, SkippedKeyDelta};
use persistence::{Database, DatabaseConfig};
use support::record;

#[derive(QueryableByName, Debug, PartialEq, Eq, Clone)]
struct IdRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    msg_num: i64,
}

/// `(rowid, msg_num)` of every stored key of `c`, in insertion order.
fn rows(db: &mut Database) -> Vec<IdRow> {
    diesel::sql_query(
        "SELECT id, msg_num FROM skipped_keys WHERE installation_id = 1 AND conversation_id = 'c' ORDER BY id",
    )
    .load(db.raw_connection())
    .unwrap()
}

fn db_with_convos() -> Database {
    let mut db = Database::open(DatabaseConfig::in_memory()).unwrap();
    db.save_conversation(&record("c", 1)).unwrap();
    db.save_conversation(&record("d", 2)).unwrap();
    db
}

fn insert(keys: Vec<domain_ratchet::SkippedKey>, cap: Option<usize>) -> SkippedKeyDelta {
    SkippedKeyDelta {
        inserted: keys,
        removed: vec![],
        cap,
    }
}

#[test]
fn save_touches_only_the_delta_rows() {
    let mut db = db_with_convos();
    let state = sample_state(1, true);
    let keys: Vec<_> = (0..100).map(|n| sample_key(1, n, 10)).collect();
    db.save_ratchet_state("c", &state, &insert(keys, None))
        .unwrap();
    let before = rows(&mut db);
    assert_eq!(before.len(), 100);

    // Use key 40, skip a new one.
    let delta = SkippedKeyDelta {
        inserted: vec![sample_key(2, 0, 11)],
        removed: vec![(sample_key(1, 40, 0).dh_pub, 40)],
        cap: Some(5_000),
    };
    db.save_ratchet_state("c", &sample_state(2, true), &delta)
        .unwrap();
    let after = rows(&mut db);
    let mut expected: Vec<IdRow> = before.iter().filter(|r| r.msg_num != 40).cloned().collect();
    // Untouched keys keep their row ids: they were neither rewritten nor re-inserted.
    assert_eq!(&after[..99], &expected[..]);
    assert_eq!(after[99].msg_num, 0);
    assert!(after[99].id > before[99].id);
    expected.clear();

    // An empty delta changes no key row at all.
    db.save_ratchet_state("c", &sample_state(3, false), &SkippedKeyDelta::default())
        .unwrap();
    assert_eq!(rows(&mut db), after);
}

#[test]
fn cap_evicts_oldest_per_conversation_only() {
    let mut db = db_with_convos();
    let state = sample_state(1, true);
    db.save_ratchet_state(
        "d",
        &state,
        &insert((0..10).map(|n| sample_key(9, n, 1)).collect(), None),
    )
    .unwrap();
    db.save_ratchet_state(
        "c",
        &state,
        &insert((0..10).map(|n| sample_key(1, n, 1)).collect(), None),
    )
    .unwrap();
    db.save_ratchet_state(
        "c",
        &state,
        &insert((0..5).map(|n| sample_key(2, n, 2)).collect(), Some(8)),
    )
    .unwrap();
    let left: Vec<i64> = rows(&mut db).iter().map(|r| r.msg_num).collect();
    assert_eq!(left, vec![7, 8, 9, 0, 1, 2, 3, 4]);
    assert_eq!(db.count_skipped_keys("d").unwrap(), 10);
}

#[test]
fn expiry_is_one_indexed_delete_across_conversations() {
    let mut db = db_with_convos();
    let state = sample_state(1, true);
    db.save_ratchet_state(
        "c",
        &state,
        &insert(
            (0..10)
                .map(|n| sample_key(1, n, i64::from(n) * 100))
                .collect(),
            None,
        ),
    )
    .unwrap();
    db.save_ratchet_state(
        "d",
        &state,
        &insert(
            (0..10)
                .map(|n| sample_key(2, n, i64::from(n) * 100))
                .collect(),
            None,
        ),
    )
    .unwrap();
    assert_eq!(
        db.expire_skipped_keys(Timestamp::from_millis(450)).unwrap(),
        10
    );
    assert_eq!(db.count_skipped_keys("c").unwrap(), 5);
    assert_eq!(db.count_skipped_keys("d").unwrap(), 5);
    assert!(
        db.load_skipped_keys("c")
            .unwrap()
            .iter()
            .all(|k| k.stored_at >= Timestamp::from_millis(450))
    );

    #[derive(QueryableByName)]
    struct Plan {
        #[diesel(sql_type = Text)]
        detail: String,
    }
    let plan: Vec<Plan> =
        // The repository's statement: expiry is per installation (the default one is id 1).
        diesel::sql_query(
            "EXPLAIN QUERY PLAN DELETE FROM skipped_keys \
             WHERE installation_id = 1 AND stored_at < 450",
        )
            .load(db.raw_connection())
            .unwrap();
    // No stored_at index since migration `2026-11-30-000003_cluster_skipped_keys`: expiry
    // reads the installation's keys through the first column of the primary key, never the
    // whole table (other installations' keys are not read).
    assert!(
        plan.iter()
            .any(|p| p.detail == "SEARCH skipped_keys USING PRIMARY KEY (installation_id=?)"),
        "expiry does not search the installation's keys by the primary key: {:?}",
        plan.iter().map(|p| &p.detail).collect::<Vec<_>>()
    );
}

#[test]
fn deleting_the_conversation_cascades() {
    let mut db = db_with_convos();
    db.save_ratchet_state(
        "c",
        &sample_state(1, true),
        &insert(vec![sample_key(1, 1, 1)], None),
    )
    .unwrap();
    db.history_push(&NewHistoryEntry {
        conversation_id: "c",
        direction: Direction::Sent,
        content: b"x",
        timestamp: Timestamp::from_millis(1),
    })
    .unwrap();
    assert!(db.delete_conversation("c").unwrap());
    assert!(!db.ratchet_state_exists("c").unwrap());
    assert_eq!(db.count_skipped_keys("c").unwrap(), 0);
    assert!(db.history("c", 10).unwrap().is_empty());
    assert!(rows(&mut db).is_empty());
}

#[test]
fn cap_is_exact_after_expiry_left_the_bound_high() {
    let mut db = db_with_convos();
    let state = sample_state(1, true);
    let old: Vec<_> = (0..10).map(|n| sample_key(1, n, i64::from(n))).collect();
    db.save_ratchet_state("c", &state, &insert(old, Some(100)))
        .unwrap();
    assert_eq!(
        db.expire_skipped_keys(Timestamp::from_millis(5)).unwrap(),
        5
    );
    // 5 stored, bound still 10: 3 more with cap 8 must evict nothing.
    let more: Vec<_> = (0..3).map(|n| sample_key(2, n, 50)).collect();
    db.save_ratchet_state("c", &state, &insert(more, Some(8)))
        .unwrap();
    assert_eq!(db.count_skipped_keys("c").unwrap(), 8);
    // One more with cap 8 evicts exactly the oldest one.
    db.save_ratchet_state("c", &state, &insert(vec![sample_key(3, 0, 60)], Some(8)))
        .unwrap();
    let left: Vec<i64> = rows(&mut db).iter().map(|r| r.msg_num).collect();
    assert_eq!(left, vec![6, 7, 8, 9, 0, 1, 2, 0]);
    // Removing keys keeps the cap exact too.
    let delta = SkippedKeyDelta {
        inserted: vec![sample_key(4, 0, 70), sample_key(4, 1, 70)],
        removed: vec![
            (sample_key(1, 6, 0).dh_pub, 6),
            (sample_key(9, 9, 0).dh_pub, 9),
        ],
        cap: Some(8),
    };
    db.save_ratchet_state("c", &state, &delta).unwrap();
    let left: Vec<i64> = rows(&mut db).iter().map(|r| r.msg_num).collect();
    assert_eq!(left, vec![8, 9, 0, 1, 2, 0, 0, 1]);
}

/// Every query on `skipped_keys` searches an index by the conversation (or by age): none scans
/// the table, although `idx_skipped_keys_conversation_order` is gone (migration
/// `2026-11-29-220000_drop_skipped_keys_conversation_order`). Ordering by id (eviction, loading
/// all of a conversation's keys) sorts that conversation's keys only.
#[test]
fn every_skipped_key_query_searches_an_index() {
    #[derive(QueryableByName)]
    struct Plan {
        #[diesel(sql_type = Text)]
        detail: String,
    }
    let mut db = db_with_convos();
    let queries = [
        // Lookup and use of one key (load_skipped, apply_delta's delete).
        "SELECT public_key, msg_num, message_key, stored_at FROM skipped_keys \
         WHERE installation_id = 1 AND conversation_id = 'c' AND public_key = x'00' AND msg_num = 1 LIMIT 1",
        "DELETE FROM skipped_keys WHERE installation_id = 1 AND conversation_id = 'c' AND public_key = x'00' AND msg_num = 1",
        // Count, eviction beyond the cap, all keys of a conversation, deletion of the state.
        "SELECT COUNT(*) FROM skipped_keys WHERE installation_id = 1 AND conversation_id = 'c'",
        "SELECT id FROM skipped_keys WHERE installation_id = 1 AND conversation_id = 'c' ORDER BY id ASC LIMIT 1 OFFSET 3",
        "DELETE FROM skipped_keys WHERE installation_id = 1 AND conversation_id = 'c' AND id <= 7",
        "SELECT public_key, msg_num, message_key, stored_at FROM skipped_keys \
         WHERE installation_id = 1 AND conversation_id = 'c' ORDER BY id ASC",
        "DELETE FROM skipped_keys WHERE installation_id = 1 AND conversation_id = 'c'",
        // Expiry.
        "DELETE FROM skipped_keys WHERE installation_id = 1 AND stored_at < 450",
    ];
    for query in queries {
        let plan: Vec<String> = diesel::sql_query(format!("EXPLAIN QUERY PLAN {query}"))
            .load::<Plan>(db.raw_connection())
            .unwrap()
            .into_iter()
            .map(|p| p.detail)
            .collect();
        assert!(
            plan.iter()
                .any(|d| d.starts_with("SEARCH skipped_keys USING")),
            "{query}: {plan:?}"
        );
        assert!(
            !plan.iter().any(|d| d.starts_with("SCAN")),
            "{query}: {plan:?}"
        );
    }
}
