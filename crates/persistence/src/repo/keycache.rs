//! A small memo of X25519 public-key derivations for ratchet key pairs.
//!
//! Loading a ratchet state must rebuild `dh_self` from its stored secret, and the domain's only
//! constructor ([`DhKeyPair::from_secret_bytes`]) recomputes the public key: a scalar
//! multiplication that costs more than the whole SQL round trip of a load. The memo keeps the
//! key pairs of the few most recently loaded or saved states; a hit is used only when the
//! stored secret is byte-for-byte the cached one, so the result is always exactly what
//! `from_secret_bytes` would return, whatever happened to the database in between (rollbacks,
//! other connections). The cached secrets are zeroized when evicted or dropped (`DhKeyPair`
//! zeroizes its secret).

use std::collections::VecDeque;

use domain_ratchet::{DhKeyPair, KEY_LEN, PublicKey};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// How many key pairs are memoized: enough for the conversations a client is actively using,
/// small enough that few secrets linger in memory.
pub(crate) const KEY_CACHE_CAPACITY: usize = 16;

/// Most recently used last.
pub(crate) struct KeyPairCache {
    entries: VecDeque<DhKeyPair>,
    /// How many are kept: [`KEY_CACHE_CAPACITY`], more during a series of batches.
    capacity: usize,
}

impl Default for KeyPairCache {
    fn default() -> Self {
        Self {
            entries: VecDeque::new(),
            capacity: KEY_CACHE_CAPACITY,
        }
    }
}

impl std::fmt::Debug for KeyPairCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPairCache")
            .field("len", &self.entries.len())
            .finish_non_exhaustive()
    }
}

/// Constant-time equality of two secrets.
fn same_secret(a: &[u8; KEY_LEN], b: &[u8; KEY_LEN]) -> bool {
    a.as_slice().ct_eq(b.as_slice()).into()
}

impl KeyPairCache {
    /// The key pair of `secret`, from the memo when present, else derived (and memoized).
    ///
    /// `public` is the public key stored with the secret: the memo is searched by it (a plain
    /// comparison of public bytes) and a hit is still used only when its secret equals
    /// `secret` (compared in constant time). A cached pair whose secret equals `secret` has
    /// the public key derived from it, so a `public` that does not match (a damaged row)
    /// only means a derivation, whose result the caller checks against `public`.
    pub(crate) fn key_pair(
        &mut self,
        secret: &Zeroizing<[u8; KEY_LEN]>,
        public: &PublicKey,
    ) -> DhKeyPair {
        if let Some(index) = self.position(secret, public)
            && let Some(pair) = self.entries.remove(index)
        {
            let out = pair.clone();
            self.entries.push_back(pair);
            return out;
        }
        let pair = DhKeyPair::from_secret_bytes(**secret);
        self.remember(pair.clone());
        pair
    }

    /// Memoizes a key pair that is being saved (so the next load of it is a hit).
    pub(crate) fn remember(&mut self, pair: DhKeyPair) {
        if let Some(index) = self.position(&pair.secret_bytes(), &pair.public()) {
            self.entries.remove(index);
        }
        while self.entries.len() >= self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(pair);
    }

    /// Where the pair of `secret` is memoized: the entries are scanned by public key, and
    /// only a match's secret is copied out and compared.
    fn position(&self, secret: &[u8; KEY_LEN], public: &PublicKey) -> Option<usize> {
        self.entries
            .iter()
            .position(|pair| pair.public() == *public && same_secret(&pair.secret_bytes(), secret))
    }

    /// Keeps at most `capacity` key pairs from now on (at least one), forgetting the least
    /// recently used beyond it at once.
    pub(crate) fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
        while self.entries.len() > self.capacity {
            self.entries.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hit_equals_derivation_and_capacity_is_bounded() {
        let mut cache = KeyPairCache::default();
        for i in 0..(KEY_CACHE_CAPACITY as u8 + 4) {
            let secret = Zeroizing::new([i; KEY_LEN]);
            let public = DhKeyPair::from_secret_bytes([i; KEY_LEN]).public();
            let a = cache.key_pair(&secret, &public);
            let b = cache.key_pair(&secret, &public);
            assert!(a == DhKeyPair::from_secret_bytes([i; KEY_LEN]));
            assert_eq!(a.public(), b.public());
        }
        assert_eq!(cache.entries.len(), KEY_CACHE_CAPACITY);
        cache.set_capacity(40);
        for i in 0..50u8 {
            let public = DhKeyPair::from_secret_bytes([i; KEY_LEN]).public();
            cache.key_pair(&Zeroizing::new([i; KEY_LEN]), &public);
        }
        assert_eq!(cache.entries.len(), 40);
        cache.set_capacity(KEY_CACHE_CAPACITY);
        assert_eq!(cache.entries.len(), KEY_CACHE_CAPACITY);
    }

    #[test]
    fn a_matching_public_key_with_another_secret_is_no_hit() {
        let mut cache = KeyPairCache::default();
        let cached = DhKeyPair::from_secret_bytes([1; KEY_LEN]);
        cache.remember(cached.clone());
        // A damaged row: the public key of the cached pair, another secret.
        let pair = cache.key_pair(&Zeroizing::new([2; KEY_LEN]), &cached.public());
        assert!(pair == DhKeyPair::from_secret_bytes([2; KEY_LEN]));
        assert_ne!(pair.public(), cached.public());
    }
}
