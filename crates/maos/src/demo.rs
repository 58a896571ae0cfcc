//! `maos demo`: the capability-token lifecycle, end to end, in a temporary data
//! directory, with real keys, real signatures and a real (fsynced) ledger.

use crate::cli::DemoArgs;
use crate::cmd_init;
use crate::datadir::{DataDir, now, random10};
use crate::journal::{Journal, SecurityEvent, read_registry};
use crate::output::Output;
use maos_model::{AgentId, IfcLevel, Profile, Ring, TrustClass};
use maos_token::{
    DeriveRequest, KeyRing, MintRequest, ResourceRef, ScopeKind, TokenEvent, TokenIssued, UnverifiedToken,
    parse_permission,
};
use std::process::ExitCode;

struct Steps<'a> {
    out: &'a Output,
    n: usize,
    log: Vec<serde_json::Value>,
}

impl Steps<'_> {
    fn step(&mut self, title: &str) {
        self.n += 1;
        self.out.line(format!("\n{} {}", self.out.bold(&format!("[{}]", self.n)), self.out.bold(title)));
    }

    fn ok(&mut self, what: &str, detail: impl std::fmt::Display) {
        self.out.line(format!("    {} {what} {}", self.out.green("✔"), self.out.dim(&detail.to_string())));
        self.log
            .push(serde_json::json!({ "step": self.n, "result": "ok", "what": what, "detail": detail.to_string() }));
    }

    fn refused(&mut self, what: &str, code: &str, detail: impl std::fmt::Display) {
        self.out.line(format!(
            "    {} {what}: {} {}",
            self.out.red("✘"),
            self.out.red(code),
            self.out.dim(&detail.to_string())
        ));
        self.log.push(serde_json::json!({
            "step": self.n, "result": "refused", "what": what, "code": code, "detail": detail.to_string(),
        }));
    }
}

pub fn run(out: &Output, args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let tmp = tempfile::Builder::new().prefix("maos-demo-").tempdir()?;
    let root = tmp.path().join("data");
    let dir = DataDir::new(&root);
    let mut s = Steps { out, n: 0, log: Vec::new() };
    out.line(out.bold("MAOS demo: the life of a capability token"));
    out.line(out.dim(&format!("data directory: {}", root.display())));

    s.step("Generate the kernel key and the commander key (hybrid ML-DSA-65 + Ed25519)");
    let report = cmd_init::init(&dir, Profile::Standard, false)?;
    s.ok("kernel key", &report.kernel_key_id[..16.min(report.kernel_key_id.len())]);
    s.ok("commander key", &report.commander_key_id[..16.min(report.commander_key_id.len())]);
    s.ok("secret keys written mode 0600", dir.keys().display());

    let key = dir.kernel_signing_key()?;
    let keys = KeyRing::with(dir.kernel_verifying_key()?);
    let (journal, mut registry, _) = Journal::open(&dir)?;
    let record =
        |journal: &Journal, registry: &mut maos_token::TokenRegistry, event: TokenEvent| -> anyhow::Result<()> {
            let mut after = registry.clone();
            after.apply(&event)?;
            journal.append(&SecurityEvent::Token(event), Some(&after))?;
            *registry = after;
            Ok(())
        };

    s.step("Issue a token to `research-agent` (ring 3: untrusted, 15 minute default lifetime)");
    let t0 = now();
    let parent = maos_token::mint(
        &key,
        MintRequest {
            agent: AgentId::new("research-agent")?,
            ring: Ring::Untrusted,
            trust_class: TrustClass::Inspectable,
            clearance: IfcLevel::Internal,
            permissions: vec![
                parse_permission("fs.read=/workspace/**")?,
                parse_permission("fs.write=/workspace/reports/*")?,
                parse_permission("mail.send=*@example.com")?,
            ],
            ttl_ms: None,
            rate_per_hour: 600,
            max_ops: 1000,
            budget: 1000,
            mission: Some("Summarise the Q3 reports and mail the summary to the team at example.com.".into()),
            commander_ack: false,
        },
        t0,
        registry.revocations().epoch(),
        random10()?,
    )?;
    record(&journal, &mut registry, TokenEvent::Issued(TokenIssued::from_minted(&parent)))?;
    s.ok(
        "issued",
        format!("{} ({} bytes, text starts {}…)", parent.claims().id, parent.bytes().len(), &parent.text()[..24]),
    );
    for p in &parent.claims().permissions {
        s.ok("allows", p);
    }

    s.step("Verify the token and check what it covers");
    let verified = UnverifiedToken::parse(parent.text())?.verify(&keys, now(), registry.revocations())?;
    s.ok("signature", "ML-DSA-65 and Ed25519 both verified");
    let cases = [
        ("fs.read", ScopeKind::Path, "/workspace/q3/revenue.csv"),
        ("mail.send", ScopeKind::Recipient, "team@example.com"),
        ("fs.write", ScopeKind::Path, "/etc/passwd"),
        ("mail.send", ScopeKind::Recipient, "attacker@evil.test"),
    ];
    for (action, kind, value) in cases {
        let r = [ResourceRef { kind, value }];
        match verified.claims().permission_for(action, &r, &()) {
            Some(p) => s.ok(&format!("{action} {value}"), format!("covered by `{p}`")),
            None => s.refused(&format!("{action} {value}"), "DSC-1-SCOPE", "no permission covers it"),
        }
    }

    s.step("Delegate: derive a narrower token for the sub-agent `summarizer`");
    let child = maos_token::derive(
        &key,
        &verified,
        DeriveRequest {
            agent: AgentId::new("summarizer")?,
            ring: None,
            clearance: None,
            permissions: vec![parse_permission("fs.read=/workspace/q3/*")?],
            ttl_ms: Some(5 * 60 * 1000),
            rate_per_hour: Some(60),
            max_ops: Some(100),
            budget: 200,
        },
        now(),
        &registry,
        random10()?,
    )?;
    record(&journal, &mut registry, TokenEvent::Issued(TokenIssued::from_minted(&child)))?;
    s.ok("derived", format!("{} (depth {}, budget 200 carved from 1000)", child.claims().id, child.claims().depth()));
    let widening = maos_token::derive(
        &key,
        &verified,
        DeriveRequest {
            agent: AgentId::new("summarizer-2")?,
            ring: None,
            clearance: None,
            permissions: vec![parse_permission("fs.write=/etc/*")?],
            ttl_ms: None,
            rate_per_hour: None,
            max_ops: None,
            budget: 0,
        },
        now(),
        &registry,
        random10()?,
    );
    match widening {
        Err(e) => s.refused("derive with fs.write=/etc/*", e.code(), e),
        Ok(_) => anyhow::bail!("a widening derive was accepted"),
    }

    s.step("Tamper with the child token: change one character");
    let mut bent = child.text().as_bytes().to_vec();
    let i = bent.len() / 2;
    if let Some(b) = bent.get_mut(i) {
        *b = if *b == b'A' { b'B' } else { b'A' };
    }
    let bent = String::from_utf8(bent)?;
    match UnverifiedToken::parse(&bent).and_then(|t| t.verify(&keys, now(), registry.revocations())) {
        Err(e) => s.refused("tampered token", e.code(), e),
        Ok(_) => anyhow::bail!("a tampered token verified"),
    }
    let child_ok = UnverifiedToken::parse(child.text())?.verify(&keys, now(), registry.revocations());
    s.ok("the untouched child still verifies", child_ok.map(|_| "(signature ok)").unwrap_or("?"));

    s.step("Revoke the parent: the whole subtree dies and the revocation epoch moves");
    let event = registry.plan_revoke(parent.claims().id, now(), "demo: research-agent retired")?;
    record(&journal, &mut registry, event)?;
    s.ok("revocation epoch", registry.revocations().epoch());
    for (who, t) in [("research-agent", &parent), ("summarizer", &child)] {
        match UnverifiedToken::parse(t.text())?.verify(&keys, now(), registry.revocations()) {
            Err(e) => s.refused(&format!("{who}'s token"), e.code(), e),
            Ok(_) => anyhow::bail!("a revoked token verified"),
        }
    }

    s.step("Restart: replay the write-ahead log from disk; the revocation persists");
    journal.checkpoint_now()?;
    drop(journal);
    let replayed = read_registry(&dir)?;
    s.ok("log replayed", format!("{} tokens, epoch {}", replayed.iter().count(), replayed.revocations().epoch()));
    match UnverifiedToken::parse(child.text())?.verify(&keys, now(), replayed.revocations()) {
        Err(e) => s.refused("summarizer's token after restart", e.code(), e),
        Ok(_) => anyhow::bail!("a revoked token verified after restart"),
    }

    s.step("Audit: verify the log's hash chain, CRCs and signed checkpoints with the public key only");
    for copy in [dir.wal(), dir.root().join(crate::datadir::DEFAULT_WAL_SECONDARY)] {
        let report = maos_wal::verify_log(&copy, &dir.kernel_verifying_key()?)?;
        s.ok(
            &format!("{} verified", copy.file_name().and_then(|n| n.to_str()).unwrap_or("log")),
            format!(
                "{} records, {} signed checkpoints, head {}",
                report.records,
                report.checkpoints,
                &report.head_hash.to_hex()[..16]
            ),
        );
    }

    out.json(&serde_json::json!({ "ok": true, "steps": s.log }));
    out.line(format!("\n{} every step behaved as specified.", out.green("done:")));
    if args.keep {
        let kept = tmp.keep();
        out.line(format!("data directory kept at {}", kept.display()));
    }
    Ok(ExitCode::SUCCESS)
}
