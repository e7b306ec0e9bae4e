//! Time: one type, [`Timestamp`], in Unix milliseconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time: milliseconds since the Unix epoch (UTC), signed (earlier times are
/// negative).
///
/// Every time in libchat has this type: when a skipped message key was stored, a frame's send
/// time, when an envelope was queued, received or processed, when a conversation was created.
/// The domain never reads a clock: callers pass the time in (typically [`Timestamp::now`]), so
/// the protocol stays a function of its inputs. Stored as a 64-bit integer of milliseconds.
///
/// ```
/// use std::time::Duration;
/// use domain_ratchet::Timestamp;
///
/// let sent = Timestamp::from_millis(1_795_900_000_123);
/// assert_eq!(sent.as_millis(), 1_795_900_000_123);
/// assert_eq!(
///     sent.saturating_sub(Duration::from_secs(1)),
///     Timestamp::from_millis(1_795_899_999_123)
/// );
/// assert!(Timestamp::now() > sent.saturating_sub(Duration::from_secs(10 * 365 * 86_400)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    /// 1970-01-01T00:00:00Z.
    pub const UNIX_EPOCH: Timestamp = Timestamp(0);
    /// The earliest representable time.
    pub const MIN: Timestamp = Timestamp(i64::MIN);
    /// The latest representable time.
    pub const MAX: Timestamp = Timestamp(i64::MAX);

    /// The time `millis` milliseconds after the Unix epoch (before it when negative).
    pub const fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// The system clock's current time (saturating at [`Timestamp::MIN`] / [`Timestamp::MAX`]).
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }

    /// `self` minus `duration`, saturating at [`Timestamp::MIN`].
    pub fn saturating_sub(self, duration: Duration) -> Self {
        Self(self.0.saturating_sub(millis(duration)))
    }

    /// `self` plus `duration`, saturating at [`Timestamp::MAX`].
    pub fn saturating_add(self, duration: Duration) -> Self {
        Self(self.0.saturating_add(millis(duration)))
    }
}

/// A duration in whole milliseconds, saturating at `i64::MAX`.
fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl From<SystemTime> for Timestamp {
    /// Whole milliseconds since the epoch (rounded towards the epoch), saturating.
    fn from(time: SystemTime) -> Self {
        match time.duration_since(UNIX_EPOCH) {
            Ok(after) => Self(millis(after)),
            Err(before) => Self(millis(before.duration()).saturating_neg()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_saturate() {
        let t = Timestamp::from_millis(5);
        assert_eq!(t.saturating_sub(Duration::from_millis(7)).as_millis(), -2);
        assert_eq!(Timestamp::MIN.saturating_sub(Duration::MAX), Timestamp::MIN);
        assert_eq!(
            Timestamp::MAX.saturating_add(Duration::from_millis(1)),
            Timestamp::MAX
        );
        assert_eq!(
            Timestamp::from(UNIX_EPOCH + Duration::from_millis(1_500)),
            Timestamp::from_millis(1_500)
        );
        assert_eq!(
            Timestamp::from(UNIX_EPOCH - Duration::from_millis(1_500)),
            Timestamp::from_millis(-1_500)
        );
        assert!(Timestamp::from_millis(-1) < Timestamp::UNIX_EPOCH);
    }
}
