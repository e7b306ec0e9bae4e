//! Key material: X25519 key pairs and 32-byte symmetric keys, all zeroized on drop.

use rand_core::CryptoRngCore;
use x25519_dalek::{PublicKey as DalekPublic, StaticSecret};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Length in bytes of every key handled by the ratchet (X25519 keys, root, chain and message keys).
pub const KEY_LEN: usize = 32;

/// An X25519 public key (32 bytes). Public keys are not secret and are `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(pub [u8; KEY_LEN]);

impl PublicKey {
    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Builds a public key from a slice, or `None` when it is not exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; KEY_LEN]>::try_from(bytes).ok().map(Self)
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey(")?;
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// A 32-byte symmetric secret (root key, chain key or message key).
///
/// Zeroized on drop; `Debug` never prints the bytes.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SymmetricKey([u8; KEY_LEN]);

impl SymmetricKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// Builds a key from a slice, or `None` when it is not exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; KEY_LEN]>::try_from(bytes).ok().map(Self)
    }

    /// The raw bytes (for persistence and KDF input only).
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for SymmetricKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SymmetricKey(<redacted>)")
    }
}

/// An X25519 key pair. The secret is stored raw (unclamped, as the reference does) and
/// zeroized on drop; `Debug` prints only the public key.
#[derive(Clone)]
pub struct DhKeyPair {
    secret: StaticSecret,
    public: PublicKey,
}

impl DhKeyPair {
    /// Generates a fresh key pair from the caller's RNG.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        rng.fill_bytes(bytes.as_mut());
        Self::from_secret_bytes(*bytes)
    }

    /// Rebuilds a key pair from its raw 32-byte secret.
    pub fn from_secret_bytes(secret: [u8; KEY_LEN]) -> Self {
        let secret = StaticSecret::from(secret);
        let public = PublicKey(DalekPublic::from(&secret).to_bytes());
        Self { secret, public }
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// The raw secret bytes, for persistence. Zeroized when the returned value drops.
    pub fn secret_bytes(&self) -> Zeroizing<[u8; KEY_LEN]> {
        Zeroizing::new(self.secret.to_bytes())
    }

    /// X25519 Diffie-Hellman with a remote public key.
    pub fn diffie_hellman(&self, remote: &PublicKey) -> Zeroizing<[u8; KEY_LEN]> {
        let shared = self.secret.diffie_hellman(&DalekPublic::from(remote.0));
        Zeroizing::new(shared.to_bytes())
    }
}

impl std::fmt::Debug for DhKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DhKeyPair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl PartialEq for DhKeyPair {
    fn eq(&self, other: &Self) -> bool {
        // Same secret implies same public; compare secrets in constant time is not needed
        // for equality in tests, but avoid leaking via early exit anyway.
        let a = self.secret.to_bytes();
        let b = other.secret.to_bytes();
        let mut diff = 0u8;
        for (x, y) in a.iter().zip(b.iter()) {
            diff |= x ^ y;
        }
        diff == 0
    }
}
impl Eq for DhKeyPair {}
