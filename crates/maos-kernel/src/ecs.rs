//! Emergency Controlled Shutdown (spec §38.6; CT-DEG-17, CT-DEG-18,
//! CT-WAL-07): the pure half. What triggered it, the rule-based root-cause
//! class, the repair each class allows, and the boot gate that applies the
//! abuse limits.
//!
//! Guarantees:
//! - **The counter cannot be disabled.** Nothing configures it; it counts
//!   every shutdown the log recorded *and* every forensic directory (the
//!   directory is never cleaned, and a shutdown whose log could not be
//!   written still leaves one), whichever knows of more.
//! - **A shutdown no rule can repair needs the commander.** An unknown cause
//!   (a manual shutdown) or data corruption is never repaired automatically:
//!   the next boot is refused (`KERNEL-ECS-ACK-REQUIRED`) until the
//!   commander signs an acknowledgement of that shutdown's report. So is the
//!   third in 24 hours whatever its class, and under Hardened and Isolated
//!   any after more than four in 7 days.
//! - **The first boot after a shutdown is observed** for
//!   [`OBSERVATION_MS`] with a smaller admission queue ([`conservative_queue`]).

use maos_model::Profile;
use serde::{Deserialize, Serialize};

/// Refusal code for every request after an emergency shutdown began.
pub const CODE_ECS: &str = "KERNEL-ECS";
/// Boot refusal code: a shutdown needs the commander's signed acknowledgement.
pub const CODE_ECS_ACK_REQUIRED: &str = "KERNEL-ECS-ACK-REQUIRED";
/// Boot refusal code: the forensic directory cannot be created.
pub const CODE_FORENSICS: &str = "KERNEL-FORENSICS";
/// Refusal code for a malformed or unverifiable acknowledgement.
pub const CODE_ECS_ACK: &str = "KERNEL-ECS-ACK";
/// Shutdowns in 24 hours after which automated repair is suspended (spec: "more than 2").
pub const ECS_IN_24H_MAX: usize = 2;
/// Shutdowns in 7 days over which the node is flagged as possibly exploited.
pub const ECS_IN_7D_FLAG: usize = 4;
/// Phase 4 (self-repair) time limit, ms.
pub const PHASE4_TIMEOUT_MS: u64 = 60_000;
/// Phase 4 time limit once flagged, ms.
pub const PHASE4_TIMEOUT_FLAGGED_MS: u64 = 15_000;
/// The observation after the first boot that follows a shutdown, ms (10 minutes).
pub const OBSERVATION_MS: u64 = 10 * 60_000;
/// Shutdowns the kernel remembers (the newest; older ones are outside both windows).
pub const ECS_HISTORY_MAX: usize = 256;
/// Bytes of the operator's reason kept in the report.
pub const ECS_REASON_BYTES_MAX: usize = 512;
/// Forensic report size the boot reads, at most.
pub const ECS_REPORT_BYTES_MAX: u64 = 1 << 20;

const DAY_MS: u64 = 24 * 3_600_000;

/// What started a shutdown. The spec's other triggers (three failed levels of
/// the Recovery Priority Chain, a breaker cascade, a broken audit chain seen
/// at runtime) have no detector on one node yet (`docs/resilience.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "trigger", rename_all = "snake_case")]
pub enum EcsTrigger {
    /// The operator asked for it.
    Manual {
        /// Why (bounded by [`ECS_REASON_BYTES_MAX`]).
        reason: String,
    },
    /// The write-ahead log can make nothing durable (every copy failed).
    WalFailed {
        /// What the log reported.
        why: String,
    },
    /// A Hardened TSCA proposal the commander left unanswered for 15
    /// minutes: the minimal safe state (spec §38.7).
    TscaUnanswered {
        /// The proposal.
        proposal: String,
    },
    /// The Recovery Priority Chain ended with three or more failed levels
    /// (spec §38.2).
    ChainFailed {
        /// The chain.
        chain: String,
        /// The levels that failed.
        levels: Vec<String>,
    },
    /// The audit chain on disk is broken while the kernel runs (Rule 3).
    AuditChainBroken {
        /// What the sweep found.
        why: String,
    },
    /// The log on disk cannot be read to verify its chain, on any copy, for
    /// a minute (Rule 3 cannot vouch for it).
    AuditUnverifiable {
        /// What the reads answered.
        why: String,
    },
    /// A forensic directory whose report cannot be read (the boot counts it
    /// anyway, as unknown).
    Unrecorded {
        /// Why.
        why: String,
    },
}

impl EcsTrigger {
    /// One line for logs and reports.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::Manual { reason } => format!("manual: {reason}"),
            Self::WalFailed { why } => format!("the write-ahead log failed: {why}"),
            Self::Unrecorded { why } => format!("unrecorded: {why}"),
            Self::TscaUnanswered { proposal } => format!("TSCA proposal {proposal} unanswered for 15 minutes"),
            Self::AuditChainBroken { why } => format!("audit chain broken: {why}"),
            Self::AuditUnverifiable { why } => format!("audit chain unverifiable: {why}"),
            Self::ChainFailed { chain, levels } => {
                format!("recovery chain {chain}: {} levels failed ({})", levels.len(), levels.join(", "))
            }
        }
    }
}

/// Phase 3's root-cause class (§38.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// A resource ran out (the disk).
    ResourceExhaustion,
    /// Something outside failed (a provider, an upstream).
    ExternalDependency,
    /// The configuration is wrong.
    ConfigError,
    /// Failures spread across components.
    Cascading,
    /// Stored data is damaged.
    DataCorruption,
    /// No rule explains it.
    Unknown,
}

/// What phase 3 had to go on.
#[derive(Debug, Clone, Copy, Default)]
pub struct Evidence {
    /// Disk use of the data directory's filesystem, percent.
    pub disk_used_pct: Option<u8>,
}

/// Phase 3, rule-based: the class of the failure from its trigger and what the
/// watchdog saw.
#[must_use]
pub fn classify(trigger: &EcsTrigger, evidence: Evidence) -> FailureClass {
    let disk_full = evidence.disk_used_pct.is_some_and(|p| p >= crate::kernel::DISK_ESSENTIAL_PCT);
    match trigger {
        // A full disk explains a log that cannot sync; else its storage is damaged.
        EcsTrigger::WalFailed { .. } if disk_full => FailureClass::ResourceExhaustion,
        EcsTrigger::WalFailed { .. } | EcsTrigger::AuditChainBroken { .. } => FailureClass::DataCorruption,
        EcsTrigger::ChainFailed { .. } => FailureClass::Cascading,
        EcsTrigger::Manual { .. }
        | EcsTrigger::Unrecorded { .. }
        | EcsTrigger::TscaUnanswered { .. }
        | EcsTrigger::AuditUnverifiable { .. } => FailureClass::Unknown,
    }
}

/// Phase 4 for a class: what is done, and whether it is automatic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Repair {
    /// What the kernel does (or, when not automatic, what a human must).
    pub plan: &'static str,
    /// Whether the next boot may go ahead without the commander.
    pub automated: bool,
}

/// The repair of `class` on one node. Only what the kernel really does is
/// automatic; the spec's other repairs (reroute providers, roll back the
/// configuration, tighten breakers) have nothing to act on here and are left
/// to a human.
#[must_use]
pub const fn repair(class: FailureClass) -> Repair {
    match class {
        FailureClass::ResourceExhaustion => Repair {
            plan: "expired rollback snapshots purged; the next boot admits 20 % fewer queued requests",
            automated: true,
        },
        FailureClass::DataCorruption => Repair {
            plan: "no redundant copy is left to rebuild from: check the WAL storage, then acknowledge",
            automated: false,
        },
        FailureClass::ExternalDependency | FailureClass::ConfigError | FailureClass::Cascading => Repair {
            plan: "no automated repair on one node: review the forensic report, then acknowledge",
            automated: false,
        },
        FailureClass::Unknown => {
            Repair { plan: "none: mandatory human review of the forensic report, then acknowledge", automated: false }
        }
    }
}

/// One shutdown as the boot knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EcsEntry {
    /// `ecs-<at_ms>`, the forensic directory's name.
    pub id: String,
    /// When it began, Unix ms.
    pub at_ms: u64,
    /// Its class.
    pub class: FailureClass,
    /// Whether the commander acknowledged it.
    pub acknowledged: bool,
    /// Whether a boot has run after it (its observation is over or running).
    pub restarted: bool,
}

/// The id of a shutdown that began at `at_ms`.
#[must_use]
pub fn ecs_id(at_ms: u64) -> String {
    format!("ecs-{at_ms}")
}

/// Shutdowns in the last 24 hours and 7 days before `now_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// In the last 24 hours.
    pub in_24h: usize,
    /// In the last 7 days.
    pub in_7d: usize,
}

impl Counters {
    /// Counts `history` (a shutdown at or before `now_ms`).
    #[must_use]
    pub fn of(history: &[EcsEntry], now_ms: u64) -> Self {
        let within = |span: u64| history.iter().filter(|e| e.at_ms <= now_ms && now_ms - e.at_ms < span).count();
        Self { in_24h: within(DAY_MS), in_7d: within(7 * DAY_MS) }
    }

    /// More than four in 7 days: possibly deliberate (logged, shorter phase 4).
    #[must_use]
    pub const fn flagged(self) -> bool {
        self.in_7d > ECS_IN_7D_FLAG
    }

    /// The phase-4 time limit under these counts.
    #[must_use]
    pub const fn phase4_timeout_ms(self) -> u64 {
        if self.flagged() { PHASE4_TIMEOUT_FLAGGED_MS } else { PHASE4_TIMEOUT_MS }
    }
}

/// What the boot may do after the shutdowns in `history`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Boot; when `observe` names a shutdown, this is the first boot after
    /// it: observation and a conservative queue.
    Clear {
        /// The shutdown whose restart this is.
        observe: Option<String>,
        /// The counts.
        counters: Counters,
    },
    /// Refuse to boot until the commander acknowledges `id`.
    NeedsAck {
        /// The shutdown.
        id: String,
        /// Why, for the operator.
        why: String,
    },
}

/// The boot gate (abuse limits, CT-DEG-18): every unacknowledged shutdown
/// that needs a human holds the boot, the oldest first.
#[must_use]
pub fn boot_gate(history: &[EcsEntry], now_ms: u64, profile: Profile) -> Gate {
    let counters = Counters::of(history, now_ms);
    let mut sorted: Vec<&EcsEntry> = history.iter().collect();
    sorted.sort_by(|a, b| (a.at_ms, &a.id).cmp(&(b.at_ms, &b.id)));
    for (n, entry) in sorted.iter().enumerate().filter(|(_, e)| !e.acknowledged) {
        // Counted as it was when this one happened: the third in 24 h, not today's third.
        let before = Counters::of(&history_upto(&sorted, n), entry.at_ms);
        let why = if !repair(entry.class).automated {
            Some(format!("its cause ({:?}) has no automated repair", entry.class))
        } else if before.in_24h > ECS_IN_24H_MAX {
            Some(format!("it is shutdown number {} in 24 hours: automated repair is suspended", before.in_24h))
        } else if profile != Profile::Standard && before.flagged() {
            Some(format!("{} shutdowns in 7 days under {profile:?}: the commander acknowledges each", before.in_7d))
        } else {
            None
        };
        if let Some(why) = why {
            return Gate::NeedsAck { id: entry.id.clone(), why };
        }
    }
    let observe = sorted.last().filter(|e| !e.restarted).map(|e| e.id.clone());
    Gate::Clear { observe, counters }
}

fn history_upto(sorted: &[&EcsEntry], n: usize) -> Vec<EcsEntry> {
    sorted.iter().take(n.saturating_add(1)).map(|e| (*e).clone()).collect()
}

/// The admission queue of an observed boot: 20 % smaller, at least 1.
#[must_use]
pub const fn conservative_queue(capacity: usize) -> usize {
    let smaller = capacity.saturating_sub(capacity / 5);
    if smaller == 0 { 1 } else { smaller }
}

/// What the commander signs (domain
/// [`maos_crypto::SignatureDomain::EmergencyAcknowledgement`]): the shutdown
/// and the SHA3-256 of the forensic report they read.
#[must_use]
pub fn ack_message(id: &str, report_sha3: &[u8; 32]) -> Vec<u8> {
    format!("maos-ecs-ack\nid={id}\nreport_sha3={}\n", crate::records::hex32(report_sha3)).into_bytes()
}

/// The acknowledgement file beside a forensic report (`ack.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EcsAck {
    /// The shutdown.
    pub id: String,
    /// The report's SHA3-256, hex.
    pub report_sha3: String,
    /// The commander's key id, hex.
    pub key_id: String,
    /// The hybrid signature over [`ack_message`], base64.
    pub signature: String,
    /// When it was signed, Unix ms.
    pub at_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3_600_000;

    fn entry(at_ms: u64, class: FailureClass) -> EcsEntry {
        EcsEntry { id: ecs_id(at_ms), at_ms, class, acknowledged: false, restarted: true }
    }

    #[test]
    fn a_manual_shutdown_or_a_damaged_log_needs_the_commander() {
        let manual = EcsTrigger::Manual { reason: "drill".into() };
        assert_eq!(classify(&manual, Evidence::default()), FailureClass::Unknown);
        let wal = EcsTrigger::WalFailed { why: "sync".into() };
        assert_eq!(classify(&wal, Evidence::default()), FailureClass::DataCorruption);
        assert_eq!(classify(&wal, Evidence { disk_used_pct: Some(99) }), FailureClass::ResourceExhaustion);
        let chain = EcsTrigger::ChainFailed { chain: "chain-1".into(), levels: vec!["L0".into(); 3] };
        assert_eq!(classify(&chain, Evidence { disk_used_pct: Some(99) }), FailureClass::Cascading);
        assert!(!repair(FailureClass::Cascading).automated);
        for class in [FailureClass::Unknown, FailureClass::DataCorruption, FailureClass::Cascading] {
            let gate = boot_gate(&[entry(10 * H, class)], 11 * H, Profile::Standard);
            assert!(matches!(gate, Gate::NeedsAck { .. }), "{class:?}: {gate:?}");
        }
        let mut acked = entry(10 * H, FailureClass::Unknown);
        acked.acknowledged = true;
        acked.restarted = false;
        let gate = boot_gate(&[acked], 11 * H, Profile::Standard);
        assert_eq!(gate, Gate::Clear { observe: Some(ecs_id(10 * H)), counters: Counters { in_24h: 1, in_7d: 1 } });
    }

    #[test]
    fn ct_deg_18_the_third_in_24_hours_needs_the_commander() {
        let r = FailureClass::ResourceExhaustion;
        let two = [entry(100 * H, r), entry(101 * H, r)];
        assert!(matches!(boot_gate(&two, 102 * H, Profile::Standard), Gate::Clear { .. }));
        let three = [entry(100 * H, r), entry(101 * H, r), entry(102 * H, r)];
        let Gate::NeedsAck { id, why } = boot_gate(&three, 103 * H, Profile::Standard) else { panic!("clear") };
        assert_eq!(id, ecs_id(102 * H));
        assert!(why.contains("24 hours"), "{why}");
        // Acknowledged, the boot goes on; a day later the third is history.
        let mut acked = three.clone();
        acked[2].acknowledged = true;
        assert!(matches!(boot_gate(&acked, 103 * H, Profile::Standard), Gate::Clear { .. }));
        let spread = [entry(100 * H, r), entry(125 * H, r), entry(150 * H, r)];
        assert!(matches!(boot_gate(&spread, 151 * H, Profile::Standard), Gate::Clear { .. }));
    }

    #[test]
    fn ct_deg_18_more_than_four_in_7_days_flags_and_holds_hardened() {
        let r = FailureClass::ResourceExhaustion;
        let five: Vec<EcsEntry> = (0..5).map(|d| entry(1_000 * H + d * 25 * H, r)).collect();
        let now = 1_000 * H + 4 * 25 * H + H;
        let c = Counters::of(&five, now);
        assert_eq!((c.in_7d, c.flagged(), c.phase4_timeout_ms()), (5, true, PHASE4_TIMEOUT_FLAGGED_MS));
        assert!(matches!(boot_gate(&five, now, Profile::Standard), Gate::Clear { .. }), "Standard may continue");
        for p in [Profile::Hardened, Profile::Isolated] {
            assert!(matches!(boot_gate(&five, now, p), Gate::NeedsAck { .. }), "{p:?}");
        }
        assert_eq!(Counters::of(&five[..4], now).phase4_timeout_ms(), PHASE4_TIMEOUT_MS);
    }

    #[test]
    fn only_the_first_boot_after_a_shutdown_is_observed_and_its_queue_is_smaller() {
        let mut e = entry(10 * H, FailureClass::ResourceExhaustion);
        e.restarted = false;
        let Gate::Clear { observe, .. } = boot_gate(std::slice::from_ref(&e), 11 * H, Profile::Standard) else {
            panic!("held")
        };
        assert_eq!(observe, Some(e.id.clone()));
        e.restarted = true;
        assert_eq!(
            boot_gate(&[e], 11 * H, Profile::Standard),
            Gate::Clear { observe: None, counters: Counters { in_24h: 1, in_7d: 1 } }
        );
        assert_eq!((conservative_queue(1024), conservative_queue(4), conservative_queue(1)), (820, 4, 1));
    }
}
