//! The domain store traits (ratchet, chat and mailbox) on [`Tx`] (one transaction) and on
//! [`Database`] (each call its own transaction, reads on the connection directly), generated
//! by [`crate::store_impls::store_impls!`] over the SQLite mount of the repositories.

use domain_ratchet::{StoreError, Transactional};

use crate::database::{Database, Tx};
use crate::error::TxFailure;
use crate::repo::sqlite;
use crate::store_impls::store_impls;

store_impls! {
    transaction: Tx<'_>,
    repo: sqlite,
    row_cx: installation,
}

/// [`Database::transaction`] for the domain: a unit of work is one `BEGIN IMMEDIATE`
/// transaction, handed to `f` as a [`Tx`].
impl Transactional for Database {
    type Tx<'t> = Tx<'t>;

    fn transaction<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        E: From<StoreError>,
        F: FnOnce(&mut Tx<'_>) -> Result<T, E>,
    {
        Database::transaction(self, |tx| f(tx).map_err(TxFailure::Caller))
            .map_err(TxFailure::into_store_caller)
    }
}

/// Runs one store call in its own transaction.
fn in_tx<T>(
    db: &mut Database,
    f: impl FnOnce(&mut Tx<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    db.transaction(f)
}

// Reads (and `expire_skipped_keys`, one `DELETE`) run on the connection directly: SQLite
// runs a lone statement in a transaction of its own; writes take `BEGIN IMMEDIATE`.
store_impls! {
    database: Database,
    in_tx: in_tx,
    direct: repo(sqlite, installation),
}
