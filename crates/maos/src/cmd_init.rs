//! `maos init`: a new data directory with a commented configuration, the kernel
//! key and, separately, the commander's key. Never overwrites a key.

use crate::cli::InitArgs;
use crate::datadir::{DataDir, create_private_dir, now};
use crate::journal::{Journal, SecurityEvent};
use crate::output::{Output, coded};
use maos_crypto::{SealingKey, SigningKey, SuiteId};
use maos_model::Profile;
use std::path::Path;
use std::process::ExitCode;

pub fn config_text(profile: Profile, encrypt: bool) -> String {
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

[wal]
# The write-ahead log holds every security event, hash-chained with signed
# checkpoints. A second copy is written with the first and an event counts as
# logged only when both are durable (spec §38.3). Put it on another partition
# (standard) or another disk (hardened, isolated). "" disables it (not advised).
secondary_dir = "{}"
# Seal record payloads with AES-256-GCM (keys/wal.key). Always on, whatever
# this says, for the hardened and isolated profiles.
encrypt = {}
# Segment size target in bytes (default 16 MiB). Retention deletes whole
# segments older than the profile's period, after logging a signed snapshot
# of the state they hold.
# segment_bytes = 16777216

[api]
# Where `maos up` serves the HTTP API (/v1) . Loopback by default: agents on
# other hosts should reach MAOS through a proxy you control.
listen = "{}"
# Requests per second per agent session (spec §9 default).
rate_per_second = {}

[effectors]
# Relative paths are under this data directory.
# The only directory fs.* may read or change (no `..`, no symlink escape).
fs_root = "workspace"
# Outgoing mail is written here (Maildir) and held 60 minutes, during which
# `maos undo INTENT` recalls it.
mail_outbox = "mail"
mail_from = "agent@maos.localhost"
# Hosts http.* may reach, e.g. ["api.example.com", "*.example.org"]. Empty: none.
http_allow = []
# Local testing only: allow http:// and names resolving to private addresses.
http_plain = false
http_private = false
"#,
        profile.name(),
        crate::datadir::DEFAULT_WAL_SECONDARY,
        encrypt,
        maos_gateway::LISTEN_DEFAULT,
        maos_gateway::RATE_PER_SECOND_DEFAULT,
    )
}

pub fn run(out: &Output, data_dir: &Path, args: &InitArgs) -> anyhow::Result<ExitCode> {
    let profile = Profile::parse(&args.profile).ok_or_else(|| {
        coded("MAOS-USAGE", format!("unknown profile `{}`: use standard, hardened or isolated", args.profile), 2)
    })?;
    let dir = DataDir::new(data_dir);
    let report = init(&dir, profile, args.encrypt_log)?;
    out.json(&serde_json::json!({
        "ok": true,
        "data_dir": dir.root().display().to_string(),
        "profile": profile.name(),
        "kernel_key_id": report.kernel_key_id,
        "commander_key_id": report.commander_key_id,
        "wal_encrypted": report.encrypted,
    }));
    out.line(format!("{} MAOS data directory at {}", out.green("created"), dir.root().display()));
    out.field("profile", profile.name());
    out.field("kernel key", &report.kernel_key_id);
    out.field("commander key", &report.commander_key_id);
    out.field("log", format!("{} (+ copy in {})", dir.wal().display(), report.secondary.as_deref().unwrap_or("none")));
    if report.encrypted {
        out.field("encryption", "AES-256-GCM, key in keys/wal.key");
    }
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
    pub secondary: Option<String>,
    pub encrypted: bool,
}

/// Creates the directory, keys, configuration and the journal, whose first
/// events record the two keys. Refuses if any key exists.
pub fn init(dir: &DataDir, profile: Profile, encrypt: bool) -> anyhow::Result<InitReport> {
    for existing in [dir.kernel_key(), dir.commander_key(), dir.kernel_pub(), dir.commander_pub(), dir.wal_key()] {
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
    if !dir.config().exists() {
        std::fs::write(dir.config(), config_text(profile, encrypt))?;
    }
    let config = dir.load_config()?;
    if config.encrypt_wal {
        SealingKey::generate()?.write_file(&dir.wal_key())?;
    }
    let mut created = Vec::new();
    for (role, secret, public) in
        [("kernel", dir.kernel_key(), dir.kernel_pub()), ("commander", dir.commander_key(), dir.commander_pub())]
    {
        let key = SigningKey::generate()?;
        maos_crypto::write_secret_key_file(&secret, &key)?;
        maos_crypto::write_public_key_file(&public, key.verifying_key())?;
        created.push((role, key.key_id().to_hex()));
    }
    let (journal, _, _) = Journal::open(dir)?;
    for (role, key_id) in &created {
        journal.append(
            &SecurityEvent::KeyCreated {
                role: (*role).into(),
                key_id: key_id.clone(),
                suite: SuiteId::MlDsa65Ed25519.name().into(),
                at_ms: now().0,
            },
            None,
        )?;
    }
    journal.checkpoint_now()?;
    let mut ids = created.into_iter().map(|(_, id)| id);
    Ok(InitReport {
        kernel_key_id: ids.next().unwrap_or_default(),
        commander_key_id: ids.next().unwrap_or_default(),
        secondary: config.wal_secondary.map(|p| p.display().to_string()),
        encrypted: config.encrypt_wal,
    })
}
