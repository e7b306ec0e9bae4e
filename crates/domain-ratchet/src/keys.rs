//! X25519 key material: public keys, key pairs (the secret zeroized on drop) and the
//! Diffie-Hellman function. The symmetric keys are in `symmetric.rs`.

use curve25519_dalek::montgomery::MontgomeryPoint;
use curve25519_dalek::scalar::{Scalar, clamp_integer};
use rand_core::CryptoRngCore;
use subtle::{Choice, ConstantTimeEq};
use x25519_dalek::{PublicKey as DalekPublic, StaticSecret};
use zeroize::Zeroizing;

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

    /// X25519 Diffie-Hellman with a remote public key (RFC 7748 `X25519(secret, remote)`).
    pub fn diffie_hellman(&self, remote: &PublicKey) -> Zeroizing<[u8; KEY_LEN]> {
        x25519(self.secret.as_bytes(), remote.as_bytes())
    }
}

impl std::fmt::Debug for DhKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DhKeyPair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl ConstantTimeEq for DhKeyPair {
    /// Compares the secrets (the same secret implies the same public key).
    fn ct_eq(&self, other: &Self) -> Choice {
        self.secret.as_bytes().ct_eq(other.secret.as_bytes())
    }
}

/// Constant time ([`ConstantTimeEq`] on the secrets).
impl PartialEq for DhKeyPair {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for DhKeyPair {}

/// RFC 7748 `X25519(k, u)`, the same function as `x25519_dalek::x25519`, computed faster.
///
/// The Montgomery ladder works on one field element at a time. When `u` is the coordinate of
/// a point on Curve25519 itself (every honest public key is), the point `P` is mapped to its
/// Edwards form and multiplied there, where curve25519-dalek uses its AVX2 backend when the
/// CPU has one; the result is mapped back to its Montgomery `u`. Both maps are exact group
/// isomorphisms (the sign of the lifted point does not matter: `u(-Q) = u(Q)`).
///
/// The scalar is clamped exactly as X25519 clamps it: `k = 8·k'` with `2^251 <= k' < 2^252`,
/// below the group order `ℓ`. The product is computed as `[k']([8]P)`, which is `[k]P` exactly:
/// `[8]P` lies in the prime-order subgroup whatever torsion component `P` carries, so `k'` as a
/// canonical [`Scalar`] (owned here, and wiped) loses nothing. The output is therefore
/// bit-for-bit the ladder's, for small-order, torsion-carrying and non-canonical inputs too
/// (tests below). Inputs on the quadratic twist (and `u = -1`) have no Edwards form and go
/// through the ladder. Which path runs depends only on the public `u`; both are constant-time
/// in the secret.
///
/// Every secret intermediate held here — the clamped scalar bytes, `k'`, the product point and
/// its Montgomery form — is zeroized when it drops. Copies curve25519-dalek makes inside its
/// own stack frames (by-value arguments, the scalar's radix-16 digits) are beyond reach, as
/// they are for `x25519_dalek` itself.
///
/// This relies on curve25519-dalek's exact behaviour (Edwards and Montgomery maps, AVX2
/// dispatch): the workspace pins its version (`Cargo.toml`), and the equivalence tests below
/// compare with `x25519_dalek::x25519` on every kind of input.
///
/// Measured in the `primitives` group of `benches/ratchet.rs`, which times this function
/// (`x25519_dh`) and the ladder (`x25519_ladder`) in the same run, on the development machine
/// (AMD EPYC, AVX2): 58 µs against 80 µs, and 63 µs against 78 µs in another run.
pub(crate) fn x25519(secret: &[u8; KEY_LEN], remote: &[u8; KEY_LEN]) -> Zeroizing<[u8; KEY_LEN]> {
    let point = MontgomeryPoint(*remote);
    let clamped = Zeroizing::new(clamp_integer(*secret));
    match point.to_edwards(0) {
        Some(edwards) => {
            let k_over_8 = Zeroizing::new(Scalar::from_bytes_mod_order(*shift_right_3(&clamped)));
            // By reference: `Scalar` is `Copy`, and `*k * p` would copy it out of its wiper.
            let torsion_free = edwards.mul_by_cofactor();
            let product = Zeroizing::new(std::ops::Mul::mul(&*k_over_8, &torsion_free));
            let montgomery = Zeroizing::new(product.to_montgomery());
            Zeroizing::new(montgomery.to_bytes())
        }
        None => {
            let product = Zeroizing::new(point.mul_clamped(*clamped));
            Zeroizing::new(product.to_bytes())
        }
    }
}

/// `bytes >> 3` as a 256-bit little-endian integer (exact for a clamped scalar, whose three
/// low bits are zero), in a buffer wiped when it drops.
fn shift_right_3(bytes: &[u8; KEY_LEN]) -> Zeroizing<[u8; KEY_LEN]> {
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    let next = bytes.iter().skip(1).chain(std::iter::once(&0u8));
    for ((o, &b), &n) in out.iter_mut().zip(bytes.iter()).zip(next) {
        *o = (b >> 3) | (n << 5);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{RngCore, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    fn h(s: &str) -> [u8; KEY_LEN] {
        let mut out = [0u8; KEY_LEN];
        hex::decode_to_slice(s, &mut out).unwrap();
        out
    }

    fn ladder(k: &[u8; KEY_LEN], u: &[u8; KEY_LEN]) -> [u8; KEY_LEN] {
        x25519_dalek::x25519(*k, *u)
    }

    /// `u + p` as a 256-bit little-endian number (a non-canonical encoding of `u` when it fits).
    fn plus_p(u: &[u8; KEY_LEN]) -> Option<[u8; KEY_LEN]> {
        let p = h("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f");
        let mut out = [0u8; KEY_LEN];
        let mut carry = 0u16;
        for i in 0..KEY_LEN {
            let sum = u16::from(u[i]) + u16::from(p[i]) + carry;
            out[i] = sum as u8;
            carry = sum >> 8;
        }
        (carry == 0).then_some(out)
    }

    #[test]
    fn rfc7748_vectors() {
        // RFC 7748 §5.2 (single iteration) and §6.1 (Alice's private key, Bob's public key).
        let cases = [
            (
                "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
                "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
                "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
            ),
            (
                "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
                "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
                "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
            ),
            (
                "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
                "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
                "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742",
            ),
        ];
        for (k, u, out) in cases {
            assert_eq!(*x25519(&h(k), &h(u)), h(out), "X25519({k}, {u})");
        }
    }

    #[test]
    fn small_order_and_non_canonical_inputs_match_the_ladder() {
        // The small-order u-coordinates of Curve25519 and its twist, plus u = -1 (twist).
        let base = [
            "0000000000000000000000000000000000000000000000000000000000000000",
            "0100000000000000000000000000000000000000000000000000000000000000",
            "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
            "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        ];
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        for u in base.map(h) {
            let mut inputs = vec![u];
            inputs.extend(plus_p(&u));
            let with_high_bits: Vec<_> = inputs
                .iter()
                .map(|u| {
                    let mut v = *u;
                    v[31] |= 0x80;
                    v
                })
                .collect();
            inputs.extend(with_high_bits);
            for u in inputs {
                for _ in 0..8 {
                    let mut k = [0u8; KEY_LEN];
                    rng.fill_bytes(&mut k);
                    assert_eq!(*x25519(&k, &u), ladder(&k, &u), "u = {}", hex::encode(u));
                }
            }
        }
    }

    #[test]
    fn both_paths_are_taken_and_agree_with_the_ladder() {
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        let (mut curve, mut twist) = (0, 0);
        for i in 0..2_000 {
            let mut k = [0u8; KEY_LEN];
            rng.fill_bytes(&mut k);
            let u = if i % 2 == 0 {
                // An honest public key.
                DhKeyPair::generate(&mut rng).public().0
            } else {
                let mut u = [0u8; KEY_LEN];
                rng.fill_bytes(&mut u);
                u
            };
            match MontgomeryPoint(u).to_edwards(0) {
                Some(_) => curve += 1,
                None => twist += 1,
            }
            assert_eq!(*x25519(&k, &u), ladder(&k, &u), "u = {}", hex::encode(u));
        }
        assert!(curve > 1_000 && twist > 300, "curve {curve}, twist {twist}");
    }

    /// Scalars whose bits sit exactly where clamping acts (bit 0-2, 254, 255) or fill every
    /// byte: all-zero, all-ones and the 0x80 / 0x08 / 0xf8 patterns, whole and in the first or
    /// last byte only.
    fn edge_scalars() -> Vec<[u8; KEY_LEN]> {
        let mut out = Vec::new();
        for b in [0x00u8, 0xff, 0x80, 0x08, 0xf8, 0x7f, 0x01] {
            out.push([b; KEY_LEN]);
            let mut first = [0u8; KEY_LEN];
            first[0] = b;
            out.push(first);
            let mut last = [0u8; KEY_LEN];
            last[KEY_LEN - 1] = b;
            out.push(last);
            let mut ends = [0xffu8; KEY_LEN];
            ends[0] = b;
            ends[KEY_LEN - 1] = b;
            out.push(ends);
        }
        out
    }

    /// Honest points (multiples of the base point, as every real public key is) plus each
    /// torsion point of order 2, 4 and 8: on the curve, so they take the Edwards path, with a
    /// component outside the prime-order subgroup that the scalar's low bits act on.
    fn torsion_plus_honest(rng: &mut ChaCha20Rng) -> Vec<[u8; KEY_LEN]> {
        use curve25519_dalek::constants::EIGHT_TORSION;
        use curve25519_dalek::edwards::EdwardsPoint;
        let mut out = Vec::new();
        for _ in 0..4 {
            let mut k = [0u8; KEY_LEN];
            rng.fill_bytes(&mut k);
            let honest = EdwardsPoint::mul_base_clamped(k);
            for torsion in EIGHT_TORSION {
                let u = (honest + torsion).to_montgomery().to_bytes();
                assert!(MontgomeryPoint(u).to_edwards(0).is_some(), "on the curve");
                out.push(u);
            }
        }
        out
    }

    #[test]
    fn torsion_plus_honest_points_match_the_ladder() {
        let mut rng = ChaCha20Rng::seed_from_u64(10);
        let points = torsion_plus_honest(&mut rng);
        let mut scalars = edge_scalars();
        for _ in 0..8 {
            let mut k = [0u8; KEY_LEN];
            rng.fill_bytes(&mut k);
            scalars.push(k);
        }
        for u in &points {
            for k in &scalars {
                assert_eq!(
                    *x25519(k, u),
                    ladder(k, u),
                    "k = {}, u = {}",
                    hex::encode(k),
                    hex::encode(u)
                );
            }
        }
    }

    #[test]
    fn edge_scalars_match_the_ladder_on_every_kind_of_input() {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let mut points = vec![
            DhKeyPair::generate(&mut rng).public().0,
            // The base point, u = 9.
            h("0900000000000000000000000000000000000000000000000000000000000000"),
            // Small order: 0, 1, the order-8 points; u = -1 (twist); u = p (non-canonical 0).
            h("0000000000000000000000000000000000000000000000000000000000000000"),
            h("0100000000000000000000000000000000000000000000000000000000000000"),
            h("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
            h("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
            h("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
            // All-ones (high bit set, masked by X25519).
            [0xff; KEY_LEN],
        ];
        points.extend(torsion_plus_honest(&mut rng).into_iter().take(8));
        for _ in 0..4 {
            let mut u = [0u8; KEY_LEN];
            rng.fill_bytes(&mut u);
            points.push(u);
        }
        for u in &points {
            for k in edge_scalars() {
                assert_eq!(
                    *x25519(&k, u),
                    ladder(&k, u),
                    "k = {}, u = {}",
                    hex::encode(k),
                    hex::encode(u)
                );
            }
        }
    }

    #[test]
    fn shift_right_3_divides_a_clamped_scalar_by_eight_below_the_group_order() {
        let mut rng = ChaCha20Rng::seed_from_u64(12);
        let mut scalars = edge_scalars();
        for _ in 0..64 {
            let mut k = [0u8; KEY_LEN];
            rng.fill_bytes(&mut k);
            scalars.push(k);
        }
        for k in scalars {
            let clamped = clamp_integer(k);
            let shifted = shift_right_3(&clamped);
            // Shifting back gives the clamped scalar: nothing was lost.
            let mut back = [0u8; KEY_LEN];
            let mut carry = 0u8;
            for (b, &s) in back.iter_mut().zip(shifted.iter()) {
                *b = (s << 3) | carry;
                carry = s >> 5;
            }
            assert_eq!((back, carry), (clamped, 0), "k = {}", hex::encode(k));
            // 2^251 <= k / 8 < 2^252 < the group order: a canonical scalar, kept as is.
            assert_eq!(shifted[KEY_LEN - 1] >> 3, 1, "k = {}", hex::encode(k));
            assert_eq!(
                Scalar::from_bytes_mod_order(*shifted).to_bytes(),
                *shifted,
                "k = {}",
                hex::encode(k)
            );
        }
    }

    #[test]
    fn key_pair_equality_compares_the_secrets() {
        let a = DhKeyPair::from_secret_bytes([5; KEY_LEN]);
        assert_eq!(a, DhKeyPair::from_secret_bytes([5; KEY_LEN]));
        // Secrets that clamp to the same scalar (same public key) are still different pairs.
        let mut other = [5; KEY_LEN];
        other[0] ^= 0x01;
        let b = DhKeyPair::from_secret_bytes(other);
        assert_eq!(a.public(), b.public());
        assert_ne!(a, b);
    }

    #[test]
    fn diffie_hellman_is_symmetric() {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let a = DhKeyPair::generate(&mut rng);
        let b = DhKeyPair::generate(&mut rng);
        assert_eq!(
            *a.diffie_hellman(&b.public()),
            *b.diffie_hellman(&a.public())
        );
    }

    proptest! {
        #[test]
        fn any_input_matches_the_ladder(k in any::<[u8; 32]>(), u in any::<[u8; 32]>()) {
            prop_assert_eq!(*x25519(&k, &u), ladder(&k, &u));
        }
    }
}
