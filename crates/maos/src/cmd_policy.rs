//! `maos policy check|test`: the `opa test` habit for MAOS policies.
//!
//! A scenario (format: `docs/policy-scenarios.md`) names a profile, agents and
//! steps. The command mints real capability tokens for the agents with a
//! throwaway key, verifies them at each step's time (so check 1 runs for
//! real), feeds each step through a fresh DSC, applies the deltas of allowed
//! steps as a kernel would, and compares verdicts with the expectations.

use crate::output::{Output, coded};
use maos_crypto::SigningKey;
use maos_dsc::{CheckId, Decision, DscConfig, DscState, KernelHealth, Outcome, decide};
use maos_model::{
    AgentId, ArgValue, DenyCode, EffectClass, IfcLevel, Intent, IntentId, Profile, ReadLabel, Resource, ResourceKind,
    Ring, TrustClass, UnixMillis, Verdict,
};
use maos_token::{
    KeyRing, MintRequest, RevocationState, ScopeKind, TokenError, UnverifiedToken, default_scope_kind,
    parse_duration_ms, parse_permission, parse_rate_per_hour,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `maos policy …`.
#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Run one scenario through a fresh DSC and print every verdict and check.
    Check {
        /// The scenario file (JSON).
        scenario: PathBuf,
    },
    /// Run every `*.json` scenario in a directory; exit 1 on any unmet expectation.
    Test {
        /// Directory of scenario files.
        dir: PathBuf,
    },
}

/// Largest scenario file: scenarios are hand-written test fixtures.
const SCENARIO_BYTES_MAX: u64 = 4 * 1024 * 1024;
/// Steps per scenario.
const STEPS_MAX: usize = 10_000;
/// Agents per scenario.
const AGENTS_MAX: usize = 1_000;
/// Scenario files per directory.
const FILES_MAX: usize = 10_000;
/// Scenario time zero: 2026-01-01T00:00:00Z, so runs are reproducible.
const T0_MS: u64 = 1_767_225_600_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    profile: String,
    #[serde(default)]
    mission_statement: Option<String>,
    agents: Vec<AgentSpec>,
    #[serde(default)]
    policies: Vec<String>,
    #[serde(default)]
    health: Option<HealthSpec>,
    steps: Vec<Step>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentSpec {
    id: String,
    #[serde(default = "default_ring")]
    ring: u8,
    #[serde(default = "default_trust_class")]
    trust_class: String,
    #[serde(default = "default_clearance")]
    clearance: String,
    permissions: Vec<String>,
    #[serde(default = "default_budget")]
    budget: u64,
    #[serde(default = "default_rate")]
    rate: String,
    #[serde(default = "default_max_ops")]
    max_ops: u64,
    #[serde(default)]
    ttl: Option<String>,
}

fn default_ring() -> u8 {
    3
}
fn default_trust_class() -> String {
    "b".into()
}
fn default_clearance() -> String {
    "internal".into()
}
fn default_budget() -> u64 {
    1000
}
fn default_rate() -> String {
    "600/h".into()
}
fn default_max_ops() -> u64 {
    1000
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthSpec {
    heartbeat_ok: Option<bool>,
    wal_writable: Option<bool>,
    audit_chain_intact: Option<bool>,
    rollback_available: Option<bool>,
    supervisor_present: Option<bool>,
    voter_ok: Option<bool>,
    gateway_enforced: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ResourceSpec {
    One(String),
    Typed { kind: ResourceKind, value: String },
    Many(Vec<ResourceSpec>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadSpec {
    level: String,
    #[serde(default)]
    untrusted: bool,
    /// An upstream's catalogue (a resource or prompt listing): no taint, a
    /// trusted source for reads, not for an effect's target.
    #[serde(default)]
    catalogue: bool,
    #[serde(default)]
    content: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ExpectSpec {
    Kind(String),
    Full {
        verdict: String,
        #[serde(default)]
        code: Option<String>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    agent: String,
    action: String,
    #[serde(default)]
    resource: Option<ResourceSpec>,
    #[serde(default)]
    args: BTreeMap<String, ArgValue>,
    #[serde(default)]
    effect: Option<EffectClass>,
    #[serde(default)]
    sink_level: Option<String>,
    #[serde(default)]
    cost: Option<u64>,
    #[serde(default)]
    requires_integrity: bool,
    #[serde(default)]
    sensitive_args: Vec<String>,
    /// The tool descriptor's `provenance` rule: `escalate` (default) or `deny`.
    #[serde(default)]
    provenance: Option<String>,
    /// Content the session read before this step (raises the session label).
    #[serde(default)]
    reads: Vec<ReadSpec>,
    /// Labels of the data this step itself reads or carries (the intent's `reads`).
    #[serde(default)]
    labels: Vec<ReadSpec>,
    #[serde(default)]
    at_ms: Option<u64>,
    /// `none` presents no token; `forged` presents one signed by another key.
    #[serde(default)]
    token: Option<String>,
    /// Agents whose tokens are revoked before this step.
    #[serde(default)]
    revoke: Vec<String>,
    #[serde(default)]
    expect: Option<ExpectSpec>,
    #[serde(default)]
    note: Option<String>,
}

struct MintedAgent {
    text: String,
    forged: String,
}

/// One step's outcome.
struct StepReport {
    index: usize,
    agent: String,
    action: String,
    at_ms: u64,
    decision: Decision,
    expected: Option<(String, Option<String>)>,
    matched: bool,
    note: Option<String>,
}

struct ScenarioReport {
    name: String,
    profile: Profile,
    config_hash: String,
    steps: Vec<StepReport>,
}

impl ScenarioReport {
    fn failures(&self) -> usize {
        self.steps.iter().filter(|s| !s.matched).count()
    }
}

/// Runs `maos policy`.
pub fn run(out: &Output, data_dir: &Path, cmd: PolicyCommand) -> anyhow::Result<ExitCode> {
    // The policy the deployment runs (maos.toml `[policy] files`, the loader
    // `maos up` uses), under every scenario's own additions.
    let dir = crate::datadir::DataDir::new(data_dir);
    let deployed = dir.policy_sources(&dir.load_config()?)?;
    match cmd {
        PolicyCommand::Check { scenario } => {
            let report = run_file(&scenario, &deployed)?;
            print_report(out, &report, true);
            out.json(&report_json(&report));
            Ok(if report.failures() == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        PolicyCommand::Test { dir } => {
            if dir.is_file() {
                let why = format!("`{}` is a file: `maos policy check FILE` runs one scenario", dir.display());
                return Err(coded("POLICY-IO", why, 1));
            }
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map_err(|e| coded("POLICY-IO", format!("cannot read `{}`: {e}", dir.display()), 1))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .take(FILES_MAX)
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(coded("POLICY-EMPTY", format!("no *.json scenarios in `{}`", dir.display()), 1));
            }
            let mut failed = 0usize;
            let mut docs = Vec::new();
            for file in &files {
                match run_file(file, &deployed) {
                    Ok(report) => {
                        let n = report.failures();
                        if n == 0 {
                            out.line(format!(
                                "{} {} ({} steps)",
                                out.green("PASS"),
                                file.display(),
                                report.steps.len()
                            ));
                        } else {
                            failed += 1;
                            out.line(format!("{} {}", out.red("FAIL"), file.display()));
                            print_report(out, &report, false);
                        }
                        docs.push(serde_json::json!({ "file": file.display().to_string(), "ok": n == 0,
                            "report": report_json(&report) }));
                    }
                    Err(err) => {
                        failed += 1;
                        out.line(format!("{} {}: {err:#}", out.red("ERROR"), file.display()));
                        docs.push(serde_json::json!({ "file": file.display().to_string(), "ok": false,
                            "error": format!("{err:#}") }));
                    }
                }
            }
            out.line(format!("\n{} scenario(s), {} failed", files.len(), failed));
            out.json(&serde_json::json!({ "ok": failed == 0, "scenarios": docs }));
            Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
    }
}

fn run_file(path: &Path, deployed: &[(String, String)]) -> anyhow::Result<ScenarioReport> {
    let len = std::fs::metadata(path)
        .map_err(|e| coded("POLICY-IO", format!("cannot read `{}`: {e}", path.display()), 1))?
        .len();
    if len > SCENARIO_BYTES_MAX {
        return Err(coded("POLICY-SCENARIO", format!("`{}` is over {SCENARIO_BYTES_MAX} bytes", path.display()), 1));
    }
    let bytes = std::fs::read(path).map_err(|e| coded("POLICY-IO", format!("`{}`: {e}", path.display()), 1))?;
    let scenario: Scenario = serde_json::from_slice(&bytes)
        .map_err(|e| coded("POLICY-SCENARIO", format!("`{}`: {e}", path.display()), 1))?;
    let name = scenario.name.clone().unwrap_or_else(|| path.display().to_string());
    run_scenario(&scenario, name, deployed)
}

fn bad(msg: impl Into<String>) -> anyhow::Error {
    coded("POLICY-SCENARIO", msg, 1)
}

fn level(text: &str) -> anyhow::Result<IfcLevel> {
    IfcLevel::parse(text).ok_or_else(|| bad(format!("unknown IFC level `{text}`")))
}

fn resource_kind(action: &str) -> ResourceKind {
    match default_scope_kind(action) {
        ScopeKind::Path => ResourceKind::Path,
        ScopeKind::Domain => ResourceKind::Domain,
        ScopeKind::Recipient => ResourceKind::Recipient,
        ScopeKind::Resource | ScopeKind::Any => ResourceKind::Resource,
    }
}

fn resources(spec: Option<&ResourceSpec>, action: &str, out: &mut Vec<Resource>) {
    match spec {
        None => {}
        Some(ResourceSpec::One(value)) => out.push(Resource { kind: resource_kind(action), value: value.clone() }),
        Some(ResourceSpec::Typed { kind, value }) => out.push(Resource { kind: *kind, value: value.clone() }),
        Some(ResourceSpec::Many(list)) => {
            for r in list {
                resources(Some(r), action, out);
            }
        }
    }
}

/// Default effect class when a step does not say: reads are observations,
/// sends, deletions, payments and execution are irreversible, the rest writes.
fn default_effect(action: &str) -> EffectClass {
    let verb = action.rsplit(['.', '/', ':']).next().unwrap_or_default();
    match verb {
        "read" | "get" | "list" | "search" | "fetch" | "stat" | "query" | "view" => EffectClass::Observe,
        "send" | "delete" | "pay" | "transfer" | "exec" | "run" | "post" | "publish" | "reply" => {
            EffectClass::Irreversible
        }
        _ => EffectClass::Write,
    }
}

/// Default sink: actions that leave the system (mail, messages, network) go to
/// a public sink; everything else stays internal.
fn default_sink(action: &str) -> IfcLevel {
    match default_scope_kind(action) {
        ScopeKind::Domain | ScopeKind::Recipient => IfcLevel::Public,
        ScopeKind::Path | ScopeKind::Resource | ScopeKind::Any => IfcLevel::Internal,
    }
}

fn run_scenario(scenario: &Scenario, name: String, deployed: &[(String, String)]) -> anyhow::Result<ScenarioReport> {
    let profile =
        Profile::parse(&scenario.profile).ok_or_else(|| bad(format!("unknown profile `{}`", scenario.profile)))?;
    if scenario.agents.len() > AGENTS_MAX || scenario.steps.len() > STEPS_MAX {
        return Err(bad(format!("at most {AGENTS_MAX} agents and {STEPS_MAX} steps")));
    }
    let mut builder = DscConfig::builder(profile);
    for (name, text) in deployed {
        builder = builder.policy(name, text);
    }
    for (i, text) in scenario.policies.iter().enumerate() {
        builder = builder.policy(&format!("scenario-policy-{i}"), text);
    }
    let config = builder.build()?;
    let mut state = DscState::new(config.clone());
    if let Some(h) = &scenario.health {
        let mut health = KernelHealth::healthy(config.hash());
        let set = |slot: &mut bool, v: Option<bool>| {
            if let Some(v) = v {
                *slot = v;
            }
        };
        set(&mut health.heartbeat_ok, h.heartbeat_ok);
        set(&mut health.wal_writable, h.wal_writable);
        set(&mut health.audit_chain_intact, h.audit_chain_intact);
        set(&mut health.rollback_available, h.rollback_available);
        set(&mut health.supervisor_present, h.supervisor_present);
        set(&mut health.voter_ok, h.voter_ok);
        set(&mut health.gateway_enforced, h.gateway_enforced);
        state.apply(&DscState::report_health(health))?;
    }
    // A throwaway kernel key: the tokens are real, signed and verified.
    let key = SigningKey::generate()?;
    let forger = SigningKey::generate()?;
    let keys = KeyRing::with(key.verifying_key().clone());
    let t0 = UnixMillis(T0_MS);
    let mut minted: BTreeMap<String, MintedAgent> = BTreeMap::new();
    let mut ids = BTreeMap::new();
    for (n, a) in scenario.agents.iter().enumerate() {
        let agent = AgentId::new(&a.id)?;
        let ring = Ring::from_code(a.ring).ok_or_else(|| bad(format!("agent `{}`: ring must be 2 or 3", a.id)))?;
        let trust_class =
            TrustClass::parse(&a.trust_class).ok_or_else(|| bad(format!("agent `{}`: unknown trust class", a.id)))?;
        let permissions = a.permissions.iter().map(|p| parse_permission(p)).collect::<Result<Vec<_>, _>>()?;
        let ttl_ms = a.ttl.as_deref().map(parse_duration_ms).transpose()?;
        let req = MintRequest {
            agent: agent.clone(),
            ring,
            trust_class,
            clearance: level(&a.clearance)?,
            permissions,
            ttl_ms,
            rate_per_hour: parse_rate_per_hour(&a.rate)?,
            max_ops: a.max_ops,
            budget: a.budget,
            mission: scenario.mission_statement.clone(),
            commander_ack: false,
        };
        let random = [u8::try_from(n % 256).unwrap_or(0); 10];
        let token = maos_token::mint(&key, req.clone(), t0, 0, random)?;
        let forged = maos_token::mint(&forger, req, t0, 0, random)?;
        ids.insert(a.id.clone(), token.claims().id);
        minted.insert(a.id.clone(), MintedAgent { text: token.text().to_owned(), forged: forged.text().to_owned() });
        state.apply(&DscState::register_agent(&agent, ring, Some(trust_class)))?;
    }
    let mut revocation = RevocationState::default();
    let mut at = 0u64;
    let mut steps = Vec::new();
    for (i, step) in scenario.steps.iter().enumerate() {
        let index = i + 1;
        if let Some(t) = step.at_ms {
            if t < at {
                return Err(bad(format!("step {index}: at_ms {t} goes back in time (previous {at})")));
            }
            at = t;
        }
        let now = t0.saturating_add_ms(at);
        if !step.revoke.is_empty() {
            let mut revoked = revocation.revoked().clone();
            for a in &step.revoke {
                let id = ids.get(a).ok_or_else(|| bad(format!("step {index}: unknown agent `{a}` to revoke")))?;
                revoked.insert(*id);
            }
            revocation = RevocationState::new(revocation.epoch().saturating_add(1), revoked);
            state.apply(&DscState::set_revocation(&revocation))?;
        }
        let agent = AgentId::new(&step.agent)?;
        for r in &step.reads {
            // Untrusted content is scanned as the kernel scans a tool output.
            let delta = match (r.untrusted, r.catalogue, r.content.as_deref()) {
                (true, true, _) => {
                    return Err(bad(format!("step {index}: a read is untrusted or a catalogue, not both")));
                }
                (true, false, Some(text)) => state.record_untrusted_output(&agent, level(&r.level)?, text),
                (false, true, Some(text)) => DscState::record_catalogue(&agent, level(&r.level)?, text),
                (false, true, None) => return Err(bad(format!("step {index}: a catalogue read needs `content`"))),
                (untrusted, false, content) => DscState::record_read(&agent, level(&r.level)?, untrusted, content),
            };
            state.apply(&delta)?;
        }
        let mut res = Vec::new();
        resources(step.resource.as_ref(), &step.action, &mut res);
        let effect = step.effect.unwrap_or_else(|| default_effect(&step.action));
        let sink_level = match &step.sink_level {
            Some(l) => level(l)?,
            None => default_sink(&step.action),
        };
        let intent = Intent {
            id: IntentId::new_v7(now.0, [u8::try_from(index % 256).unwrap_or(0); 10]),
            agent: agent.clone(),
            action: step.action.clone(),
            resources: res,
            args: step.args.clone(),
            effect,
            cost: step.cost.unwrap_or(u64::from(effect.is_effect())),
            sink_level,
            requires_integrity: step.requires_integrity,
            reads: step
                .labels
                .iter()
                .map(|l| Ok(ReadLabel { level: level(&l.level)?, untrusted: l.untrusted }))
                .collect::<anyhow::Result<Vec<_>>>()?,
            sensitive_args: step.sensitive_args.clone(),
            provenance_deny: match step.provenance.as_deref() {
                None | Some("escalate") => false,
                Some("deny") => true,
                Some(other) => {
                    return Err(bad(format!("step {index}: provenance `{other}`: expected `escalate` or `deny`")));
                }
            },
            world_state_hash: None,
        };
        let none = TokenError::UnknownToken("no token presented".into());
        let verified = match (step.token.as_deref(), minted.get(&step.agent)) {
            (Some("none"), _) | (None | Some(_), None) => Err(none),
            (Some("forged"), Some(m)) => {
                UnverifiedToken::parse(&m.forged).and_then(|t| t.verify(&keys, now, &revocation))
            }
            (Some(other), Some(m)) => match minted.get(other) {
                // Present another agent's token (agent mismatch).
                Some(theirs) => UnverifiedToken::parse(&theirs.text).and_then(|t| t.verify(&keys, now, &revocation)),
                None if other == "own" => {
                    UnverifiedToken::parse(&m.text).and_then(|t| t.verify(&keys, now, &revocation))
                }
                None => return Err(bad(format!("step {index}: unknown token `{other}`"))),
            },
            (None, Some(m)) => UnverifiedToken::parse(&m.text).and_then(|t| t.verify(&keys, now, &revocation)),
        };
        let decision = decide(&state, &intent, verified.as_ref(), now);
        if decision.verdict().is_allow() {
            state.apply(decision.delta())?;
        }
        let expected = match &step.expect {
            None => None,
            Some(ExpectSpec::Kind(k)) => Some((k.to_ascii_lowercase(), None)),
            Some(ExpectSpec::Full { verdict, code }) => Some((verdict.to_ascii_lowercase(), code.clone())),
        };
        let matched = expected.as_ref().is_none_or(|(kind, code)| {
            kind == decision.verdict().kind()
                && code.as_ref().is_none_or(|c| decision.verdict().deny_code().is_some_and(|d| d.as_str() == c))
        });
        steps.push(StepReport {
            index,
            agent: step.agent.clone(),
            action: step.action.clone(),
            at_ms: at,
            decision,
            expected,
            matched,
            note: step.note.clone(),
        });
    }
    let _ = &scenario.description;
    Ok(ScenarioReport { name, profile, config_hash: config.hash_hex(), steps })
}

fn verdict_text(v: &Verdict) -> String {
    match v {
        Verdict::Allow => "ALLOW".into(),
        Verdict::Deny { code } => format!("DENY {code}"),
        Verdict::Escalate { level, reason } => format!("ESCALATE L{} ({reason})", level.number()),
    }
}

fn outcome_text(o: &Outcome) -> String {
    match o {
        Outcome::Pass => "pass".into(),
        Outcome::NotApplicable { reason } => format!("n/a ({reason})"),
        Outcome::Deny { code, detail } => format!("deny {code}: {detail}"),
        Outcome::Escalate { level, reason } => format!("escalate L{}: {reason}", level.number()),
    }
}

fn print_report(out: &Output, report: &ScenarioReport, all: bool) {
    if all {
        out.line(out.bold(&format!("scenario: {}", report.name)));
        out.field("profile", report.profile);
        out.field("config hash", &report.config_hash);
    }
    for s in &report.steps {
        if !all && s.matched {
            continue;
        }
        let verdict = verdict_text(s.decision.verdict());
        let painted = if s.decision.verdict().is_allow() { out.green(&verdict) } else { out.red(&verdict) };
        out.line(format!("[{}] +{}ms {} {} → {painted}", s.index, s.at_ms, s.agent, s.action));
        if let Some(note) = &s.note {
            out.line(format!("      {}", out.dim(note)));
        }
        if let Some((kind, code)) = &s.expected {
            let want = format!("{kind}{}", code.as_ref().map(|c| format!(" {c}")).unwrap_or_default());
            if s.matched {
                out.line(format!("      expected {want}: {}", out.green("ok")));
            } else {
                out.line(format!("      expected {want}: {}", out.red("MISMATCH")));
            }
        }
        for c in s.decision.checks() {
            out.line(format!("      {} {:<16} {}", c.check.number(), c.check.name(), outcome_text(&c.outcome)));
        }
        if s.decision.votes().len() > 1 {
            let votes: Vec<String> =
                s.decision.votes().iter().map(|v| format!("{}={}", v.instance, verdict_text(&v.verdict))).collect();
            out.line(format!(
                "      votes: {}{}",
                votes.join(" "),
                if s.decision.divergence() { " (DIVERGENCE)" } else { "" }
            ));
        }
    }
}

fn report_json(report: &ScenarioReport) -> serde_json::Value {
    let steps: Vec<serde_json::Value> = report
        .steps
        .iter()
        .map(|s| {
            serde_json::json!({
                "step": s.index,
                "agent": s.agent,
                "action": s.action,
                "at_ms": s.at_ms,
                "verdict": s.decision.verdict().kind(),
                "code": s.decision.verdict().deny_code().map(DenyCode::as_str),
                "explanation": s.decision.verdict().deny_code().map(DenyCode::explain),
                "decision": serde_json::to_value(&s.decision).unwrap_or_default(),
                "expected": s.expected.as_ref().map(|(k, c)| serde_json::json!({ "verdict": k, "code": c })),
                "matched": s.matched,
            })
        })
        .collect();
    serde_json::json!({
        "ok": report.failures() == 0,
        "scenario": report.name,
        "profile": report.profile.name(),
        "config_hash": report.config_hash,
        "checks": CheckId::ALL.map(CheckId::name),
        "steps": steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_example_scenarios_pass() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/policies");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("examples/policies exists")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        assert!(files.len() >= 3, "expected example scenarios in {}", dir.display());
        for file in files {
            let report = run_file(&file, &[]).expect("scenario runs");
            for s in &report.steps {
                assert!(s.matched, "{}: step {} got {:?}", file.display(), s.index, s.decision.verdict());
            }
        }
    }
}
