//! The immune system's state (spec §37.8.2, §49.12; issue #14): danger
//! signals folded into a per-agent danger score and quarantine stage.
//!
//! Guarantees: the standing is a pure fold over logged deltas (a signal
//! carries its logged time and weight), integer arithmetic only, and bounded
//! per agent ([`SIGNALS_PER_AGENT_MAX`]). The stage at a time is a function of
//! the standing and that time (quiet time lowers it), so the DSC reads it
//! without a clock and `maos audit replay` reproduces every transition.

use maos_model::{AgentId, DenyCode, Profile};
use serde::{Deserialize, Serialize};

/// Signals kept per agent; the oldest falls out first (it has also left the
/// score window first).
pub const SIGNALS_PER_AGENT_MAX: usize = 64;
/// The danger score sums the signals of the last hour.
pub const SCORE_WINDOW_MS: u64 = 60 * 60_000;
/// Stage 1 (observation) ends after 30 quiet minutes (spec §37.8.2: ≤ 30 min).
pub const OBSERVATION_HOLD_MS: u64 = 30 * 60_000;
/// Stage 2 (soft isolation) falls back to stage 1 after 60 quiet minutes
/// (spec §37.8.2: ≤ 60 min). Stage 3 ends only by the operator.
pub const SOFT_ISOLATION_HOLD_MS: u64 = 60 * 60_000;

/// Reports one agent may make in an hour (spec §33.7.2); the sixth is refused.
pub const REPORTS_PER_HOUR_MAX: usize = 5;
/// Peer reports kept per suspect; the oldest falls out first.
pub const REPORTS_PER_AGENT_MAX: usize = 32;

/// The anomaly an agent reports about another (spec §33.7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyClass {
    /// Answers that contradict each other or the task.
    IncoherentResponses,
    /// Asked for data outside its task.
    UnauthorizedDataRequests,
    /// Tried to talk the reporter into something.
    SocialEngineering,
    /// Talks to others differently than it used to.
    CommunicationPatternChange,
    /// States a confidence its results do not bear out.
    ConfidenceManipulation,
    /// Its outputs got worse.
    OutputQualityDegradation,
}

impl AnomalyClass {
    /// Every class.
    pub const ALL: [Self; 6] = [
        Self::IncoherentResponses,
        Self::UnauthorizedDataRequests,
        Self::SocialEngineering,
        Self::CommunicationPatternChange,
        Self::ConfidenceManipulation,
        Self::OutputQualityDegradation,
    ];

    /// The name in reports and logs.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::IncoherentResponses => "incoherent_responses",
            Self::UnauthorizedDataRequests => "unauthorized_data_requests",
            Self::SocialEngineering => "social_engineering",
            Self::CommunicationPatternChange => "communication_pattern_change",
            Self::ConfidenceManipulation => "confidence_manipulation",
            Self::OutputQualityDegradation => "output_quality_degradation",
        }
    }

    /// The class a name stands for.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == text)
    }

    /// The weight of one report from a maturity-1 reporter (every reporter
    /// today: maturity levels are not built), ordered by severity as the spec
    /// orders them (social engineering above a pattern change). L1 reporters
    /// "carry minimal weight": the most severe report weighs 4, a scope probe 2.
    #[must_use]
    pub const fn weight(self) -> u32 {
        match self {
            Self::SocialEngineering => 4,
            Self::UnauthorizedDataRequests | Self::ConfidenceManipulation => 3,
            Self::CommunicationPatternChange | Self::IncoherentResponses => 2,
            Self::OutputQualityDegradation => 1,
        }
    }
}

/// One report by another agent, as folded into the suspect's standing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// When it was logged.
    pub at_ms: u64,
    /// Who reported.
    pub reporter: AgentId,
    /// What it reported.
    pub class: AnomalyClass,
    /// What it added to the score (0 once reports reach their cap).
    pub weight: u32,
}

/// Agents at stage 2 or more at once that start a security fever (spec §37.11.1).
pub const FEVER_AGENTS: usize = 2;
/// A fever ends after 30 minutes without a new danger signal (spec §37.11.1).
pub const FEVER_QUIET_MS: u64 = 30 * 60_000;
/// The second trigger of a fever (spec §37.11.1, CT-IMM-05): one agent's own
/// signals add up to more than twice the observation threshold within this
/// window.
pub const FEVER_BURST_MS: u64 = 10 * 60_000;

/// A security fever (spec §37.11.1): while it is on, every agent's rate
/// limits are halved and every ring-3 effect needs a human (`IMM-FEVER`).
/// The trigger is static by design (adaptive thresholds are themselves
/// attackable); an attacker who can put two agents in soft isolation can slow
/// the node down, the documented autoimmune residual risk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fever {
    /// When it began: the signal that left a second agent at stage 2 or more.
    pub since_ms: u64,
    /// The last danger signal while it was on from an agent at stage 2 or more.
    pub last_signal_ms: u64,
}

impl Fever {
    /// Whether it is still on at `now_ms` (it ends 30 minutes after the last
    /// signal that left an agent at stage 2 or more).
    #[must_use]
    pub const fn active_at(&self, now_ms: u64) -> bool {
        now_ms >= self.since_ms && now_ms.saturating_sub(self.last_signal_ms) < FEVER_QUIET_MS
    }

    /// When it ends if no signal comes.
    #[must_use]
    pub const fn ends_ms(&self) -> u64 {
        self.last_signal_ms.saturating_add(FEVER_QUIET_MS)
    }
}

/// A quarantine stage an agent can be in (spec §37.8.2). Stages 4
/// (elimination) and 5 (healing) are not states an agent stays in: the kernel
/// logs both in one record ([`crate::DeltaOp::Eliminate`]), after which the
/// agent is normal again and only a fresh token serves it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// No restriction.
    #[default]
    Normal,
    /// Stage 1: watched and logged, no restriction.
    Observation,
    /// Stage 2: outbound effects refused (`IMM-STAGE-2`); reads and internal
    /// work go on.
    SoftIsolation,
    /// Stage 3: everything refused (`IMM-STAGE-3`) until the operator releases it.
    HardIsolation,
}

impl Stage {
    /// 0–3.
    #[must_use]
    pub const fn number(self) -> u8 {
        match self {
            Self::Normal => 0,
            Self::Observation => 1,
            Self::SoftIsolation => 2,
            Self::HardIsolation => 3,
        }
    }

    /// The stage's name in the spec's words.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Observation => "observation",
            Self::SoftIsolation => "soft isolation",
            Self::HardIsolation => "hard isolation",
        }
    }
}

/// The danger score at which stages 1, 2 and 3 begin (spec §49.12: 10, 30,
/// 60; lower in Isolated).
#[must_use]
pub const fn thresholds(profile: Profile) -> [u32; 3] {
    match profile {
        Profile::Standard | Profile::Hardened => [10, 30, 60],
        Profile::Isolated => [5, 15, 30],
    }
}

/// The weight of a deny as a danger signal. Only codes that show what the
/// agent tried count; a code that can also mean a fault of the node (a
/// configuration hash mismatch under Rule 1, a broken chain under Rule 3, an
/// unconfirmed gateway under Rule 9, health under Rules 5–8, 10, 11) or of
/// the agent's own bookkeeping (expiry, rate, budget) weighs nothing.
#[must_use]
pub const fn weight(code: DenyCode) -> u32 {
    match code {
        // An injected value, an injection in the arguments, keys asked for,
        // a more trusted ring asked for.
        DenyCode::Provenance | DenyCode::Prefilter | DenyCode::Mr02 | DenyCode::Mr04 => 10,
        // Reaching above clearance or pushing data below its level.
        DenyCode::ReadUp | DenyCode::WriteDown | DenyCode::Taint => 5,
        DenyCode::Mac => 3,
        // Probing resources the token does not cover.
        DenyCode::Scope => 2,
        DenyCode::NoToken
        | DenyCode::Signature
        | DenyCode::Expired
        | DenyCode::Revoked
        | DenyCode::AgentMismatch
        | DenyCode::Rate
        | DenyCode::Ops
        | DenyCode::Budget
        | DenyCode::Mr01
        | DenyCode::Mr03
        | DenyCode::Mr05
        | DenyCode::Mr06
        | DenyCode::Mr07
        | DenyCode::Mr08
        | DenyCode::Mr09
        | DenyCode::Mr10
        | DenyCode::Mr11
        | DenyCode::Epoch
        | DenyCode::Bounds
        | DenyCode::Internal
        | DenyCode::Divergence
        | DenyCode::ImmStage2
        | DenyCode::ImmStage3 => 0,
    }
}

/// What a danger signal came from: a deny, or a behavioural deviation.
/// Serialized as its code, so standings logged before fingerprints existed
/// read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalCode {
    /// A deny of the agent's own verified request.
    Deny(DenyCode),
    /// A deviation of its behavioural fingerprint ([`crate::fingerprint`]).
    Fingerprint,
}

impl SignalCode {
    /// The code in logs and explanations.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Deny(code) => code.as_str(),
            Self::Fingerprint => "IMM-FINGERPRINT",
        }
    }
}

impl Serialize for SignalCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SignalCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text == Self::Fingerprint.as_str() {
            return Ok(Self::Fingerprint);
        }
        DenyCode::parse(&text).map(Self::Deny).ok_or_else(|| serde::de::Error::custom("unknown signal code"))
    }
}

/// One danger signal: a deny of the agent's own verified request, or a
/// deviation of its fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signal {
    /// The decision's time (logged).
    pub at_ms: u64,
    /// What it came from.
    pub code: SignalCode,
    /// Its weight when it was decided.
    pub weight: u32,
}

/// One agent's immune standing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Standing {
    /// The stage as last recorded; quiet time lowers it ([`Self::stage_at`]).
    pub stage: Stage,
    /// When `stage` was entered.
    pub since_ms: u64,
    /// Signals since the last release, oldest first.
    pub signals: Vec<Signal>,
    /// Reports by other agents since the last release, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reports: Vec<Report>,
    /// Stage 3 came from its behaviour alone (a 4σ deviation, or fingerprint
    /// signals adding up, with no deny of its own in the hour): a pause
    /// pending a human's review, which the kernel never turns into an
    /// elimination on its own and which does not demote it (no deny shows
    /// what the agent tried).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
}

impl Standing {
    /// The sum of the weights of the signals in the hour up to `now_ms`.
    #[must_use]
    pub fn score_at(&self, now_ms: u64) -> u32 {
        self.denied_at(now_ms).saturating_add(self.reported_at(now_ms))
    }

    /// What the agent's own denies add to the score at `now_ms`.
    fn denied_at(&self, now_ms: u64) -> u32 {
        self.signals
            .iter()
            .filter(|s| s.at_ms <= now_ms && now_ms - s.at_ms < SCORE_WINDOW_MS)
            .fold(0u32, |sum, s| sum.saturating_add(s.weight))
    }

    /// The stage the score at `at_ms` reaches. Stages 2 and 3 need the
    /// agent's own denies to reach their thresholds: reports can add up to
    /// observation, never to isolation (spec §49.12: severe action needs
    /// signal diversity), so colluding reporters and an honest agent's stray
    /// scope miss together cannot isolate it.
    fn reached(&self, at_ms: u64, thresholds: [u32; 3]) -> Stage {
        let by_denies = Self::stage_for(self.denied_at(at_ms), thresholds);
        let with_reports = Self::stage_for(self.score_at(at_ms), thresholds).min(Stage::Observation);
        by_denies.max(with_reports)
    }

    /// What the agent's own signals (denies and fingerprint; never reports)
    /// add up to in the [`FEVER_BURST_MS`] up to `now_ms`, counting only
    /// signals after `after_ms` (the commander's last end of a fever: the
    /// end holds against the evidence it was about): a fever's second
    /// trigger when it is more than twice the observation threshold.
    #[must_use]
    pub fn burst_at(&self, now_ms: u64, after_ms: Option<u64>) -> u32 {
        self.signals
            .iter()
            .filter(|s| s.at_ms <= now_ms && now_ms - s.at_ms < FEVER_BURST_MS)
            .filter(|s| after_ms.is_none_or(|e| s.at_ms > e))
            .fold(0u32, |sum, s| sum.saturating_add(s.weight))
    }

    /// What reports add to the score at `now_ms`.
    fn reported_at(&self, now_ms: u64) -> u32 {
        self.reports
            .iter()
            .filter(|r| r.at_ms <= now_ms && now_ms - r.at_ms < SCORE_WINDOW_MS)
            .fold(0u32, |sum, r| sum.saturating_add(r.weight))
    }

    /// When quiet time starts: the last deny signal, or entering the stage.
    /// A report does not restart it: a reporter cannot keep an agent in a
    /// stage by reporting it now and then.
    fn last_signal_ms(&self) -> u64 {
        self.signals.last().map_or(0, |s| s.at_ms).max(self.since_ms)
    }

    /// The stage at `now_ms` and when it was entered: stage 2 falls to 1
    /// after 60 quiet minutes, stage 1 to normal after 30; stage 3 stays.
    #[must_use]
    pub fn stage_at(&self, now_ms: u64) -> (Stage, u64) {
        let last = self.last_signal_ms();
        let quiet = now_ms.saturating_sub(last);
        let soft_ends = last.saturating_add(SOFT_ISOLATION_HOLD_MS);
        match self.stage {
            Stage::SoftIsolation if quiet >= SOFT_ISOLATION_HOLD_MS + OBSERVATION_HOLD_MS => {
                (Stage::Normal, soft_ends.saturating_add(OBSERVATION_HOLD_MS))
            }
            Stage::SoftIsolation if quiet >= SOFT_ISOLATION_HOLD_MS => (Stage::Observation, soft_ends),
            Stage::Observation if quiet >= OBSERVATION_HOLD_MS => {
                (Stage::Normal, last.saturating_add(OBSERVATION_HOLD_MS))
            }
            stage => (stage, self.since_ms),
        }
    }

    /// The stage a score reaches under `thresholds`.
    #[must_use]
    pub fn stage_for(score: u32, thresholds: [u32; 3]) -> Stage {
        match thresholds {
            [_, _, hard] if score >= hard => Stage::HardIsolation,
            [_, soft, _] if score >= soft => Stage::SoftIsolation,
            [watch, _, _] if score >= watch => Stage::Observation,
            _ => Stage::Normal,
        }
    }

    /// Folds one signal: the stage becomes the higher of the (decayed) stage
    /// and the one the new score reaches.
    pub(crate) fn signal(&mut self, signal: Signal, thresholds: [u32; 3]) {
        let (base, base_since) = self.stage_at(signal.at_ms);
        if self.signals.len() >= SIGNALS_PER_AGENT_MAX {
            self.signals.remove(0);
        }
        self.signals.push(signal);
        let stage = base.max(self.reached(signal.at_ms, thresholds));
        self.since_ms = if stage == base { base_since } else { signal.at_ms };
        self.stage = stage;
    }

    /// Folds one report by another agent. What reports add in an hour stops
    /// one short of the soft-isolation threshold, and they count toward
    /// observation only ([`Self::reached`]).
    pub(crate) fn report(&mut self, mut report: Report, thresholds: [u32; 3]) {
        let (base, base_since) = self.stage_at(report.at_ms);
        let cap = thresholds[1].saturating_sub(1);
        report.weight = report.weight.min(cap.saturating_sub(self.reported_at(report.at_ms)));
        if self.reports.len() >= REPORTS_PER_AGENT_MAX {
            self.reports.remove(0);
        }
        let (at, adds) = (report.at_ms, report.weight > 0);
        self.reports.push(report);
        // A report capped to nothing raises nothing (else a report every 30
        // minutes could hold an agent in observation).
        let stage = if adds { base.max(self.reached(at, thresholds)) } else { base };
        self.since_ms = if stage == base { base_since } else { at };
        self.stage = stage;
    }

    /// Apoptosis: the agent reported its own compromise; stage 3 at once.
    pub(crate) fn apoptosis(&mut self, at_ms: u64) {
        // A second report keeps the time stage 3 began.
        if self.stage != Stage::HardIsolation {
            self.stage = Stage::HardIsolation;
            self.since_ms = at_ms;
        }
        // Its own word is evidence enough: no longer only a pause.
        self.paused = false;
    }

    /// A 4σ deviation of the fingerprint at `at_ms`: stage 3, a pause
    /// pending a human's review when it is what put the agent in stage 3 and
    /// no deny of its own is on record (else an ordinary stage 3).
    pub(crate) fn pause(&mut self, at_ms: u64) {
        if self.stage_at(at_ms).0 != Stage::HardIsolation {
            self.stage = Stage::HardIsolation;
            self.since_ms = at_ms;
            // With denies of its own on record it is not behaviour alone.
            self.paused = !self.deny_evidence_at(at_ms);
        }
    }

    /// Whether a deny of the agent's own is among its signals of the hour up
    /// to `at_ms` (evidence of what it tried, beyond its behaviour).
    #[must_use]
    pub fn deny_evidence_at(&self, at_ms: u64) -> bool {
        self.signals
            .iter()
            .any(|s| matches!(s.code, SignalCode::Deny(_)) && s.at_ms <= at_ms && at_ms - s.at_ms < SCORE_WINDOW_MS)
    }

    /// A confirmed escalation to `stage` at `at_ms` (the operator's advance,
    /// or a contact of an eliminated agent put in observation): the higher
    /// of the decayed stage and `stage`; its quiet time starts now.
    pub(crate) fn advance(&mut self, stage: Stage, at_ms: u64) {
        let (base, base_since) = self.stage_at(at_ms);
        if stage > base {
            self.stage = stage;
            self.since_ms = at_ms;
        } else {
            self.stage = base;
            self.since_ms = base_since;
        }
    }

    /// The code of the last signal, for the agent's explanation.
    #[must_use]
    pub fn last_code(&self) -> Option<SignalCode> {
        self.signals.last().map(|s| s.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    fn signal(at_min: u64, code: DenyCode) -> Signal {
        Signal { at_ms: at_min * MIN, code: SignalCode::Deny(code), weight: weight(code) }
    }

    /// CT-IMM-01: weighted scores of 10, 30 and 60 enter stages 1, 2 and 3.
    #[test]
    fn ct_imm_01_scores_of_10_30_60_enter_stages_1_2_3() {
        let t = thresholds(Profile::Standard);
        let mut s = Standing::default();
        let mut stages = Vec::new();
        for minute in 0..6 {
            s.signal(signal(minute, DenyCode::Provenance), t);
            stages.push((s.score_at(minute * MIN), s.stage_at(minute * MIN).0));
        }
        assert_eq!(
            stages,
            [
                (10, Stage::Observation),
                (20, Stage::Observation),
                (30, Stage::SoftIsolation),
                (40, Stage::SoftIsolation),
                (50, Stage::SoftIsolation),
                (60, Stage::HardIsolation),
            ]
        );
        assert_eq!(s.stage_at(5 * MIN), (Stage::HardIsolation, 5 * MIN), "entered at the sixth signal");
        assert_eq!(s.stage_at(10_000 * MIN).0, Stage::HardIsolation, "stage 3 never decays");
    }

    /// Quiet time lowers a stage: soft isolation lasts 60 quiet minutes, then
    /// observation 30 more; the score counts the last hour only.
    #[test]
    fn quiet_time_lowers_stages_2_and_1() {
        let t = thresholds(Profile::Standard);
        let mut s = Standing::default();
        for minute in [0, 1, 2] {
            s.signal(signal(minute, DenyCode::Provenance), t);
        }
        assert_eq!(s.stage_at(2 * MIN), (Stage::SoftIsolation, 2 * MIN));
        assert_eq!(s.stage_at(61 * MIN).0, Stage::SoftIsolation);
        assert_eq!(s.stage_at(62 * MIN), (Stage::Observation, 62 * MIN));
        assert_eq!(s.stage_at(91 * MIN).0, Stage::Observation);
        assert_eq!(s.stage_at(92 * MIN), (Stage::Normal, 92 * MIN));
        assert_eq!(s.score_at(92 * MIN), 0, "the old signals left the window");
        // A new signal after the decay starts from where the agent is now.
        s.signal(signal(100, DenyCode::Scope), t);
        assert_eq!(s.stage_at(100 * MIN), (Stage::Normal, 92 * MIN));
        s.signal(signal(101, DenyCode::ReadUp), t);
        s.signal(signal(102, DenyCode::Scope), t);
        s.signal(signal(103, DenyCode::Scope), t);
        assert_eq!(s.score_at(103 * MIN), 11);
        assert_eq!(s.stage_at(103 * MIN), (Stage::Observation, 103 * MIN));
    }

    /// Signals that show no intent weigh nothing, and bounded signal lists
    /// drop the oldest.
    #[test]
    fn bookkeeping_denies_weigh_nothing_and_signals_are_bounded() {
        let t = thresholds(Profile::Standard);
        for code in [DenyCode::Rate, DenyCode::Budget, DenyCode::Expired, DenyCode::Internal, DenyCode::Mr03] {
            assert_eq!(weight(code), 0, "{code}");
        }
        let mut s = Standing::default();
        for i in 0..(SIGNALS_PER_AGENT_MAX as u64 + 10) {
            s.signal(Signal { at_ms: i, code: SignalCode::Deny(DenyCode::Scope), weight: 0 }, t);
        }
        assert_eq!(s.signals.len(), SIGNALS_PER_AGENT_MAX);
        assert_eq!(s.signals[0].at_ms, 10);
        assert_eq!(s.stage_at(100).0, Stage::Normal);
    }

    /// Reports by other agents add their class's weight, and reports alone
    /// stop one short of soft isolation in an hour, whoever and however many
    /// report (spec §49.12: severe action needs signal diversity); the
    /// agent's own denies take it further.
    #[test]
    fn reports_alone_never_reach_soft_isolation() {
        let t = thresholds(Profile::Standard);
        let mut s = Standing::default();
        for (i, reporter) in ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"].into_iter().enumerate() {
            let report = Report {
                at_ms: i as u64 * MIN,
                reporter: AgentId::new(reporter).unwrap(),
                class: AnomalyClass::SocialEngineering,
                weight: AnomalyClass::SocialEngineering.weight(),
            };
            s.report(report, t);
        }
        assert_eq!(s.score_at(9 * MIN), 29, "capped one short of 30");
        assert_eq!(s.stage_at(9 * MIN).0, Stage::Observation);
        assert_eq!(s.reports.iter().map(|r| r.weight).collect::<Vec<_>>(), [4, 4, 4, 4, 4, 4, 4, 1, 0, 0]);
        // A stray scope miss on top does not isolate either: isolation needs
        // the agent's own denies to reach 30.
        s.signal(signal(10, DenyCode::Scope), t);
        assert_eq!((s.score_at(10 * MIN), s.stage_at(10 * MIN).0), (31, Stage::Observation));
        for minute in 11..=13 {
            s.signal(signal(minute, DenyCode::Provenance), t);
        }
        assert_eq!(s.stage_at(13 * MIN).0, Stage::SoftIsolation, "32 from its own denies");
        // Reports do not restart the quiet time: 60 minutes after the last
        // deny the agent is back in observation, reports or not.
        let late = Report {
            at_ms: 70 * MIN,
            reporter: AgentId::new("a").unwrap(),
            class: AnomalyClass::SocialEngineering,
            weight: 4,
        };
        s.report(late, t);
        assert_eq!(s.stage_at(73 * MIN).0, Stage::Observation);
        // Two hours on, everything has left the window.
        assert_eq!(s.score_at(140 * MIN), 0);
        assert_eq!(AnomalyClass::parse("social_engineering"), Some(AnomalyClass::SocialEngineering));
        assert!(AnomalyClass::ALL.iter().all(|c| AnomalyClass::parse(c.name()) == Some(*c) && c.weight() <= 4));
    }

    /// A report capped to nothing raises nothing: once observation has
    /// lapsed, a reporter cannot put the agent back in it with reports the
    /// hourly cap has already used up. A second apoptosis keeps the time
    /// stage 3 began.
    #[test]
    fn a_report_that_adds_nothing_raises_nothing_and_apoptosis_keeps_its_start() {
        let t = thresholds(Profile::Standard);
        let report = |minute: u64| Report {
            at_ms: minute * MIN,
            reporter: AgentId::new("peer").unwrap(),
            class: AnomalyClass::SocialEngineering,
            weight: AnomalyClass::SocialEngineering.weight(),
        };
        let mut s = Standing::default();
        for minute in 0..8 {
            s.report(report(minute), t);
        }
        assert_eq!(s.stage_at(7 * MIN), (Stage::Observation, 2 * MIN), "12 at the third report");
        assert_eq!(s.stage_at(32 * MIN).0, Stage::Normal, "30 quiet minutes after entering");
        s.report(report(33), t);
        assert_eq!(s.reports.last().map(|r| r.weight), Some(0), "the hour's cap is used up");
        assert_eq!(s.stage_at(33 * MIN).0, Stage::Normal);
        s.apoptosis(40 * MIN);
        s.apoptosis(50 * MIN);
        assert_eq!(s.stage_at(50 * MIN), (Stage::HardIsolation, 40 * MIN));
    }

    /// A confirmed escalation raises the stage, never lowers it, and its
    /// quiet time starts when it was confirmed.
    #[test]
    fn advance_raises_never_lowers_and_restarts_quiet_time() {
        let t = thresholds(Profile::Standard);
        let mut s = Standing::default();
        s.advance(Stage::Observation, 0);
        assert_eq!(s.stage_at(0), (Stage::Observation, 0));
        s.advance(Stage::SoftIsolation, 10 * MIN);
        assert_eq!(s.stage_at(69 * MIN), (Stage::SoftIsolation, 10 * MIN));
        assert_eq!(s.stage_at(70 * MIN).0, Stage::Observation, "60 quiet minutes after the advance");
        s.signal(signal(71, DenyCode::Provenance), t);
        s.advance(Stage::Observation, 72 * MIN);
        assert_eq!(s.stage_at(72 * MIN), (Stage::Observation, 70 * MIN), "kept, not restarted");
        s.advance(Stage::HardIsolation, 80 * MIN);
        s.advance(Stage::SoftIsolation, 90 * MIN);
        assert_eq!(s.stage_at(10_000 * MIN), (Stage::HardIsolation, 80 * MIN));
    }

    #[test]
    fn isolated_thresholds_are_lower() {
        let mut s = Standing::default();
        s.signal(signal(0, DenyCode::ReadUp), thresholds(Profile::Isolated));
        assert_eq!(s.stage_at(0).0, Stage::Observation);
        s.signal(signal(1, DenyCode::Provenance), thresholds(Profile::Isolated));
        assert_eq!(s.stage_at(MIN).0, Stage::SoftIsolation);
    }
}
