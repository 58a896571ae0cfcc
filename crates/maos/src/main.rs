//! `maos`: the command-line interface of the MAOS security kernel.
//!
//! A thin layer: it parses arguments, reads the data directory and calls the
//! library crates. Exit codes: 0 success, 1 error, 2 usage error, 3 a token or
//! log that failed verification.

#![forbid(unsafe_code)]

mod bench;
mod bench_mcp;
mod cli;
mod client;
mod cmd_agents;
mod cmd_audit;
mod cmd_ecs;
mod cmd_init;
mod cmd_key;
mod cmd_mcp;
mod cmd_ops;
mod cmd_patterns;
mod cmd_policy;
mod cmd_quarantine;
mod cmd_token;
mod cmd_up;
mod datadir;
mod demo;
mod drill;
mod evaluator;
mod journal;
mod output;
mod policy_log;
mod runtime;

use clap::Parser as _;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MAOS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let out = output::Output::new(cli.json);
    let result = match cli.command {
        cli::Command::Init(args) => cmd_init::run(&out, &cli.data_dir, &args),
        cli::Command::Token(cmd) => cmd_token::run(&out, &cli.data_dir, cmd),
        cli::Command::Key(cmd) => cmd_key::run(&out, &cli.data_dir, cmd),
        cli::Command::Policy(cmd) => cmd_policy::run(&out, &cli.data_dir, cmd),
        cli::Command::Audit(cmd) => cmd_audit::run(&out, &cli.data_dir, cmd),
        cli::Command::Demo(args) => demo::run(&out, &args),
        cli::Command::Up(args) => cmd_up::run(&out, &cli.data_dir, &args),
        cli::Command::Status => cmd_ops::status(&out, &cli.data_dir),
        cli::Command::Undo(args) => cmd_ops::undo(&out, &cli.data_dir, &args),
        cli::Command::Approve(cmd) => cmd_ops::approve(&out, &cli.data_dir, cmd),
        cli::Command::Quarantine(cmd) => cmd_quarantine::run(&out, &cli.data_dir, cmd),
        cli::Command::Agent(cmd) => cmd_agents::agent(&out, &cli.data_dir, cmd),
        cli::Command::Agents { cmd: None } => cmd_agents::agents(&out, &cli.data_dir),
        cli::Command::Agents { cmd: Some(cli::AgentsCommand::Baseline) } => cmd_agents::baseline(&out, &cli.data_dir),
        cli::Command::Fever(cmd) => cmd_agents::fever(&out, &cli.data_dir, cmd),
        cli::Command::Bench(args) => bench::run(&out, &cli.data_dir, &args),
        cli::Command::Mcp(args) => cmd_mcp::mcp(&cli.data_dir, &args),
        cli::Command::Tools(cmd) => cmd_mcp::tools(&out, &cli.data_dir, cmd),
        cli::Command::Ecs(cmd) => cmd_ecs::run(&out, &cli.data_dir, cmd),
        cli::Command::Tsca { cmd } => cmd_ecs::tsca(&out, &cli.data_dir, cmd),
    };
    match result {
        Ok(code) => code,
        Err(err) => out.fail(&err),
    }
}
