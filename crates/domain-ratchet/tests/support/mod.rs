//! Helpers shared by the integration tests and the benches.
#![allow(dead_code)]

use rand_core::{CryptoRng, RngCore};

/// An RNG that replays recorded bytes and panics when asked for more (or, on drop check, when
/// bytes are left over: see [`ReplayRng::assert_consumed`]).
pub(crate) struct ReplayRng {
    bytes: Vec<u8>,
    pos: usize,
}

impl ReplayRng {
    pub(crate) fn new(parts: &[&[u8]]) -> Self {
        Self {
            bytes: parts.concat(),
            pos: 0,
        }
    }

    pub(crate) fn assert_consumed(&self) {
        assert_eq!(
            self.pos,
            self.bytes.len(),
            "recorded randomness was not fully consumed"
        );
    }
}

impl RngCore for ReplayRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        let end = self.pos + dest.len();
        assert!(
            end <= self.bytes.len(),
            "replay RNG exhausted: asked for {} bytes, {} left",
            dest.len(),
            self.bytes.len() - self.pos
        );
        dest.copy_from_slice(&self.bytes[self.pos..end]);
        self.pos = end;
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for ReplayRng {}
