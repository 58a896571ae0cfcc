//! The security event ledger: every token and key event, appended durably
//! before its effect is reported, and replayed on start to rebuild the token
//! registry (revocations and epoch survive restarts).
//!
//! One JSON object per line, `fsync`ed per append. A line that does not parse
//! or does not apply stops everything (fail closed): a ledger we cannot read is
//! a ledger someone may have edited.

use crate::datadir::create_private_dir;
use crate::output::coded;
use anyhow::Context as _;
use maos_token::{TokenEvent, TokenRegistry};
use serde::{Deserialize, Serialize};
use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};

/// Largest ledger line accepted on replay.
const LINE_BYTES_MAX: usize = 64 * 1024;

/// One security event.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SecurityEvent {
    /// A key pair was created.
    KeyCreated { role: String, key_id: String, suite: String, at_ms: u64 },
    /// A token event (issued, derived, revoked).
    Token(TokenEvent),
}

pub struct Ledger {
    path: PathBuf,
}

impl Ledger {
    /// Opens the ledger under `dir` and replays it into a token registry.
    pub fn open(dir: &Path) -> anyhow::Result<(Self, TokenRegistry)> {
        create_private_dir(dir)?;
        let path = dir.join("events.jsonl");
        let mut registry = TokenRegistry::new();
        if path.exists() {
            let file = std::fs::File::open(&path).with_context(|| format!("opening `{}`", path.display()))?;
            for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
                let line = line.with_context(|| format!("reading `{}`", path.display()))?;
                let corrupt =
                    |why: String| coded("LEDGER-CORRUPT", format!("`{}` line {}: {why}", path.display(), n + 1), 1);
                if line.len() > LINE_BYTES_MAX {
                    return Err(corrupt("line too long".into()));
                }
                let event: SecurityEvent = serde_json::from_str(&line).map_err(|e| corrupt(e.to_string()))?;
                if let SecurityEvent::Token(t) = &event {
                    registry.apply(t).map_err(|e| corrupt(e.to_string()))?;
                }
            }
        }
        Ok((Self { path }, registry))
    }

    /// Appends an event and returns once it is on disk.
    pub fn append(&self, event: &SecurityEvent) -> anyhow::Result<()> {
        let mut line = serde_json::to_string(event)?;
        line.push('\n');
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .with_context(|| format!("opening `{}`", self.path.display()))?;
        file.write_all(line.as_bytes())?;
        file.sync_data().with_context(|| format!("syncing `{}`", self.path.display()))?;
        Ok(())
    }
}
