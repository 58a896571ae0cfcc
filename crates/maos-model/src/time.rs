//! Time as the pure crates see it: a number passed in, never read from a clock.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Milliseconds since the Unix epoch, UTC. Always injected by the caller so that
/// every decision is a function of its inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixMillis(pub u64);

impl UnixMillis {
    /// `self + ms`, saturating at the far future instead of wrapping.
    #[must_use]
    pub const fn saturating_add_ms(self, ms: u64) -> Self {
        Self(self.0.saturating_add(ms))
    }

    /// Milliseconds from `earlier` to `self`, or 0 if `earlier` is later.
    #[must_use]
    pub const fn saturating_since(self, earlier: Self) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// A UTC calendar time, from [`UnixMillis::civil`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CivilTime {
    /// Year (proleptic Gregorian).
    pub year: u64,
    /// Month, 1..=12.
    pub month: u64,
    /// Day of the month, 1..=31.
    pub day: u64,
    /// Hour, 0..=23.
    pub hour: u64,
    /// Minute, 0..=59.
    pub minute: u64,
    /// Second, 0..=59.
    pub second: u64,
    /// Millisecond, 0..=999.
    pub millisecond: u64,
    /// Day of the week, 0 = Monday ..= 6 = Sunday.
    pub weekday: u64,
}

impl UnixMillis {
    /// The UTC calendar time (Howard Hinnant's days-to-civil algorithm).
    #[must_use]
    pub const fn civil(self) -> CivilTime {
        let secs = self.0 / 1000;
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let z = days + 719_468;
        let era = z / 146_097;
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
        CivilTime {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem % 3600 / 60,
            second: rem % 60,
            millisecond: self.0 % 1000,
            // 1970-01-01 was a Thursday (3 when Monday is 0).
            weekday: (days + 3) % 7,
        }
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ` (RFC 3339, UTC).
    #[must_use]
    pub fn to_rfc3339(self) -> String {
        let c = self.civil();
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            c.year, c.month, c.day, c.hour, c.minute, c.second, c.millisecond
        )
    }
}

impl fmt::Display for UnixMillis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::UnixMillis;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(UnixMillis(0).to_rfc3339(), "1970-01-01T00:00:00.000Z");
        assert_eq!(UnixMillis(1_767_225_600_123).to_rfc3339(), "2026-01-01T00:00:00.123Z");
        assert_eq!(UnixMillis(951_782_400_000).to_rfc3339(), "2000-02-29T00:00:00.000Z");
        assert_eq!(UnixMillis(0).civil().weekday, 3, "a Thursday");
        assert_eq!(UnixMillis(1_767_225_600_000).civil().weekday, 3, "2026-01-01 is a Thursday");
    }
}
