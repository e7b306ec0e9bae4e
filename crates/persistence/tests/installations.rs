//! Many installations in one database: each installation's rows are its own (identity, intro
//! keys, conversations, ratchet states, skipped keys, mailbox, history, processed digests),
//! a stale id of one installation touches nothing of another, expiry is per installation, the
//! conformance kits hold for a non-default installation sharing its file with another one full
//! of data, and installation names are checked.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;

use domain_chat::{
    Acknowledged, ConversationStore, Delivered, Direction, EphemeralKeyStore, Identity,
    IdentityStore, MailboxStore, NewHistoryEntry, NewInboxEntry, NewOutboxEntry, Processed,
};
use domain_ratchet::testing::{sample_key, sample_state};
use domain_ratchet::{DhKeyPair, RatchetStore, SkippedKeyDelta, StoreError, Timestamp};
use persistence::{
    DEFAULT_INSTALLATION, Database, DatabaseConfig, MAX_INSTALLATION_NAME_LEN, MigrationMode,
    PersistenceError, validate_installation_name,
};

/// The conversation ids the fixtures use (also those of the domain kits).
const CONVERSATIONS: [&str; 6] = ["c", "a", "b", "c1", "c2", "conv"];

/// Fills the installation `db` was opened for with one row or more in every table, all
/// derived from `seed`: an identity, intro keys, the conversations [`CONVERSATIONS`] with a
/// ratchet state, skipped keys and history each, outbox and inbox entries, and the processed
/// digests `[b; 32]` for every byte `b`.
fn fill(db: &mut Database, seed: u8) {
    db.transaction(|tx| -> Result<(), StoreError> {
        tx.save_identity(&Identity {
            name: format!("owner-{seed}"),
            key_pair: DhKeyPair::from_secret_bytes([seed; 32]),
        })?;
        for i in 0..3u8 {
            tx.save_ephemeral_key(&DhKeyPair::from_secret_bytes([seed ^ (0x40 + i); 32]))?;
        }
        for (i, id) in CONVERSATIONS.iter().enumerate() {
            let i = u8::try_from(i).unwrap();
            tx.save_conversation(&support::record(id, i64::from(seed) * 100 + i64::from(i)))?;
            let delta = SkippedKeyDelta {
                inserted: vec![
                    sample_key(seed, u32::from(i), 1_000),
                    sample_key(seed, u32::from(i) + 100, 5_000),
                ],
                removed: Vec::new(),
                cap: None,
            };
            tx.save_ratchet_state(id, &sample_state(seed.wrapping_add(i), true), &delta)?;
            tx.history_push(&NewHistoryEntry {
                conversation_id: id,
                direction: Direction::Sent,
                content: &[seed, i],
                timestamp: Timestamp::from_millis(i64::from(i)),
            })?;
            tx.outbox_push(&NewOutboxEntry {
                conversation_id: id,
                conversation_hint: "hint",
                delivery_address: "address",
                envelope: &[seed, i],
                created_at: Timestamp::from_millis(1),
            })?;
            tx.inbox_push(&NewInboxEntry {
                conversation_id: id,
                content: &[seed, i],
                sent_at: Timestamp::from_millis(1),
                received_at: Timestamp::from_millis(2),
                is_new_conversation: false,
            })?;
        }
        for b in 0..=255u8 {
            tx.mark_envelope_processed(&[b; 32], Timestamp::from_millis(1_000 + i64::from(b)))?;
        }
        Ok(())
    })
    .unwrap();
}

/// Everything an installation holds, as its store API returns it.
#[derive(Debug, PartialEq)]
struct Contents {
    identity: Option<Identity>,
    intro_keys: usize,
    conversations: Vec<domain_chat::ConversationRecord>,
    states: Vec<Option<domain_ratchet::RatchetState>>,
    skipped: Vec<Vec<domain_ratchet::SkippedKey>>,
    history: Vec<Vec<domain_chat::HistoryEntry>>,
    outbox: Vec<domain_chat::OutboxEntry>,
    inbox: Vec<domain_chat::InboxEntry>,
    processed: Vec<bool>,
}

fn contents(db: &mut Database) -> Contents {
    db.read(|tx| -> Result<Contents, StoreError> {
        Ok(Contents {
            identity: tx.load_identity()?,
            intro_keys: tx.count_ephemeral_keys()?,
            conversations: tx.list_conversations()?,
            states: CONVERSATIONS
                .iter()
                .map(|id| tx.load_ratchet_state(id))
                .collect::<Result<_, _>>()?,
            skipped: CONVERSATIONS
                .iter()
                .map(|id| tx.load_skipped_keys(id))
                .collect::<Result<_, _>>()?,
            history: CONVERSATIONS
                .iter()
                .map(|id| tx.history(id, 100))
                .collect::<Result<_, _>>()?,
            outbox: tx.outbox_pending(1_000)?,
            inbox: tx.inbox_pending(1_000)?,
            processed: (0..=255u8)
                .map(|b| tx.is_envelope_processed(&[b; 32]))
                .collect::<Result<_, _>>()?,
        })
    })
    .unwrap()
}

fn open(path: &Path, installation: &str) -> Database {
    Database::open(support::encrypted(path).with_installation(installation)).unwrap()
}

/// Two installations with the same conversation ids and digests in one encrypted file: each
/// sees only its own rows, and every write, delete, expiry and retention of one leaves the
/// other exactly as it was.
#[test]
fn installations_in_one_file_are_isolated() {
    let (_dir, path) = support::temp_path();
    let mut alice = open(&path, "alice");
    let mut bob = open(&path, "bob");
    assert_eq!(
        contents(&mut alice).identity,
        None,
        "a new installation is empty"
    );
    fill(&mut alice, 1);
    let bob_empty = contents(&mut bob);
    assert_eq!(bob_empty.identity, None);
    assert_eq!(bob_empty.intro_keys, 0);
    assert!(bob_empty.conversations.is_empty());
    assert!(bob_empty.outbox.is_empty() && bob_empty.inbox.is_empty());
    assert!(
        bob_empty.processed.iter().all(|p| !p),
        "digests are per installation"
    );
    assert!(bob_empty.states.iter().all(Option::is_none));
    assert!(bob_empty.skipped.iter().all(Vec::is_empty));
    assert!(bob_empty.history.iter().all(Vec::is_empty));

    // The same conversation ids and digests in the other installation are not conflicts.
    fill(&mut bob, 2);
    let a = contents(&mut alice);
    let b = contents(&mut bob);
    assert_eq!(a.identity.as_ref().unwrap().name, "owner-1");
    assert_eq!(b.identity.as_ref().unwrap().name, "owner-2");
    assert_eq!((a.intro_keys, b.intro_keys), (3, 3));
    assert_eq!(a.conversations.len(), CONVERSATIONS.len());
    assert_eq!(b.conversations.len(), CONVERSATIONS.len());
    assert_ne!(a.states, b.states);
    assert_eq!(a.outbox.len(), CONVERSATIONS.len());
    assert!(a.outbox.iter().all(|e| e.envelope[0] == 1));
    assert!(b.outbox.iter().all(|e| e.envelope[0] == 2));
    assert!(b.inbox.iter().all(|e| e.content[0] == 2));
    assert!(b.history.iter().flatten().all(|e| e.content[0] == 2));
    assert!(a.skipped.iter().flatten().all(|k| k.dh_pub.0 == [1; 32]));
    assert!(b.skipped.iter().flatten().all(|k| k.dh_pub.0 == [2; 32]));
    assert!(a.processed.iter().all(|p| *p) && b.processed.iter().all(|p| *p));
    // Outbox and inbox ids are global: never the same id in two installations.
    for e in &a.outbox {
        assert!(b.outbox.iter().all(|f| f.id != e.id));
    }

    // Stale ids of alice, used by bob, touch nothing; processed digests are recorded anew.
    for e in &a.outbox {
        assert_eq!(
            bob.outbox_mark_delivered(e.id).unwrap(),
            Delivered::NotPending
        );
    }
    for e in &a.inbox {
        assert_eq!(bob.inbox_ack(e.id).unwrap(), Acknowledged::NotPending);
    }
    assert_eq!(contents(&mut alice), a);
    assert_eq!(contents(&mut bob), b);

    // Expiry, retention and deletions in bob leave alice as she was.
    assert_eq!(
        bob.expire_skipped_keys(Timestamp::from_millis(2_000))
            .unwrap(),
        CONVERSATIONS.len()
    );
    assert_eq!(
        bob.forget_processed_envelopes(Timestamp::from_millis(2_000))
            .unwrap(),
        256
    );
    for id in CONVERSATIONS {
        assert!(bob.delete_conversation(id).unwrap());
    }
    let key = DhKeyPair::from_secret_bytes([1 ^ 0x40; 32]).public();
    assert!(
        !bob.delete_ephemeral_key(&key).unwrap(),
        "alice's intro key"
    );
    for e in &b.outbox {
        assert_eq!(bob.outbox_mark_delivered(e.id).unwrap(), Delivered::Removed);
    }
    for e in &b.inbox {
        assert_eq!(bob.inbox_ack(e.id).unwrap(), Acknowledged::Removed);
    }
    assert_eq!(
        bob.mark_envelope_processed(&[7; 32], Timestamp::from_millis(1))
            .unwrap(),
        Processed::Recorded
    );
    assert_eq!(contents(&mut alice), a, "alice untouched by bob's changes");
    let b_after = contents(&mut bob);
    assert!(b_after.conversations.is_empty() && b_after.outbox.is_empty());
    assert_eq!(b_after.identity, b.identity);

    // A fresh connection sees the same split, and the installations are listed.
    drop(alice);
    let mut again = open(&path, "alice");
    assert_eq!(contents(&mut again), a);
    let names: Vec<String> = again
        .installations()
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, [DEFAULT_INSTALLATION, "alice", "bob"]);
    assert_eq!(again.installation(), "alice");
}

/// Opening an installation creates it once; opening it again finds it (no second row), and
/// its creation time is kept.
#[test]
fn opening_creates_the_installation_once() {
    let (_dir, path) = support::temp_path();
    let first = open(&path, "relay-1").installations().unwrap();
    assert_eq!(first.len(), 2);
    assert_eq!(first[1].name, "relay-1");
    let second = open(&path, "relay-1").installations().unwrap();
    assert_eq!(first, second);
    let mut default = Database::open(support::encrypted(&path)).unwrap();
    assert_eq!(default.installation(), DEFAULT_INSTALLATION);
    assert_eq!(default.installations().unwrap(), first);
}

/// Bad names are refused with a typed error before anything is opened or created.
#[test]
fn installation_names_are_validated() {
    let (_dir, path) = support::temp_path();
    let too_long = "x".repeat(MAX_INSTALLATION_NAME_LEN + 1);
    for bad in [
        "",
        "a\nb",
        "tab\there",
        "\u{7f}",
        " lead",
        "trail ",
        too_long.as_str(),
    ] {
        let error = Database::open(support::plain(&path).with_installation(bad)).unwrap_err();
        assert!(
            matches!(error, PersistenceError::InvalidInstallationName { .. }),
            "{bad:?}: {error:?}"
        );
        assert!(!error.to_string().contains('\n'), "{error}");
        assert!(validate_installation_name(bad).is_err());
        assert!(!path.exists(), "{bad:?}: nothing created");
    }
    let longest = "é".repeat(MAX_INSTALLATION_NAME_LEN / 2);
    for good in ["default", "Alice 2", "relay/eu-1", longest.as_str()] {
        validate_installation_name(good).unwrap();
        let mut db = Database::open(support::plain(&path).with_installation(good)).unwrap();
        assert_eq!(db.installation(), good);
        assert!(db.installations().unwrap().iter().any(|i| i.name == good));
    }
}

/// Before the migration that adds installations (migrations skipped), only the default
/// installation opens; migrating then creates a named one.
#[test]
fn a_named_installation_needs_the_migrated_schema() {
    let (_dir, path) = support::temp_path();
    let skip = || support::plain(&path).with_migrations(MigrationMode::Skip);
    drop(Database::open(skip()).unwrap());
    let error = Database::open(skip().with_installation("alice")).unwrap_err();
    assert!(
        matches!(error, PersistenceError::InstallationsNotMigrated { .. }),
        "{error:?}"
    );
    let mut db = Database::open(skip()).unwrap();
    db.migrate().unwrap();
    let mut alice = Database::open(skip().with_installation("alice")).unwrap();
    fill(&mut alice, 3);
    assert_eq!(contents(&mut db).identity, None);
}

/// A file holding installation `default` full of data (see [`fill`]), opened for the
/// installation `tenant`.
fn tenant(dir: &Path, n: usize, encrypted: bool) -> Database {
    let path = dir.join(format!("{n}.db"));
    let config = |name: &str| {
        if encrypted {
            support::encrypted(&path).with_installation(name)
        } else {
            support::plain(&path).with_installation(name)
        }
    };
    fill(
        &mut Database::open(config(DEFAULT_INSTALLATION)).unwrap(),
        9,
    );
    Database::open(config("tenant")).unwrap()
}

fn tenants(encrypted: bool) -> impl FnMut() -> Database {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    move || {
        n += 1;
        tenant(dir.path(), n, encrypted)
    }
}

fn tenant_ratchet_store() -> support::RatchetOnly {
    let dir = tempfile::tempdir().unwrap();
    support::RatchetOnly {
        db: tenant(dir.path(), 0, false),
        _dir: Some(dir),
    }
}

/// The domain kits against installation `tenant` of a file whose default installation holds
/// rows with the kits' own conversation ids and digests.
mod tenant_conformance {
    mod ratchet {
        domain_ratchet::ratchet_store_conformance_tests!(crate::tenant_ratchet_store);
    }
    mod chat {
        domain_chat::chat_store_conformance_tests!(crate::tenants(false));
    }
    mod chat_encrypted {
        domain_chat::chat_store_conformance_tests!(crate::tenants(true));
    }
    mod mailbox {
        domain_chat::mailbox_store_conformance_tests!(crate::tenants(false));
    }
}

/// After the kits' kind of traffic in `tenant`, the default installation is exactly as
/// [`fill`] left it.
#[test]
fn the_other_installation_is_untouched_by_a_kit() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = tenant(dir.path(), 1, false);
    domain_chat::testing::check_outbox(&mut db);
    domain_chat::testing::check_inbox(&mut db);
    domain_chat::testing::check_processed_envelopes(&mut db);
    domain_chat::testing::check_conversation_store(&mut db);
    domain_ratchet::testing::check_expire_by_age(&mut support::RatchetOnly { db, _dir: None });
    let path = dir.path().join("1.db");
    let mut reference = Database::open(DatabaseConfig::in_memory()).unwrap();
    fill(&mut reference, 9);
    let expected = contents(&mut reference);
    let mut default = Database::open(support::plain(&path)).unwrap();
    let found = contents(&mut default);
    // Ids are assigned by each database: compare everything else.
    let strip = |mut c: Contents| {
        c.outbox.iter_mut().for_each(|e| e.id = 0);
        c.inbox.iter_mut().for_each(|e| e.id = 0);
        c.history.iter_mut().flatten().for_each(|e| e.id = 0);
        c
    };
    assert_eq!(strip(found), strip(expected));
}
