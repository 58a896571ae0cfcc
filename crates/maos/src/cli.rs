//! Command-line definitions. Every command takes `--json` and `--data-dir`.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// MAOS: a security kernel for AI agents.
#[derive(Debug, Parser)]
#[command(name = "maos", version, about, propagate_version = true)]
pub struct Cli {
    /// Data directory (keys, logs, configuration).
    #[arg(long, global = true, env = "MAOS_DATA_DIR", default_value = ".maos")]
    pub data_dir: PathBuf,
    /// Machine-readable JSON output on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a data directory: configuration, kernel key and commander key.
    Init(InitArgs),
    /// Issue, inspect, derive, revoke and list capability tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Rotate the kernel or commander key (the handover is logged first).
    #[command(subcommand)]
    Key(KeyCommand),
    /// Run policy scenarios through the DSC (check one file, test a directory).
    #[command(subcommand)]
    Policy(crate::cmd_policy::PolicyCommand),
    /// Verify, read and export the write-ahead log (the audit record).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Walk through the token lifecycle in a temporary data directory.
    Demo(DemoArgs),
    /// Run the kernel daemon: HTTP API on loopback, crash recovery first.
    Up(UpArgs),
    /// Mode of the running kernel and why, queue, log health, approvals.
    Status,
    /// Undo a committed intent inside its hold period (mail 60 min, files 24 h).
    Undo(UndoArgs),
    /// Answer approval requests (HACF level 2) with the commander key.
    #[command(subcommand)]
    Approve(ApproveCommand),
    /// The immune system's quarantine: list agents with danger signals; release one.
    #[command(subcommand)]
    Quarantine(QuarantineCommand),
    /// Register an agent into ring 2 or 3 with its trust class; demote one to ring 3.
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Every agent the kernel knows: ring, class, quarantine stage, danger
    /// score, aggregate counters; and the security fever if one is on.
    Agents {
        #[command(subcommand)]
        cmd: Option<AgentsCommand>,
    },
    /// End the security fever (the commander's call; logged).
    #[command(subcommand)]
    Fever(FeverCommand),
    /// Load-test a running kernel: throughput and latency percentiles.
    Bench(BenchArgs),
    /// Serve MCP on stdio for one agent, through the running kernel (for MCP
    /// clients that launch servers as commands). The capability token comes from
    /// MAOS_TOKEN or --token-file, never the command line.
    Mcp(McpArgs),
    /// Upstream MCP tools: list them with their pins; approve a changed one.
    #[command(subcommand)]
    Tools(ToolsCommand),
    /// Emergency controlled shutdown: trigger one, list them with their
    /// forensic reports, acknowledge one as commander so the node may boot.
    #[command(subcommand)]
    Ecs(EcsCommand),
    /// The Trusted System Control Agent: its level, mode, open incident and
    /// budget spent, and (Hardened) the proposals waiting for the commander.
    Tsca {
        #[command(subcommand)]
        cmd: Option<TscaCommand>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TscaCommand {
    /// Approve a TSCA proposal with the commander key of this data directory
    /// (Hardened, authorization level B); it is executed at once.
    Approve {
        /// The proposal, e.g. inc-1765100000000-p1.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum EcsCommand {
    /// Shut the running kernel down into SAFE-HOLD now: every request is
    /// refused, a forensic report is written, and the next boot needs the
    /// commander's acknowledgement.
    Trigger {
        /// Why (logged and in the report).
        #[arg(long, default_value = "emergency shutdown by the operator")]
        reason: String,
    },
    /// Every shutdown in the forensic directory, and whether it is acknowledged.
    List,
    /// Sign, with the commander key of this data directory, that you read
    /// the forensic report of shutdown ID (`ecs-<ms>`): the next boot may go
    /// ahead. Works with the daemon stopped.
    Acknowledge {
        /// The shutdown, e.g. ecs-1765100000000.
        id: String,
        /// The shutdown has no forensic directory (only the log recorded it):
        /// create it and acknowledge an empty report.
        #[arg(long)]
        missing_report: bool,
    },
}

#[derive(Debug, Args)]
pub struct McpArgs {
    /// The agent this process serves (must match the token's holder).
    #[arg(long)]
    pub agent: String,
    /// File holding the capability token (else the MAOS_TOKEN environment variable).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Base URL of the kernel (default: the `maos up` of --data-dir).
    #[arg(long)]
    pub target: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum QuarantineCommand {
    /// Every agent with a danger signal since its last release: stage, score, last signal.
    List,
    /// One agent's standing and its history from the log: every signal,
    /// report, transition and elimination with its evidence.
    Show {
        /// The agent id.
        agent: String,
    },
    /// Confirm an escalation by one stage (logged). From stage 3: eliminate
    /// and heal the agent (stages 4 and 5: its tokens revoked, its contacts
    /// in observation); Hardened and Isolated sign the commander's approval.
    Advance {
        /// The agent id.
        agent: String,
        /// Why (logged).
        #[arg(long, default_value = "advanced by the operator")]
        reason: String,
    },
    /// Release AGENT: back to stage 0 with no signals (logged with the reason).
    Release {
        /// The agent id.
        agent: String,
        /// Why (logged).
        #[arg(long, default_value = "released by the operator")]
        reason: String,
    },
    /// Immune memory's threat patterns that propose pre-filter blocks (their
    /// recipients and domains), and whether the commander approved each.
    Patterns,
    /// Approve PATTERN's indicators as pre-filter blocks: shows them, signs
    /// them with the commander key of the data directory, and from then on
    /// check 7 refuses them (logged).
    Block {
        /// The pattern id (`maos quarantine patterns`).
        pattern: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Register AGENT into a ring with a trust class (logged). Ring 2 for a
    /// class the profile allows there; a move inward later is refused
    /// (re-onboarding is not built).
    Register {
        /// The agent id.
        agent: String,
        /// 2 (trusted) or 3 (untrusted).
        #[arg(long)]
        ring: u8,
        /// a (transparent), b (inspectable) or c (opaque).
        #[arg(long)]
        class: String,
        /// Why (logged).
        #[arg(long, default_value = "registered by the operator")]
        reason: String,
    },
    /// Demote AGENT to ring 3 at once; its live tokens for ring 2 are revoked.
    Demote {
        /// The agent id.
        agent: String,
        /// Why (logged).
        #[arg(long, default_value = "demoted by the operator")]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// Calibrate the aggregate monitor: each counter's p95 over the agents
    /// with external activity, and a threshold of 3× it to paste into
    /// `maos.toml` `[aggregate]`.
    Baseline,
}

#[derive(Debug, Subcommand)]
pub enum FeverCommand {
    /// End the security fever now (else it ends 30 minutes after the last danger signal).
    End {
        /// Why (logged).
        #[arg(long, default_value = "ended by the commander")]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ToolsCommand {
    /// Every upstream tool: pin, policy, and whether it is withheld.
    List,
    /// Approve the current definition of SERVER/TOOL after a change.
    Approve {
        /// `server/tool`.
        tool: String,
        /// Approve even though the pre-filter flagged the definition (read it
        /// with `maos tools show` first).
        #[arg(long)]
        allow_poisoned: bool,
    },
    /// The current definition of SERVER/TOOL, its pin, the pre-filter's finding.
    Show {
        /// `server/tool`.
        tool: String,
    },
    /// What changed in SERVER/TOOL since the definition the log last vouched for.
    Diff {
        /// `server/tool`.
        tool: String,
    },
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Listen address (default from maos.toml, else 127.0.0.1:7700).
    #[arg(long)]
    pub listen: Option<String>,
    /// Register the `noop.*` effector, which changes nothing (for `maos bench`).
    #[arg(long)]
    pub noop_effector: bool,
    /// BENCHMARKS ONLY: the log skips fsync (a crash can lose acknowledged
    /// intents); measures what durability costs.
    #[arg(long)]
    pub bench_no_fsync: bool,
}

#[derive(Debug, Args)]
pub struct UndoArgs {
    /// The intent id.
    pub intent: String,
}

#[derive(Debug, Subcommand)]
pub enum ApproveCommand {
    /// Open approval packets.
    List,
    /// One packet in full.
    Show {
        /// The approval id (the intent id).
        id: String,
    },
    /// Sign and grant: the intent then runs.
    Grant {
        /// The approval id.
        id: String,
    },
    /// Deny: the intent fails with a logged reason.
    Deny {
        /// The approval id.
        id: String,
        /// Why (logged).
        #[arg(long, default_value = "denied by the operator")]
        reason: String,
    },
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Base URL of the kernel (default: the `maos up` of --data-dir).
    #[arg(long)]
    pub target: Option<String>,
    /// Concurrent agents (one token and session each; each is limited to
    /// 1,000 intents/s by its token and session, spec §9).
    #[arg(long, default_value_t = 32)]
    pub agents: usize,
    /// Requests in flight per agent.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Fraction of writes (0.0 to 1.0); the rest are observations.
    #[arg(long, default_value_t = 0.5)]
    pub write_ratio: f64,
    /// Fixed offered rate in intents per second (default: as fast as possible).
    #[arg(long)]
    pub rate: Option<u64>,
    /// What to drive: `noop` intents (needs `maos up --noop-effector`), `echo` (the bare HTTP floor:
    /// GET /v1/health), or `mcp` (tool calls through `/mcp` against the same calls made directly to
    /// --upstream-url).
    #[arg(long, default_value = "noop")]
    pub mode: String,
    /// `--mode mcp`: the upstream's streamable HTTP URL, called directly for the comparison (the
    /// daemon's maos.toml must configure the same upstream as --server).
    #[arg(long)]
    pub upstream_url: Option<String>,
    /// `--mode mcp`: the upstream's name in maos.toml (tokens get `mcp.<server>.*`).
    #[arg(long)]
    pub server: Option<String>,
    /// `--mode mcp`: the tool to call.
    #[arg(long, default_value = "echo")]
    pub tool: String,
    /// `--mode mcp`: the tool's arguments, a JSON object.
    #[arg(long, default_value = r#"{"message":"bench"}"#)]
    pub tool_args: String,
    /// `--mode mcp`: afterwards open this many more MAOS sessions (a token each) and report the
    /// daemon's memory per open session.
    #[arg(long, default_value_t = 0)]
    pub sessions: usize,
}

/// `maos key …`.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Replace a key with a new one: `kernel` or `commander`.
    Rotate {
        /// Which key: kernel or commander.
        role: String,
    },
}

/// `maos audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check every CRC, the hash chain and every checkpoint signature (exit 3 naming the first bad record).
    Verify(AuditVerifyArgs),
    /// Print the last records.
    Tail(AuditTailArgs),
    /// Print one record in full.
    Show(AuditShowArgs),
    /// Export the log, one JSON object per record, for SIEM ingestion.
    Export(AuditExportArgs),
    /// Re-run the DSC over every logged decision and report any verdict that differs (exit 3).
    Replay,
}

/// `maos audit verify`.
#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    /// Verify this log directory (for example a copy) instead of the data directory's.
    #[arg(long)]
    pub wal_dir: Option<PathBuf>,
    /// The kernel public key to check checkpoints with (default: the data directory's).
    #[arg(long)]
    pub public_key: Option<PathBuf>,
}

/// `maos audit tail`.
#[derive(Debug, Args)]
pub struct AuditTailArgs {
    /// How many records.
    #[arg(short = 'n', default_value_t = 20)]
    pub n: usize,
    /// Keep printing new records as they are appended.
    #[arg(long)]
    pub follow: bool,
}

/// `maos audit show`.
#[derive(Debug, Args)]
pub struct AuditShowArgs {
    /// The record's sequence number.
    pub lsn: u64,
}

/// `maos audit export`.
#[derive(Debug, Args)]
pub struct AuditExportArgs {
    /// Output format; `jsonl` is one JSON object per line.
    #[arg(long, default_value = "jsonl")]
    pub format: String,
    /// First sequence number to export.
    #[arg(long, default_value_t = 1)]
    pub from: u64,
}

/// `maos init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Security profile: standard, hardened or isolated.
    #[arg(long, default_value = "standard")]
    pub profile: String,
    /// Encrypt the log at rest (always on for hardened and isolated).
    #[arg(long)]
    pub encrypt_log: bool,
}

/// `maos demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo's data directory instead of deleting it.
    #[arg(long)]
    pub keep: bool,
}

/// `maos token …`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Mint a root token for an agent. Prints the token on stdout.
    Issue(IssueArgs),
    /// Verify a token and show its claims (exit 3 if invalid).
    Inspect(InspectArgs),
    /// Derive an attenuated child token from a parent token.
    Derive(DeriveArgs),
    /// Revoke a token and all its descendants.
    Revoke(RevokeArgs),
    /// List tokens issued from this data directory.
    List(ListArgs),
}

/// Limits shared by issue and derive.
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// A permission: ACTION[=SCOPE[,SCOPE]][;ARG=A|B][;ARG<=N][;ARG~GLOB]. Repeatable.
    #[arg(long = "allow", value_name = "PERMISSION", required = true)]
    pub allow: Vec<String>,
    /// Lifetime such as 15m or 2h (default by ring: ring 2 60m, ring 3 15m, external 5m).
    #[arg(long)]
    pub ttl: Option<String>,
    /// Operations per hour, e.g. 600/h or 10/m.
    #[arg(long)]
    pub rate: Option<String>,
    /// Operations over the token's whole life.
    #[arg(long)]
    pub max_ops: Option<u64>,
    /// IFC clearance: public, internal, confidential or restricted.
    #[arg(long)]
    pub clearance: Option<String>,
}

/// `maos token issue`.
#[derive(Debug, Args)]
pub struct IssueArgs {
    /// Agent instance id.
    #[arg(long)]
    pub agent: String,
    /// Ring of the holder: 2 (trusted) or 3 (untrusted).
    #[arg(long, default_value_t = 3)]
    pub ring: u8,
    /// Trust class: a (transparent), b (inspectable), c (opaque) or external.
    #[arg(long, default_value = "b")]
    pub trust_class: String,
    /// Budget in integer units (Rule 7).
    #[arg(long, default_value_t = 1000)]
    pub budget: u64,
    /// Human-authored mission statement, trusted for argument provenance.
    #[arg(long)]
    pub mission: Option<String>,
    /// Acknowledge, as commander, a lifetime over 4x the default (recorded in the token and log).
    #[arg(long)]
    pub commander_ack: bool,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// `maos token inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The token, or `-` to read it from stdin.
    pub token: String,
    /// Verify against this public key file instead of the data directory's kernel key.
    #[arg(long)]
    pub public_key: Option<PathBuf>,
}

/// `maos token derive`.
#[derive(Debug, Args)]
pub struct DeriveArgs {
    /// The parent token, or `-` to read it from stdin.
    pub token: String,
    /// The child's agent instance id.
    #[arg(long)]
    pub agent: String,
    /// The child's ring (never more trusted than the parent's).
    #[arg(long)]
    pub ring: Option<u8>,
    /// Budget carved from the parent's remaining budget.
    #[arg(long, default_value_t = 0)]
    pub budget: u64,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// `maos token revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// Token id (UUID) to revoke together with all its descendants.
    pub id: String,
    /// Why, for the audit record.
    #[arg(long, default_value = "revoked by operator")]
    pub reason: String,
}

/// `maos token list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Also show expired and revoked tokens.
    #[arg(long)]
    pub all: bool,
}
