//! `receive_batch` on PostgreSQL (feature `postgres`): the same outcomes as on SQLite, each
//! envelope inside its own SQL savepoint.
//!
//! The input is cut into the same bounded transactions as on SQLite; each runs every
//! envelope in a savepoint (`SAVEPOINT` / `RELEASE` or `ROLLBACK TO`: two statements per
//! envelope more than [`Client::receive`](crate::Client::receive)), so that a bad envelope
//! rolls back alone. The envelopes that came back
//! [`Received::UnknownConversation`] are received once more after all the others (in further
//! bounded transactions), as on SQLite. A transaction that fails on a serialization failure
//! or a deadlock runs again as a whole ([`crate::client::pg_retrying`]): its outcomes are
//! those of the run that committed.

use persistence::{PgDatabase, PgTx};

use super::{BatchError, Context, Faults, ReceiveOutcomes, is_unknown, ranges};
use crate::client::{
    ClientError, Received, envelope_digest, is_conflict, pg_retrying, receive_envelope,
};

/// Receives `indices` of `envelopes` in one transaction (run again as a whole on a
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
    pg_retrying(db, |tx: &mut PgTx<'_>| {
        faults.restore(checkpoint);
        let mut out = Vec::with_capacity(indices.len());
        for &i in indices {
            let envelope = envelopes[i].as_ref();
            if envelope.is_empty() {
                out.push(Ok(Received::Empty));
                continue;
            }
            let digest = envelope_digest(envelope);
            let outcome = tx.savepoint(|tx| {
                faults.run(tx, |store| {
                    receive_envelope(store, &context.chat, envelope, &digest, now)
                })
            });
            match outcome {
                // The server aborted the transaction (its locks may be gone): run it again.
                Err(error) if is_conflict(&error) => return Err(error),
                other => out.push(other),
            }
        }
        Ok(out)
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
