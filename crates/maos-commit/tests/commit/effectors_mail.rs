//! `mail`: Maildir outbox, hold, recall, release.

use crate::common::*;
use maos_commit::{Effector, ExecContext, UndoError};
use maos_model::{EffectClass, ResourceKind};
use std::time::{Duration, Instant};

fn only_message(dir: &std::path::Path) -> String {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    std::fs::read_to_string(entries.remove(0)).unwrap()
}

#[test]
fn mail_is_an_rfc5322_message_held_in_the_outbox() {
    let world = World::new();
    let layer = world.layer();
    let m = mail_send("bob@example.com", "Quarterly report", "Hi Bob,\nsee attached.\n");
    let id = m.id;
    let done = run(&layer, m, T0).unwrap();
    assert_eq!(done.undo_until, Some(T0.saturating_add_ms(60 * MINUTE_MS)));
    let text = only_message(&world.mail.root().join("outbox/new"));
    assert!(text.starts_with("X-MAOS-Hold-Until: "));
    for header in [
        "From: assistant@example.com\r\n",
        "To: bob@example.com\r\n",
        "Subject: Quarterly report\r\n",
        "Date: Sat, 21 Nov 2026 21:24:11 +0000\r\n",
        &format!("Message-ID: <{id}.maos@example.com>\r\n"),
    ] {
        assert!(text.contains(header), "missing {header:?} in {text}");
    }
    assert!(text.ends_with("\r\n\r\nHi Bob,\r\nsee attached.\r\n\r\n"));
    assert_eq!(world.maildir_count("outbox/tmp"), 0);
}

#[test]
fn ct_cl_07_mail_undo_inside_the_hold_recalls_it() {
    let world = World::new();
    let layer = world.layer();
    let m = mail_send("bob@example.com", "oops", "wrong recipient");
    let id = run(&layer, m.clone(), T0).unwrap().intent;
    layer.undo(id, T0.saturating_add_ms(59 * MINUTE_MS)).unwrap();
    assert_eq!(world.maildir_count("outbox/new"), 0);
    assert_eq!(world.maildir_count("recalled"), 1);
    assert_eq!(trail(layer.wal(), id), ["intent", "executing", "result", "undone"]);
    // Nothing is released later, and a replay of the intent does not queue it again.
    assert!(world.mail.release_due(T0.saturating_add_ms(2 * HOUR_MS), &mut |_| Ok(())).unwrap().is_empty());
    let ctx = ExecContext::new(T0, Instant::now() + Duration::from_secs(5));
    assert_eq!(world.mail.execute(&m, id, &ctx).unwrap_err().code(), "EFFECT-RECALLED");
    assert_eq!(world.maildir_count("sent/new"), 0);
}

#[test]
fn mail_is_released_after_the_hold_and_undo_is_then_refused() {
    let world = World::new();
    let layer = world.layer();
    let id = run(&layer, mail_send("bob@example.com", "hi", "hello"), T0).unwrap().intent;
    assert!(
        layer.release_mail(&world.mail, T0.saturating_add_ms(59 * MINUTE_MS), "normal").unwrap().is_empty(),
        "still held"
    );
    let released = layer.release_mail(&world.mail, T0.saturating_add_ms(60 * MINUTE_MS), "normal").unwrap();
    assert_eq!(trail(layer.wal(), id), ["intent", "executing", "result", "releasing", "released"]);
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].intent, id);
    assert_eq!(world.maildir_count("outbox/new"), 0);
    let text = only_message(&world.mail.root().join("sent/new"));
    assert!(text.starts_with("From: "), "hold header stripped: {text}");
    let err = layer.undo(id, T0.saturating_add_ms(61 * MINUTE_MS)).unwrap_err();
    assert!(matches!(err, UndoError::HoldExpired { .. }));
    // Release is idempotent.
    assert!(world.mail.release_due(T0.saturating_add_ms(2 * HOUR_MS), &mut |_| Ok(())).unwrap().is_empty());
    assert_eq!(world.maildir_count("sent/new"), 1);
}

#[test]
fn recipients_must_be_declared_and_headers_cannot_be_injected() {
    let world = World::new();
    let layer = world.layer();
    let mut undeclared = mail_send("bob@example.com", "s", "b");
    undeclared.args.insert("to".into(), maos_model::ArgValue::Str("bob@example.com, eve@evil.test".into()));
    assert_eq!(run(&layer, undeclared, T0).unwrap_err().code(), "COMMIT-EFFECT");
    let injected = intent(
        "mail.send",
        EffectClass::Write,
        &[(ResourceKind::Recipient, "bob@example.com")],
        &[("to", "bob@example.com"), ("subject", "hi\r\nBcc: eve@evil.test"), ("body", "b")],
    );
    // The intent sanitizer admits \r\n in arguments; the mail effector does not in headers.
    assert_eq!(run(&layer, injected, T0).unwrap_err().code(), "COMMIT-EFFECT");
    assert_eq!(world.maildir_count("outbox/new"), 0);
}

#[test]
fn mail_execution_is_idempotent_by_intent_id() {
    let world = World::new();
    let m = mail_send("bob@example.com", "once", "only once");
    let ctx = ExecContext::new(T0, Instant::now() + Duration::from_secs(5));
    world.mail.execute(&m, m.id, &ctx).unwrap();
    world.mail.execute(&m, m.id, &ctx).unwrap();
    assert_eq!(world.maildir_count("outbox/new"), 1);
}

/// A minimal SMTP server on 127.0.0.1 that accepts every message (or refuses).
type Inbox = std::sync::Arc<std::sync::Mutex<Vec<(Vec<String>, String)>>>;

fn smtp_server(accept: bool) -> (u16, Inbox) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let _ = stream.write_all(b"220 localhost ESMTP test\r\n");
            let (mut rcpt, mut data) = (Vec::new(), String::new());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let upper = line.to_ascii_uppercase();
                let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                    b"250 localhost\r\n"
                } else if upper.starts_with("MAIL FROM") {
                    if accept { b"250 ok\r\n" } else { b"550 relaying denied\r\n" }
                } else if upper.starts_with("RCPT TO") {
                    rcpt.push(line.trim().to_owned());
                    b"250 ok\r\n"
                } else if upper.starts_with("DATA") {
                    let _ = stream.write_all(b"354 go ahead\r\n");
                    loop {
                        let mut l = String::new();
                        if reader.read_line(&mut l).unwrap_or(0) == 0 || l == ".\r\n" {
                            break;
                        }
                        data.push_str(&l);
                    }
                    sink.lock().unwrap().push((std::mem::take(&mut rcpt), std::mem::take(&mut data)));
                    b"250 queued\r\n"
                } else if upper.starts_with("QUIT") {
                    let _ = stream.write_all(b"221 bye\r\n");
                    break;
                } else {
                    b"250 ok\r\n"
                };
                let _ = stream.write_all(reply);
            }
        }
    });
    (port, got)
}

fn relay(port: u16) -> maos_commit::effectors::mail::SmtpRelay {
    maos_commit::effectors::mail::SmtpRelay {
        host: "127.0.0.1".into(),
        port: Some(port),
        tls: maos_commit::effectors::mail::RelayTls::PlainLoopbackOnly,
        credentials: None,
        timeout: Duration::from_secs(5),
    }
}

#[test]
fn released_mail_goes_to_the_smtp_relay_once() {
    use maos_commit::effectors::mail::{MailEffector, ReleaseOutcome};
    let (port, got) = smtp_server(true);
    let dir = tempfile::tempdir().unwrap();
    let mail = MailEffector::new(dir.path(), "assistant@example.com").unwrap().with_relay(&relay(port)).unwrap();
    let m = mail_send("bob@example.com", "relayed", "via smtp");
    let ctx = ExecContext::new(T0, Instant::now() + Duration::from_secs(5));
    mail.execute(&m, m.id, &ctx).unwrap();
    assert!(mail.release_due(T0, &mut |_| Ok(())).unwrap().is_empty(), "held");
    let released = mail.release_due(T0.saturating_add_ms(HOUR_MS), &mut |_| Ok(())).unwrap();
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].outcome, ReleaseOutcome::Relayed);
    assert!(mail.release_due(T0.saturating_add_ms(2 * HOUR_MS), &mut |_| Ok(())).unwrap().is_empty());
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 1, "relayed exactly once");
    assert_eq!(got[0].0, ["RCPT TO:<bob@example.com>"]);
    assert!(got[0].1.contains(&format!("Message-ID: <{}.maos@example.com>", m.id)));
    assert!(!got[0].1.contains("X-MAOS-Hold-Until"));
    assert_eq!(std::fs::read_dir(dir.path().join("sent/new")).unwrap().count(), 1);
}

#[test]
fn a_refusing_relay_defers_and_an_interrupted_relay_is_never_repeated() {
    use maos_commit::effectors::mail::{MailEffector, ReleaseOutcome, SmtpRelay};
    let (port, got) = smtp_server(false);
    let dir = tempfile::tempdir().unwrap();
    let mail = MailEffector::new(dir.path(), "assistant@example.com").unwrap().with_relay(&relay(port)).unwrap();
    let m = mail_send("bob@example.com", "s", "b");
    let ctx = ExecContext::new(T0, Instant::now() + Duration::from_secs(5));
    mail.execute(&m, m.id, &ctx).unwrap();
    let released = mail.release_due(T0.saturating_add_ms(HOUR_MS), &mut |_| Ok(())).unwrap();
    assert!(matches!(released[0].outcome, ReleaseOutcome::Deferred(_)), "{released:?}");
    assert_eq!(std::fs::read_dir(dir.path().join("outbox/new")).unwrap().count(), 1, "kept for a retry");
    assert!(got.lock().unwrap().is_empty());

    // A crash mid-relay leaves the message in outbox/sending: reported, not resent.
    let name = format!("{}.maos", m.id);
    std::fs::rename(dir.path().join("outbox/new").join(&name), dir.path().join("outbox/sending").join(&name)).unwrap();
    let released = mail.release_due(T0.saturating_add_ms(HOUR_MS), &mut |_| Ok(())).unwrap();
    assert_eq!(released[0].outcome, ReleaseOutcome::Uncertain);
    assert!(dir.path().join("uncertain").join(&name).exists());
    assert_eq!(mail.compensate(&m, &mail.snapshot(&m).unwrap()).unwrap_err().code(), "EFFECT-ALREADY-RELEASED");

    // Unencrypted relays must be on loopback.
    let remote = SmtpRelay { host: "smtp.example.com".into(), ..relay(25) };
    assert!(MailEffector::new(dir.path(), "a@example.com").unwrap().with_relay(&remote).is_err());
}
