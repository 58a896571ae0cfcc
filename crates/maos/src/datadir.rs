//! The data directory: configuration, keys and logs, laid out as
//! ```text
//! <data-dir>/maos.toml            commented configuration (profile, ...)
//! <data-dir>/keys/kernel.key      kernel signing key (0600): signs tokens, checkpoints
//! <data-dir>/keys/kernel.pub      its public key: what auditors and verifiers need
//! <data-dir>/keys/commander.key   the human operator's key (0600), kept apart from the kernel's
//! <data-dir>/keys/commander.pub
//! <data-dir>/keys/wal.key         AES-256-GCM key of the log (hardened, isolated, or `encrypt = true`)
//! <data-dir>/wal/                 the write-ahead log: security events and audit chain
//! <data-dir>/wal-secondary/       its second copy (configurable)
//! ```

use crate::output::coded;
use anyhow::Context as _;
use maos_crypto::{SigningKey, VerifyingKey};
use maos_model::{Profile, UnixMillis};
use serde::Deserialize;

/// Retired kernel keys still trusted for verification; bounds what a directory
/// full of planted key files could make every verify consider.
pub const RETIRED_KEYS_MAX: usize = 32;

/// Where the second WAL copy goes by default, relative to the data directory.
pub const DEFAULT_WAL_SECONDARY: &str = "wal-secondary";

/// The configuration in force.
pub struct Config {
    pub profile: Profile,
    /// The second WAL copy (spec §38.3); `None` when disabled.
    pub wal_secondary: Option<PathBuf>,
    /// Whether WAL payloads are sealed (forced on for hardened and isolated).
    pub encrypt_wal: bool,
    /// `[wal] segment_bytes`: the segment size target, if set.
    pub wal_segment_bytes: Option<u64>,
    /// `[api]`: where `maos up` listens and the per-session rate.
    pub api: ApiSection,
    /// `[effectors]`: what the built-in effectors may touch.
    pub effectors: EffectorsSection,
    /// `[[upstream]]`: MCP tool servers the gateway mediates.
    pub upstreams: Vec<maos_mcp::UpstreamConfig>,
    /// `[mcp]`: the agent-facing MCP gateway.
    pub mcp: McpSection,
    /// `[policy] files`: Cedar MAC policy files `maos up`, `audit replay` and
    /// `policy test` load on top of the profile's defaults (absolute, or
    /// relative to the data directory).
    pub policy_files: Vec<PathBuf>,
    /// `[aggregate]`: the aggregate monitor's thresholds and mode.
    pub aggregate: (AggregateLimits, AggregateMode),
    /// `[evaluator]`: the semantic evaluator's endpoint, if any.
    pub evaluator: Option<EvaluatorSection>,
    /// `[tsca]`: the recovery agent's patience.
    pub tsca: TscaSection,
}

/// `[tsca]` in `maos.toml`: how patient the TSCA is (`docs/resilience.md`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TscaSection {
    /// How long the sequencer may be unresponsive, past its limit, before the
    /// TSCA restarts the process, ms (1000..=600000; default 10000).
    pub system_restart_after_ms: Option<u64>,
}

/// `[evaluator]` in `maos.toml`: the semantic evaluator the kernel consults
/// after the DSC allows an effect (`docs/resilience.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluatorSection {
    /// `https://…`, or `http://` to a loopback host.
    pub url: String,
    /// Longest wait for one answer, ms (100..=10000; default 2000).
    pub timeout_ms: Option<u64>,
}

/// `[aggregate]` in `maos.toml`: the aggregate monitor (spec §49.11); each
/// threshold defaults to the spec's value.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateSection {
    pub outbound_bytes_per_day: Option<u64>,
    pub external_calls_per_day: Option<u32>,
    pub recipients_per_week: Option<u32>,
    /// `enforce` (default) or `calibrate` (Standard only: count, never escalate).
    pub mode: Option<AggregateMode>,
}

impl AggregateSection {
    fn resolve(&self) -> (AggregateLimits, AggregateMode) {
        let d = AggregateLimits::DEFAULT;
        let limits = AggregateLimits {
            outbound_bytes: self.outbound_bytes_per_day.unwrap_or(d.outbound_bytes),
            recipients: self.recipients_per_week.unwrap_or(d.recipients),
            external_calls: self.external_calls_per_day.unwrap_or(d.external_calls),
        };
        (limits, self.mode.unwrap_or_default())
    }
}

/// `[policy]` in `maos.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySection {
    /// Cedar files; each may only add forbids (the profile's permit stays).
    #[serde(default)]
    pub files: Vec<String>,
}

/// Policy files at most: bounds boot work and the boot record.
pub const POLICY_FILES_MAX: usize = 32;
/// Bytes of one policy file: a policy is text a human reviews, not data.
pub const POLICY_FILE_BYTES_MAX: usize = 256 * 1024;

/// `[mcp]` in `maos.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpSection {
    /// Seconds a tool call that needs approval waits for the commander before
    /// answering "pending" with the approval id.
    pub approval_wait_s: u64,
}

impl Default for McpSection {
    fn default() -> Self {
        Self { approval_wait_s: 30 }
    }
}

/// Upstream servers at most (each is a process or a connection).
pub const UPSTREAMS_MAX: usize = 64;

/// `[api]` in `maos.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSection {
    /// Listen address; loopback by default.
    pub listen: String,
    /// Requests per second per agent session (spec §9 default 1,000).
    pub rate_per_second: u32,
}

impl Default for ApiSection {
    fn default() -> Self {
        Self { listen: maos_gateway::LISTEN_DEFAULT.to_owned(), rate_per_second: maos_gateway::RATE_PER_SECOND_DEFAULT }
    }
}

/// `[effectors]` in `maos.toml`. Relative paths are under the data directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EffectorsSection {
    /// The only directory `fs.*` may touch.
    pub fs_root: String,
    /// The Maildir outbox `mail.send` writes to (held 60 min before release).
    pub mail_outbox: String,
    /// The `From:` of outgoing mail.
    pub mail_from: String,
    /// Hosts `http.*` may reach (exact names or `*.example.com`); empty: none.
    pub http_allow: Vec<String>,
    /// Allow `http://` as well as `https://` (local testing only).
    pub http_plain: bool,
    /// Allow names that resolve to loopback or private addresses (local testing only).
    pub http_private: bool,
}

impl Default for EffectorsSection {
    fn default() -> Self {
        Self {
            fs_root: "workspace".into(),
            mail_outbox: "mail".into(),
            mail_from: "agent@maos.localhost".into(),
            http_allow: Vec::new(),
            http_plain: false,
            http_private: false,
        }
    }
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    profile: Option<String>,
    #[serde(default)]
    wal: WalSection,
    #[serde(default)]
    api: ApiSection,
    #[serde(default)]
    effectors: EffectorsSection,
    #[serde(default)]
    upstream: Vec<maos_mcp::UpstreamConfig>,
    #[serde(default)]
    mcp: McpSection,
    #[serde(default)]
    policy: PolicySection,
    #[serde(default)]
    aggregate: AggregateSection,
    evaluator: Option<EvaluatorSection>,
    #[serde(default)]
    tsca: TscaSection,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WalSection {
    secondary_dir: Option<String>,
    #[serde(default)]
    encrypt: bool,
    /// Bytes after which the log starts a new segment (retention deletes
    /// whole segments).
    segment_bytes: Option<u64>,
}
use maos_dsc::aggregate::{AggregateLimits, AggregateMode};
use std::path::{Path, PathBuf};

/// Paths inside one data directory.
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: &Path) -> Self {
        Self { root: root.to_path_buf() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn config(&self) -> PathBuf {
        self.root.join("maos.toml")
    }

    pub fn keys(&self) -> PathBuf {
        self.root.join("keys")
    }

    pub fn kernel_key(&self) -> PathBuf {
        self.keys().join("kernel.key")
    }

    pub fn kernel_pub(&self) -> PathBuf {
        self.keys().join("kernel.pub")
    }

    pub fn commander_key(&self) -> PathBuf {
        self.keys().join("commander.key")
    }

    pub fn commander_pub(&self) -> PathBuf {
        self.keys().join("commander.pub")
    }

    /// Public keys of rotated-out kernel keys: still trusted to verify what they
    /// signed (tokens until they expire, old checkpoints forever), never to sign.
    pub fn retired_keys(&self) -> PathBuf {
        self.keys().join("retired")
    }

    /// Every kernel public key this data directory trusts: the current one first,
    /// then the retired ones in file-name order.
    pub fn kernel_trusted_keys(&self) -> anyhow::Result<Vec<VerifyingKey>> {
        let mut keys = vec![self.kernel_verifying_key()?];
        let retired = self.retired_keys();
        if retired.is_dir() {
            let mut names: Vec<PathBuf> = std::fs::read_dir(&retired)?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("kernel-") && n.ends_with(".pub"))
                })
                .collect();
            names.sort();
            for path in names.iter().take(RETIRED_KEYS_MAX) {
                keys.push(maos_crypto::read_public_key_file(path)?);
            }
        }
        Ok(keys)
    }

    /// Run-time files of a running daemon: `daemon.json` and `operator.token`.
    pub fn run(&self) -> PathBuf {
        self.root.join("run")
    }

    /// A path from the configuration: relative ones are under the data directory.
    pub fn resolve(&self, configured: &str) -> PathBuf {
        let path = Path::new(configured);
        if path.is_absolute() { path.to_path_buf() } else { self.root.join(path) }
    }

    /// Emergency shutdowns' forensic reports (never cleaned by MAOS).
    pub fn forensics(&self) -> PathBuf {
        self.root.join("forensics")
    }

    pub fn wal(&self) -> PathBuf {
        self.root.join("wal")
    }

    pub fn wal_key(&self) -> PathBuf {
        self.keys().join("wal.key")
    }

    /// Reads `maos.toml`; unknown keys are an error (a typo must not silently
    /// weaken anything). Without a file the embedded defaults apply.
    pub fn load_config(&self) -> anyhow::Result<Config> {
        let path = self.config();
        let file: ConfigFile = if path.exists() {
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading `{}`", path.display()))?;
            toml::from_str(&text).map_err(|e| coded("MAOS-CONFIG", format!("`{}`: {e}", path.display()), 1))?
        } else {
            ConfigFile::default()
        };
        let profile = match &file.profile {
            None => Profile::Standard,
            Some(p) => Profile::parse(p)
                .ok_or_else(|| coded("MAOS-CONFIG", format!("`{}`: unknown profile `{p}`", path.display()), 1))?,
        };
        let secondary = file.wal.secondary_dir.unwrap_or_else(|| DEFAULT_WAL_SECONDARY.to_owned());
        let wal_secondary = (!secondary.is_empty()).then(|| self.root.join(secondary));
        let encrypt_wal = file.wal.encrypt || maos_wal::encryption_required(profile);
        let range = maos_wal::SEGMENT_BYTES_TARGET_MIN..=maos_wal::SEGMENT_BYTES_TARGET_MAX;
        if let Some(bytes) = file.wal.segment_bytes.filter(|b| !range.contains(b)) {
            return Err(coded(
                "MAOS-CONFIG",
                format!(
                    "`{}`: [wal] segment_bytes = {bytes} is outside {}..={}",
                    path.display(),
                    range.start(),
                    range.end()
                ),
                1,
            ));
        }
        if file.upstream.len() > UPSTREAMS_MAX {
            return Err(coded(
                "MAOS-CONFIG",
                format!("`{}`: more than {UPSTREAMS_MAX} [[upstream]] entries", path.display()),
                1,
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for u in &file.upstream {
            u.transport().map_err(|e| coded("MAOS-CONFIG", format!("`{}`: {e}", path.display()), 1))?;
            // Actions are lowercase (`mcp.<server>.<tool>`): names differing only
            // in case would share every action.
            if !names.insert(u.name.to_ascii_lowercase()) {
                return Err(coded(
                    "MAOS-CONFIG",
                    format!(
                        "`{}`: two upstreams named `{}` (names are compared ignoring case)",
                        path.display(),
                        u.name
                    ),
                    1,
                ));
            }
        }
        if file.policy.files.len() > POLICY_FILES_MAX {
            return Err(coded(
                "MAOS-CONFIG",
                format!("`{}`: more than {POLICY_FILES_MAX} policy files", path.display()),
                1,
            ));
        }
        let aggregate = file.aggregate.resolve();
        // Checked here too (the DSC refuses it at build), so the error names
        // the file before any key or log is opened.
        let aggregate_error = aggregate.0.validate(profile, aggregate.1).err();
        if let Some(why) = aggregate_error {
            return Err(coded("MAOS-CONFIG", format!("`{}`: [aggregate] {why}", path.display()), 1));
        }
        let policy_files = file.policy.files.iter().map(|f| self.root.join(f)).collect();
        if let Some(e) = &file.evaluator {
            let bad = |why: &str| coded("MAOS-CONFIG", format!("`{}`: [evaluator] {why}", path.display()), 1);
            maos_mcp::check_url(&e.url).map_err(&bad)?;
            if e.timeout_ms.is_some_and(|t| !(100..=10_000).contains(&t)) {
                return Err(bad("`timeout_ms` must be 100..=10000"));
            }
        }
        if file.tsca.system_restart_after_ms.is_some_and(|t| !(1_000..=600_000).contains(&t)) {
            let why = "[tsca] `system_restart_after_ms` must be 1000..=600000";
            return Err(coded("MAOS-CONFIG", format!("`{}`: {why}", path.display()), 1));
        }
        Ok(Config {
            profile,
            wal_secondary,
            encrypt_wal,
            wal_segment_bytes: file.wal.segment_bytes,
            api: file.api,
            effectors: file.effectors,
            upstreams: file.upstream,
            mcp: file.mcp,
            policy_files,
            aggregate,
            evaluator: file.evaluator,
            tsca: file.tsca,
        })
    }

    /// Refuses effector paths that overlap what the kernel keeps for itself.
    ///
    /// `fs.*` reads and writes anything under `fs_root` for any agent holding
    /// a path permission, and files in the mail outbox leave the machine: if
    /// either reached the keys, the log, the run files, the kernel state or a
    /// policy file, an agent could read `kernel.key`, rewrite `commander.pub`
    /// or plant mail that was never decided. The fs root and the outbox must
    /// not overlap each other either (a file written there would be released
    /// as mail). Upstream MCP servers have no configurable working directory:
    /// they inherit the one `maos up` was started in.
    ///
    /// # Errors
    /// `MAOS-CONFIG-EXPOSES` naming the setting, its resolved path and what it overlaps.
    pub fn check_effector_paths(&self, config: &Config) -> anyhow::Result<()> {
        let mut protected: Vec<(String, PathBuf)> = vec![
            ("the data directory's keys".into(), self.keys()),
            ("the log".into(), self.wal()),
            ("the run files".into(), self.run()),
            ("the kernel state".into(), self.root.join("state")),
            ("the configuration".into(), self.config()),
        ];
        if let Some(secondary) = &config.wal_secondary {
            protected.push(("the log's second copy".into(), secondary.clone()));
        }
        for file in &config.policy_files {
            protected.push((format!("the policy file `{}`", file.display()), file.clone()));
        }
        let fx = &config.effectors;
        let settings = [("fs_root", self.resolve(&fx.fs_root)), ("mail_outbox", self.resolve(&fx.mail_outbox))];
        for (name, path) in &settings {
            let path = normalized(path);
            for (what, other) in &protected {
                let other = normalized(other);
                if path.starts_with(&other) || other.starts_with(&path) {
                    return Err(coded(
                        "MAOS-CONFIG-EXPOSES",
                        format!(
                            "[effectors] {name} = `{}` overlaps {what} ({}): an agent could read or replace it; \
                             choose a directory outside {}",
                            path.display(),
                            other.display(),
                            other.display()
                        ),
                        1,
                    ));
                }
            }
        }
        let (fs_root, outbox) = (normalized(&settings[0].1), normalized(&settings[1].1));
        if fs_root.starts_with(&outbox) || outbox.starts_with(&fs_root) {
            return Err(coded(
                "MAOS-CONFIG-EXPOSES",
                format!(
                    "[effectors] fs_root = `{}` and mail_outbox = `{}` overlap: a file an agent writes \
                     could be released as mail that was never decided",
                    fs_root.display(),
                    outbox.display()
                ),
                1,
            ));
        }
        Ok(())
    }

    /// The deployed Cedar policy sources (`[policy] files`), as (file name, text).
    ///
    /// # Errors
    /// `MAOS-POLICY` naming a file that cannot be read or is over the size bound.
    pub fn policy_sources(&self, config: &Config) -> anyhow::Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for path in &config.policy_files {
            let bad = |why: String| coded("MAOS-POLICY", format!("`{}`: {why}", path.display()), 1);
            let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
            if !meta.is_file() || meta.len() > u64::try_from(POLICY_FILE_BYTES_MAX).unwrap_or(u64::MAX) {
                return Err(bad(format!("not a regular file of at most {POLICY_FILE_BYTES_MAX} bytes")));
            }
            let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
            let name =
                path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
            out.push((name, text));
        }
        Ok(out)
    }

    /// The DSC configuration the deployment runs: the profile's defaults plus
    /// the deployed policy files. The one loader for `maos up`, `audit replay`
    /// (when the log records no policy) and `policy test`.
    ///
    /// # Errors
    /// `MAOS-POLICY` for an unreadable file or a policy Cedar rejects (start-up refused).
    pub fn dsc_config(&self, config: &Config) -> anyhow::Result<std::sync::Arc<maos_dsc::DscConfig>> {
        dsc_config_from(config.profile, &self.policy_sources(config)?, config.aggregate)
    }

    /// Fails with a helpful message unless `maos init` has run here.
    pub fn require_initialized(&self) -> anyhow::Result<()> {
        if self.kernel_pub().exists() {
            Ok(())
        } else {
            Err(coded(
                "MAOS-NOT-INITIALIZED",
                format!(
                    "no MAOS data directory at `{}`; run `maos init` first (or pass --data-dir)",
                    self.root.display()
                ),
                1,
            ))
        }
    }

    /// The commander's hybrid signature over `message` in `domain`, as the
    /// base64 the daemon's routes take (approvals, eliminations, pre-filter
    /// blocks).
    pub fn commander_signature(&self, domain: maos_crypto::SignatureDomain, message: &[u8]) -> anyhow::Result<String> {
        use base64::Engine as _;
        let key = maos_crypto::read_secret_key_file(&self.commander_key())?;
        let signature = key.sign(domain, message)?;
        Ok(base64::engine::general_purpose::STANDARD.encode(signature.as_bytes()))
    }

    pub fn kernel_signing_key(&self) -> anyhow::Result<SigningKey> {
        self.require_initialized()?;
        Ok(maos_crypto::read_secret_key_file(&self.kernel_key())?)
    }

    pub fn kernel_verifying_key(&self) -> anyhow::Result<VerifyingKey> {
        self.require_initialized()?;
        Ok(maos_crypto::read_public_key_file(&self.kernel_pub())?)
    }
}

/// `path` with `.` and `..` folded, then its longest existing prefix
/// canonicalized (symlinks resolved), so two spellings of one place compare equal.
fn normalized(path: &Path) -> PathBuf {
    let mut lexical = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                lexical.pop();
            }
            other => lexical.push(other),
        }
    }
    let mut existing = lexical;
    let mut rest = Vec::new();
    while !existing.exists() {
        let Some(name) = existing.file_name().map(std::ffi::OsStr::to_os_string) else { break };
        rest.push(name);
        existing.pop();
    }
    let mut out = existing.canonicalize().unwrap_or(existing);
    out.extend(rest.iter().rev());
    out
}

/// Creates `dir` (and parents) with mode 0700: keys and logs are for the operator only.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir).with_context(|| format!("creating `{}`", dir.display()))
}

/// Wall-clock now. Only the binary reads the clock; libraries take time as input.
pub fn now() -> UnixMillis {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    UnixMillis(ms)
}

/// Ten random bytes for a UUIDv7.
pub fn random10() -> anyhow::Result<[u8; 10]> {
    Ok(maos_crypto::random_bytes::<10>()?)
}

/// A DSC configuration from a profile and policy sources (deployed files or a
/// `kernel.policy` record).
///
/// # Errors
/// `MAOS-POLICY` naming the source Cedar rejects.
pub fn dsc_config_from(
    profile: Profile,
    sources: &[(String, String)],
    aggregate: (AggregateLimits, AggregateMode),
) -> anyhow::Result<std::sync::Arc<maos_dsc::DscConfig>> {
    let mut builder = maos_dsc::DscConfig::builder(profile).aggregate(aggregate.0, aggregate.1);
    for (name, text) in sources {
        builder = builder.policy(name, text);
    }
    builder.build().map_err(|e| match e {
        maos_dsc::DscError::Config(why) => coded("MAOS-CONFIG", why, 1),
        other => coded("MAOS-POLICY", format!("the MAC policy does not load: {other}"), 1),
    })
}
