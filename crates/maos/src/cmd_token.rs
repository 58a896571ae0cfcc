//! `maos token …`: issue, inspect, derive, revoke, list. Every change is written
//! to the ledger (durably) before it is reported, so what the operator sees
//! issued or revoked survives a crash.

use crate::cli::{DeriveArgs, InspectArgs, IssueArgs, LimitArgs, ListArgs, RevokeArgs, TokenCommand};
use crate::datadir::{DataDir, now, random10};
use crate::journal::{Journal, SecurityEvent, read_registry};
use crate::output::{EXIT_INVALID, Output, coded};
use maos_model::{AgentId, IfcLevel, Ring, TokenId, TrustClass, UnixMillis};
use maos_token::{
    DeriveRequest, KeyRing, MintRequest, MintedToken, Permission, TokenClaims, TokenEvent, TokenIssued, TokenRegistry,
    UnverifiedToken, limits, parse_duration_ms, parse_permission, parse_rate_per_hour,
};
use std::io::Read as _;
use std::path::Path;
use std::process::ExitCode;

pub fn run(out: &Output, data_dir: &Path, cmd: TokenCommand) -> anyhow::Result<ExitCode> {
    let dir = DataDir::new(data_dir);
    match cmd {
        TokenCommand::Issue(args) => issue(out, &dir, &args),
        TokenCommand::Inspect(args) => inspect(out, &dir, &args),
        TokenCommand::Derive(args) => derive(out, &dir, &args),
        TokenCommand::Revoke(args) => revoke(out, &dir, &args),
        TokenCommand::List(args) => list(out, &dir, &args),
    }
}

/// The current kernel key and every retired one: tokens signed before a rotation
/// stay valid until they expire or are revoked.
pub fn key_ring(dir: &DataDir) -> anyhow::Result<KeyRing> {
    let mut ring = KeyRing::new();
    let mut keys = dir.kernel_trusted_keys()?.into_iter();
    if let Some(current) = keys.next() {
        ring.insert(current);
    }
    // A retired key verifies only tokens issued before its logged rotation; a
    // key file in keys/retired/ that no logged rotation names verifies none.
    let retired_at: std::collections::BTreeMap<String, u64> = crate::journal::read_events(dir)?
        .into_iter()
        .filter_map(|e| match e {
            crate::journal::SecurityEvent::KeyRotated { role, old_key_id, at_ms, .. } if role == "kernel" => {
                Some((old_key_id, at_ms))
            }
            _ => None,
        })
        .collect();
    for key in keys {
        if let Some(at) = retired_at.get(&key.key_id().to_hex()) {
            ring.insert_retired(key, UnixMillis(*at));
        } else {
            tracing::warn!(key = %key.key_id().short(), "a retired key file without a logged rotation verifies no token");
        }
    }
    Ok(ring)
}

fn usage(message: String) -> anyhow::Error {
    coded("MAOS-USAGE", message, 2)
}

fn parse_ring(ring: u8) -> anyhow::Result<Ring> {
    match Ring::from_code(ring) {
        Some(r @ (Ring::Trusted | Ring::Untrusted)) => Ok(r),
        _ => Err(usage(format!("--ring {ring}: agent tokens are for ring 2 or 3"))),
    }
}

fn parse_clearance(text: Option<&str>) -> anyhow::Result<Option<IfcLevel>> {
    text.map(|t| {
        IfcLevel::parse(t)
            .ok_or_else(|| usage(format!("--clearance `{t}`: use public, internal, confidential or restricted")))
    })
    .transpose()
}

fn parse_permissions(list: &[String]) -> anyhow::Result<Vec<Permission>> {
    for p in list {
        // The kernel's MCP actions are `mcp.<server>.<tool>`: an `mcp:` permission
        // would be signed and then match nothing, without a word.
        if p.trim_start().starts_with("mcp:") {
            return Err(coded(
                "TOKEN-ACTION-SYNTAX",
                format!(
                    "`{p}`: MCP actions are `mcp.<server>.<tool>` (e.g. `mcp.files.read_text_file`, `mcp.files.*`)"
                ),
                2,
            ));
        }
    }
    list.iter().map(|p| parse_permission(p).map_err(anyhow::Error::from)).collect()
}

/// Reads a token argument, or stdin for `-`, bounded by the token size limit.
fn read_token(arg: &str) -> anyhow::Result<String> {
    if arg != "-" {
        return Ok(arg.trim().to_owned());
    }
    let mut text = String::new();
    let limit = u64::try_from(limits::TOKEN_TEXT_MAX + 2).unwrap_or(u64::MAX);
    std::io::stdin().take(limit).read_to_string(&mut text)?;
    Ok(text.trim().to_owned())
}

/// Logs the event durably, then applies it: what is reported was logged first.
/// Where token events go: the log directly, or, while `maos up` holds the
/// log, the daemon, whose kernel logs and applies them at once (so a
/// revocation takes effect on the running kernel's next decision).
pub enum Ledger {
    Local(Box<Journal>),
    Daemon(crate::client::Daemon),
}

impl Ledger {
    pub fn open(dir: &DataDir) -> anyhow::Result<(Self, TokenRegistry)> {
        // A daemon that does not answer left stale run files behind (a crash);
        // then the log's lock is free and the journal is written directly.
        if let Some(daemon) = crate::client::Daemon::find_live(dir)? {
            return Ok((Self::Daemon(daemon), read_registry(dir)?));
        }
        let (journal, registry, _) = Journal::open(dir)?;
        Ok((Self::Local(Box::new(journal)), registry))
    }

    pub fn record(&self, registry: &mut TokenRegistry, event: TokenEvent) -> anyhow::Result<()> {
        let mut after = registry.clone();
        after.apply(&event)?;
        match self {
            Self::Local(journal) => {
                journal.append(&SecurityEvent::Token(event), Some(&after))?;
                journal.checkpoint_now()?;
            }
            Self::Daemon(daemon) => {
                daemon.post("/v1/token-events", &serde_json::to_value(&event)?)?;
            }
        }
        *registry = after;
        Ok(())
    }
}

fn issue(out: &Output, dir: &DataDir, args: &IssueArgs) -> anyhow::Result<ExitCode> {
    let key = dir.kernel_signing_key()?;
    let (ledger, mut registry) = Ledger::open(dir)?;
    let trust_class = TrustClass::parse(&args.trust_class)
        .ok_or_else(|| usage(format!("--trust-class `{}`: use a, b, c or external", args.trust_class)))?;
    let req = MintRequest {
        agent: AgentId::new(&args.agent)?,
        ring: parse_ring(args.ring)?,
        trust_class,
        clearance: parse_clearance(args.limits.clearance.as_deref())?.unwrap_or(IfcLevel::Internal),
        permissions: parse_permissions(&args.limits.allow)?,
        ttl_ms: args.limits.ttl.as_deref().map(parse_duration_ms).transpose()?,
        rate_per_hour: args.limits.rate.as_deref().map(parse_rate_per_hour).transpose()?.unwrap_or(600),
        max_ops: args.limits.max_ops.unwrap_or(10_000),
        budget: args.budget,
        mission: args.mission.clone(),
        commander_ack: args.commander_ack,
    };
    let token = maos_token::mint(&key, req, now(), registry.revocations().epoch(), random10()?)?;
    ledger.record(&mut registry, TokenEvent::Issued(TokenIssued::from_minted(&token)))?;
    print_minted(out, "issued", &token);
    Ok(ExitCode::SUCCESS)
}

fn print_minted(out: &Output, verb: &str, token: &MintedToken) {
    let c = token.claims();
    out.json(&serde_json::json!({ "ok": true, "token": token.text(), "claims": c, "ttl_ms": token.ttl_ms() }));
    if !out.json {
        // The token alone on stdout, so `T=$(maos token issue …)` works; the summary on stderr.
        println!("{}", token.text());
        eprintln!(
            "{} token {} for {} ({} bytes, {})",
            out.green(verb),
            c.id,
            c.agent,
            token.bytes().len(),
            human_ms(token.ttl_ms())
        );
        if c.commander_ack {
            eprintln!("  lifetime above 4x the default: commander acknowledgement recorded");
        }
    }
}

fn human_ms(ms: u64) -> String {
    match ms {
        m if m % 3_600_000 == 0 => format!("{}h", m / 3_600_000),
        m if m % 60_000 == 0 => format!("{}m", m / 60_000),
        m if m % 1000 == 0 => format!("{}s", m / 1000),
        m => format!("{m}ms"),
    }
}

fn show_claims(out: &Output, c: &TokenClaims, now: UnixMillis) {
    out.field("id", c.id);
    out.field("agent", &c.agent);
    out.field("ring", format!("{} ({})", c.ring.code(), c.trust_class.name()));
    out.field("clearance", c.clearance);
    for p in &c.permissions {
        out.field("allow", p);
    }
    out.field("rate", format!("{}/h", c.rate_per_hour));
    out.field("max ops", c.max_ops);
    out.field("budget", c.budget);
    let left = c.expires.0.saturating_sub(now.0);
    out.field("expires", format!("{} (in {})", c.expires.0, human_ms(left - left % 1000)));
    out.field("epoch", c.epoch);
    out.field("depth", c.depth());
    if let Some(parent) = c.parent() {
        out.field("parent", parent);
    }
    if let Some(m) = &c.mission {
        out.field("mission", m);
    }
    if c.commander_ack {
        out.field("ttl ack", "commander acknowledged a lifetime over 4x the default");
    }
    out.field("issuer", c.issuer.short());
}

fn inspect(out: &Output, dir: &DataDir, args: &InspectArgs) -> anyhow::Result<ExitCode> {
    let text = read_token(&args.token)?;
    // With the data directory, the ledger counts as the kernel counts it; with
    // only a public key, the signature and time window are all there is.
    let (keys, registry) = match &args.public_key {
        Some(path) => (KeyRing::with(maos_crypto::read_public_key_file(path)?), None),
        None => (key_ring(dir)?, Some(read_registry(dir)?)),
    };
    let revocations = registry.as_ref().map(|r| r.revocations().clone()).unwrap_or_default();
    let now = now();
    let token = UnverifiedToken::parse(&text).map_err(|e| coded(e.code(), e.to_string(), EXIT_INVALID))?;
    let checked = token.verify(&keys, now, &revocations).and_then(|verified| {
        registry.as_ref().map_or(Ok(()), |r| r.check_logged(&verified))?;
        Ok(verified)
    });
    match checked {
        Ok(verified) => {
            out.json(&serde_json::json!({ "ok": true, "valid": true, "claims": verified.claims() }));
            out.line(format!("{} token (signature ML-DSA-65 + Ed25519, both verified)", out.green("valid")));
            show_claims(out, verified.claims(), now);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            out.json(&serde_json::json!({
                "ok": false, "valid": false, "code": e.code(), "error": e.to_string(),
                "unverified_claims": token.unverified_claims(),
            }));
            if !out.json {
                eprintln!("{} {e}", out.red(&format!("invalid[{}]:", e.code())));
                out.line(out.dim("claims as written (NOT trusted):"));
                show_claims(out, token.unverified_claims(), now);
            }
            Ok(ExitCode::from(EXIT_INVALID))
        }
    }
}

fn limit_overrides(limits: &LimitArgs) -> anyhow::Result<(Option<u64>, Option<u32>, Option<IfcLevel>)> {
    Ok((
        limits.ttl.as_deref().map(parse_duration_ms).transpose()?,
        limits.rate.as_deref().map(parse_rate_per_hour).transpose()?,
        parse_clearance(limits.clearance.as_deref())?,
    ))
}

fn derive(out: &Output, dir: &DataDir, args: &DeriveArgs) -> anyhow::Result<ExitCode> {
    let key = dir.kernel_signing_key()?;
    let (ledger, mut registry) = Ledger::open(dir)?;
    let now = now();
    let parent =
        UnverifiedToken::parse(&read_token(&args.token)?)?.verify(&key_ring(dir)?, now, registry.revocations())?;
    registry.check_logged(&parent)?;
    let (ttl_ms, rate_per_hour, clearance) = limit_overrides(&args.limits)?;
    let req = DeriveRequest {
        agent: AgentId::new(&args.agent)?,
        ring: args.ring.map(parse_ring).transpose()?,
        clearance,
        permissions: parse_permissions(&args.limits.allow)?,
        ttl_ms,
        rate_per_hour,
        max_ops: args.limits.max_ops,
        budget: args.budget,
    };
    if let Ledger::Local(_) = &ledger {
        // With a daemon its kernel checks this; offline the log's decisions say
        // what the parent spent (Rule 7: spent and carved both leave the budget).
        let spent = maos_kernel::spent_by(&crate::journal::reader(dir)?, parent.claims().id)?;
        let carved = registry.carved_budget(&parent.claims().id);
        let remaining = parent.claims().budget.saturating_sub(carved).saturating_sub(spent);
        if args.budget > remaining {
            return Err(coded(
                "TOKEN-WIDENED",
                format!(
                    "`budget` {} is above the parent's remaining {remaining} ({spent} spent, {carved} carved)",
                    args.budget
                ),
                1,
            ));
        }
    }
    let child = maos_token::derive(&key, &parent, req, now, &registry, random10()?)?;
    ledger.record(&mut registry, TokenEvent::Issued(TokenIssued::from_minted(&child)))?;
    print_minted(out, "derived", &child);
    Ok(ExitCode::SUCCESS)
}

fn revoke(out: &Output, dir: &DataDir, args: &RevokeArgs) -> anyhow::Result<ExitCode> {
    dir.require_initialized()?;
    let (ledger, mut registry) = Ledger::open(dir)?;
    let id = TokenId::parse(&args.id)?;
    let event = registry.plan_revoke(id, now(), &args.reason)?;
    ledger.record(&mut registry, event.clone())?;
    let TokenEvent::Revoked(r) = &event else {
        return Err(coded("MAOS-BUG", "revocation planned a non-revocation", 1));
    };
    out.json(&serde_json::json!({ "ok": true, "revoked": r.ids, "epoch": r.epoch }));
    out.line(format!("{} {} token(s); revocation epoch is now {}", out.green("revoked"), r.ids.len(), r.epoch));
    for revoked in &r.ids {
        let who = registry.get(revoked).map(|rec| rec.issued.agent.to_string()).unwrap_or_default();
        out.line(format!("  {revoked}  {who}{}", if *revoked == id { "" } else { "  (descendant)" }));
    }
    Ok(ExitCode::SUCCESS)
}

fn list(out: &Output, dir: &DataDir, args: &ListArgs) -> anyhow::Result<ExitCode> {
    let registry = read_registry(dir)?;
    let now = now();
    let rows: Vec<_> = registry
        .iter()
        .map(|rec| {
            let status = if rec.revoked {
                "revoked"
            } else if now.0 >= rec.issued.expires_ms {
                "expired"
            } else {
                "live"
            };
            (rec, status)
        })
        .filter(|(_, status)| args.all || *status == "live")
        .collect();
    out.json(&serde_json::json!({
        "ok": true,
        "epoch": registry.revocations().epoch(),
        "tokens": rows.iter().map(|(rec, status)| serde_json::json!({
            "id": rec.issued.id, "agent": rec.issued.agent, "ring": rec.issued.ring, "parent": rec.issued.parent,
            "depth": rec.issued.depth, "budget": rec.issued.budget, "expires_ms": rec.issued.expires_ms,
            "status": status, "permissions": rec.issued.permissions,
        })).collect::<Vec<_>>(),
    }));
    if !out.json {
        println!("{:<36}  {:<20} {:>4} {:>5}  {:<8} PARENT", "ID", "AGENT", "RING", "DEPTH", "STATUS");
        for (rec, status) in &rows {
            let parent = rec.issued.parent.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
            println!(
                "{:<36}  {:<20} {:>4} {:>5}  {:<8} {parent}",
                rec.issued.id,
                rec.issued.agent,
                rec.issued.ring.code(),
                rec.issued.depth,
                status
            );
        }
        println!("{} token(s), revocation epoch {}", rows.len(), registry.revocations().epoch());
    }
    Ok(ExitCode::SUCCESS)
}

/// Issues a root token for `agent` with `allow` permissions and records it
/// (through the daemon when one runs). For `maos bench`, which needs tokens
/// of its own for its synthetic agents.
pub fn issue_for(
    dir: &DataDir,
    agent: &str,
    allow: &[String],
    rate_per_hour: u32,
    max_ops: u64,
) -> anyhow::Result<String> {
    let key = dir.kernel_signing_key()?;
    let (ledger, mut registry) = Ledger::open(dir)?;
    let req = MintRequest {
        agent: AgentId::new(agent)?,
        ring: Ring::Untrusted,
        trust_class: TrustClass::Inspectable,
        clearance: IfcLevel::Internal,
        permissions: parse_permissions(allow)?,
        ttl_ms: None,
        rate_per_hour,
        max_ops,
        budget: 0,
        mission: None,
        commander_ack: false,
    };
    let token = maos_token::mint(&key, req, now(), registry.revocations().epoch(), random10()?)?;
    ledger.record(&mut registry, TokenEvent::Issued(TokenIssued::from_minted(&token)))?;
    Ok(token.text().to_owned())
}
