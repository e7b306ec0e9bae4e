//! Repositories: per table a `Row` (read) and a `NewRow<'a>` (write), and the functions that
//! map them to domain records. All queries use Diesel's query DSL.
//!
//! One source, two mounts (docs/postgres-plan.md §1): the repository files (`convo.rs`,
//! `identity.rs`, `mailbox.rs`, `ratchet.rs`) are written once and compiled once per backend.
//! [`sqlite`] mounts them with `#[path]` beside SQLite's `Conn`, `Db`, `schema` and the few
//! statements that differ; `pg` (cargo feature `postgres`) mounts the same files for
//! PostgreSQL. Each mount is monomorphic: the SQLite code is exactly what it was before
//! PostgreSQL existed (same statements, same prepared-statement cache keys).

pub(crate) mod keycache;
#[cfg(feature = "postgres")]
pub(crate) mod pg;
pub(crate) mod sqlite;

pub(crate) use sqlite::{convo, identity, ratchet};

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::sql_types::Binary;
use domain_ratchet::{KEY_LEN, PublicKey};
use zeroize::Zeroizing;

use crate::error::PersistenceError;

/// A secret BLOB column as read: zeroized on drop, never printed.
#[derive(FromSqlRow)]
pub(crate) struct SecretBlob(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for SecretBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBlob(<{} bytes redacted>)", self.0.len())
    }
}

impl<DB> FromSql<Binary, DB> for SecretBlob
where
    DB: Backend,
    Vec<u8>: FromSql<Binary, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        <Vec<u8> as FromSql<Binary, DB>>::from_sql(bytes).map(|v| SecretBlob(Zeroizing::new(v)))
    }
}

impl SecretBlob {
    /// Wraps secret bytes (opened from a sealed cell).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn new(bytes: Zeroizing<Vec<u8>>) -> Self {
        Self(bytes)
    }

    /// The bytes as stored.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// The secret as a 32-byte array, or `Corrupt` naming `location`.
    pub(crate) fn key_bytes(
        &self,
        location: &str,
    ) -> Result<Zeroizing<[u8; KEY_LEN]>, PersistenceError> {
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        if self.0.len() != KEY_LEN {
            return Err(PersistenceError::corrupt(
                location,
                format!("expected {KEY_LEN} bytes, found {}", self.0.len()),
            ));
        }
        out.copy_from_slice(&self.0);
        Ok(out)
    }

    /// The secret as the key type `wrap` builds (a root, chain or message key), or `Corrupt`
    /// naming `location`.
    pub(crate) fn key<K>(
        &self,
        location: &str,
        wrap: impl FnOnce([u8; KEY_LEN]) -> K,
    ) -> Result<K, PersistenceError> {
        let bytes = self.key_bytes(location)?;
        Ok(wrap(*bytes))
    }
}

/// The row context every repository function takes (`inst`): the installation and how its
/// cells are stored. The SQLite mount passes the installation id itself (an `i64`: rows are
/// stored as they are, SQLCipher encrypts the whole file, so sealing is the identity and
/// costs nothing); the PostgreSQL mount passes the installation's row cipher
/// (`crate::crypt::RowCipher`), which seals secret columns and contents (docs/postgres-plan.md
/// §3). `location` is always `table.column`; `key` the row's key columns (besides the
/// installation).
pub(crate) trait RowCx: Copy {
    /// The installation id.
    fn id(self) -> i64;
    /// The value to store for `plain` in the cell `location` of the row keyed by `key`.
    fn seal<'p>(
        self,
        location: &'static str,
        key: &[&[u8]],
        plain: &'p [u8],
    ) -> std::borrow::Cow<'p, [u8]>;
    /// The secret a stored cell holds, or `Undecryptable`.
    fn open_secret(
        self,
        location: &'static str,
        key: &[&[u8]],
        stored: SecretBlob,
    ) -> Result<SecretBlob, PersistenceError>;
    /// The content a stored cell holds, or `Undecryptable`.
    fn open_content(
        self,
        location: &'static str,
        key: &[&[u8]],
        stored: Vec<u8>,
    ) -> Result<Vec<u8>, PersistenceError>;
}

/// SQLite: the installation id; cells stored as they are.
impl RowCx for i64 {
    #[inline(always)]
    fn id(self) -> i64 {
        self
    }
    #[inline(always)]
    fn seal<'p>(
        self,
        _location: &'static str,
        _key: &[&[u8]],
        plain: &'p [u8],
    ) -> std::borrow::Cow<'p, [u8]> {
        std::borrow::Cow::Borrowed(plain)
    }
    #[inline(always)]
    fn open_secret(
        self,
        _location: &'static str,
        _key: &[&[u8]],
        stored: SecretBlob,
    ) -> Result<SecretBlob, PersistenceError> {
        Ok(stored)
    }
    #[inline(always)]
    fn open_content(
        self,
        _location: &'static str,
        _key: &[&[u8]],
        stored: Vec<u8>,
    ) -> Result<Vec<u8>, PersistenceError> {
        Ok(stored)
    }
}

/// A public key from a BLOB, or `Corrupt` naming `location`.
pub(crate) fn public_key(bytes: &[u8], location: &str) -> Result<PublicKey, PersistenceError> {
    PublicKey::from_slice(bytes).ok_or_else(|| {
        PersistenceError::corrupt(
            location,
            format!("expected {KEY_LEN} bytes, found {}", bytes.len()),
        )
    })
}

/// A `u32` counter from a BIGINT, or `Corrupt` naming `location`.
pub(crate) fn counter(value: i64, location: &str) -> Result<u32, PersistenceError> {
    u32::try_from(value).map_err(|_| {
        PersistenceError::corrupt(location, format!("counter {value} is outside 0..=u32::MAX"))
    })
}

/// A count from SQL as `usize`.
pub(crate) fn count(value: i64) -> usize {
    usize::try_from(value).unwrap_or(0)
}

/// The current time, Unix milliseconds, for the `created_at` bookkeeping columns of the
/// identity and the intro keys (protocol times are always passed in by the caller).
pub(crate) fn now_millis() -> i64 {
    domain_ratchet::Timestamp::now().as_millis()
}
