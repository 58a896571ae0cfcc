//! Assembles a kernel from a data directory: the log (opened and recovered
//! through the journal, so an interrupted key rotation is finished first), the
//! built-in effectors from `[effectors]`, the Commit Layer, the DSC for the
//! profile, and the trusted keys. `maos up` and `maos demo` both start here, so
//! the demo runs exactly what the daemon runs.

use crate::datadir::DataDir;
use crate::journal::Journal;
use anyhow::Context as _;
use maos_commit::effectors::fs::FsEffector;
use maos_commit::effectors::http::{AllowList, HttpConfig, HttpEffector, PlainHttp, PrivateAddresses};
use maos_commit::effectors::mail::MailEffector;
use maos_commit::effectors::noop::NoopEffector;
use maos_commit::{CommitConfig, CommitLayer, Effectors};
use maos_kernel::KernelConfig;
use std::path::PathBuf;
use std::sync::Arc;

/// Choices beyond `maos.toml`.
#[derive(Debug, Clone, Default)]
pub struct RuntimeOptions {
    /// Register the `noop.*` effector (for `maos bench`).
    pub noop_effector: bool,
    /// Skip every log sync (benchmarks of the cost of durability only).
    pub bench_no_fsync: bool,
    /// Fault drills (`MAOS_DRILL_DIR`): switches the kernel and the log read.
    pub drills: Option<crate::drill::Switches>,
}

/// A kernel ready to start, with the parts the caller drives directly.
pub struct Runtime {
    pub kernel: KernelConfig,
    pub commit: Arc<CommitLayer>,
    pub mail: Arc<MailEffector>,
    pub fs_root: PathBuf,
    pub listen: String,
    pub rate_per_second: u32,
    /// MCP upstreams: their tools (filled by [`connect_upstreams`] and every
    /// reconnection) and connections.
    pub tools: Arc<maos_gateway::mcp::ToolRegistry>,
    pub upstreams: maos_gateway::mcp::Upstreams,
    pub upstream_configs: Vec<maos_mcp::UpstreamConfig>,
    pub approval_wait: std::time::Duration,
}

/// Opens the data directory's kernel parts. `async_runtime` runs the MCP
/// effector's upstream calls; call this outside it (the http effector's
/// blocking client must not be created inside an async context).
pub fn open(dir: &DataDir, options: RuntimeOptions, async_runtime: &tokio::runtime::Handle) -> anyhow::Result<Runtime> {
    let config = dir.load_config()?;
    // Before the log is opened or any effector created: nothing is touched on a refusal.
    dir.check_effector_paths(&config)?;
    let wal_drill = options.drills.as_ref().map(|d| d.wal_sync.clone());
    let (journal, _, report) = Journal::open_for_daemon(dir, options.bench_no_fsync, wal_drill)?;
    if let Some(torn) = &report.torn_tail {
        tracing::warn!(?torn, "the log had a torn tail (a crash); it was cut");
    }
    let wal = Arc::new(journal.into_wal());
    let fx = &config.effectors;
    let state = dir.root().join("state");
    let fs = FsEffector::new(dir.resolve(&fx.fs_root), state.join("fs")).context("setting up the fs effector")?;
    let fs_root = fs.root().to_path_buf();
    let mail = Arc::new(
        MailEffector::new(dir.resolve(&fx.mail_outbox), &fx.mail_from).context("setting up the mail effector")?,
    );
    let mut effectors = Effectors::new().with(Arc::new(fs))?.with(mail.clone())?;
    if !fx.http_allow.is_empty() {
        let mut http = HttpConfig::new(AllowList::new(&fx.http_allow)?);
        if fx.http_plain {
            http.plain_http = PlainHttp::Allow;
        }
        if fx.http_private {
            http.private_addresses = PrivateAddresses::Allow;
        }
        effectors.insert(Arc::new(HttpEffector::new(http)?))?;
    }
    if options.noop_effector {
        effectors.insert(Arc::new(NoopEffector))?;
    }
    // The one loader (maos.toml `[policy] files`); a policy error refuses start-up.
    let deployed = dir.policy_sources(&config)?;
    let dsc = crate::datadir::dsc_config_from(config.profile, &deployed, config.aggregate)?;
    // Logged before the kernel decides anything: replay re-runs this exact policy.
    crate::policy_log::log_policy(&wal, &dsc, &deployed)?;
    let tools = Arc::new(maos_gateway::mcp::ToolRegistry::default());
    let pinning = maos_gateway::mcp::Pinning { registry: tools.clone(), wal: wal.clone(), dsc: dsc.clone() };
    let upstreams = maos_gateway::mcp::Upstreams::new(pinning, async_runtime.clone());
    if !config.upstreams.is_empty() {
        effectors.insert(Arc::new(maos_gateway::mcp::McpEffector::new(
            tools.clone(),
            upstreams.clone(),
            async_runtime.clone(),
            dsc.clone(),
        )))?;
    }
    let mut commit_config = CommitConfig::new(state.join("rollback"));
    commit_config.dsc_config_hash = Some(dsc.hash());
    let commit = Arc::new(CommitLayer::open(wal, effectors, commit_config)?);
    let commander = maos_crypto::read_public_key_file(&dir.commander_pub())?;
    let keys = crate::cmd_token::key_ring(dir)?;
    let mut kernel = KernelConfig::new(commit.clone(), dsc.clone(), keys, commander);
    kernel.forensics_dir = Some(dir.forensics());
    if let Some(ms) = config.tsca.system_restart_after_ms {
        kernel.system_restart_after = std::time::Duration::from_millis(ms);
    }
    if let Some(drills) = &options.drills {
        kernel.faults = drills.kernel.clone();
    }
    if let Some(e) = &config.evaluator {
        kernel.evaluator = Some(Arc::new(crate::evaluator::HttpEvaluator::new(&e.url)?));
        kernel.evaluator_timeout =
            e.timeout_ms.map_or(maos_kernel::EVALUATOR_TIMEOUT_DEFAULT, std::time::Duration::from_millis);
    }
    Ok(Runtime {
        kernel,
        commit,
        mail,
        fs_root,
        listen: config.api.listen,
        rate_per_second: config.api.rate_per_second,
        tools,
        upstreams,
        upstream_configs: config.upstreams,
        approval_wait: std::time::Duration::from_secs(config.mcp.approval_wait_s.min(600)),
    })
}

/// What connecting the upstreams found.
pub struct UpstreamReport {
    pub name: String,
    pub tools: usize,
    pub withheld: Vec<String>,
    /// Why it is not available yet (it is reconnected in the background).
    pub error: Option<String>,
}

/// Connects every configured upstream, lists its tools, pins them in the log
/// (first sight) and withholds changed or poisoned ones, then makes the
/// connection live ([`maos_gateway::mcp::Upstreams::start`], the same path every
/// reconnection takes). An upstream that cannot be reached is reported, not
/// fatal: it is retried in the background with backoff, and its tools are
/// offered once it is up.
pub async fn connect_upstreams(runtime: &Runtime) -> Vec<UpstreamReport> {
    let mut reports = Vec::new();
    for config in &runtime.upstream_configs {
        let mut report = UpstreamReport { name: config.name.clone(), tools: 0, withheld: Vec::new(), error: None };
        match runtime.upstreams.start(config.clone()).await {
            Ok(entries) => {
                report.tools = entries.len();
                report.withheld = entries
                    .iter()
                    .filter_map(|e| e.disabled.as_ref().map(|d| format!("{} ({})", e.tool.name, d.code)))
                    .collect();
            }
            Err(e) => {
                tracing::warn!(upstream = %config.name, error = %e, "upstream not available yet; retrying in the background");
                report.error = Some(e);
            }
        }
        reports.push(report);
    }
    reports
}
