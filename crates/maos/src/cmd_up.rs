//! `maos up`: the kernel daemon. Opens (or, on a fresh machine, creates) the
//! data directory, recovers what a crash left unfinished before taking any new
//! effect, serves the HTTP API on loopback, and stops cleanly on SIGTERM or
//! Ctrl-C: no new requests, requests in flight finish, the chain head is signed.
//!
//! While it runs it holds the log's lock; other commands that write reach it
//! through `<data-dir>/run/` (`daemon.json` with the address, `operator.token`
//! with the operator's bearer, mode 0600, rewritten at every start).

use crate::cli::UpArgs;
use crate::datadir::{DataDir, create_private_dir};
use crate::output::{Output, coded};
use crate::runtime::{self, RuntimeOptions};
use anyhow::Context as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// How often held mail past its hold period is released, and due checkpoints written.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(30);

/// Longest `maos up` takes to exit after SIGTERM or Ctrl-C: the longest a
/// request in flight can take (the 30 s lock timeout and the 2 s cancel grace
/// of an effect that overran it) and a margin to sign the chain head. Past it
/// the process exits anyway, releasing the log's lock: whatever was still
/// running is finished by crash recovery at the next start, as after a crash.
pub const SHUTDOWN_BUDGET: Duration = Duration::from_secs(40);

/// Longest the async runtime's tasks get to end once serving stopped.
const RUNTIME_DRAIN: Duration = Duration::from_secs(5);

pub fn run(out: &Output, data_dir: &std::path::Path, args: &UpArgs) -> anyhow::Result<ExitCode> {
    let dir = DataDir::new(data_dir);
    if !dir.kernel_pub().exists() {
        let report = crate::cmd_init::init(&dir, maos_model::Profile::Standard, false)?;
        out.line(format!(
            "{} a new data directory at {} (standard profile; commander key {})",
            out.green("initialized"),
            dir.root().display(),
            report.commander_key_id.get(..16).unwrap_or_default()
        ));
    }
    // Built outside the async runtime: the http effector's blocking client
    // must be created and dropped outside it.
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    let drills = crate::drill::from_env(dir.root(), dir.load_config()?.profile)?;
    if let Some((path, _)) = &drills {
        tracing::warn!(dir = %path.display(), "fault drills enabled: files in this directory make the kernel refuse more");
        out.line(out.red(&format!("fault drills enabled from {}", path.display())));
    }
    let switches = drills.as_ref().map(|(_, s)| s.clone());
    let options =
        RuntimeOptions { noop_effector: args.noop_effector, bench_no_fsync: args.bench_no_fsync, drills: switches };
    let runtime = runtime::open(&dir, options, rt.handle()).map_err(|e| {
        if crate::output::error_code(&e).0 == "WAL-LOCKED" {
            coded("MAOS-DAEMON-RUNNING", format!("another `maos up` holds {}; stop it first", dir.wal().display()), 1)
        } else {
            e
        }
    })?;
    let _poller = drills.map(|(path, switches)| crate::drill::watch(path, switches));
    let keep = (runtime.commit.clone(), runtime.mail.clone());
    let result = rt.block_on(serve(out, &dir, args, runtime));
    // Tasks holding the Commit Layer end with the runtime; the last reference
    // is dropped here, outside it.
    rt.shutdown_timeout(RUNTIME_DRAIN);
    drop(keep);
    result
}

async fn serve(out: &Output, dir: &DataDir, args: &UpArgs, runtime: runtime::Runtime) -> anyhow::Result<ExitCode> {
    let listen = args.listen.clone().unwrap_or_else(|| runtime.listen.clone());
    let addr: std::net::SocketAddr =
        listen.parse().map_err(|_| coded("MAOS-USAGE", format!("--listen `{listen}`: expected IP:PORT"), 2))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| coded("MAOS-LISTEN", format!("cannot listen on {addr}: {e}"), 1))?;
    let bound = listener.local_addr()?;
    if !maos_gateway::is_loopback(&bound) {
        tracing::warn!(%bound, "listening beyond loopback: put TLS and a firewall in front of MAOS");
        out.line(out.red(&format!("warning: listening on {bound}, not loopback")));
    }
    let commit = runtime.commit.clone();
    let mail = runtime.mail.clone();
    // Upstream tools are pinned and classified before recovery may re-run any call.
    let upstreams = runtime::connect_upstreams(&runtime).await;
    let (tools, links, approval_wait) = (runtime.tools.clone(), runtime.upstreams.clone(), runtime.approval_wait);
    let (kernel, report) = maos_kernel::Kernel::start(runtime.kernel).await?;
    // The TSCA's system restart: this process re-executes itself, from a
    // thread of its own (the order comes when the runtime may be stalled).
    restart_when_ordered(kernel.restart_orders());
    // The upstream supervisor is a ring-1 component under the watchdog.
    if !runtime.upstream_configs.is_empty() {
        links.supervise(&kernel)?;
    }
    links.set_conservative(kernel.conservative());
    let recovered = report.recovery.as_ref().map_or(0, |r| r.recovered.len());
    let secret = operator_secret()?;
    write_run_files(dir, &bound, &secret)?;
    let audit = Arc::new(crate::cmd_audit::LogAudit::new(dir)?);
    let limits = maos_gateway::SessionLimits { per_second: runtime.rate_per_second, burst: runtime.rate_per_second };
    let api = Arc::new(
        maos_gateway::Api::new(kernel.clone(), &secret, audit, limits)
            .with_tools(tools.clone(), commit.wal().clone())
            .with_upstreams(links.clone()),
    );
    let mediator = Arc::new(maos_gateway::mcp::KernelMediator::new(api.clone(), tools, links, approval_wait));
    let housekeeping = tokio::spawn(housekeeping(kernel.clone(), commit.clone(), mail, api.clone()));
    // Sessions of tokens the kernel revokes on its own (an automatic
    // elimination, Fast Apoptosis) close as the operator's revocations do.
    let follower = maos_gateway::follow_kernel_revocations(api.clone());
    out.json(&serde_json::json!({
        "ok": true, "listen": bound.to_string(), "mode": kernel.mode().name(), "state": kernel.state(),
        "recovered": recovered,
        "approvals_lapsed": report.approvals_lapsed.len(), "hold": report.hold,
        "token_events": report.fold.token_events, "decisions": report.fold.decisions,
        "upstreams": upstreams.iter().map(|u| serde_json::json!({
            "name": u.name, "tools": u.tools, "withheld": u.withheld, "error": u.error,
        })).collect::<Vec<_>>(),
    }));
    out.line(format!("{} MAOS kernel on http://{bound}/v1 (data {})", out.green("up"), dir.root().display()));
    out.field("mode", kernel.mode().to_string());
    let posture = kernel.status().posture;
    out.field("state", format!("{} ({})", posture.state, posture.why.join("; ")));
    out.field("recovered", format!("{recovered} unfinished intent(s) finished or rolled back"));
    if let Some(hold) = &report.hold {
        out.field("hold", out.red(hold));
    }
    for u in &upstreams {
        match &u.error {
            None => out.field(
                "upstream",
                format!(
                    "{}: {} tool(s){}",
                    u.name,
                    u.tools,
                    if u.withheld.is_empty() {
                        String::new()
                    } else {
                        format!(", withheld: {}", u.withheld.join(", "))
                    }
                ),
            ),
            Some(e) => out.field(
                "upstream",
                out.red(&format!("{}: not available yet ({e}); retrying in the background", u.name)),
            ),
        }
    }
    if !upstreams.is_empty() {
        out.field("mcp", format!("http://{bound}/mcp (capability token as bearer)"));
    }
    out.line(out.dim("  stop with Ctrl-C or SIGTERM; `maos status` reports from another terminal"));
    let (app, end_streams) = maos_gateway::router_with_mcp(api, mediator);
    let shutdown = async move {
        shutdown_signal().await;
        arm_shutdown_deadline();
        end_streams();
    };
    let served = maos_gateway::serve_router(listener, app, shutdown).await;
    housekeeping.abort();
    follower.abort();
    // Counted denies of the open windows go to the log before the head is signed.
    if let Err(e) = kernel.close_deny_windows().await {
        tracing::warn!(error = %e, "could not log the open deny windows");
    }
    remove_run_files(dir);
    if let Err(e) = tokio::task::spawn_blocking(move || commit.wal().checkpoint_now()).await? {
        tracing::warn!(error = %e, "could not sign the chain head at shutdown");
    }
    served.context("serving the API")?;
    out.line(format!("{} cleanly", out.green("stopped")));
    Ok(ExitCode::SUCCESS)
}

/// Waits, on a thread of its own, for the TSCA's order to restart the
/// system (spec §16.3: a stalled Ring 0 component is restarted with the
/// process; crash recovery runs at the next boot), then replaces this
/// process with a fresh `maos up` with the same arguments and environment.
/// Nothing is drained first: the order comes because the sequencer is
/// stalled, and whatever was in flight is finished or rolled back by
/// recovery, as after a crash. The thread ends with the kernel.
fn restart_when_ordered(orders: std::sync::mpsc::Receiver<String>) {
    let spawned = std::thread::Builder::new().name("maos-restart".into()).spawn(move || {
        for why in orders {
            tracing::error!(%why, "system restart ordered by the TSCA: re-executing maos up");
            let error = reexec();
            tracing::error!(%error, "the system restart failed: the kernel goes on as it is");
        }
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "the restart thread could not start: the TSCA's system restart reaches nobody");
    }
}

fn reexec() -> std::io::Error {
    use std::os::unix::process::CommandExt as _;
    match std::env::current_exe() {
        Ok(exe) => std::process::Command::new(exe).args(std::env::args_os().skip(1)).exec(),
        Err(e) => e,
    }
}

async fn housekeeping(
    kernel: maos_kernel::KernelHandle,
    commit: Arc<maos_commit::CommitLayer>,
    mail: Arc<maos_commit::effectors::mail::MailEffector>,
    api: Arc<maos_gateway::Api>,
) {
    let mut tick = tokio::time::interval(HOUSEKEEPING_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut alerted = std::collections::BTreeSet::new();
    loop {
        tick.tick().await;
        // A breaker open more than 5 minutes alerts the admin (spec §38.4):
        // once per episode, and `maos status` flags it while it lasts.
        let alerts: std::collections::BTreeSet<String> =
            api.breakers().into_iter().filter(|b| b.alert).map(|b| b.interface).collect();
        for interface in alerts.difference(&alerted) {
            tracing::error!(%interface, "ALERT: a circuit breaker has been open for more than 5 minutes");
        }
        alerted = alerts;
        // Conservative mode lasts the observation window after an emergency shutdown.
        api.set_conservative(kernel.conservative());
        // Through the kernel: held mail leaves only in a mode that permits effects.
        match kernel.release_mail(mail.clone()).await {
            Ok(released) if !released.is_empty() => {
                tracing::info!(count = released.len(), "released held mail past its hold period");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, code = e.code(), "held mail not released; retrying later"),
        }
        let commit = commit.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || commit.wal().maybe_checkpoint()).await {
            tracing::warn!(error = %e, "housekeeping task failed");
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: no new requests, finishing those in flight");
}

/// Exits the process [`SHUTDOWN_BUDGET`] after the stop signal if the orderly
/// shutdown has not finished by then (an effect thread that never returns
/// must not keep the log locked).
fn arm_shutdown_deadline() {
    let armed = std::thread::Builder::new().name("maos-shutdown-deadline".into()).spawn(|| {
        std::thread::sleep(SHUTDOWN_BUDGET);
        eprintln!(
            "maos up: MAOS-SHUTDOWN-BUDGET: not stopped within {} s; exiting now (recovery finishes what was running at the next start)",
            SHUTDOWN_BUDGET.as_secs()
        );
        std::process::exit(1);
    });
    if let Err(e) = armed {
        tracing::warn!(error = %e, "could not arm the shutdown deadline");
    }
}

fn operator_secret() -> anyhow::Result<String> {
    let bytes = maos_crypto::random_bytes::<32>()?;
    Ok(format!("op_{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()))
}

/// Writes `run/operator.token` (0600) and `run/daemon.json`.
fn write_run_files(dir: &DataDir, bound: &std::net::SocketAddr, secret: &str) -> anyhow::Result<()> {
    let run = dir.run();
    create_private_dir(&run)?;
    write_private(&run.join("operator.token"), secret.as_bytes())?;
    let info = serde_json::json!({
        "pid": std::process::id(), "listen": bound.to_string(), "started_ms": crate::datadir::now().0,
        "version": env!("CARGO_PKG_VERSION"),
    });
    write_private(&run.join("daemon.json"), info.to_string().as_bytes())
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).with_context(|| format!("creating `{}`", tmp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("installing `{}`", path.display()))?;
    Ok(())
}

fn remove_run_files(dir: &DataDir) {
    for name in ["daemon.json", "operator.token"] {
        let _ = std::fs::remove_file(dir.run().join(name));
    }
}
