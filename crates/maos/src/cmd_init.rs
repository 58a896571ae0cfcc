//! `maos init`: a new data directory with a commented configuration, the kernel
//! key and, separately, the commander's key. Never overwrites a key.

use crate::cli::InitArgs;
use crate::datadir::{DataDir, create_private_dir, now};
use crate::ledger::{Ledger, SecurityEvent};
use crate::output::{Output, coded};
use maos_crypto::{SigningKey, SuiteId};
use maos_model::Profile;
use std::path::Path;
use std::process::ExitCode;

pub fn config_text(profile: Profile) -> String {
    format!(
        r#"# MAOS configuration, written by `maos init`.
# The eleven Mandatory Rules are compiled in and cannot be changed here.

# Security profile: standard | hardened | isolated (spec §5.2).
#   standard: development and personal use; single DSC; encryption at rest optional.
#   hardened: business data; dual DSC; encrypted audit log required.
#   isolated: regulated data; triple DSC; 7-year audit retention.
# Standard does NOT provide strong agent isolation, DSC redundancy, commander
# ceremonies or host hardening (spec §5.2.2).
profile = "{}"
"#,
        profile.name()
    )
}

pub fn run(out: &Output, data_dir: &Path, args: &InitArgs) -> anyhow::Result<ExitCode> {
    let profile = Profile::parse(&args.profile).ok_or_else(|| {
        coded("MAOS-USAGE", format!("unknown profile `{}`: use standard, hardened or isolated", args.profile), 2)
    })?;
    let dir = DataDir::new(data_dir);
    let report = init(&dir, profile)?;
    out.json(&serde_json::json!({
        "ok": true,
        "data_dir": dir.root().display().to_string(),
        "profile": profile.name(),
        "kernel_key_id": report.kernel_key_id,
        "commander_key_id": report.commander_key_id,
    }));
    out.line(format!("{} MAOS data directory at {}", out.green("created"), dir.root().display()));
    out.field("profile", profile.name());
    out.field("kernel key", &report.kernel_key_id);
    out.field("commander key", &report.commander_key_id);
    out.line(out.dim("  secret keys are mode 0600; keep keys/commander.key away from agents"));
    if profile == Profile::Standard {
        out.line(
            out.dim("  note: the standard profile gives no strong agent isolation or DSC redundancy (spec §5.2.2)"),
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub struct InitReport {
    pub kernel_key_id: String,
    pub commander_key_id: String,
}

/// Creates the directory, keys and configuration. Refuses if any key exists.
pub fn init(dir: &DataDir, profile: Profile) -> anyhow::Result<InitReport> {
    for existing in [dir.kernel_key(), dir.commander_key(), dir.kernel_pub(), dir.commander_pub()] {
        if existing.exists() {
            return Err(coded(
                "MAOS-ALREADY-INITIALIZED",
                format!("`{}` already exists; refusing to overwrite keys", existing.display()),
                1,
            ));
        }
    }
    create_private_dir(dir.root())?;
    create_private_dir(&dir.keys())?;
    let (ledger, _) = Ledger::open(&dir.ledger())?;
    let mut ids = Vec::new();
    for (role, secret, public) in
        [("kernel", dir.kernel_key(), dir.kernel_pub()), ("commander", dir.commander_key(), dir.commander_pub())]
    {
        let key = SigningKey::generate()?;
        maos_crypto::write_secret_key_file(&secret, &key)?;
        maos_crypto::write_public_key_file(&public, key.verifying_key())?;
        ledger.append(&SecurityEvent::KeyCreated {
            role: role.into(),
            key_id: key.key_id().to_hex(),
            suite: SuiteId::MlDsa65Ed25519.name().into(),
            at_ms: now().0,
        })?;
        ids.push(key.key_id().to_hex());
    }
    if !dir.config().exists() {
        std::fs::write(dir.config(), config_text(profile))?;
    }
    let mut ids = ids.into_iter();
    Ok(InitReport { kernel_key_id: ids.next().unwrap_or_default(), commander_key_id: ids.next().unwrap_or_default() })
}
