//! The command-line syntax for permissions, durations and rates, shared by the
//! CLI and scenario files so that both read `--allow` the same way.
//!
//! ```text
//! PERMISSION := ACTION [ "=" SCOPE { "," SCOPE } ] { ";" CONSTRAINT }
//! SCOPE      := "*" | [ KIND ":" ] PATTERN        KIND := path|domain|recipient|resource
//! CONSTRAINT := ARG "=" V { "|" V }  |  ARG "<=" INTEGER  |  ARG "~" GLOB
//! ```
//! Without a kind, a scope is read by the action's family: `fs.*` paths,
//! `http.*`/`net.*` domains, `mail.*`/`msg.*` recipients, anything else a
//! resource name. Filesystem permissions must name a path: an unscoped `fs.write`
//! would be the whole disk.

use crate::TokenError;
use crate::claims::{ActionPattern, ArgConstraint, ConstraintRule, Permission, Scope, ScopeKind, default_scope_kind};
use crate::limits::RATE_PER_HOUR_MAX;

/// Parses one `--allow` value.
///
/// # Errors
/// [`TokenError::InvalidClaims`] explaining what is wrong.
pub fn parse_permission(text: &str) -> Result<Permission, TokenError> {
    let mut parts = text.trim().split(';');
    let head = parts.next().unwrap_or_default();
    let (action_text, scope_text) = match head.split_once('=') {
        Some((a, s)) => (a.trim(), Some(s.trim())),
        None => (head.trim(), None),
    };
    let action = ActionPattern::new(action_text)?;
    let kind = default_scope_kind(action_text);
    let scopes = match scope_text {
        None if kind == ScopeKind::Path => {
            return Err(TokenError::InvalidClaims(format!(
                "`{action_text}` needs a path scope, e.g. `{action_text}=/workspace/**`"
            )));
        }
        None | Some("*") => vec![Scope::any()],
        Some(list) => list.split(',').map(|s| parse_scope(s.trim(), kind)).collect::<Result<Vec<_>, _>>()?,
    };
    let constraints = parts.map(parse_constraint).collect::<Result<Vec<_>, _>>()?;
    Permission::new(action, scopes, constraints)
}

fn parse_scope(text: &str, default_kind: ScopeKind) -> Result<Scope, TokenError> {
    if text == "*" {
        return Ok(Scope::any());
    }
    for kind in [ScopeKind::Path, ScopeKind::Domain, ScopeKind::Recipient, ScopeKind::Resource] {
        if let Some(rest) = text.strip_prefix(kind.name()).and_then(|r| r.strip_prefix(':')) {
            return Scope::new(kind, rest);
        }
    }
    Scope::new(default_kind, text)
}

fn parse_constraint(text: &str) -> Result<ArgConstraint, TokenError> {
    let text = text.trim();
    if let Some((arg, max)) = text.split_once("<=") {
        let n = max
            .trim()
            .parse::<i64>()
            .map_err(|_| TokenError::InvalidClaims(format!("`{text}`: `<=` needs an integer")))?;
        return ArgConstraint::new(arg.trim(), ConstraintRule::MaxInt(n));
    }
    if let Some((arg, glob)) = text.split_once('~') {
        return ArgConstraint::new(arg.trim(), ConstraintRule::Glob(glob.trim().to_owned()));
    }
    if let Some((arg, values)) = text.split_once('=') {
        let values = values.split('|').map(|v| v.trim().to_owned()).collect();
        return ArgConstraint::new(arg.trim(), ConstraintRule::OneOf(values));
    }
    Err(TokenError::InvalidClaims(format!("`{text}`: use `arg=a|b`, `arg<=N` or `arg~glob`")))
}

/// Parses `500ms`, `90s`, `15m`, `2h` or `7d` into milliseconds.
///
/// # Errors
/// [`TokenError::InvalidClaims`] for anything else or an overflow.
pub fn parse_duration_ms(text: &str) -> Result<u64, TokenError> {
    let text = text.trim();
    let bad = || TokenError::InvalidClaims(format!("duration `{text}`: use e.g. 90s, 15m, 2h or 7d"));
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (num, unit) = text.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let factor: u64 = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    n.checked_mul(factor).ok_or_else(bad)
}

/// Parses `600/h`, `10/m`, `2/s` or a bare number (per hour) into operations per hour.
///
/// # Errors
/// [`TokenError::InvalidClaims`] for anything else, zero, or above the maximum.
pub fn parse_rate_per_hour(text: &str) -> Result<u32, TokenError> {
    let text = text.trim();
    let bad = || {
        TokenError::InvalidClaims(format!("rate `{text}`: use e.g. 600/h, 10/m or 2/s (1 to {RATE_PER_HOUR_MAX}/h)"))
    };
    let (num, per) = text.split_once('/').unwrap_or((text, "h"));
    let n: u64 = num.trim().parse().map_err(|_| bad())?;
    let factor: u64 = match per.trim() {
        "h" | "hour" => 1,
        "m" | "min" => 60,
        "s" | "sec" => 3600,
        _ => return Err(bad()),
    };
    let per_hour = n.checked_mul(factor).ok_or_else(bad)?;
    u32::try_from(per_hour).ok().filter(|r| *r > 0 && *r <= RATE_PER_HOUR_MAX).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_parse() -> Result<(), TokenError> {
        let p = parse_permission("fs.write=/workspace/**")?;
        assert_eq!(p.to_string(), "fs.write=/workspace/**");
        let p = parse_permission("mail.send=*@example.com,boss@corp.com")?;
        assert_eq!(p.scopes().len(), 2);
        assert_eq!(p.scopes().first().map(Scope::kind), Some(ScopeKind::Recipient));
        let p = parse_permission("mcp:bank/transfer;amount<=100;currency=EUR|USD")?;
        assert_eq!(p.to_string(), "mcp:bank/transfer=*;amount<=100;currency=EUR|USD");
        let p = parse_permission("http.get=domain:api.github.com")?;
        assert_eq!(p.scopes().first().map(Scope::kind), Some(ScopeKind::Domain));
        assert!(parse_permission("fs.write").is_err());
        assert!(parse_permission("fs.write=relative").is_err());
        assert!(parse_permission("x;bad").is_err());
        Ok(())
    }

    #[test]
    fn durations_and_rates_parse() -> Result<(), TokenError> {
        assert_eq!(parse_duration_ms("15m")?, 900_000);
        assert_eq!(parse_duration_ms("2h")?, 7_200_000);
        assert_eq!(parse_duration_ms("500ms")?, 500);
        assert!(parse_duration_ms("15").is_err());
        assert!(parse_duration_ms("m").is_err());
        assert_eq!(parse_rate_per_hour("600/h")?, 600);
        assert_eq!(parse_rate_per_hour("10/m")?, 600);
        assert_eq!(parse_rate_per_hour("120")?, 120);
        assert!(parse_rate_per_hour("0/h").is_err());
        assert!(parse_rate_per_hour("2000/s").is_err());
        Ok(())
    }
}
