//! `mail.send`: RFC 5322 messages into a Maildir outbox, held for the hold
//! period (spec §35: 60 min) during which undo recalls them, then released by
//! [`MailEffector::release_due`].
//!
//! Layout under the root: `outbox/{tmp,new,cur}` (held messages),
//! `sent/{tmp,new,cur}` (released), `recalled/` (one marker per recalled
//! message). Delivery follows the Maildir protocol: write to `tmp/`, `fsync`,
//! rename into `new/`, `fsync` the directory. The file name is derived from the
//! intent id, so a re-execution finds the message and does not queue it twice.
//!
//! Release copies a message to the `sent/` Maildir, after handing it to an
//! SMTP relay first when one is configured ([`MailEffector::with_relay`]). A
//! message being relayed sits in `outbox/sending/`; one found there after a
//! crash may or may not have reached the relay, so it is never sent again but
//! moved to `uncertain/` and reported (nothing is done twice).

use super::{state_hash, str_arg};
use crate::describe::{self, DescribeError, Described, Role};
use crate::effector::{Compensable, EffectOutput, Effector, ExecContext, OutputLabel, Probe, Snapshot};
use crate::error::EffectError;
use crate::fsutil::{sync_dir, write_atomic};
use crate::zone::HOLD_MAIL_MS;
use base64::Engine;
use maos_model::{EffectClass, IfcLevel, Intent, IntentId, ResourceKind, UnixMillis};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use lettre::Transport;
use lettre::address::{Address, Envelope};
use lettre::transport::smtp::SmtpTransport;
use lettre::transport::smtp::authentication::Credentials;

/// Bytes in one address (RFC 5321 path limit): longer values smuggle headers.
pub const MAIL_ADDRESS_BYTES_MAX: usize = 254;
/// Recipients per message: bounds fan-out of one intent.
pub const MAIL_RECIPIENTS_MAX: usize = 16;
/// Bytes in a subject.
pub const MAIL_SUBJECT_BYTES_MAX: usize = 998;
/// Bytes of a stored message read back on release: a damaged or planted file
/// cannot make the release loop buffer more.
pub const MAIL_MESSAGE_BYTES_MAX: usize = 1024 * 1024;
/// Held messages examined per [`MailEffector::release_due`] call.
pub const MAIL_RELEASE_BATCH_MAX: usize = 1024;
/// The header carrying the end of the hold; stripped on release.
const HOLD_HEADER: &str = "X-MAOS-Hold-Until: ";

/// Timeout of one SMTP conversation with the relay.
pub const SMTP_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);

/// What happened to a released message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseOutcome {
    /// Copied to `sent/new` (no relay configured).
    Delivered,
    /// Accepted by the SMTP relay, then copied to `sent/new`.
    Relayed,
    /// The relay refused it or could not be reached: back in the outbox for the
    /// next call.
    Deferred(String),
    /// Found in `outbox/sending/` after a crash: it may have reached the relay,
    /// so it is not sent again; moved to `uncertain/` for the operator.
    Uncertain,
}

/// A message the release step handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
    /// The intent that queued it.
    pub intent: IntentId,
    /// Its Maildir file name.
    pub file: String,
    /// What happened.
    pub outcome: ReleaseOutcome,
}

/// How to reach the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayTls {
    /// TLS from the first byte (port 465 by default).
    Tls,
    /// STARTTLS required (port 587 by default).
    StartTls,
    /// No encryption: only for a relay on the same host (e.g. a local MTA, tests).
    PlainLoopbackOnly,
}

/// Login for the relay. The password never appears in `Debug` output.
#[derive(Clone)]
pub struct RelayCredentials {
    /// User name.
    pub user: String,
    password: String,
}

impl RelayCredentials {
    /// A user and password (from the operator's configuration, never from an agent).
    #[must_use]
    pub const fn new(user: String, password: String) -> Self {
        Self { user, password }
    }
}

impl std::fmt::Debug for RelayCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayCredentials").field("user", &self.user).field("password", &"<redacted>").finish()
    }
}

/// An SMTP relay for released mail.
#[derive(Debug, Clone)]
pub struct SmtpRelay {
    /// Host name.
    pub host: String,
    /// Port; `None` for the default of the TLS mode.
    pub port: Option<u16>,
    /// Encryption.
    pub tls: RelayTls,
    /// Login, if the relay needs one.
    pub credentials: Option<RelayCredentials>,
    /// Timeout of one conversation ([`SMTP_TIMEOUT_DEFAULT`]).
    pub timeout: Duration,
}

impl SmtpRelay {
    fn transport(&self) -> Result<SmtpTransport, EffectError> {
        let bad = |e: lettre::transport::smtp::Error| EffectError::Invalid(format!("smtp relay: {e}"));
        let mut builder = match self.tls {
            RelayTls::Tls => SmtpTransport::relay(&self.host).map_err(bad)?,
            RelayTls::StartTls => SmtpTransport::starttls_relay(&self.host).map_err(bad)?,
            RelayTls::PlainLoopbackOnly => {
                let loopback = matches!(self.host.as_str(), "localhost" | "127.0.0.1" | "::1" | "[::1]");
                if !loopback {
                    return Err(EffectError::Invalid("an unencrypted relay must be on loopback".into()));
                }
                SmtpTransport::builder_dangerous(self.host.as_str())
            }
        };
        if let Some(port) = self.port {
            builder = builder.port(port);
        }
        if let Some(c) = &self.credentials {
            builder = builder.credentials(Credentials::new(c.user.clone(), c.password.clone()));
        }
        Ok(builder.timeout(Some(self.timeout)).build())
    }
}

/// The `mail` effector.
#[derive(Debug)]
pub struct MailEffector {
    root: PathBuf,
    from: String,
    hold_ms: u64,
    relay: Option<SmtpTransport>,
    // Serializes recall against release, so a message is never both.
    outbox: Mutex<()>,
}

impl MailEffector {
    /// A Maildir outbox under `root` sending as `from`, held [`HOLD_MAIL_MS`].
    ///
    /// # Errors
    /// [`EffectError::Invalid`] for a bad sender, [`EffectError::Io`] if the
    /// directories cannot be created.
    pub fn new(root: impl Into<PathBuf>, from: &str) -> Result<Self, EffectError> {
        let root = root.into();
        check_address(from)?;
        for dir in [
            "outbox/tmp",
            "outbox/new",
            "outbox/cur",
            "outbox/sending",
            "sent/tmp",
            "sent/new",
            "sent/cur",
            "recalled",
            "uncertain",
        ] {
            std::fs::create_dir_all(root.join(dir)).map_err(|e| EffectError::io("creating the maildir", &e))?;
        }
        Ok(Self { root, from: from.to_owned(), hold_ms: HOLD_MAIL_MS, relay: None, outbox: Mutex::new(()) })
    }

    /// Hands released messages to `relay` before filing them in `sent/`.
    ///
    /// # Errors
    /// [`EffectError::Invalid`] for a relay that cannot be configured (e.g. an
    /// unencrypted relay off loopback).
    pub fn with_relay(mut self, relay: &SmtpRelay) -> Result<Self, EffectError> {
        self.relay = Some(relay.transport()?);
        Ok(self)
    }

    /// The Maildir root.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn file_name(id: IntentId) -> String {
        format!("{id}.maos")
    }

    fn path(&self, dir: &str, id: IntentId) -> PathBuf {
        self.root.join(dir).join(Self::file_name(id))
    }

    fn state(&self, id: IntentId) -> MessageState {
        if self.path("recalled", id).exists() {
            MessageState::Recalled
        } else if ["sent/new", "sent/cur", "outbox/sending", "uncertain"].iter().any(|d| self.path(d, id).exists()) {
            MessageState::Sent
        } else if self.path("outbox/new", id).exists() {
            MessageState::Held
        } else {
            MessageState::Absent
        }
    }

    fn recipients(intent: &Intent) -> Result<Vec<String>, EffectError> {
        let declared: Vec<String> = intent
            .resources
            .iter()
            .filter(|r| r.kind == ResourceKind::Recipient)
            .map(|r| r.value.to_ascii_lowercase())
            .collect();
        let mut to = Vec::new();
        for addr in str_arg(intent, "to")?.split(',') {
            let addr = addr.trim();
            check_address(addr)?;
            // The DSC checked the token scope against the resources: an address
            // that is not among them was never authorized.
            if !declared.contains(&addr.to_ascii_lowercase()) {
                return Err(EffectError::Invalid("a recipient is not among the intent's resources".into()));
            }
            to.push(addr.to_owned());
        }
        if to.is_empty() || to.len() > MAIL_RECIPIENTS_MAX {
            return Err(EffectError::Invalid(format!("between 1 and {MAIL_RECIPIENTS_MAX} recipients")));
        }
        Ok(to)
    }

    /// The RFC 5322 message for `intent`, with the hold header first.
    fn message(&self, intent: &Intent, now: UnixMillis) -> Result<Vec<u8>, EffectError> {
        let to = Self::recipients(intent)?;
        let subject = intent.args.get("subject").and_then(maos_model::ArgValue::as_str).unwrap_or("");
        if subject.len() > MAIL_SUBJECT_BYTES_MAX || subject.chars().any(char::is_control) {
            return Err(EffectError::Invalid("the subject has control characters or is too long".into()));
        }
        let body = str_arg(intent, "body")?;
        let domain = self.from.rsplit_once('@').map_or("localhost", |(_, d)| d);
        let subject = if subject.is_ascii() {
            subject.to_owned()
        } else {
            format!("=?UTF-8?B?{}?=", base64::engine::general_purpose::STANDARD.encode(subject))
        };
        let mut text = String::new();
        text.push_str(&format!("{HOLD_HEADER}{}\r\n", now.saturating_add_ms(self.hold_ms).0));
        text.push_str(&format!("From: {}\r\n", self.from));
        text.push_str(&format!("To: {}\r\n", to.join(", ")));
        text.push_str(&format!("Subject: {subject}\r\n"));
        text.push_str(&format!("Date: {}\r\n", rfc5322_date(now)));
        text.push_str(&format!("Message-ID: <{}.maos@{domain}>\r\n", intent.id));
        text.push_str("MIME-Version: 1.0\r\n");
        text.push_str("Content-Type: text/plain; charset=utf-8\r\n");
        text.push_str("Content-Transfer-Encoding: 8bit\r\n\r\n");
        for line in body.split('\n') {
            text.push_str(line.trim_end_matches('\r'));
            text.push_str("\r\n");
        }
        Ok(text.into_bytes())
    }

    /// Releases every held message whose hold ended by `now` (at most
    /// [`MAIL_RELEASE_BATCH_MAX`] per call): to the relay if one is configured,
    /// then into `sent/new`. Crash-safe: a message found in both the outbox and
    /// `sent/` is only removed from the outbox; one found mid-relay is never
    /// sent again ([`ReleaseOutcome::Uncertain`]).
    ///
    /// `before(id)` runs just before a message leaves (to the relay or into
    /// `sent/`); if it fails, that message and the rest stay held. The Commit
    /// Layer logs the release there, so no message leaves unlogged.
    ///
    /// # Errors
    /// [`EffectError::Io`] if the Maildir cannot be read or written; whatever
    /// `before` returned. A relay failure is not an error: the message is
    /// [`ReleaseOutcome::Deferred`].
    pub fn release_due(
        &self,
        now: UnixMillis,
        before: &mut dyn FnMut(IntentId) -> Result<(), EffectError>,
    ) -> Result<Vec<Released>, EffectError> {
        let _outbox = self.outbox.lock().unwrap_or_else(PoisonError::into_inner);
        let mut released = Vec::new();
        for name in list_names(&self.root.join("outbox/sending"))? {
            let Some(id) = id_of(&name) else { continue };
            self.move_file("outbox/sending", "uncertain", id)?;
            tracing::warn!(intent = %id, "message interrupted while being relayed; not resent");
            released.push(Released { intent: id, file: name, outcome: ReleaseOutcome::Uncertain });
        }
        for name in list_names(&self.root.join("outbox/new"))? {
            let Some(id) = id_of(&name) else { continue };
            let data = read_bounded(&self.path("outbox/new", id))?;
            let Some((hold_until, message)) = split_hold(&data) else {
                tracing::warn!(file = %name, "outbox message without a hold header; left in place");
                continue;
            };
            if hold_until > now {
                continue;
            }
            let outcome = if self.path("sent/new", id).exists() {
                ReleaseOutcome::Delivered
            } else if let Some(relay) = &self.relay {
                before(id)?;
                self.move_file("outbox/new", "outbox/sending", id)?;
                match self.envelope(message).and_then(|env| {
                    relay.send_raw(&env, message).map_err(|e| EffectError::Remote(format!("smtp relay: {e}")))
                }) {
                    Ok(_) => {
                        self.file_sent(id, message)?;
                        remove_synced(&self.root.join("outbox/sending"), &self.path("outbox/sending", id))?;
                        released.push(Released { intent: id, file: name, outcome: ReleaseOutcome::Relayed });
                        continue;
                    }
                    Err(e) => {
                        self.move_file("outbox/sending", "outbox/new", id)?;
                        released.push(Released {
                            intent: id,
                            file: name,
                            outcome: ReleaseOutcome::Deferred(e.to_string()),
                        });
                        continue;
                    }
                }
            } else {
                before(id)?;
                self.file_sent(id, message)?;
                ReleaseOutcome::Delivered
            };
            remove_synced(&self.root.join("outbox/new"), &self.path("outbox/new", id))?;
            released.push(Released { intent: id, file: name, outcome });
        }
        Ok(released)
    }

    fn file_sent(&self, id: IntentId, message: &[u8]) -> Result<(), EffectError> {
        let tmp = self.path("sent/tmp", id);
        write_atomic(&tmp, message).map_err(EffectError::Io)?;
        std::fs::rename(&tmp, self.path("sent/new", id)).map_err(|e| EffectError::io("delivering to sent", &e))?;
        sync_dir(&self.root.join("sent/new")).map_err(|e| EffectError::io("syncing sent", &e))
    }

    fn move_file(&self, from: &str, to: &str, id: IntentId) -> Result<(), EffectError> {
        std::fs::rename(self.path(from, id), self.path(to, id)).map_err(|e| EffectError::io("moving a message", &e))?;
        sync_dir(&self.root.join(to)).map_err(|e| EffectError::io("syncing the maildir", &e))?;
        sync_dir(&self.root.join(from)).map_err(|e| EffectError::io("syncing the maildir", &e))
    }

    /// The SMTP envelope: our sender, and the `To:` addresses we wrote.
    fn envelope(&self, message: &[u8]) -> Result<Envelope, EffectError> {
        let bad = || EffectError::Invalid("stored message has no usable recipients".into());
        let text = std::str::from_utf8(message).map_err(|_| bad())?;
        let headers = text.split("\r\n\r\n").next().ok_or_else(bad)?;
        let to_line = headers.split("\r\n").find_map(|l| l.strip_prefix("To: ")).ok_or_else(bad)?;
        let to: Vec<Address> =
            to_line.split(',').map(|a| a.trim().parse::<Address>().map_err(|_| bad())).collect::<Result<_, _>>()?;
        let from = self.from.parse::<Address>().map_err(|_| bad())?;
        Envelope::new(Some(from), to).map_err(|_| bad())
    }
}

fn id_of(name: &str) -> Option<IntentId> {
    name.strip_suffix(".maos").and_then(|s| IntentId::parse(s).ok())
}

/// Sorted file names in `dir`, at most [`MAIL_RELEASE_BATCH_MAX`].
fn list_names(dir: &Path) -> Result<Vec<String>, EffectError> {
    let listing = std::fs::read_dir(dir).map_err(|e| EffectError::io("listing the maildir", &e))?;
    let mut names = Vec::new();
    for entry in listing.take(MAIL_RELEASE_BATCH_MAX) {
        let entry = entry.map_err(|e| EffectError::io("listing the maildir", &e))?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

fn remove_synced(dir: &Path, path: &Path) -> Result<(), EffectError> {
    std::fs::remove_file(path).map_err(|e| EffectError::io("removing a message", &e))?;
    sync_dir(dir).map_err(|e| EffectError::io("syncing the maildir", &e))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MessageState {
    Absent,
    Held,
    Sent,
    Recalled,
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, EffectError> {
    let file = std::fs::File::open(path).map_err(|e| EffectError::io("opening a message", &e))?;
    let mut data = Vec::new();
    let limit = u64::try_from(MAIL_MESSAGE_BYTES_MAX).unwrap_or(u64::MAX).saturating_add(1);
    file.take(limit).read_to_end(&mut data).map_err(|e| EffectError::io("reading a message", &e))?;
    if data.len() > MAIL_MESSAGE_BYTES_MAX {
        return Err(EffectError::TooLarge { what: "stored message", max: MAIL_MESSAGE_BYTES_MAX });
    }
    Ok(data)
}

/// Splits the hold header off a stored message.
fn split_hold(data: &[u8]) -> Option<(UnixMillis, &[u8])> {
    let rest = data.strip_prefix(HOLD_HEADER.as_bytes())?;
    let end = rest.windows(2).position(|w| w == b"\r\n")?;
    let (value, tail) = rest.split_at(end);
    let ms: u64 = std::str::from_utf8(value).ok()?.parse().ok()?;
    Some((UnixMillis(ms), tail.get(2..)?))
}

/// A conservative address check: `local@domain`, printable ASCII, none of the
/// characters that open a header or a comment.
fn check_address(addr: &str) -> Result<(), EffectError> {
    let bad = || EffectError::Invalid("malformed mail address".into());
    if addr.is_empty() || addr.len() > MAIL_ADDRESS_BYTES_MAX {
        return Err(bad());
    }
    if !addr.bytes().all(|b| b.is_ascii_graphic() && !b"<>()[]\\,;:\"".contains(&b)) {
        return Err(bad());
    }
    match addr.split_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !domain.contains('@') => Ok(()),
        _ => Err(bad()),
    }
}

/// `Sat, 21 Nov 2026 21:24:11 +0000` for Unix milliseconds (UTC).
#[must_use]
pub fn rfc5322_date(now: UnixMillis) -> String {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let c = now.civil();
    let weekday = DAYS.get(usize::try_from(c.weekday).unwrap_or(0)).unwrap_or(&"Mon");
    let month = MONTHS.get(usize::try_from(c.month.saturating_sub(1)).unwrap_or(0)).unwrap_or(&"Jan");
    format!("{weekday}, {:02} {month} {} {:02}:{:02}:{:02} +0000", c.day, c.year, c.hour, c.minute, c.second)
}

impl Effector for MailEffector {
    fn namespace(&self) -> &'static str {
        "mail"
    }

    fn describe(&self, intent: &Intent) -> Result<Described, DescribeError> {
        if intent.action != "mail.send" {
            return Err(DescribeError::UnknownAction(intent.action.clone()));
        }
        // `to` is the one list-valued argument: comma-separated, each element
        // exactly one address and each a `recipient` resource.
        let to = describe::str_arg(intent, "to")?;
        let mut resources = Vec::new();
        for addr in to.split(',') {
            if resources.len() >= MAIL_RECIPIENTS_MAX {
                return Err(DescribeError::RoleValue {
                    arg: "to".into(),
                    why: format!("more than {MAIL_RECIPIENTS_MAX} recipients"),
                });
            }
            resources.push(Role::Recipient.resource("to", addr.trim())?);
        }
        Ok(Described {
            effect: EffectClass::Write,
            resources,
            // Mail leaves the organisation.
            sink_level: IfcLevel::Public,
            reads: Vec::new(),
            cost: 1,
            // Recipients are provenance-checked instead: a recipient from
            // untrusted text is refused, a trusted one may be mailed from a
            // tainted session (the mission's own recipient).
            requires_integrity: false,
            sensitive_args: Vec::new(),
            provenance_deny: false,
        })
    }

    fn effect_class(&self, _intent: &Intent) -> EffectClass {
        // mail.send is recallable during its hold, so a write; anything else
        // in this namespace is unknown, so also a write (CT-CL-10).
        EffectClass::Write
    }

    fn resource_keys(&self, _intent: &Intent) -> Result<Vec<String>, EffectError> {
        Ok(vec![format!("mail:{}", self.from)])
    }

    fn world_state(&self, intent: &Intent) -> Result<[u8; 32], EffectError> {
        let state = match self.state(intent.id) {
            MessageState::Absent => "absent",
            MessageState::Held => "held",
            MessageState::Sent => "sent",
            MessageState::Recalled => "recalled",
        };
        Ok(state_hash(&[b"mail", state.as_bytes()]))
    }

    fn snapshot(&self, _intent: &Intent) -> Result<Snapshot, EffectError> {
        Ok(Snapshot { hold_ms: self.hold_ms, compensable: Compensable::Yes, bytes: b"absent".to_vec() })
    }

    fn execute(&self, intent: &Intent, key: IntentId, ctx: &ExecContext) -> Result<EffectOutput, EffectError> {
        if intent.action != "mail.send" {
            return Err(EffectError::UnknownAction(intent.action.clone()));
        }
        let message = self.message(intent, ctx.now())?;
        let summary = format!("queued message <{key}> (held {} min)", self.hold_ms / 60_000);
        let _outbox = self.outbox.lock().unwrap_or_else(PoisonError::into_inner);
        match self.state(key) {
            MessageState::Recalled => return Err(EffectError::Recalled(key.to_string())),
            MessageState::Held | MessageState::Sent => {
                return Ok(EffectOutput::empty(OutputLabel::Trusted, summary));
            }
            MessageState::Absent => {}
        }
        let tmp = self.path("outbox/tmp", key);
        let staged = (|| -> std::io::Result<()> {
            let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
            std::io::Write::write_all(&mut file, &message)?;
            file.sync_all()
        })();
        if let Err(e) = staged {
            let _ = std::fs::remove_file(&tmp);
            return Err(EffectError::io("writing to outbox/tmp", &e));
        }
        if let Err(e) = ctx.checkpoint() {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, self.path("outbox/new", key))
            .map_err(|e| EffectError::io("delivering to outbox/new", &e))?;
        sync_dir(&self.root.join("outbox/new")).map_err(|e| EffectError::io("syncing the outbox", &e))?;
        Ok(EffectOutput::empty(OutputLabel::Trusted, summary))
    }

    fn probe(&self, intent: &Intent) -> Result<Probe, EffectError> {
        Ok(match self.state(intent.id) {
            MessageState::Held | MessageState::Sent => {
                Probe::Done(EffectOutput::empty(OutputLabel::Trusted, format!("queued message <{}>", intent.id)))
            }
            MessageState::Absent => Probe::NotDone,
            // Recalled by a rollback whose failure record was lost: roll back again.
            MessageState::Recalled => Probe::Unknown,
        })
    }

    fn compensate(&self, intent: &Intent, _snapshot: &Snapshot) -> Result<(), EffectError> {
        let _outbox = self.outbox.lock().unwrap_or_else(PoisonError::into_inner);
        let id = intent.id;
        if matches!(self.state(id), MessageState::Sent) {
            return Err(EffectError::AlreadyReleased(id.to_string()));
        }
        // The marker first: once it exists, no execution queues this message again.
        write_atomic(&self.path("recalled", id), b"recalled\n").map_err(EffectError::Io)?;
        for dir in ["outbox/new", "outbox/tmp"] {
            match std::fs::remove_file(self.path(dir, id)) {
                Ok(()) => sync_dir(&self.root.join(dir)).map_err(|e| EffectError::io("syncing the outbox", &e))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(EffectError::io("recalling a message", &e)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc5322() {
        assert_eq!(rfc5322_date(UnixMillis(0)), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc5322_date(UnixMillis(1_795_296_251_000)), "Sat, 21 Nov 2026 21:24:11 +0000");
        assert_eq!(rfc5322_date(UnixMillis(951_782_400_000)), "Tue, 29 Feb 2000 00:00:00 +0000");
    }

    #[test]
    fn addresses_that_open_headers_are_refused() {
        for bad in ["", "a", "a@", "@b", "a b@c", "a@b\r\nBcc: x@y", "<a@b>", "a@b,c@d", "a@b@c"] {
            assert!(check_address(bad).is_err(), "{bad:?}");
        }
        assert!(check_address("bob+tag@example.com").is_ok());
    }
}
