//! `maos key rotate kernel|commander`: replace a key, logging the handover first.
//!
//! Order (Rule 8, log before effect):
//! 1. write the new key pair beside the old one as `*.new` (0600) and keep a copy
//!    of the old public key in `keys/retired/` (kernel keys only: it must go on
//!    verifying the tokens and checkpoints it signed);
//! 2. append `key.rotated` to the log and sign the head with the **old** key, so
//!    the old key vouches for the handover;
//! 3. rename the new files over the old ones (the old secret is gone).
//!
//! A crash between 2 and 3 leaves `*.new` files whose rotation is logged:
//! [`finish_interrupted`] completes it on the next start. A crash before 2 leaves
//! unlogged `*.new` files: they are removed, and the old key stays in force.

use crate::cli::KeyCommand;
use crate::datadir::{DataDir, create_private_dir, now};
use crate::journal::{Journal, SecurityEvent, read_events};
use crate::output::{Output, coded};
use maos_crypto::{SigningKey, SuiteId};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub fn run(out: &Output, data_dir: &Path, cmd: KeyCommand) -> anyhow::Result<ExitCode> {
    let dir = DataDir::new(data_dir);
    match cmd {
        KeyCommand::Rotate { role } => rotate(out, &dir, &role),
    }
}

fn pending(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".new");
    PathBuf::from(name)
}

fn paths(dir: &DataDir, role: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
    match role {
        "kernel" => Ok((dir.kernel_key(), dir.kernel_pub())),
        "commander" => Ok((dir.commander_key(), dir.commander_pub())),
        other => Err(coded("MAOS-USAGE", format!("unknown key `{other}`: use kernel or commander"), 2)),
    }
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

fn rotate(out: &Output, dir: &DataDir, role: &str) -> anyhow::Result<ExitCode> {
    dir.require_initialized()?;
    finish_interrupted(dir)?;
    let (secret, public) = paths(dir, role)?;
    let old = maos_crypto::read_public_key_file(&public)?;
    let new = SigningKey::generate()?;
    maos_crypto::write_secret_key_file(&pending(&secret), &new)?;
    maos_crypto::write_public_key_file(&pending(&public), new.verifying_key())?;
    if role == "kernel" {
        create_private_dir(&dir.retired_keys())?;
        let retired = dir.retired_keys().join(format!("kernel-{}.pub", old.key_id().short()));
        if !retired.exists() {
            maos_crypto::write_public_key_file(&retired, &old)?;
        }
    }
    sync_dir(&dir.keys())?;
    let event = SecurityEvent::KeyRotated {
        role: role.to_owned(),
        old_key_id: old.key_id().to_hex(),
        new_key_id: new.key_id().to_hex(),
        suite: SuiteId::MlDsa65Ed25519.name().into(),
        at_ms: now().0,
    };
    {
        let (journal, _, _) = Journal::open_as_is(dir)?;
        journal.append(&event, None)?;
        journal.checkpoint_now()?;
    }
    install(dir, &secret, &public)?;
    out.json(&serde_json::json!({
        "ok": true, "role": role, "old_key_id": old.key_id().to_hex(), "new_key_id": new.key_id().to_hex(),
    }));
    out.line(format!("{} {role} key", out.green("rotated")));
    out.field("old", old.key_id().to_hex());
    out.field("new", new.key_id().to_hex());
    if role == "kernel" {
        out.line(out.dim("  the old public key stays in keys/retired/ to verify what it signed; its secret is gone"));
    }
    Ok(ExitCode::SUCCESS)
}

fn install(dir: &DataDir, secret: &Path, public: &Path) -> anyhow::Result<()> {
    std::fs::rename(pending(secret), secret)?;
    std::fs::rename(pending(public), public)?;
    sync_dir(&dir.keys())
}

/// Completes a rotation whose `key.rotated` record is in the log, or discards
/// one that never got logged. Called before any key is used.
pub fn finish_interrupted(dir: &DataDir) -> anyhow::Result<()> {
    for role in ["kernel", "commander"] {
        let (secret, public) = paths(dir, role)?;
        let new_secret = pending(&secret);
        if !new_secret.exists() {
            continue;
        }
        let staged = maos_crypto::read_public_key_file(&pending(&public)).ok().map(|k| k.key_id().to_hex());
        let logged = read_events(dir)?.into_iter().any(|e| {
            matches!(e, SecurityEvent::KeyRotated { role: r, new_key_id, .. }
                if r == role && Some(&new_key_id) == staged.as_ref())
        });
        if logged {
            tracing::warn!(role, "completing a key rotation that was logged but not installed");
            install(dir, &secret, &public)?;
        } else {
            tracing::warn!(role, "discarding a key rotation that never reached the log");
            std::fs::remove_file(&new_secret)?;
            let _ = std::fs::remove_file(pending(&public));
            sync_dir(&dir.keys())?;
        }
    }
    Ok(())
}
