//! The operator's connection to a running `maos up`: the address from
//! `<data-dir>/run/daemon.json`, the bearer from `run/operator.token`. API
//! errors come back as coded CLI errors with the daemon's own code.

use crate::datadir::DataDir;
use crate::output::coded;
use anyhow::Context as _;
use std::time::Duration;

/// How long one operator request may take (an approval grant runs the effect).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a liveness probe waits.
const LIVENESS_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest answer the CLI reads (an audit page of 1,000 records fits).
const RESPONSE_BYTES_MAX: usize = 32 * 1024 * 1024;

pub struct Daemon {
    base: String,
    secret: String,
    http: reqwest::blocking::Client,
}

fn no_daemon(dir: &DataDir, why: &str) -> anyhow::Error {
    coded(
        "MAOS-NO-DAEMON",
        format!("no running `maos up` for {} ({why}); start it with `maos up`", dir.root().display()),
        1,
    )
}

impl Daemon {
    /// The daemon named in the run files, if they exist.
    pub fn find(dir: &DataDir) -> anyhow::Result<Option<Self>> {
        let info_path = dir.run().join("daemon.json");
        let Ok(info) = std::fs::read_to_string(&info_path) else { return Ok(None) };
        let info: serde_json::Value =
            serde_json::from_str(&info).with_context(|| format!("reading `{}`", info_path.display()))?;
        let listen = info.get("listen").and_then(|l| l.as_str()).unwrap_or_default().to_owned();
        let secret = std::fs::read_to_string(dir.run().join("operator.token"))
            .with_context(|| "reading the operator token (are you the operator?)")?
            .trim()
            .to_owned();
        let http = reqwest::blocking::Client::builder().timeout(REQUEST_TIMEOUT).build()?;
        Ok(Some(Self { base: format!("http://{listen}"), secret, http }))
    }

    /// The daemon named in the run files, if it answers `GET /v1/health`
    /// (run files left by a crashed daemon do not count).
    pub fn find_live(dir: &DataDir) -> anyhow::Result<Option<Self>> {
        let Some(daemon) = Self::find(dir)? else { return Ok(None) };
        let alive = daemon
            .http
            .get(format!("{}/v1/health", daemon.base))
            .timeout(LIVENESS_TIMEOUT)
            .send()
            .is_ok_and(|r| r.status().is_success());
        Ok(alive.then_some(daemon))
    }

    /// The daemon, or a clear error saying to start one.
    pub fn require(dir: &DataDir) -> anyhow::Result<Self> {
        Self::find(dir)?.ok_or_else(|| no_daemon(dir, "no run/daemon.json"))
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn get(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        self.send(self.http.get(format!("{}{path}", self.base)))
    }

    pub fn post(&self, path: &str, body: &serde_json::Value) -> anyhow::Result<serde_json::Value> {
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        self.send(request)
    }

    fn send(&self, request: reqwest::blocking::RequestBuilder) -> anyhow::Result<serde_json::Value> {
        let response = request.bearer_auth(&self.secret).send().map_err(|e| {
            if e.is_connect() {
                coded("MAOS-NO-DAEMON", format!("nothing answers at {} (did `maos up` stop?)", self.base), 1)
            } else {
                coded("MAOS-DAEMON-IO", format!("talking to {}: {e}", self.base), 1)
            }
        })?;
        let status = response.status();
        let bytes = response.bytes().map_err(|e| coded("MAOS-DAEMON-IO", e.to_string(), 1))?;
        if bytes.len() > RESPONSE_BYTES_MAX {
            return Err(coded("MAOS-DAEMON-IO", format!("answer over {RESPONSE_BYTES_MAX} bytes"), 1));
        }
        let value: serde_json::Value = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .map_err(|_| coded("MAOS-DAEMON-IO", format!("HTTP {status}: not JSON"), 1))?
        };
        if status.is_success() {
            return Ok(value);
        }
        let code = value.pointer("/error/code").and_then(|c| c.as_str()).unwrap_or("MAOS-DAEMON-IO").to_owned();
        let message = value.pointer("/error/message").and_then(|m| m.as_str()).unwrap_or("no message").to_owned();
        Err(crate::output::coded_dynamic(code, message, 1))
    }
}
