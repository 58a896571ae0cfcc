//! `maos quarantine patterns | block`: immune memory's pre-filter proposals
//! (issue #14 item 6). A threat pattern's recipients and domains block
//! nothing until the commander approves them: `block` prints exactly what it
//! signs and signs it with the commander key of this data directory (no
//! separate confirmation: running it is the approval); the daemon verifies
//! the signature before logging.

use crate::client::Daemon;
use crate::datadir::DataDir;
use crate::output::{Output, coded};
use maos_kernel::{PrefilterGrant, PrefilterProposal};
use std::process::ExitCode;

/// How long the signed approval stays valid (the kernel takes at most 15 minutes).
const APPROVAL_TTL_MS: u64 = 5 * 60_000;

fn proposals(daemon: &Daemon) -> anyhow::Result<(serde_json::Value, Vec<PrefilterProposal>)> {
    let doc = daemon.get("/v1/prefilter/proposals")?;
    let list = serde_json::from_value(doc.get("proposals").cloned().unwrap_or_default())
        .map_err(|e| coded("MAOS-DAEMON-IO", format!("malformed proposal list: {e}"), 1))?;
    Ok((doc, list))
}

pub fn list(out: &Output, dir: &DataDir) -> anyhow::Result<ExitCode> {
    let daemon = Daemon::require(dir)?;
    let (doc, list) = proposals(&daemon)?;
    out.json(&doc);
    if list.is_empty() {
        out.line("no threat pattern proposes a pre-filter block");
    }
    for p in &list {
        let state = if p.approved { out.green("blocked") } else { "proposed".to_owned() };
        out.line(format!("{}  {state}  {}  (vector {})", p.id, p.indicators.join(", "), p.vector.join(" ")));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn block(out: &Output, dir: &DataDir, pattern: &str) -> anyhow::Result<ExitCode> {
    let daemon = Daemon::require(dir)?;
    let (_, list) = proposals(&daemon)?;
    let proposal = list
        .into_iter()
        .find(|p| p.id == pattern)
        .ok_or_else(|| coded("MAOS-USAGE", format!("no threat pattern {pattern} proposes a block"), 2))?;
    if !dir.commander_key().exists() {
        return Err(coded("MAOS-USAGE", "the commander key of this data directory is needed to sign", 2));
    }
    out.line(out.bold(&format!("block the indicators of threat pattern {pattern} at check 7")));
    out.field("indicators", proposal.indicators.join(", "));
    out.field("vector", proposal.vector.join(" "));
    out.field("root cause", &proposal.root_cause);
    let grant = PrefilterGrant {
        pattern: proposal.id.clone(),
        indicators: proposal.indicators.clone(),
        expires_ms: crate::datadir::now().0.saturating_add(APPROVAL_TTL_MS),
    };
    let signature = dir.commander_signature(maos_crypto::SignatureDomain::PrefilterExtension, &grant.message())?;
    let body = serde_json::json!({
        "indicators": grant.indicators,
        "expires_ms": grant.expires_ms,
        "signature": signature,
    });
    let done = daemon.post(&format!("/v1/prefilter/proposals/{pattern}/approve"), &body)?;
    out.json(&serde_json::json!({ "ok": true, "block": done }));
    let lsn = crate::cmd_agents::lsn_of(&done);
    out.line(format!(
        "{} pattern {pattern}: check 7 refuses its indicators (kernel.immune at lsn {lsn})",
        out.green("blocked")
    ));
    Ok(ExitCode::SUCCESS)
}
