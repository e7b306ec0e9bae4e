//! `receive_batch` on PostgreSQL (feature `postgres`): the same outcomes as on SQLite, each
//! transaction written back once ([`persistence::PgBatchTx`]).
//!
//! The input is cut into the same bounded transactions as on SQLite. Each first locks the
//! ratchet rows of every conversation its envelopes name (one statement, in conversation-id
//! order: batches of different processes never deadlock on them) and reads which of its
//! digests are processed (one statement, after the locks); then runs every envelope with no
//! SQL write (a failing envelope's changes are undone in memory, the others stay), and
//! writes everything back in a few multi-row statements before the commit. The envelopes
//! that came back
//! [`Received::UnknownConversation`] are received once more after all the others (in further
//! bounded transactions), as on SQLite. A transaction that fails on a serialization failure,
//! a deadlock or a conflict at its flush (another process committed the same handshake,
//! digest or intro key first: [`persistence::PersistenceError::BatchConflict`]) runs again as
//! a whole ([`crate::client::pg_retrying`]): its outcomes are those of the run that committed,
//! `Duplicate` for what the other process took.

use domain_chat::MAX_ENVELOPE_LEN;
use domain_chat::StoreError;
use domain_chat::envelope_digest;
use domain_chat::wire::EnvelopeV1;
use persistence::{BatchPlan, PgDatabase, PgTx};
use prost::Message as _;

use super::{BatchError, Context, Faults, ReceiveOutcomes, is_unknown, ranges};
use crate::client::{ClientError, Received, is_conflict, pg_retrying, receive_envelope};

/// What the envelopes `indices` will touch: their conversation hints (those that decode) and
/// their digests.
fn plan<E: AsRef<[u8]>>(envelopes: &[E], indices: &[usize]) -> BatchPlan {
    let mut plan = BatchPlan::default();
    for &i in indices {
        let envelope = envelopes[i].as_ref();
        if envelope.is_empty() {
            continue;
        }
        // An envelope that does not decode fails alone later; it names no conversation.
        let hint = (envelope.len() <= MAX_ENVELOPE_LEN)
            .then(|| EnvelopeV1::decode(envelope).ok())
            .flatten()
            .map(|decoded| decoded.conversation_hint);
        plan.push(envelope_digest(envelope), hint);
    }
    plan
}

/// Receives `indices` of `envelopes` in one write-back transaction (run again as a whole on a
/// conflict); one outcome per index.
fn receive_transaction<E: AsRef<[u8]>>(
    db: &mut PgDatabase,
    context: &Context,
    envelopes: &[E],
    indices: &[usize],
    faults: &mut Faults,
) -> Result<Vec<Result<Received, ClientError>>, ClientError> {
    let now = context.clock.now();
    let checkpoint = faults.checkpoint();
    let plan = plan(envelopes, indices);
    pg_retrying(db, |tx: &mut PgTx<'_>| {
        faults.restore(checkpoint);
        let (mut out, ids) = tx.write_back(&plan, |batch| {
            let mut out = Vec::with_capacity(indices.len());
            for &i in indices {
                let envelope = envelopes[i].as_ref();
                if envelope.is_empty() {
                    out.push(Ok(Received::Empty));
                    continue;
                }
                let digest = envelope_digest(envelope);
                let outcome = batch.item(|batch| {
                    faults.run(batch, |store| {
                        receive_envelope(store, &context.chat, envelope, &digest, now)
                    })
                });
                match outcome {
                    // The server aborted the transaction (a deadlock...): run it again.
                    Err(error) if is_conflict(&error) => return Err(error),
                    // A statement failed (PostgreSQL aborted the transaction) or the item
                    // wrote directly and failed: the transaction fails with its error.
                    Err(error) if !batch.usable() => return Err(error),
                    other => out.push(other),
                }
            }
            Ok(out)
        })?;
        // The inbox ids the flush assigned.
        for outcome in &mut out {
            if let Ok(Received::Content { inbox_id, .. }) = outcome {
                *inbox_id = ids.inbox(*inbox_id);
            }
        }
        Ok(out)
    })
}

/// [`Client::receive`](crate::Client::receive) on PostgreSQL: one envelope as a write-back
/// transaction of its own (the same lock order as a batch: the ratchet row, then the digest).
pub(super) fn receive_one(
    db: &mut PgDatabase,
    context: &Context,
    envelope: &[u8],
    faults: &mut Faults,
) -> Result<Received, ClientError> {
    let mut outcomes = receive_transaction(db, context, &[envelope], &[0], faults)?;
    outcomes.pop().unwrap_or_else(|| {
        Err(ClientError::Store(StoreError::NotFound(
            "an outcome".into(),
        )))
    })
}

/// `receive_batch` on PostgreSQL.
pub(super) fn receive_all<E: AsRef<[u8]>>(
    db: &mut PgDatabase,
    context: &Context,
    envelopes: &[E],
    faults: &mut Faults,
) -> Result<ReceiveOutcomes, BatchError<Result<Received, ClientError>>> {
    let size = |i: usize| envelopes[i].as_ref().len();
    let mut outcomes: ReceiveOutcomes = Vec::with_capacity(envelopes.len());
    for range in ranges((0..envelopes.len()).map(size), context.limits) {
        let indices: Vec<usize> = range.collect();
        match receive_transaction(db, context, envelopes, &indices, faults) {
            Ok(done) => outcomes.extend(done),
            Err(error) => return Err(BatchError::new(outcomes, error)),
        }
    }
    let unknown: Vec<usize> = (0..envelopes.len())
        .filter(|&i| is_unknown(&outcomes[i]))
        .collect();
    for range in ranges(unknown.iter().map(|&i| size(i)), context.limits) {
        let indices = &unknown[range];
        match receive_transaction(db, context, envelopes, indices, faults) {
            Ok(done) => {
                for (&i, outcome) in indices.iter().zip(done) {
                    outcomes[i] = outcome;
                }
            }
            // These envelopes stay UnknownConversation: nothing of them was written.
            Err(error) => return Err(BatchError::new(outcomes, error)),
        }
    }
    Ok(outcomes)
}
