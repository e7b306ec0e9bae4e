//! `BatchTx` (a batch transaction with cached ratchet states) obeys the store contracts: the
//! ratchet, chat and mailbox conformance checks pass on it, directly and inside savepoints; a
//! savepoint that rolls back restores the database and the cached states; what the batch
//! cached is what it commits.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use domain_chat::{ConversationStore, IdentityStore};
use domain_ratchet::testing::{sample_key, sample_state};
use domain_ratchet::{
    PublicKey, RatchetState, RatchetStore, SkippedKey, SkippedKeyDelta, StoreError, Timestamp,
};
use persistence::{BatchTx, Database, DatabaseConfig, PersistenceError};
use support::record;

/// A [`BatchTx`] seen as a bare ratchet store: a save first creates the conversation row the
/// foreign key needs (as `support::RatchetOnlyTx` does for a `Tx`).
struct RatchetOnlyBatch<'a, 'b>(&'a mut BatchTx<'b>);

impl RatchetStore for RatchetOnlyBatch<'_, '_> {
    fn load_ratchet_state(&mut self, id: &str) -> Result<Option<RatchetState>, StoreError> {
        self.0.load_ratchet_state(id)
    }

    fn save_ratchet_state(
        &mut self,
        id: &str,
        state: &RatchetState,
        delta: &SkippedKeyDelta,
    ) -> Result<(), StoreError> {
        if self.0.load_conversation(id)?.is_none() {
            self.0.save_conversation(&record(id, 0))?;
        }
        self.0.save_ratchet_state(id, state, delta)
    }

    fn delete_ratchet_state(&mut self, id: &str) -> Result<bool, StoreError> {
        self.0.delete_ratchet_state(id)
    }

    fn ratchet_state_exists(&mut self, id: &str) -> Result<bool, StoreError> {
        self.0.ratchet_state_exists(id)
    }

    fn load_skipped_key(
        &mut self,
        id: &str,
        dh_pub: &PublicKey,
        msg_num: u32,
    ) -> Result<Option<SkippedKey>, StoreError> {
        self.0.load_skipped_key(id, dh_pub, msg_num)
    }

    fn load_skipped_keys(&mut self, id: &str) -> Result<Vec<SkippedKey>, StoreError> {
        self.0.load_skipped_keys(id)
    }

    fn count_skipped_keys(&mut self, id: &str) -> Result<usize, StoreError> {
        self.0.count_skipped_keys(id)
    }

    fn expire_skipped_keys(&mut self, older_than: Timestamp) -> Result<usize, StoreError> {
        self.0.expire_skipped_keys(older_than)
    }
}

type RatchetCheck = fn(&mut RatchetOnlyBatch<'_, '_>);
type BatchCheck = fn(&mut BatchTx<'_>);

/// Every check of the ratchet kit (as `run_all` lists them).
fn ratchet_checks() -> Vec<(&'static str, RatchetCheck)> {
    use domain_ratchet::testing::*;
    vec![
        ("absent_is_none", |s| check_absent_is_none(s)),
        ("state_round_trip", |s| check_state_round_trip(s)),
        ("exists", |s| check_exists(s)),
        ("delta_insert_remove", |s| check_delta_insert_remove(s)),
        ("reinsert_replaces", |s| check_reinsert_replaces(s)),
        ("cap_evicts_oldest", |s| check_cap_evicts_oldest(s)),
        ("count", |s| check_count(s)),
        ("expire_by_age", |s| check_expire_by_age(s)),
        ("delete_removes_skipped_keys", |s| {
            check_delete_removes_skipped_keys(s)
        }),
        ("save_touches_only_delta", |s| {
            check_save_touches_only_delta(s)
        }),
        ("conversations_isolated", |s| {
            check_conversations_isolated(s)
        }),
        ("end_to_end_out_of_order", |s| {
            check_end_to_end_out_of_order(s)
        }),
        ("rollback_on_failed_save", |s| {
            check_rollback_on_failed_save(s)
        }),
    ]
}

fn memory() -> Database {
    Database::open(DatabaseConfig::in_memory()).unwrap()
}

#[test]
fn ratchet_kit_in_a_batch() {
    for (name, check) in ratchet_checks() {
        let mut db = memory();
        db.batch(|batch| -> Result<(), PersistenceError> {
            check(&mut RatchetOnlyBatch(batch));
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// The same inside a savepoint (the caches then record how to undo every change).
#[test]
fn ratchet_kit_in_a_savepoint_of_a_batch() {
    for (name, check) in ratchet_checks() {
        let mut db = memory();
        db.batch(|batch| -> Result<(), PersistenceError> {
            batch.savepoint(|batch| -> Result<(), PersistenceError> {
                check(&mut RatchetOnlyBatch(batch));
                Ok(())
            })?
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// The same inside an item without a savepoint (saves are then not atomic one by one).
#[test]
fn ratchet_kit_in_an_item_of_a_batch() {
    for (name, check) in ratchet_checks() {
        let mut db = memory();
        db.batch(|batch| -> Result<(), PersistenceError> {
            let item = batch.item(|batch| -> Result<(), PersistenceError> {
                check(&mut RatchetOnlyBatch(batch));
                Ok(())
            });
            assert!(matches!(item, Ok(Ok(()))), "{name}");
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn chat_and_mailbox_kits_in_a_batch() {
    use domain_chat::testing::*;
    let mut db = memory();
    db.batch(|batch| -> Result<(), PersistenceError> {
        check_identity_store(batch);
        Ok(())
    })
    .unwrap();
    let single: [(&str, BatchCheck); 6] = [
        ("ephemeral_key_store", |b| check_ephemeral_key_store(b)),
        ("conversation_store", |b| check_conversation_store(b)),
        ("outbox", |b| check_outbox(b)),
        ("inbox", |b| check_inbox(b)),
        ("history", |b| check_history(b)),
        ("processed_envelopes", |b| check_processed_envelopes(b)),
    ];
    for (name, check) in single {
        let mut db = memory();
        db.batch(|batch| -> Result<(), PersistenceError> {
            check(batch);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// One item of a batch in a savepoint, its result flattened.
fn item<T>(
    batch: &mut BatchTx<'_>,
    f: impl FnOnce(&mut BatchTx<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    batch.savepoint(f).map_err(StoreError::from)?
}

fn key_ids(keys: &[SkippedKey]) -> Vec<(PublicKey, u32)> {
    keys.iter().map(|k| (k.dh_pub, k.msg_num)).collect()
}

/// A savepoint that rolls back restores the rows and the cached state (a later load sees the
/// state before it, the commit writes that one); a nested savepoint rolls back alone; a
/// deleted conversation comes back with its state.
#[test]
fn a_rolled_back_savepoint_restores_rows_and_cached_states() {
    let (_dir, path) = support::temp_path();
    let mut db = Database::open(support::plain(&path)).unwrap();
    db.transaction(|tx| -> Result<(), StoreError> {
        tx.save_conversation(&record("c", 0))?;
        tx.save_conversation(&record("d", 0))?;
        tx.save_ratchet_state("d", &sample_state(9, true), &SkippedKeyDelta::default())
    })
    .unwrap();
    let v1 = sample_state(1, true);
    let v2 = sample_state(2, false);
    let k1 = sample_key(1, 0, 10);
    let k2 = sample_key(1, 1, 20);
    let insert = |keys: &[SkippedKey]| SkippedKeyDelta {
        inserted: keys.to_vec(),
        ..SkippedKeyDelta::default()
    };
    db.batch(|batch| -> Result<(), StoreError> {
        item(batch, |b| {
            b.save_ratchet_state("c", &v1, &insert(std::slice::from_ref(&k1)))
        })?;
        let failed: Result<(), StoreError> = item(batch, |b| {
            b.save_ratchet_state("c", &v2, &insert(std::slice::from_ref(&k2)))?;
            assert!(b.load_ratchet_state("c")? == Some(v2.clone()));
            assert!(b.delete_conversation("d")?);
            assert!(b.load_ratchet_state("d")?.is_none());
            Err(StoreError::NotFound("the rest of the item".into()))
        });
        assert!(failed.is_err());
        assert!(
            batch.load_ratchet_state("c")? == Some(v1.clone()),
            "cached state not restored"
        );
        assert_eq!(
            key_ids(&batch.load_skipped_keys("c")?),
            key_ids(std::slice::from_ref(&k1))
        );
        assert!(
            batch.load_conversation("d")?.is_some(),
            "deleted conversation not restored"
        );
        assert!(batch.load_ratchet_state("d")? == Some(sample_state(9, true)));
        // Nested: the inner rolls back, the outer keeps its own change.
        item(batch, |outer| -> Result<(), StoreError> {
            outer.save_ratchet_state("c", &v2, &SkippedKeyDelta::default())?;
            let inner: Result<(), StoreError> = item(outer, |inner| {
                inner.save_ratchet_state("c", &v1, &insert(std::slice::from_ref(&k2)))?;
                Err(StoreError::NotFound("inner".into()))
            });
            assert!(inner.is_err());
            assert!(outer.load_ratchet_state("c")? == Some(v2.clone()));
            Ok(())
        })?;
        assert_eq!(batch.count_skipped_keys("c")?, 1);
        Ok(())
    })
    .unwrap();
    drop(db);
    // What was committed is what the batch ended with.
    let mut db = Database::open(support::plain(&path)).unwrap();
    assert!(db.load_ratchet_state("c").unwrap() == Some(v2));
    assert_eq!(key_ids(&db.load_skipped_keys("c").unwrap()), key_ids(&[k1]));
    assert!(db.load_ratchet_state("d").unwrap() == Some(sample_state(9, true)));
}

/// An error from the closure rolls the whole batch back, items committed into it included.
#[test]
fn a_failing_batch_writes_nothing() {
    let mut db = memory();
    db.transaction(|tx| tx.save_conversation(&record("c", 0)))
        .unwrap();
    let result: Result<(), StoreError> = db.batch(|batch| {
        item(batch, |b| {
            b.save_ratchet_state("c", &sample_state(1, true), &SkippedKeyDelta::default())
        })?;
        item(batch, |b| {
            b.save_identity(&domain_chat::create_identity("x", &mut rand::rngs::OsRng))
        })?;
        Err(StoreError::NotFound("abandon".into()))
    });
    assert!(result.is_err());
    assert!(db.load_ratchet_state("c").unwrap().is_none());
    assert!(db.load_identity().unwrap().is_none());
}

/// A state saved for a conversation that does not exist is refused at the save, as a lone
/// save refuses it (not at the end of the batch).
#[test]
fn a_state_without_its_conversation_is_refused_at_the_save() {
    let mut db = memory();
    db.batch(|batch| -> Result<(), PersistenceError> {
        let error = batch
            .save_ratchet_state(
                "nobody",
                &sample_state(1, true),
                &SkippedKeyDelta::default(),
            )
            .unwrap_err();
        assert!(matches!(error, StoreError::NotFound(_)), "{error:?}");
        Ok(())
    })
    .unwrap();
}

/// `BatchTx::item` (no savepoint): a success is kept; a failure before any write is the
/// item's error and the batch goes on; a failure after a write abandons the batch, which then
/// does not commit even when its closure returns `Ok`.
#[test]
fn items_without_savepoints_report_failures_after_writes() {
    let (_dir, path) = support::temp_path();
    let mut db = Database::open(support::plain(&path)).unwrap();
    db.transaction(|tx| tx.save_conversation(&record("c", 0)))
        .unwrap();
    let v1 = sample_state(1, true);
    db.batch(|batch| -> Result<(), PersistenceError> {
        let kept = batch.item(|b| b.save_ratchet_state("c", &v1, &SkippedKeyDelta::default()));
        assert!(matches!(kept, Ok(Ok(()))));
        let refused = batch.item(|b| -> Result<(), StoreError> {
            assert!(b.load_ratchet_state("c")?.is_some());
            Err(StoreError::NotFound("refused before writing".into()))
        });
        assert!(matches!(refused, Ok(Err(StoreError::NotFound(_)))));
        Ok(())
    })
    .unwrap();
    assert!(db.load_ratchet_state("c").unwrap() == Some(v1.clone()));

    let result = db.batch(|batch| -> Result<(), PersistenceError> {
        let failed = batch.item(|b| -> Result<(), StoreError> {
            b.save_ratchet_state("c", &sample_state(2, true), &SkippedKeyDelta::default())?;
            Err(StoreError::NotFound("failed after writing".into()))
        });
        assert!(matches!(
            failed,
            Err(persistence::UndoNeeded(StoreError::NotFound(_)))
        ));
        // Even though the closure carries on and returns Ok, the batch does not commit.
        Ok(())
    });
    assert!(result.is_err(), "an abandoned batch committed");
    assert!(db.load_ratchet_state("c").unwrap() == Some(v1));
}

/// `batch_series`: several batches leave their pages in the WAL (no checkpoint between
/// them), and at the end the WAL is checkpointed and truncated and the automatic checkpoint
/// threshold is back.
#[test]
fn a_batch_series_checkpoints_once_at_the_end() {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        wal_autocheckpoint: i64,
    }
    let (_dir, path) = support::temp_path();
    let wal = std::path::PathBuf::from(format!("{}-wal", path.display()));
    let mut db = Database::open(support::plain(&path)).unwrap();
    db.transaction(|tx| tx.save_conversation(&record("c", 0)))
        .unwrap();
    let wal_during = db.batch_series(|db| {
        let threshold = diesel::sql_query("PRAGMA wal_autocheckpoint")
            .get_result::<N>(db.raw_connection())
            .unwrap()
            .wal_autocheckpoint;
        assert_eq!(threshold, 10_000);
        for n in 0..5u8 {
            db.batch(|batch| -> Result<(), StoreError> {
                let keys: Vec<SkippedKey> = (0..400).map(|m| sample_key(n, m, 1)).collect();
                batch.save_ratchet_state(
                    "c",
                    &sample_state(n, true),
                    &SkippedKeyDelta {
                        inserted: keys,
                        ..SkippedKeyDelta::default()
                    },
                )
            })
            .unwrap();
        }
        std::fs::metadata(&wal).unwrap().len()
    });
    assert!(wal_during > 0, "the batches left their pages in the WAL");
    assert_eq!(
        std::fs::metadata(&wal).unwrap().len(),
        0,
        "the WAL is truncated"
    );
    let threshold = diesel::sql_query("PRAGMA wal_autocheckpoint")
        .get_result::<N>(db.raw_connection())
        .unwrap()
        .wal_autocheckpoint;
    assert_eq!(threshold, 1_000, "the automatic checkpoint is restored");
    assert_eq!(db.count_skipped_keys("c").unwrap(), 2_000);
    // In memory: just runs.
    let mut memory = memory();
    assert_eq!(memory.batch_series(|_| 7), 7);
}

/// Inside a series, a batch starts from what the last committed batch knew only while nothing
/// else changed the database: a commit by another connection, a write by this connection
/// outside the batches, or a batch that rolled back make the next batch read again.
#[test]
fn a_batch_series_rereads_what_changed_between_its_batches() {
    let (_dir, path) = support::temp_path();
    let mut db = Database::open(support::plain(&path)).unwrap();
    db.transaction(|tx| -> Result<(), StoreError> {
        tx.save_conversation(&record("c", 0))?;
        tx.save_conversation(&record("d", 0))?;
        tx.save_ratchet_state("c", &sample_state(1, true), &SkippedKeyDelta::default())
    })
    .unwrap();
    let state = |n: u8| Some(sample_state(n, n % 2 == 1));
    let save = |db: &mut Database, n: u8| {
        db.batch(|batch| -> Result<(), StoreError> {
            batch.save_ratchet_state("c", &sample_state(n, n % 2 == 1), &Default::default())
        })
        .unwrap();
    };
    let load = |db: &mut Database| {
        db.batch(|batch| -> Result<_, StoreError> {
            Ok((
                batch.load_ratchet_state("c")?,
                batch.load_conversation("d")?.is_some(),
            ))
        })
        .unwrap()
    };
    db.batch_series(|db| {
        save(db, 2);
        assert!(load(db) == (state(2), true), "the series' own state");
        // Another connection commits: a new state, a deleted conversation.
        let mut other = Database::open(support::plain(&path)).unwrap();
        other
            .transaction(|tx| -> Result<(), StoreError> {
                tx.save_ratchet_state("c", &sample_state(3, true), &SkippedKeyDelta::default())?;
                tx.delete_conversation("d").map(|_| ())
            })
            .unwrap();
        drop(other);
        assert!(load(db) == (state(3), false), "another connection's commit");
        // This connection writes outside the batches.
        db.transaction(|tx| {
            tx.save_ratchet_state("c", &sample_state(4, false), &SkippedKeyDelta::default())
        })
        .unwrap();
        assert!(
            load(db) == (state(4), false),
            "a transaction of this connection"
        );
        // A batch that rolls back hands nothing on.
        let failed: Result<(), StoreError> = db.batch(|batch| {
            batch.save_ratchet_state("c", &sample_state(5, true), &SkippedKeyDelta::default())?;
            Err(StoreError::NotFound("the rest of the batch".into()))
        });
        assert!(failed.is_err());
        assert!(load(db) == (state(4), false), "a rolled-back batch");
    });
    assert!(db.load_ratchet_state("c").unwrap() == state(4));
}
