//! HACF aggregate monitoring (spec §49.11; issue #14 item 8): what one agent
//! sent out over a day and to whom over a week, across calls that each pass
//! the per-call limits. Crossing a threshold raises the agent's later actions
//! of that kind from HACF level 1 to level 2 (a human approves each).
//!
//! Guarantees: a pure fold over logged [`Egress`] records (each carries its
//! logged time), integer arithmetic only, and bounded per agent: at most
//! [`HOURS_KEPT`] hourly buckets and [`RECIPIENTS_KEPT`] recipients, so an
//! agent cannot grow the state by mailing ever new addresses.

use serde::{Deserialize, Serialize};

const HOUR_MS: u64 = 60 * 60_000;
/// Volume, calls and declassifications are summed over 24 hours.
pub const DAY_MS: u64 = 24 * HOUR_MS;
/// Unique recipients are counted over 7 days.
pub const WEEK_MS: u64 = 7 * DAY_MS;
/// Hourly buckets kept per agent: one day's worth.
pub const HOURS_KEPT: usize = 24;
/// Recipients kept per agent. Past the threshold the monitor has crossed
/// already; the oldest falls out first.
pub const RECIPIENTS_KEPT: usize = 256;
/// Recipients taken from one intent (an intent's resources are bounded anyway).
pub const RECIPIENTS_PER_EGRESS_MAX: usize = 64;
/// Longest recipient kept, in bytes (longer ones are cut at a char boundary).
pub const RECIPIENT_BYTES_MAX: usize = 320;

/// The thresholds (spec §49.11, normative defaults). The per-peer A2A volume
/// monitor has no A2A gateway to watch yet; declassifications are always
/// HACF level 2 already (check 4), so they are counted for the operator only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregateLimits {
    /// Outbound bytes per 24 hours (100 MB).
    pub outbound_bytes: u64,
    /// Unique external recipients per 7 days (50).
    pub recipients: u32,
    /// External calls per 24 hours (500).
    pub external_calls: u32,
}

impl AggregateLimits {
    /// The spec's defaults (§49.11), the same in every profile.
    pub const DEFAULT: Self = Self { outbound_bytes: 100_000_000, recipients: 50, external_calls: 500 };
    /// The largest outbound-bytes threshold a deployment may set (1 TB).
    pub const OUTBOUND_BYTES_MAX: u64 = 1_000_000_000_000;
    /// The largest external-calls threshold a deployment may set.
    pub const EXTERNAL_CALLS_MAX: u32 = 10_000_000;

    /// Whether a deployment under `profile` may set these: every threshold
    /// at least 1 (a monitor cannot be turned off by a zero, nor by a value
    /// it can never reach: the unique-recipient count stops at
    /// [`RECIPIENTS_KEPT`]); Hardened and Isolated only tighten the spec's
    /// defaults (a loose threshold would turn the monitor off in effect).
    ///
    /// Calibration (`mode`) is for Standard only: it turns the monitor off.
    ///
    /// # Errors
    /// What is out of range.
    pub fn validate(&self, profile: maos_model::Profile, mode: AggregateMode) -> Result<(), String> {
        if mode == AggregateMode::Calibrate && profile != maos_model::Profile::Standard {
            return Err(format!(
                "mode = \"calibrate\" turns the monitor off; the {} profile keeps it on",
                profile.name()
            ));
        }
        let d = Self::DEFAULT;
        if profile != maos_model::Profile::Standard
            && (self.outbound_bytes > d.outbound_bytes
                || self.recipients > d.recipients
                || self.external_calls > d.external_calls)
        {
            return Err(format!(
                "the {} profile only tightens the defaults ({} bytes and {} calls a day, {} recipients a week)",
                profile.name(),
                d.outbound_bytes,
                d.external_calls,
                d.recipients
            ));
        }
        let kept = u32::try_from(RECIPIENTS_KEPT).unwrap_or(u32::MAX);
        if !(1..=Self::OUTBOUND_BYTES_MAX).contains(&self.outbound_bytes) {
            return Err(format!("outbound_bytes_per_day must be 1..={}", Self::OUTBOUND_BYTES_MAX));
        }
        if !(1..=kept).contains(&self.recipients) {
            return Err(format!("recipients_per_week must be 1..={kept} (the recipients the monitor keeps)"));
        }
        if !(1..=Self::EXTERNAL_CALLS_MAX).contains(&self.external_calls) {
            return Err(format!("external_calls_per_day must be 1..={}", Self::EXTERNAL_CALLS_MAX));
        }
        Ok(())
    }
}

/// What the aggregate monitor does when a threshold is crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggregateMode {
    /// Escalate the agent's action to HACF level 2 (every profile's default).
    #[default]
    Enforce,
    /// Count only, to calibrate the thresholds (`maos agents baseline`):
    /// Standard only; Hardened and Isolated cannot turn the monitor off.
    Calibrate,
}

/// What one allowed outbound intent sent: the aggregate monitor's input,
/// carried in the decision's charge so the fold reproduces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Egress {
    /// The decision's time.
    pub at_ms: u64,
    /// Bytes of argument text that left with it.
    pub bytes: u64,
    /// Mail recipients it named, lowercased.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
}

/// One hour's sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Hour {
    hour: u64,
    bytes: u64,
    calls: u32,
}

/// One agent's aggregate counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Aggregate {
    hours: Vec<Hour>,
    /// Recipient and when it was last mailed, least recently mailed first.
    recipients: Vec<(String, u64)>,
}

/// The counters at one time, in the monitor's windows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregateTotals {
    /// Outbound bytes in the last 24 hours.
    pub outbound_bytes: u64,
    /// External calls in the last 24 hours.
    pub external_calls: u32,
    /// Unique recipients in the last 7 days.
    pub recipients: u32,
}

/// A monitor the agent has crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crossed {
    /// Outbound volume (`AGG-OUTBOUND-VOLUME`): every outbound effect.
    OutboundVolume,
    /// Unique recipients (`AGG-RECIPIENTS`): mail to a recipient not yet counted.
    Recipients,
    /// External calls (`AGG-EXTERNAL-CALLS`): every outbound effect.
    ExternalCalls,
}

impl Crossed {
    /// The stable code in the escalation's reason.
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::OutboundVolume => "AGG-OUTBOUND-VOLUME",
            Self::Recipients => "AGG-RECIPIENTS",
            Self::ExternalCalls => "AGG-EXTERNAL-CALLS",
        }
    }
}

impl Aggregate {
    /// Folds one egress.
    pub(crate) fn record(&mut self, egress: &Egress) {
        let hour = egress.at_ms / HOUR_MS;
        match self.hours.iter_mut().find(|h| h.hour == hour) {
            Some(h) => {
                h.bytes = h.bytes.saturating_add(egress.bytes);
                h.calls = h.calls.saturating_add(1);
            }
            None => {
                // Logged times can arrive slightly out of order (a later
                // sequence number may carry an earlier time): keep the buckets
                // sorted and drop the oldest.
                self.hours.push(Hour { hour, bytes: egress.bytes, calls: 1 });
                self.hours.sort_by_key(|h| h.hour);
                if self.hours.len() > HOURS_KEPT {
                    self.hours.remove(0);
                }
            }
        }
        for r in egress.recipients.iter().take(RECIPIENTS_PER_EGRESS_MAX) {
            let r = maos_model::prefix_within(r, RECIPIENT_BYTES_MAX);
            if let Some(i) = self.recipients.iter().position(|(known, _)| known == r) {
                let (known, at) = self.recipients.remove(i);
                self.recipients.push((known, at.max(egress.at_ms)));
            } else {
                if self.recipients.len() >= RECIPIENTS_KEPT {
                    self.recipients.remove(0);
                }
                self.recipients.push((r.to_owned(), egress.at_ms));
            }
        }
    }

    /// The counters in their windows at `now_ms`.
    #[must_use]
    pub fn totals_at(&self, now_ms: u64) -> AggregateTotals {
        let in_window = |at: u64, window: u64| at <= now_ms && now_ms - at < window;
        let mut totals = AggregateTotals::default();
        for h in self.hours.iter().filter(|h| in_window(h.hour.saturating_mul(HOUR_MS), DAY_MS)) {
            totals.outbound_bytes = totals.outbound_bytes.saturating_add(h.bytes);
            totals.external_calls = totals.external_calls.saturating_add(h.calls);
        }
        let recipients = self.recipients.iter().filter(|(_, at)| in_window(*at, WEEK_MS)).count();
        totals.recipients = u32::try_from(recipients).unwrap_or(u32::MAX);
        totals
    }

    /// Whether `recipient` (in any case: they are kept lowercased) was
    /// mailed in the last 7 days (a known recipient adds nothing to the
    /// unique count).
    #[must_use]
    pub fn knows(&self, recipient: &str, now_ms: u64) -> bool {
        let recipient = maos_model::prefix_within(recipient, RECIPIENT_BYTES_MAX);
        self.recipients
            .iter()
            .any(|(r, at)| r.eq_ignore_ascii_case(recipient) && *at <= now_ms && now_ms - at < WEEK_MS)
    }
}

/// The first monitor an external effect sending `bytes` to `new_recipients`
/// recipients not yet counted would take over its threshold, given the totals
/// before it.
#[must_use]
pub fn crossed(totals: AggregateTotals, limits: AggregateLimits, bytes: u64, new_recipients: u32) -> Option<Crossed> {
    if totals.outbound_bytes.saturating_add(bytes) > limits.outbound_bytes {
        Some(Crossed::OutboundVolume)
    } else if totals.external_calls.saturating_add(1) > limits.external_calls {
        Some(Crossed::ExternalCalls)
    } else if new_recipients > 0 && totals.recipients.saturating_add(new_recipients) > limits.recipients {
        Some(Crossed::Recipients)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn egress(at_ms: u64, bytes: u64, to: &[&str]) -> Egress {
        Egress { at_ms, bytes, recipients: to.iter().map(|s| (*s).to_owned()).collect() }
    }

    /// Spec §49.11 defaults: 50 unique recipients in a week, then a new one
    /// crosses; a known one does not; a week later the count is back.
    #[test]
    fn recipients_over_a_week_cross_at_50() {
        let limits = AggregateLimits::DEFAULT;
        let mut a = Aggregate::default();
        for i in 0..50u64 {
            a.record(&egress(i * HOUR_MS, 10, &[&format!("r{i}@x.example")]));
        }
        let now = 50 * HOUR_MS;
        let t = a.totals_at(now);
        assert_eq!((t.recipients, t.external_calls), (50, 23), "calls count over 24 h only (hours 27 to 49)");
        assert_eq!(crossed(t, limits, 10, 1), Some(Crossed::Recipients));
        assert_eq!(crossed(t, limits, 10, 0), None, "mail to a known recipient is not a new one");
        let t49 = AggregateTotals { recipients: 49, ..t };
        assert_eq!(crossed(t49, limits, 10, 1), None, "the 50th");
        assert_eq!(crossed(t49, limits, 10, 2), Some(Crossed::Recipients), "two new ones at once take it over 50");
        assert!(a.knows("r49@x.example", now));
        let later = 49 * HOUR_MS + WEEK_MS - 1;
        assert_eq!(a.totals_at(later).recipients, 1, "a week later only the last one is still counted");
    }

    /// Volume and calls: the 24-hour sums cross at 100 MB and 500 calls.
    #[test]
    fn volume_and_calls_cross_over_a_day() {
        let limits = AggregateLimits::DEFAULT;
        let mut a = Aggregate::default();
        for i in 0..499u64 {
            a.record(&egress(i * 60_000, 100_000, &[]));
        }
        let now = 499 * 60_000;
        assert_eq!(crossed(a.totals_at(now), limits, 100, 0), None, "the 500th call");
        a.record(&egress(now, 100_000, &[]));
        assert_eq!(a.totals_at(now).external_calls, 500);
        assert_eq!(crossed(a.totals_at(now), limits, 100, 0), Some(Crossed::ExternalCalls), "the 501st");
        let fresh = AggregateTotals::default();
        assert_eq!(crossed(fresh, limits, 100_000_001, 0), Some(Crossed::OutboundVolume), "one call over 100 MB");
        assert_eq!(crossed(fresh, limits, 100_000_000, 0), None);
        assert_eq!(a.totals_at(now + DAY_MS + HOUR_MS), AggregateTotals::default(), "a day later nothing counts");
    }

    /// The state stays bounded: 24 buckets, 256 recipients, whatever the agent sends.
    #[test]
    fn counters_are_bounded() {
        let mut a = Aggregate::default();
        for h in 0..100u64 {
            // More per egress than is taken from one: only the first 64 count.
            let many: Vec<String> = (0..100).map(|i| format!("r{h}-{i}@x.example")).collect();
            let refs: Vec<&str> = many.iter().map(String::as_str).collect();
            a.record(&egress(h * HOUR_MS, 1, &refs));
        }
        assert!(a.recipients.iter().all(|(r, _)| !r.contains("-64@")), "the 65th of an egress is not taken");
        assert_eq!(a.hours.len(), HOURS_KEPT);
        assert_eq!(a.recipients.len(), RECIPIENTS_KEPT);
        // Out-of-order times keep the buckets sorted.
        a.record(&egress(50 * HOUR_MS, 1, &[]));
        assert!(a.hours.windows(2).all(|w| w[0].hour < w[1].hour));
    }
}
