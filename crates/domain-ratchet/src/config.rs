//! Named limits and the KDF domain of a ratchet.

use std::time::Duration;

/// Largest gap one message may open in a receiving chain (keys derived and stored as skipped
/// for that one message). Trade-off: a larger gap tolerates more lost or reordered messages, but
/// lets one forged header cost that many KDF steps. vodozemac uses 2,000; libsignal 25,000.
pub const DEFAULT_MAX_GAP: u32 = 2_000;

/// Most skipped keys stored per conversation; beyond it the oldest are evicted first.
/// Trade-off: larger keeps very late messages decryptable, smaller bounds storage per peer.
pub const DEFAULT_MAX_SKIPPED_KEYS: usize = 5_000;

/// Default age after which stored skipped keys are expired by
/// [`crate::expire_skipped_keys`]: 30 days. Trade-off: a message delayed longer than this
/// cannot be decrypted; a shorter age limits how long old message keys stay stored.
pub const DEFAULT_SKIPPED_KEY_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// The reference implementation's gap limit (its `MAX_SKIP`), for compatibility tests.
pub const REFERENCE_MAX_GAP: u32 = 10;

/// Which info string the root KDF uses (PROTOCOL.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KdfDomain {
    /// ASCII `DoubleRatchetRootKey` — what PrivateV1 conversations actually use.
    DoubleRatchet,
    /// ASCII `PrivateV1RootKey` — defined by the reference, unused by its conversations.
    PrivateV1,
}

impl KdfDomain {
    /// The HKDF info string of the domain.
    pub fn info(self) -> &'static [u8] {
        match self {
            KdfDomain::DoubleRatchet => b"DoubleRatchetRootKey",
            KdfDomain::PrivateV1 => b"PrivateV1RootKey",
        }
    }
}

/// Configuration of a ratchet: KDF domain and limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatchetConfig {
    /// Root-KDF domain.
    pub domain: KdfDomain,
    /// Largest gap one message may open (see [`DEFAULT_MAX_GAP`]).
    pub max_gap: u32,
    /// Most skipped keys stored per conversation (see [`DEFAULT_MAX_SKIPPED_KEYS`]).
    pub max_skipped_keys: usize,
}

impl Default for RatchetConfig {
    fn default() -> Self {
        Self {
            domain: KdfDomain::DoubleRatchet,
            max_gap: DEFAULT_MAX_GAP,
            max_skipped_keys: DEFAULT_MAX_SKIPPED_KEYS,
        }
    }
}
