//! User-facing output: concise text, coloured only on a terminal (and never when
//! `NO_COLOR` is set), or JSON on stdout with `--json`. Errors always carry a
//! stable code that users can grep for.

use std::io::IsTerminal as _;
use std::process::ExitCode;

/// An error with a stable code and a chosen exit status.
#[derive(Debug)]
pub struct Coded {
    pub code: std::borrow::Cow<'static, str>,
    pub message: String,
    pub exit: u8,
}

impl std::fmt::Display for Coded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Coded {}

/// Exit status for a token or log that failed verification.
pub const EXIT_INVALID: u8 = 3;

/// Builds a coded error for `anyhow`.
pub fn coded(code: &'static str, message: impl Into<String>, exit: u8) -> anyhow::Error {
    anyhow::Error::new(Coded { code: code.into(), message: message.into(), exit })
}

/// A coded error whose code is only known at run time (one a daemon sent).
pub fn coded_dynamic(code: String, message: impl Into<String>, exit: u8) -> anyhow::Error {
    anyhow::Error::new(Coded { code: code.into(), message: message.into(), exit })
}

/// Where output goes and how it looks.
pub struct Output {
    pub json: bool,
    color: bool,
}

impl Output {
    pub fn new(json: bool) -> Self {
        let color = !json && std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Self { json, color }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_owned() }
    }

    pub fn green(&self, text: &str) -> String {
        self.paint("32", text)
    }

    pub fn red(&self, text: &str) -> String {
        self.paint("31", text)
    }

    pub fn yellow(&self, text: &str) -> String {
        self.paint("33", text)
    }

    pub fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }

    pub fn dim(&self, text: &str) -> String {
        self.paint("2", text)
    }

    /// A line of human output (suppressed under `--json`).
    pub fn line(&self, text: impl AsRef<str>) {
        if !self.json {
            println!("{}", text.as_ref());
        }
    }

    /// A `key: value` line of human output.
    pub fn field(&self, key: &str, value: impl std::fmt::Display) {
        if !self.json {
            println!("  {:<14} {value}", self.dim(&format!("{key}:")));
        }
    }

    /// The JSON document for `--json` (suppressed otherwise).
    pub fn json(&self, value: &serde_json::Value) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value).unwrap_or_else(|_| "{}".into()));
        }
    }

    /// Reports an error with its stable code and returns the exit status.
    pub fn fail(&self, err: &anyhow::Error) -> ExitCode {
        let (code, exit) = error_code(err);
        let message = format!("{err:#}");
        if self.json {
            let doc = serde_json::json!({ "ok": false, "code": code, "error": message });
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        } else {
            eprintln!("{} {message}", self.red(&format!("error[{code}]:")));
        }
        ExitCode::from(exit)
    }
}

/// The stable code and exit status of an error chain.
pub fn error_code(err: &anyhow::Error) -> (std::borrow::Cow<'static, str>, u8) {
    for cause in err.chain() {
        if let Some(c) = cause.downcast_ref::<Coded>() {
            return (c.code.clone(), c.exit);
        }
        if let Some((code, exit)) = typed_code(cause) {
            return (code.into(), exit);
        }
    }
    ("MAOS-ERROR".into(), 1)
}

fn typed_code(cause: &(dyn std::error::Error + 'static)) -> Option<(&'static str, u8)> {
    if let Some(e) = cause.downcast_ref::<maos_token::TokenError>() {
        return Some((e.code(), 1));
    }
    if let Some(e) = cause.downcast_ref::<maos_dsc::DscError>() {
        return Some((e.code(), 1));
    }
    if let Some(e) = cause.downcast_ref::<maos_model::IntentError>() {
        return Some((e.code(), 1));
    }
    if let Some(e) = cause.downcast_ref::<maos_wal::WalError>() {
        return Some((e.code(), 1));
    }
    if let Some(e) = cause.downcast_ref::<maos_crypto::CryptoError>() {
        return Some((e.code(), 1));
    }
    if let Some(e) = cause.downcast_ref::<maos_kernel::KernelError>() {
        return Some((e.code(), 1));
    }
    None
}

/// The value at `path` in a JSON document, or null: reading what a daemon
/// answered never panics on a field it left out.
pub fn at<'a>(value: &'a serde_json::Value, path: &[&str]) -> &'a serde_json::Value {
    static NULL: serde_json::Value = serde_json::Value::Null;
    path.iter().try_fold(value, |v, key| v.get(key)).unwrap_or(&NULL)
}
