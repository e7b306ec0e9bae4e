//! IdentityRepo and the intro ephemeral keys: tables `identity` and `intro_keys`.

use diesel::prelude::*;
use domain_chat::Identity;
use domain_ratchet::{DhKeyPair, PublicKey};

use super::schema::{identity, intro_keys};
use super::{Conn, Inst, RowCx, SecretBlob, count, now_millis, public_key};
use crate::error::PersistenceError;

/// A row of `identity`.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = identity, check_for_backend(super::Db))]
pub(crate) struct IdentityRow {
    #[allow(dead_code)]
    pub installation_id: i64,
    pub name: String,
    pub secret_key: SecretBlob,
    #[allow(dead_code)]
    pub created_at: i64,
}

/// A new or replacing row of `identity`.
#[derive(Insertable, AsChangeset)]
#[diesel(table_name = identity, treat_none_as_default_value = false)]
pub(crate) struct NewIdentityRow<'a> {
    pub installation_id: i64,
    pub name: &'a str,
    pub secret_key: &'a [u8],
    pub created_at: i64,
}

impl IdentityRow {
    fn into_domain(self, inst: Inst<'_>) -> Result<Identity, PersistenceError> {
        let secret = inst
            .open_secret("identity.secret_key", &[], self.secret_key)?
            .key_bytes("identity.secret_key")?;
        Ok(Identity {
            name: self.name,
            key_pair: DhKeyPair::from_secret_bytes(*secret),
        })
    }
}

/// Loads the identity of installation `inst`.
pub(crate) fn load(conn: &mut Conn, inst: Inst<'_>) -> Result<Option<Identity>, PersistenceError> {
    identity::table
        .filter(identity::installation_id.eq(inst.id()))
        .select(IdentityRow::as_select())
        .first(conn)
        .optional()?
        .map(|row| row.into_domain(inst))
        .transpose()
}

/// Inserts or replaces the identity of installation `inst` (keeping its original
/// `created_at`).
pub(crate) fn save(
    conn: &mut Conn,
    inst: Inst<'_>,
    value: &Identity,
) -> Result<(), PersistenceError> {
    let secret = value.key_pair.secret_bytes();
    let sealed = inst.seal("identity.secret_key", &[], &secret[..]);
    let row = NewIdentityRow {
        installation_id: inst.id(),
        name: &value.name,
        secret_key: &sealed,
        created_at: now_millis(),
    };
    diesel::insert_into(identity::table)
        .values(&row)
        .on_conflict(identity::installation_id)
        .do_update()
        .set((
            identity::name.eq(row.name),
            identity::secret_key.eq(row.secret_key),
        ))
        .execute(conn)?;
    Ok(())
}

/// A row of `intro_keys`.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = intro_keys, check_for_backend(super::Db))]
pub(crate) struct IntroKeyRow {
    pub public_key: Vec<u8>,
    pub secret_key: SecretBlob,
    #[allow(dead_code)]
    pub created_at: i64,
}

/// A new row of `intro_keys`.
#[derive(Insertable)]
#[diesel(table_name = intro_keys, treat_none_as_default_value = false)]
pub(crate) struct NewIntroKeyRow<'a> {
    pub installation_id: i64,
    pub public_key: &'a [u8],
    pub secret_key: &'a [u8],
    pub created_at: i64,
}

impl IntroKeyRow {
    fn into_domain(self, inst: Inst<'_>) -> Result<DhKeyPair, PersistenceError> {
        let public = public_key(&self.public_key, "intro_keys.public_key")?;
        let secret = inst
            .open_secret(
                "intro_keys.secret_key",
                &[&self.public_key[..]],
                self.secret_key,
            )?
            .key_bytes("intro_keys.secret_key")?;
        let pair = DhKeyPair::from_secret_bytes(*secret);
        if pair.public() != public {
            return Err(PersistenceError::corrupt(
                "intro_keys.secret_key",
                "does not match intro_keys.public_key",
            ));
        }
        Ok(pair)
    }
}

/// Stores an intro ephemeral key pair (replacing one with the same public key).
pub(crate) fn save_intro_key(
    conn: &mut Conn,
    inst: Inst<'_>,
    pair: &DhKeyPair,
) -> Result<(), PersistenceError> {
    let public = pair.public();
    let secret = pair.secret_bytes();
    let sealed = inst.seal(
        "intro_keys.secret_key",
        &[&public.as_bytes()[..]],
        &secret[..],
    );
    let row = NewIntroKeyRow {
        installation_id: inst.id(),
        public_key: public.as_bytes(),
        secret_key: &sealed,
        created_at: now_millis(),
    };
    diesel::insert_into(intro_keys::table)
        .values(&row)
        .on_conflict((intro_keys::installation_id, intro_keys::public_key))
        .do_update()
        .set(intro_keys::secret_key.eq(row.secret_key))
        .execute(conn)?;
    Ok(())
}

/// Loads the intro key pair whose public key is `public`.
pub(crate) fn load_intro_key(
    conn: &mut Conn,
    inst: Inst<'_>,
    public: &PublicKey,
) -> Result<Option<DhKeyPair>, PersistenceError> {
    intro_keys::table
        .find((inst.id(), &public.as_bytes()[..]))
        .select(IntroKeyRow::as_select())
        .first(conn)
        .optional()?
        .map(|row| row.into_domain(inst))
        .transpose()
}

/// Deletes an intro key; whether it existed.
pub(crate) fn delete_intro_key(
    conn: &mut Conn,
    inst: Inst<'_>,
    public: &PublicKey,
) -> Result<bool, PersistenceError> {
    let n = diesel::delete(intro_keys::table.find((inst.id(), &public.as_bytes()[..])))
        .execute(conn)?;
    Ok(n > 0)
}

/// Number of stored intro keys.
pub(crate) fn count_intro_keys(conn: &mut Conn, inst: Inst<'_>) -> Result<usize, PersistenceError> {
    let n: i64 = intro_keys::table
        .filter(intro_keys::installation_id.eq(inst.id()))
        .count()
        .get_result(conn)?;
    Ok(count(n))
}
