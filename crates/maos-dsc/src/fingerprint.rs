//! Behavioural fingerprints (spec §41.2, §33.8.7; issue #14 item 7): what an
//! agent usually does in five minutes, and how far the present departs from it.
//!
//! Guarantees:
//! - A pure fold over logged samples (each decision of the agent's own
//!   verified request carries one, with its logged time): integer arithmetic
//!   only (sums, sums of squares, exact comparisons of squares), so
//!   `maos audit replay` reproduces every deviation bit for bit.
//! - Bounded per agent: [`TOOLS_MAX`] tools, [`DAYS_KEPT`] daily sums,
//!   [`ALERTS_KEPT`] alerts; values are clamped to [`VALUE_MAX`] so no sum
//!   can overflow.
//! - Dual baseline: the **fixed** one is the agent's first
//!   [`FIXED_WINDOWS`] active windows and never adapts; the **adaptive** one
//!   is the last seven days. The σ ladder judges against the adaptive one
//!   (1σ logged, 2σ alert, 3σ danger signal, 4σ pause); a drift of the
//!   adaptive mean more than [`DRIFT_PERCENT`] % from the fixed one is a
//!   Gradual Drift Alert, which slow poisoning of the adaptive baseline
//!   cannot hide.
//! - Only the direction that can mean compromise counts: more calls, denies,
//!   bytes and new recipients, faster calls. An idle window is not a window
//!   (a session that ends early says nothing), so fewer calls never alert.

use serde::{Deserialize, Serialize};

/// One window of behaviour.
pub const WINDOW_MS: u64 = 5 * 60_000;
const DAY_MS: u64 = 24 * 60 * 60_000;
/// Days in the adaptive baseline.
pub const ADAPTIVE_DAYS: u64 = 7;
/// Daily sums kept: the adaptive baseline's seven days and today.
pub const DAYS_KEPT: usize = 8;
/// Active windows in the fixed baseline (24 hours of activity).
pub const FIXED_WINDOWS: u32 = 288;
/// Windows a baseline needs before anything is judged against it (one hour
/// of activity).
pub const MIN_WINDOWS: u32 = 12;
/// Tools measured one by one: the first ones the agent uses while its fixed
/// baseline is open. Later tools count in `calls` only.
pub const TOOLS_MAX: usize = 8;
/// Longest tool name kept, in bytes.
pub const TOOL_BYTES_MAX: usize = 128;
/// Agents fingerprinted on one node; past it a new agent is not (and
/// `maos agents` says so).
pub const FINGERPRINTS_MAX: usize = 10_000;
/// A Gradual Drift Alert: the adaptive mean this far from the fixed one.
pub const DRIFT_PERCENT: u64 = 15;
/// Alerts (2σ and more, and drifts) kept per agent for `maos agents`.
pub const ALERTS_KEPT: usize = 8;
/// The largest value one window counts; more is counted as this.
pub const VALUE_MAX: u64 = 1 << 40;
/// Calls a window needs before its inter-call gap means anything.
const GAP_CALLS_MIN: u64 = 3;
/// The danger signal of a 3σ deviation (the Security Agent's evaluation is
/// not built; the signal puts the agent in observation).
pub const SIGNAL_3_SIGMA: u32 = 10;
/// The low-priority danger signal of an output rate 2σ above the baseline
/// sustained over a whole window (CT-IMM-13).
pub const SIGNAL_OUTPUT_RATE: u32 = 2;

/// What a fingerprint measures per window.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Requests decided.
    Calls,
    /// Requests denied.
    Denies,
    /// Bytes of argument text: what the agent produced (the nearest MAOS
    /// sees to its token generation rate).
    OutputBytes,
    /// Bytes of argument text that left the node with allowed external effects.
    EgressBytes,
    /// Mail recipients the agent had not mailed before.
    NewRecipients,
    /// Mean time between calls, in milliseconds.
    GapMs,
    /// Requests for one tool (action).
    Tool(String),
}

const BASE: [Metric; 6] =
    [Metric::Calls, Metric::Denies, Metric::OutputBytes, Metric::EgressBytes, Metric::NewRecipients, Metric::GapMs];

impl Metric {
    /// The metric's name in reports.
    #[must_use]
    pub fn name(&self) -> String {
        match self {
            Self::Calls => "calls".into(),
            Self::Denies => "denies".into(),
            Self::OutputBytes => "output_bytes".into(),
            Self::EgressBytes => "egress_bytes".into(),
            Self::NewRecipients => "new_recipients".into(),
            Self::GapMs => "gap_ms".into(),
            Self::Tool(t) => format!("tool:{t}"),
        }
    }

    /// The smallest σ a baseline is judged with: an absolute floor (a
    /// baseline that never varied would make any change infinite sigmas) and
    /// a share of the mean (a quarter; half for the gap, which is noisy, so
    /// that faster calls at most alert). As (absolute, divisor of the mean).
    const fn floor(&self) -> (u64, u64) {
        match self {
            // Five calls: an agent's calls come in bursts (an honest agent
            // at about five calls a window had 17 in one in the population
            // simulation: 4σ with a floor of 3).
            Self::Calls | Self::Tool(_) => (5, 4),
            Self::Denies | Self::NewRecipients => (2, 4),
            Self::OutputBytes | Self::EgressBytes => (1024, 4),
            Self::GapMs => (1_000, 2),
        }
    }

    /// Whether more is the suspicious direction (for the gap, less is).
    const fn up(&self) -> bool {
        !matches!(self, Self::GapMs)
    }
}

/// What one decision adds to its agent's fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// The action.
    pub tool: String,
    /// Whether it was denied.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub denied: bool,
    /// Bytes of its argument text.
    pub output_bytes: u64,
    /// Of them, bytes that left the node (an allowed external effect).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub egress_bytes: u64,
    /// Recipients it mailed for the first time.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub new_recipients: u64,
}

const fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Count, sum and sum of squares of one metric's window values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moments {
    /// Windows.
    pub n: u32,
    /// Sum of values.
    pub sum: u64,
    /// Sum of squared values (as decimal text in JSON: it can exceed what a
    /// JSON number carries).
    #[serde(with = "u128_text")]
    pub sum_sq: u128,
}

/// A `u128` as decimal text (`serde_json::Value` refuses numbers above `u64::MAX`).
mod u128_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(value: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&value.to_string())
    }

    /// Text, or a number (as the first fingerprints were written).
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Number(u64),
        Text(String),
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        match Either::deserialize(d)? {
            Either::Number(n) => Ok(u128::from(n)),
            Either::Text(text) => text.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl Moments {
    fn add(&mut self, x: u64) {
        let x = x.min(VALUE_MAX);
        self.n = self.n.saturating_add(1);
        self.sum = self.sum.saturating_add(x);
        self.sum_sq = self.sum_sq.saturating_add(u128::from(x) * u128::from(x));
    }

    fn merge(&mut self, other: &Self) {
        self.n = self.n.saturating_add(other.n);
        self.sum = self.sum.saturating_add(other.sum);
        self.sum_sq = self.sum_sq.saturating_add(other.sum_sq);
    }

    /// n²·σ² with σ at least the metric's floor.
    fn spread_n2(&self, metric: &Metric) -> u128 {
        let (n, sum) = (u128::from(self.n), u128::from(self.sum));
        let var = n.saturating_mul(self.sum_sq).saturating_sub(sum.saturating_mul(sum));
        let (abs, div) = metric.floor();
        let abs = n.saturating_mul(u128::from(abs));
        let rel = sum / u128::from(div);
        var.max(abs.saturating_mul(abs)).max(rel.saturating_mul(rel))
    }

    /// How many σ (0–4) `x` lies from the mean in the metric's suspicious
    /// direction; 0 below [`MIN_WINDOWS`]. Exact: |x·n − sum|² ≥ k²·n²σ².
    fn sigmas(&self, metric: &Metric, x: u64) -> u8 {
        if self.n < MIN_WINDOWS {
            return 0;
        }
        let scaled = u128::from(x.min(VALUE_MAX)) * u128::from(self.n);
        let sum = u128::from(self.sum);
        let dev = if metric.up() { scaled.saturating_sub(sum) } else { sum.saturating_sub(scaled) };
        if dev == 0 {
            return 0;
        }
        let (d2, v) = (dev.saturating_mul(dev), self.spread_n2(metric));
        (1..=4u8).rev().find(|k| d2 >= u128::from(*k * *k).saturating_mul(v)).unwrap_or(0)
    }

    /// The mean, in thousandths.
    #[must_use]
    pub fn mean_milli(&self) -> u64 {
        if self.n == 0 { 0 } else { self.sum.saturating_mul(1000) / u64::from(self.n) }
    }

    /// σ as judged (the floor included), in thousandths.
    fn sd_milli(&self, metric: &Metric) -> u64 {
        if self.n == 0 {
            return 0;
        }
        let nsd = self.spread_n2(metric).isqrt();
        u64::try_from(nsd.saturating_mul(1000) / u128::from(self.n)).unwrap_or(u64::MAX)
    }
}

/// What the fold found when a decision was folded: logged in the decision's
/// delta, so the log says what was found and replay checks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Finding {
    /// A window value `sigma` σ from the adaptive baseline in the suspicious
    /// direction.
    Deviation {
        /// What.
        metric: Metric,
        /// 1–4.
        sigma: u8,
        /// The window's value.
        value: u64,
        /// The baseline's mean and σ (floor included), in thousandths.
        mean_milli: u64,
        /// See `mean_milli`.
        sd_milli: u64,
        /// Judged over the whole, closed window (else: the open window so far).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        closed: bool,
    },
    /// The adaptive mean left (or came back within) [`DRIFT_PERCENT`] % of
    /// the fixed mean: a Gradual Drift Alert (CT-IMM-14).
    Drift {
        /// What.
        metric: Metric,
        /// Fixed and adaptive means, in thousandths.
        fixed_mean_milli: u64,
        /// See `fixed_mean_milli`.
        adaptive_mean_milli: u64,
        /// Whether it drifts now (false: it came back).
        drifting: bool,
    },
}

impl Finding {
    /// Whether it is an alert (2σ and more, or a drift) rather than a log line.
    #[must_use]
    pub fn is_alert(&self) -> bool {
        match self {
            Self::Deviation { sigma, .. } => *sigma >= 2,
            Self::Drift { drifting, .. } => *drifting,
        }
    }
}

/// An alert kept for `maos agents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// When (logged time).
    pub at_ms: u64,
    /// What.
    pub finding: Finding,
}

/// What the findings of one decision set off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// A danger signal of this weight (0: none).
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub signal: u32,
    /// A 4σ deviation: hard isolation pending a human's review.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pause: bool,
    /// The signal came from the open window (it spends that window's one
    /// signal); else from the window this decision closed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub live: bool,
}

impl Response {
    /// Neither a signal nor a pause.
    #[must_use]
    pub const fn is_none(&self) -> bool {
        self.signal == 0 && !self.pause
    }
}

const fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

/// The open window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Window {
    index: u64,
    first_ms: u64,
    last_ms: u64,
    /// Per metric (in [`Fingerprint::metrics`] order), the gap's slot unused.
    values: Vec<u64>,
    /// The highest σ already found per metric in this window.
    found: Vec<u8>,
    /// A danger signal came from this window already: one per window (a
    /// pause is never held back).
    responded: bool,
}

/// One day's sums per metric.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Day {
    day: u64,
    moments: Vec<Moments>,
}

/// One agent's behavioural fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// The six base metrics, then the tools learned (at most [`TOOLS_MAX`]).
    metrics: Vec<Metric>,
    fixed: Vec<Moments>,
    fixed_windows: u32,
    days: Vec<Day>,
    window: Option<Window>,
    drifting: Vec<Metric>,
    alerts: Vec<Alert>,
}

impl Default for Fingerprint {
    fn default() -> Self {
        Self {
            metrics: BASE.to_vec(),
            fixed: vec![Moments::default(); BASE.len()],
            fixed_windows: 0,
            days: Vec::new(),
            window: None,
            drifting: Vec::new(),
            alerts: Vec::new(),
        }
    }
}

/// The summary `maos agents` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Windows in the fixed baseline (complete at [`FIXED_WINDOWS`]).
    pub fixed_windows: u32,
    /// Windows in the adaptive baseline now.
    pub adaptive_windows: u32,
    /// Mean calls per window in the adaptive baseline, in thousandths.
    pub calls_mean_milli: u64,
    /// Tools measured one by one.
    pub tools: Vec<String>,
    /// Metrics drifting from the fixed baseline.
    pub drifting: Vec<String>,
    /// The last alerts, oldest first.
    pub alerts: Vec<Alert>,
}

impl Fingerprint {
    fn slot(&self, metric: &Metric) -> Option<usize> {
        self.metrics.iter().position(|m| m == metric)
    }

    /// The adaptive baseline at `at_ms`: the sums of the seven days before
    /// today and today's closed windows.
    fn adaptive(&self, at_ms: u64) -> Vec<Moments> {
        let today = at_ms / DAY_MS;
        let mut sums = vec![Moments::default(); self.metrics.len()];
        for day in self.days.iter().filter(|d| d.day + ADAPTIVE_DAYS >= today) {
            for (sum, m) in sums.iter_mut().zip(&day.moments) {
                sum.merge(m);
            }
        }
        sums
    }

    /// The value of slot `i` in a window (the gap is computed; `None` when
    /// the window has too few calls for one).
    fn value(&self, w: &Window, i: usize) -> Option<u64> {
        if self.metrics.get(i) == Some(&Metric::GapMs) {
            let calls = w.values.first().copied().unwrap_or(0);
            return (calls >= GAP_CALLS_MIN).then(|| w.last_ms.saturating_sub(w.first_ms) / (calls - 1));
        }
        w.values.get(i).copied()
    }

    /// What folding `sample` at `at_ms` finds, and what that sets off.
    /// The DSC calls it while deciding; [`Self::fold`] then takes the
    /// findings from the logged delta.
    #[must_use]
    pub fn judge(&self, sample: &Sample, at_ms: u64) -> (Vec<Finding>, Response) {
        let index = at_ms / WINDOW_MS;
        let baseline = self.adaptive(at_ms);
        let mut findings = Vec::new();
        let (mut pause, mut closed_signal, mut live_signal) = (false, 0u32, 0u32);
        let open = self.window.as_ref().filter(|w| w.index == index);
        if let Some(closed) = self.window.as_ref().filter(|w| w.index < index) {
            for (i, metric) in self.metrics.iter().enumerate() {
                let (Some(x), Some(base)) = (self.value(closed, i), baseline.get(i)) else { continue };
                let sigma = base.sigmas(metric, x);
                let before = closed.found.get(i).copied().unwrap_or(0);
                // Sustained over the whole window (CT-IMM-13).
                let sustained = *metric == Metric::OutputBytes && sigma >= 2;
                if sigma >= 4 && sigma > before {
                    pause = true;
                } else if sigma == 3 && sigma > before && !closed.responded {
                    closed_signal = closed_signal.max(SIGNAL_3_SIGMA);
                } else if sustained && !closed.responded {
                    closed_signal = closed_signal.max(SIGNAL_OUTPUT_RATE);
                }
                // What the open window already reported is not reported again.
                if sigma > before || sustained {
                    findings.push(deviation(metric, sigma, x, base, true));
                }
            }
            self.drift(&baseline, &mut findings);
        }
        // The open window with this sample: only what can only grow
        // (counts), so that a burst is caught before its window ends.
        let mut next = open.cloned().unwrap_or_else(|| self.empty_window(index, at_ms));
        self.add(&mut next, sample, at_ms);
        for (i, metric) in self.metrics.iter().enumerate() {
            if *metric == Metric::GapMs {
                continue;
            }
            let (Some(x), Some(base)) = (self.value(&next, i), baseline.get(i)) else { continue };
            let sigma = base.sigmas(metric, x);
            if sigma > next.found.get(i).copied().unwrap_or(0) {
                if sigma >= 4 {
                    pause = true;
                } else if sigma == 3 && !next.responded {
                    live_signal = SIGNAL_3_SIGMA;
                }
                findings.push(deviation(metric, sigma, x, base, false));
            }
        }
        let response = if pause {
            Response { signal: 0, pause: true, live: false }
        } else {
            Response { signal: closed_signal.max(live_signal), pause: false, live: live_signal > 0 }
        };
        (findings, response)
    }

    /// Drift of the adaptive baseline from the fixed one, once the fixed one
    /// is complete: reported when a metric starts or stops drifting.
    fn drift(&self, adaptive: &[Moments], findings: &mut Vec<Finding>) {
        if self.fixed_windows < FIXED_WINDOWS {
            return;
        }
        for (i, metric) in self.metrics.iter().enumerate() {
            let (Some(f), Some(a)) = (self.fixed.get(i), adaptive.get(i)) else { continue };
            if f.n < MIN_WINDOWS || a.n < MIN_WINDOWS {
                continue;
            }
            // |a.sum/a.n − f.sum/f.n| · 100 > 15 · f.sum/f.n, multiplied out;
            // from a fixed mean of 0 (no egress, no new recipients on the
            // first day), an adaptive mean above the metric's σ floor.
            let (an, fsum) = (u128::from(a.n), u128::from(f.sum));
            let (lhs_a, lhs_f) = (u128::from(a.sum).saturating_mul(u128::from(f.n)), fsum.saturating_mul(an));
            let drifting = if f.sum == 0 {
                u128::from(a.sum) > u128::from(metric.floor().0).saturating_mul(an)
            } else {
                lhs_a.abs_diff(lhs_f).saturating_mul(100) > u128::from(DRIFT_PERCENT).saturating_mul(lhs_f)
            };
            if drifting != self.drifting.contains(metric) {
                findings.push(Finding::Drift {
                    metric: metric.clone(),
                    fixed_mean_milli: f.mean_milli(),
                    adaptive_mean_milli: a.mean_milli(),
                    drifting,
                });
            }
        }
    }

    fn empty_window(&self, index: u64, at_ms: u64) -> Window {
        let slots = self.metrics.len();
        Window {
            index,
            first_ms: at_ms,
            last_ms: at_ms,
            values: vec![0; slots],
            found: vec![0; slots],
            responded: false,
        }
    }

    /// Adds `sample` to window `w` (a tool not measured counts in calls only).
    fn add(&self, w: &mut Window, sample: &Sample, at_ms: u64) {
        w.last_ms = w.last_ms.max(at_ms);
        let mut bump = |metric: &Metric, by: u64| {
            if let Some(v) = self.slot(metric).and_then(|i| w.values.get_mut(i)) {
                *v = v.saturating_add(by).min(VALUE_MAX);
            }
        };
        bump(&Metric::Calls, 1);
        bump(&Metric::Denies, u64::from(sample.denied));
        bump(&Metric::OutputBytes, sample.output_bytes);
        bump(&Metric::EgressBytes, sample.egress_bytes);
        bump(&Metric::NewRecipients, sample.new_recipients);
        bump(&Metric::Tool(sample.tool.clone()), 1);
    }

    /// Folds one logged sample with what was found when it was decided.
    pub fn fold(&mut self, sample: &Sample, at_ms: u64, findings: &[Finding], response: Response) {
        let index = at_ms / WINDOW_MS;
        if let Some(closed) = self.window.take_if(|w| w.index < index) {
            self.learn(&closed);
        }
        // A new tool is measured from now on while the fixed baseline is open.
        let tool = Metric::Tool(maos_model::prefix_within(&sample.tool, TOOL_BYTES_MAX).to_owned());
        if self.fixed_windows < FIXED_WINDOWS
            && self.slot(&tool).is_none()
            && self.metrics.len() < BASE.len() + TOOLS_MAX
        {
            self.metrics.push(tool);
            self.fixed.push(Moments::default());
            if let Some(w) = self.window.as_mut() {
                w.values.push(0);
                w.found.push(0);
            }
        }
        let mut window = self.window.take().unwrap_or_else(|| self.empty_window(index, at_ms));
        let clipped =
            Sample { tool: maos_model::prefix_within(&sample.tool, TOOL_BYTES_MAX).to_owned(), ..sample.clone() };
        self.add(&mut window, &clipped, at_ms);
        for finding in findings {
            match finding {
                Finding::Deviation { metric, sigma, closed: false, .. } => {
                    if let Some(f) = self.slot(metric).and_then(|i| window.found.get_mut(i)) {
                        *f = (*f).max(*sigma);
                    }
                }
                Finding::Deviation { closed: true, .. } => {}
                Finding::Drift { metric, drifting, .. } => {
                    self.drifting.retain(|m| m != metric);
                    if *drifting {
                        self.drifting.push(metric.clone());
                    }
                }
            }
            if finding.is_alert() {
                if self.alerts.len() >= ALERTS_KEPT {
                    self.alerts.remove(0);
                }
                self.alerts.push(Alert { at_ms, finding: finding.clone() });
            }
        }
        window.responded |= response.live && response.signal > 0;
        self.window = Some(window);
    }

    /// A closed window joins the baselines: the fixed one while it is open,
    /// the day's sums always (days older than the adaptive baseline fall out).
    fn learn(&mut self, w: &Window) {
        let day = w.index * WINDOW_MS / DAY_MS;
        let values: Vec<Option<u64>> = (0..self.metrics.len()).map(|i| self.value(w, i)).collect();
        if self.fixed_windows < FIXED_WINDOWS {
            self.fixed_windows += 1;
            for (m, x) in self.fixed.iter_mut().zip(&values) {
                if let Some(x) = x {
                    m.add(*x);
                }
            }
        }
        self.days.retain(|d| d.day + ADAPTIVE_DAYS >= day);
        if self.days.last().is_none_or(|d| d.day != day) {
            if self.days.len() >= DAYS_KEPT {
                self.days.remove(0);
            }
            self.days.push(Day { day, moments: Vec::new() });
        }
        let slots = self.metrics.len();
        if let Some(today) = self.days.last_mut() {
            today.moments.resize(slots, Moments::default());
            for (m, x) in today.moments.iter_mut().zip(&values) {
                if let Some(x) = x {
                    m.add(*x);
                }
            }
        }
    }

    /// Drops the open window unlearned (a release: what the operator
    /// reviewed is neither judged again nor learned).
    pub fn forget_window(&mut self) {
        self.window = None;
    }

    /// When it last saw the agent act (0: never).
    #[must_use]
    pub fn last_ms(&self) -> u64 {
        let day_end = self.days.last().map_or(0, |d| d.day.saturating_add(1).saturating_mul(DAY_MS));
        self.window.as_ref().map_or(day_end, |w| w.last_ms)
    }

    /// What `maos agents` shows, at `now_ms`.
    #[must_use]
    pub fn summary(&self, now_ms: u64) -> Summary {
        let adaptive = self.adaptive(now_ms);
        let calls = adaptive.first().copied().unwrap_or_default();
        Summary {
            fixed_windows: self.fixed_windows,
            adaptive_windows: calls.n,
            calls_mean_milli: calls.mean_milli(),
            tools: self.metrics.iter().skip(BASE.len()).map(|m| m.name()).collect(),
            drifting: self.drifting.iter().map(Metric::name).collect(),
            alerts: self.alerts.clone(),
        }
    }
}

fn deviation(metric: &Metric, sigma: u8, value: u64, base: &Moments, closed: bool) -> Finding {
    Finding::Deviation {
        metric: metric.clone(),
        sigma,
        value,
        mean_milli: base.mean_milli(),
        sd_milli: base.sd_milli(metric),
        closed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(values: &[u64]) -> Moments {
        let mut m = Moments::default();
        for v in values {
            m.add(*v);
        }
        m
    }

    /// σ counts are exact at their boundaries, floored, and one-sided.
    #[test]
    fn sigmas_are_exact_floored_and_one_sided() {
        // Mean 20, σ 10 (above the floor of max(5, 20/4)).
        let m = moments(&[10, 30, 10, 30, 10, 30, 10, 30, 10, 30, 10, 30]);
        let got: Vec<u8> = [20, 29, 30, 39, 40, 50, 60, 1_000].iter().map(|x| m.sigmas(&Metric::Calls, *x)).collect();
        assert_eq!(got, [0, 0, 1, 1, 2, 3, 4, 4]);
        assert_eq!(m.sigmas(&Metric::Calls, 0), 0, "fewer calls never count");
        // A baseline that never varied is judged with the floor: 5 calls.
        let flat = moments(&[4; 12]);
        assert_eq!(flat.sigmas(&Metric::Calls, 24), 4);
        assert_eq!(flat.sigmas(&Metric::Calls, 23), 3);
        // The gap counts downward only, and its floor (half the mean) keeps it at 2σ at most.
        let gaps = moments(&[10_000; 12]);
        assert_eq!(gaps.sigmas(&Metric::GapMs, 0), 2);
        assert_eq!(gaps.sigmas(&Metric::GapMs, 60_000), 0);
        // Too few windows: nothing is judged.
        assert_eq!(moments(&[1; 11]).sigmas(&Metric::Calls, 1_000_000), 0);
        assert_eq!((m.mean_milli(), m.sd_milli(&Metric::Calls)), (20_000, 10_000));
    }

    /// Sums of squares past `u64::MAX` survive JSON (the state snapshot
    /// goes through `serde_json::Value`, which refuses such numbers).
    #[test]
    fn a_huge_sum_of_squares_round_trips_through_json() {
        let mut fp = Fingerprint::default();
        let s = Sample { tool: "t".into(), denied: false, output_bytes: VALUE_MAX, egress_bytes: 0, new_recipients: 0 };
        for k in 0..3u64 {
            fp.fold(&s, k * WINDOW_MS, &[], Response::default());
        }
        assert!(fp.fixed[2].sum_sq > u128::from(u64::MAX));
        let value = serde_json::to_value(&fp).unwrap();
        assert_eq!(serde_json::from_value::<Fingerprint>(value).unwrap(), fp);
    }

    /// A signal from the window a decision closes does not spend the next
    /// window's one signal; a metric with a fixed mean of 0 drifts once its
    /// adaptive mean passes the floor.
    #[test]
    fn a_closing_signal_leaves_the_next_window_its_own_and_drift_from_zero() {
        let mut fp = Fingerprint::default();
        let quiet = |bytes: u64| Sample {
            tool: "t".into(),
            denied: false,
            output_bytes: bytes,
            egress_bytes: 0,
            new_recipients: 0,
        };
        for k in 0..12u64 {
            let b = if k % 2 == 0 { 4_000 } else { 6_000 };
            fp.fold(&quiet(b), k * WINDOW_MS, &[], Response::default());
        }
        // Window 12: 8,000 bytes (2σ sustained: a closing signal of 2).
        fp.fold(&quiet(8_000), 12 * WINDOW_MS, &[], Response::default());
        let (findings, r) = fp.judge(&quiet(0), 13 * WINDOW_MS);
        assert_eq!((r.signal, r.live), (SIGNAL_OUTPUT_RATE, false));
        fp.fold(&quiet(0), 13 * WINDOW_MS, &findings, r);
        // Window 13 still has its own signal: calls 3σ (floor 5: 16 calls).
        let mut signals = 0;
        for i in 1..16u64 {
            let (f, r) = fp.judge(&quiet(0), 13 * WINDOW_MS + i);
            signals += u32::from(r.signal == SIGNAL_3_SIGMA && r.live);
            fp.fold(&quiet(0), 13 * WINDOW_MS + i, &f, r);
        }
        assert_eq!(signals, 1);
        // Drift from zero: egress 0 in the fixed baseline, then above the floor.
        let mut fp = Fingerprint::default();
        let out = |egress: u64| Sample {
            tool: "t".into(),
            denied: false,
            output_bytes: egress,
            egress_bytes: egress,
            new_recipients: 0,
        };
        for k in 0..u64::from(FIXED_WINDOWS) {
            fp.fold(&out(0), k * WINDOW_MS, &[], Response::default());
        }
        let mut drifted = false;
        for k in 0..400u64 {
            let at = (u64::from(FIXED_WINDOWS) + k) * WINDOW_MS + 8 * DAY_MS;
            let (f, r) = fp.judge(&out(2_000), at);
            drifted |=
                f.iter().any(|f| matches!(f, Finding::Drift { metric: Metric::EgressBytes, drifting: true, .. }));
            fp.fold(&out(2_000), at, &f, r);
        }
        assert!(drifted, "egress from nothing to 2,000 bytes a window drifts");
    }

    /// Values past the clamp cannot overflow the sums or the comparison.
    #[test]
    fn huge_values_are_clamped() {
        let mut m = moments(&[u64::MAX; 2_304]);
        assert_eq!(m.sum, VALUE_MAX * 2_304);
        assert_eq!(m.sigmas(&Metric::OutputBytes, u64::MAX), 0, "at the mean");
        m.merge(&moments(&[0; 12]));
        assert_eq!(m.sigmas(&Metric::OutputBytes, 0), 0);
        assert!(m.sigmas(&Metric::GapMs, 0) <= 4);
    }

    /// Judging and folding agree with the windows: a closed window is judged
    /// whole when the next one opens, then learned; at most one signal per
    /// window, a pause always; tools beyond the bound count in calls only.
    #[test]
    fn judge_and_fold_follow_the_windows() {
        let mut fp = Fingerprint::default();
        let sample = |tool: &str| Sample {
            tool: tool.into(),
            denied: false,
            output_bytes: 10,
            egress_bytes: 0,
            new_recipients: 0,
        };
        for k in 0..12u64 {
            for i in 0..4u64 {
                let at = k * WINDOW_MS + i;
                let s = sample(&format!("tool-{}", (k * 4 + i) % 12));
                let (findings, response) = fp.judge(&s, at);
                assert!(findings.is_empty() && response == Response::default());
                fp.fold(&s, at, &findings, response);
            }
        }
        assert_eq!(fp.metrics.len(), BASE.len() + TOOLS_MAX, "at most {TOOLS_MAX} tools");
        let summary = fp.summary(12 * WINDOW_MS);
        assert_eq!((summary.fixed_windows, summary.adaptive_windows), (11, 11), "the 12th window is still open");
        let s = sample("tool-0");
        let (findings, response) = fp.judge(&s, 12 * WINDOW_MS);
        assert!(findings.is_empty(), "{findings:?}");
        fp.fold(&s, 12 * WINDOW_MS, &findings, response);
        // 12 windows of 4 calls learned: 4 + 20 more is 4σ (floor 5).
        let mut responses = Vec::new();
        for i in 1..24u64 {
            let (findings, response) = fp.judge(&s, 12 * WINDOW_MS + i);
            responses.push(response);
            fp.fold(&s, 12 * WINDOW_MS + i, &findings, response);
        }
        assert_eq!(responses.iter().filter(|r| r.signal > 0).count(), 1, "one signal in the window");
        // tool-0 (mean 1/3 a window) reaches 4σ at 21 calls, all calls at 24:
        // each is a pause (the DSC stops sampling a paused agent).
        let paused: Vec<usize> = responses.iter().enumerate().filter(|(_, r)| r.pause).map(|(i, _)| i + 2).collect();
        assert_eq!(paused, [21, 24]);
    }
}
