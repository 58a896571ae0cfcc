//! The security journal: every key and token event is a record in the WAL
//! (hash-chained, group-committed, dual-copy, signed checkpoints), appended
//! durably *before* its effect is reported. Replaying it rebuilds the token
//! registry, so revocations and the epoch survive restarts.
//!
//! Payloads are canonical JSON of [`SecurityEvent`] (fixed field order, no maps).
//! A record that does not decode or does not apply stops everything (fail
//! closed): a journal we cannot read is one someone may have edited.

use crate::datadir::{Config, DataDir};
use crate::output::coded;
use maos_crypto::{SealingKey, sha3_256};
use maos_token::{TokenEvent, TokenRegistry};
use maos_wal::{LogReader, Logged, OpenReport, Record, RecordKind, StateDigest, Wal, WalConfig};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};

/// WAL record kind of a key creation.
pub const KIND_KEY_CREATED: u16 = 0x0100;
/// WAL record kind of a key rotation.
pub const KIND_KEY_ROTATED: u16 = 0x0101;
/// WAL record kind of an issued (or derived) token.
pub const KIND_TOKEN_ISSUED: u16 = 0x0110;
/// WAL record kind of a revocation (which also moves the revocation epoch).
pub const KIND_TOKEN_REVOKED: u16 = 0x0111;

/// One security event.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SecurityEvent {
    /// A key pair was created.
    KeyCreated { role: String, key_id: String, suite: String, at_ms: u64 },
    /// A key was replaced; the old public key stays trusted for verification only.
    KeyRotated { role: String, old_key_id: String, new_key_id: String, suite: String, at_ms: u64 },
    /// A token event (issued, derived, revoked).
    Token(TokenEvent),
}

impl SecurityEvent {
    fn kind(&self) -> u16 {
        match self {
            Self::KeyCreated { .. } => KIND_KEY_CREATED,
            Self::KeyRotated { .. } => KIND_KEY_ROTATED,
            Self::Token(TokenEvent::Issued(_)) => KIND_TOKEN_ISSUED,
            Self::Token(TokenEvent::Revoked(_)) => KIND_TOKEN_REVOKED,
        }
    }
}

/// Record kinds of the security journal; other caller kinds belong to the
/// Commit Layer (0x02xx) and the kernel (0x03xx).
pub const JOURNAL_KINDS: std::ops::RangeInclusive<u16> = 0x0100..=0x01FF;

/// A stable name for a record kind, for `maos audit` output.
pub fn kind_name(kind: RecordKind) -> &'static str {
    match kind.0 {
        KIND_KEY_CREATED => "key.created",
        KIND_KEY_ROTATED => "key.rotated",
        KIND_TOKEN_ISSUED => "token.issued",
        KIND_TOKEN_REVOKED => "token.revoked",
        0x0200 => "commit.intent",
        0x0201 => "commit.executing",
        0x0202 => "commit.result",
        0x0203 => "commit.failed",
        0x0204 => "commit.undone",
        0x0205 => "commit.released",
        0x0206 => "commit.releasing",
        0x0300 => "kernel.decision",
        0x0301 => "kernel.mode",
        0x0302 => "kernel.read",
        0x0303 => "kernel.refused",
        0x0304 => "kernel.denies",
        0x0305 => "kernel.immune",
        0x0306 => "kernel.agent",
        0x0307 => "kernel.health",
        0x0308 => "kernel.state",
        0x0309 => "kernel.evaluation",
        0x030A => "kernel.ecs",
        0x030B => "kernel.tsca",
        0x0310 => "approval.requested",
        0x0311 => "approval.decided",
        0x0320 => "kernel.policy",
        0x0400 => "tool.pinned",
        0x0401 => "tool.approved",
        0x0402 => "tool.disabled",
        0x0410 => "circuit.breaker",
        _ => kind.name(),
    }
}

/// The digest of token state: epoch, revoked ids, token ids.
fn registry_digest(registry: &TokenRegistry) -> StateDigest {
    let doc = serde_json::json!({
        "epoch": registry.revocations().epoch(),
        "revoked": registry.revocations().revoked(),
        "tokens": registry.iter().map(|r| r.issued.id).collect::<Vec<_>>(),
    });
    StateDigest(sha3_256(doc.to_string().as_bytes()).0)
}

/// What the journal's checkpoints sign as their state digest: the token
/// state and the key history (creations, rotations and their times), so a
/// rotation's time is vouched for by the checkpoint after it.
#[derive(Default)]
struct Vouched {
    tokens: StateDigest,
    keys: Vec<SecurityEvent>,
}

impl Vouched {
    fn digest(&self) -> StateDigest {
        let doc = serde_json::json!({ "tokens": maos_crypto::Digest(self.tokens.0).to_hex(), "keys": self.keys });
        StateDigest(sha3_256(doc.to_string().as_bytes()).0)
    }
}

/// A poisoned lock yields a digest no honest state has, so the checkpoint
/// cannot vouch for anything.
fn vouched_digest(vouched: &Mutex<Vouched>) -> StateDigest {
    vouched.lock().map(|v| v.digest()).unwrap_or(StateDigest([0xFF; 32]))
}

/// Decodes a journal record into an event, if it is one of ours.
pub fn decode_event(record: &Record) -> anyhow::Result<Option<SecurityEvent>> {
    if !JOURNAL_KINDS.contains(&record.kind.0) {
        return Ok(None);
    }
    if record.payload_state == maos_wal::PayloadState::Sealed {
        return Err(coded(
            "JOURNAL-SEALED",
            format!("lsn {} is encrypted and no wal key was given (keys/wal.key)", record.lsn),
            1,
        ));
    }
    let event: SecurityEvent = serde_json::from_slice(&record.payload)
        .map_err(|e| coded("JOURNAL-CORRUPT", format!("lsn {}: {e}", record.lsn), 1))?;
    if event.kind() != record.kind.0 {
        return Err(coded("JOURNAL-CORRUPT", format!("lsn {}: payload does not match kind", record.lsn), 1));
    }
    Ok(Some(event))
}

/// The sections of a state snapshot the journal reads; see [`state_snapshot`].
#[derive(Deserialize)]
struct JournalSections {
    tokens: maos_token::RegistrySnapshot,
    keys: Vec<SecurityEvent>,
}

fn snapshot_sections(record: &Record) -> anyhow::Result<JournalSections> {
    serde_json::from_slice(&record.payload).map_err(|e| {
        coded("JOURNAL-CORRUPT", format!("lsn {}: the state snapshot does not decode: {e}", record.lsn), 1)
    })
}

fn replay(reader: &LogReader) -> anyhow::Result<TokenRegistry> {
    let mut registry = TokenRegistry::new();
    for record in reader.fold_records()? {
        let record = record?;
        if record.kind == RecordKind::STATE_SNAPSHOT {
            registry = TokenRegistry::restore(&snapshot_sections(&record)?.tokens)
                .map_err(|e| coded("JOURNAL-CORRUPT", format!("lsn {}: {e}", record.lsn), 1))?;
        } else if let Some(SecurityEvent::Token(event)) = decode_event(&record)? {
            registry.apply(&event).map_err(|e| coded("JOURNAL-CORRUPT", format!("lsn {}: {e}", record.lsn), 1))?;
        }
    }
    Ok(registry)
}

/// Every key event (created, rotated) the log holds or its state snapshot
/// carries, in order, and the last Lsn read.
fn key_history(reader: &LogReader) -> Result<(Vec<SecurityEvent>, Option<maos_wal::Lsn>), String> {
    let mut keys = Vec::new();
    let mut last = None;
    for record in reader.fold_records().map_err(|e| e.to_string())? {
        let record = record.map_err(|e| e.to_string())?;
        last = Some(record.lsn);
        if record.kind == RecordKind::STATE_SNAPSHOT {
            keys = snapshot_sections(&record).map_err(|e| e.to_string())?.keys;
        } else if let Some(event @ (SecurityEvent::KeyCreated { .. } | SecurityEvent::KeyRotated { .. })) =
            decode_event(&record).map_err(|e| e.to_string())?
        {
            keys.push(event);
        }
    }
    Ok((keys, last))
}

/// Version of the state snapshot payload.
const SNAPSHOT_VERSION: u32 = 1;

/// The state retention must not cut, folded from every record through `head`:
/// the token ledger with its revocations and epoch (`tokens`), the kernel's
/// counters, budgets, taint and open approvals (`kernel`), every key event
/// (`keys`: rotation times decide which tokens a retired key verifies) and
/// the last vouched pin of every tool (`tools`). JSON, fixed field order.
fn state_snapshot(reader: &LogReader, profile: maos_model::Profile, head: maos_wal::Lsn) -> Result<Vec<u8>, String> {
    let fold = maos_commit::unfinished(reader).map_err(|e| e.to_string())?;
    if let Some((lsn, e)) = fold.damaged.first() {
        // A damaged commit record: recovery holds on it; nothing is cut meanwhile.
        return Err(format!("lsn {lsn}: {e}"));
    }
    let unfinished = fold.pending.len();
    if unfinished > 0 {
        // Their records may be in the segments the cut would take, and the
        // snapshot carries no commit state: recovery (later in this start)
        // settles them, and the next start cuts.
        return Err(format!("{unfinished} unfinished intent(s) await crash recovery"));
    }
    let (keys, last) = key_history(reader)?;
    if last != Some(head) {
        return Err(format!("the fold ended at {last:?}, not at the head {head}"));
    }
    let dsc = maos_dsc::DscConfig::default_for(profile).map_err(|e| e.to_string())?;
    let (tokens, kernel) = maos_kernel::snapshot_sections(reader, dsc).map_err(|e| e.to_string())?;
    let tools: Vec<maos_gateway::mcp::ToolRecord> = maos_gateway::mcp::vouched_records(reader)?.into_values().collect();
    let doc = serde_json::json!({
        "v": SNAPSHOT_VERSION,
        "through": head.0,
        "tokens": tokens,
        "kernel": kernel,
        "keys": keys,
        "tools": tools,
    });
    serde_json::to_vec(&doc).map_err(|e| e.to_string())
}

/// The journal open for writing: the WAL plus the state digest it signs.
pub struct Journal {
    wal: Wal,
    vouched: Arc<Mutex<Vouched>>,
}

impl Journal {
    /// Opens (recovering if needed) the journal for writing, with the kernel key
    /// signing checkpoints, and replays it.
    pub fn open(dir: &DataDir) -> anyhow::Result<(Self, TokenRegistry, OpenReport)> {
        if dir.wal().exists() {
            crate::cmd_key::finish_interrupted(dir)?;
        }
        Self::open_as_is(dir)
    }

    /// [`Self::open`] without completing an interrupted key rotation: for the
    /// rotation itself, which stages its new key before logging it.
    pub fn open_as_is(dir: &DataDir) -> anyhow::Result<(Self, TokenRegistry, OpenReport)> {
        Self::open_with(dir, false, None)
    }

    /// [`Self::open`]; with `bench_no_fsync` the log skips every sync
    /// (`maos up --bench-no-fsync`, to measure what durability costs: a crash
    /// can then lose acknowledged records, and there is no second copy).
    pub fn open_for_daemon(
        dir: &DataDir,
        bench_no_fsync: bool,
        drill: Option<Arc<std::sync::atomic::AtomicBool>>,
    ) -> anyhow::Result<(Self, TokenRegistry, OpenReport)> {
        if dir.wal().exists() {
            crate::cmd_key::finish_interrupted(dir)?;
        }
        Self::open_with(dir, bench_no_fsync, drill)
    }

    /// `drill`: while set, the log's syncs fail (`MAOS_DRILL_DIR`'s `fail-wal-sync`).
    fn open_with(
        dir: &DataDir,
        bench_no_fsync: bool,
        drill: Option<Arc<std::sync::atomic::AtomicBool>>,
    ) -> anyhow::Result<(Self, TokenRegistry, OpenReport)> {
        let config = dir.load_config()?;
        let key = Arc::new(dir.kernel_signing_key()?);
        let vouched = Arc::new(Mutex::new(Vouched::default()));
        let source = {
            let vouched = vouched.clone();
            Arc::new(move || vouched_digest(&vouched))
        };
        let mut wal_config = if bench_no_fsync {
            tracing::warn!("--bench-no-fsync: the log does not sync; a crash can lose acknowledged records");
            let storage = maos_wal::FsStorage::open_locked(dir.wal())
                .map_err(|e| coded("WAL-LOCKED", format!("opening `{}`: {e}", dir.wal().display()), 1))?;
            WalConfig::with_storage(config.profile, Arc::new(maos_wal::NoSyncStorage(Arc::new(storage))))
                .signer(key, source)
        } else if let Some(fail) = &drill {
            let storage = maos_wal::FsStorage::open_locked(dir.wal())
                .map_err(|e| coded("WAL-LOCKED", format!("opening `{}`: {e}", dir.wal().display()), 1))?;
            let drilled = maos_wal::DrillStorage { inner: Arc::new(storage), fail: fail.clone() };
            WalConfig::with_storage(config.profile, Arc::new(drilled)).signer(key, source)
        } else {
            WalConfig::new(config.profile, dir.wal()).signer(key, source)
        };
        if let Some(bytes) = config.wal_segment_bytes {
            wal_config = wal_config.segment_bytes_target(bytes);
        }
        wal_config = test_clock(wal_config);
        // Checkpoints signed before a rotation stay verifiable.
        for retired in dir.kernel_trusted_keys()?.into_iter().skip(1) {
            wal_config = wal_config.trust_key(retired);
        }
        if let Some(secondary) = config.wal_secondary.as_ref().filter(|_| !bench_no_fsync) {
            wal_config = match &drill {
                // The drill fails both copies: one failing copy only degrades the log.
                Some(fail) => {
                    let storage = maos_wal::FsStorage::open_locked(secondary)
                        .map_err(|e| coded("WAL-LOCKED", format!("opening `{}`: {e}", secondary.display()), 1))?;
                    let drilled = maos_wal::DrillStorage { inner: Arc::new(storage), fail: fail.clone() };
                    wal_config.secondary_storage(Arc::new(drilled))
                }
                None => wal_config.secondary_dir(secondary),
            };
        }
        if let Some(sealing) = sealing_key(dir, &config)? {
            wal_config = wal_config.sealing_key(sealing);
        }
        let (wal, report) = Wal::open(wal_config)?;
        if let Some(torn) = &report.torn_tail {
            tracing::warn!(?torn, "recovered the write-ahead log: cut a torn tail left by a crash");
        }
        // Retention per profile, by whole segments; the state they fold to is
        // snapshotted first and the deletion itself is logged.
        let snapshot_reader = wal.reader();
        match wal.apply_retention(|head| state_snapshot(&snapshot_reader, config.profile, head)) {
            Ok(retention) if !retention.deleted_segments.is_empty() => {
                tracing::info!(segments = retention.deleted_segments.len(), "retention removed old log segments");
            }
            Ok(_) => {}
            // Keeping records is the safe failure: the log grows, no state is lost.
            Err(e @ (maos_wal::WalError::Snapshot(_) | maos_wal::WalError::TooLarge { .. })) => {
                tracing::warn!(code = e.code(), "retention cut nothing this start: {e}");
            }
            Err(e) => return Err(e.into()),
        }
        let registry = replay(&wal.reader())?;
        let (keys, _) = key_history(&wal.reader()).map_err(|e| coded("JOURNAL-CORRUPT", e, 1))?;
        if let Ok(mut v) = vouched.lock() {
            *v = Vouched { tokens: registry_digest(&registry), keys };
        }
        Ok((Self { wal, vouched }, registry, report))
    }

    /// Appends an event; returns once it is durable on every healthy copy.
    /// `registry` is the state after the event, for the next checkpoint's digest.
    pub fn append(&self, event: &SecurityEvent, registry_after: Option<&TokenRegistry>) -> anyhow::Result<Logged> {
        let payload = serde_json::to_vec(event)?;
        let logged = self.wal.append(RecordKind::caller(event.kind())?, &payload)?;
        if let Ok(mut v) = self.vouched.lock() {
            if let Some(registry) = registry_after {
                v.tokens = registry_digest(registry);
            }
            if matches!(event, SecurityEvent::KeyCreated { .. } | SecurityEvent::KeyRotated { .. }) {
                v.keys.push(event.clone());
            }
        }
        self.wal.maybe_checkpoint()?;
        Ok(logged)
    }
}

impl Journal {
    /// The log itself, for the kernel, which appends its own records. The
    /// checkpoint digest stays the one computed at open (token events the
    /// kernel logs do not update it).
    pub fn into_wal(self) -> Wal {
        self.wal
    }

    /// Signs the chain head now. Short-lived writers (each CLI command) call this
    /// before exiting, so what they logged is vouched for by a checkpoint
    /// signature at once instead of after the next 100 records or 5 minutes.
    pub fn checkpoint_now(&self) -> anyhow::Result<()> {
        self.wal.checkpoint(vouched_digest(&self.vouched))?;
        Ok(())
    }
}

/// Debug builds only (`cargo test`): `MAOS_TEST_CLOCK_SKEW_DAYS` moves the
/// log's clock (record times, retention) that many days ahead, so a test can
/// age segments past retention. Release builds have no such hook.
#[cfg(debug_assertions)]
fn test_clock(config: WalConfig) -> WalConfig {
    #[derive(Debug)]
    struct Skewed(u64);
    impl maos_wal::Clock for Skewed {
        fn now(&self) -> maos_model::UnixMillis {
            maos_model::UnixMillis(maos_wal::SystemClock.now().0.saturating_add(self.0))
        }
    }
    match std::env::var("MAOS_TEST_CLOCK_SKEW_DAYS").ok().and_then(|d| d.parse::<u64>().ok()) {
        Some(days) => {
            tracing::warn!(days, "MAOS_TEST_CLOCK_SKEW_DAYS: the log's clock runs ahead (debug build)");
            config.clock(Arc::new(Skewed(days.saturating_mul(86_400_000))))
        }
        None => config,
    }
}

#[cfg(not(debug_assertions))]
const fn test_clock(config: WalConfig) -> WalConfig {
    config
}

/// The sealing key, when the profile or configuration asks for encryption.
pub fn sealing_key(dir: &DataDir, config: &Config) -> anyhow::Result<Option<Arc<SealingKey>>> {
    if !config.encrypt_wal {
        return Ok(None);
    }
    Ok(Some(Arc::new(SealingKey::read_file(&dir.wal_key())?)))
}

/// A read-only view for commands that only look (no lock, no recovery).
pub fn reader(dir: &DataDir) -> anyhow::Result<LogReader> {
    dir.require_initialized()?;
    let config = dir.load_config()?;
    let mut reader = LogReader::open_dir(&dir.wal())?;
    if let Some(key) = sealing_key(dir, &config)? {
        reader = reader.with_sealing_key(key);
    }
    Ok(reader)
}

/// Every key event of the log and the token events in it, in order
/// (read-only). On a log retention cut, the key events come from the state
/// snapshot and the token events are those after it.
pub fn read_events(dir: &DataDir) -> anyhow::Result<Vec<SecurityEvent>> {
    let mut events = Vec::new();
    for record in reader(dir)?.fold_records()? {
        let record = record?;
        if record.kind == RecordKind::STATE_SNAPSHOT {
            events = snapshot_sections(&record)?.keys;
        } else if let Some(event) = decode_event(&record)? {
            events.push(event);
        }
    }
    Ok(events)
}

/// Replays the journal read-only into a token registry.
pub fn read_registry(dir: &DataDir) -> anyhow::Result<TokenRegistry> {
    replay(&reader(dir)?)
}

#[cfg(test)]
mod vouched {
    use super::{SecurityEvent, Vouched};

    /// Issue #12 item 1: rotation and retirement times are in the checkpoint,
    /// through the state digest it signs.
    #[test]
    fn a_key_rotation_and_its_time_change_what_checkpoints_sign() {
        let mut v = Vouched::default();
        let before = v.digest();
        v.keys.push(SecurityEvent::KeyRotated {
            role: "kernel".into(),
            old_key_id: "aa".into(),
            new_key_id: "bb".into(),
            suite: "ml-dsa-65+ed25519".into(),
            at_ms: 1,
        });
        let rotated = v.digest();
        assert_ne!(before, rotated);
        if let Some(SecurityEvent::KeyRotated { at_ms, .. }) = v.keys.last_mut() {
            *at_ms = 2;
        }
        assert_ne!(rotated, v.digest(), "the rotation time is signed");
    }
}
