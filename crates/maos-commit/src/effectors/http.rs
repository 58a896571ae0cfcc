//! `http.get` (observe; output labelled `untrusted`) and `http.post`
//! (irreversible: HACF L2, spec §50.4) to allow-listed hosts only, through
//! `reqwest` with rustls, bounded response size and time, redirects only to
//! allow-listed hosts, no proxies from the environment.
//!
//! The URL is the `url` argument; its host must also be one of the intent's
//! `domain` resources (what the DSC checked the token against).
//!
//! Host names are resolved by [`GuardedResolver`], which by default drops
//! loopback, private, link-local and other non-public addresses, so an
//! allow-listed name that resolves (or is rebound) to an internal address —
//! the cloud metadata service, a local admin port — is refused at connect
//! time, with no gap between the check and the connection. An IP literal
//! reaches its address only when the operator allow-listed that literal.

use super::{state_hash, str_arg};
use crate::describe::{DescribeError, Described, Role};
use crate::effector::{Compensable, EffectOutput, Effector, ExecContext, OutputLabel, Probe, Snapshot};
use crate::error::EffectError;
use maos_model::{EffectClass, IfcLevel, Intent, IntentId, ReadLabel, ResourceKind};
use reqwest::Url;
use reqwest::dns::{Name, Resolve, Resolving};
use std::io::Read;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest response body read: a hostile server cannot make the kernel buffer
/// more (and the output bound of the pipeline is not exceeded).
pub const HTTP_RESPONSE_BYTES_MAX: usize = 2 * 1024 * 1024;
/// Default request timeout: below the 30 s lock timeout, so a slow server
/// fails the request before the lock expires.
pub const HTTP_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
/// Redirects followed: stops redirect loops.
pub const HTTP_REDIRECTS_MAX: usize = 5;
/// Allow-list entries.
pub const HTTP_ALLOW_ENTRIES_MAX: usize = 1024;
/// Bytes of a POST body (the argument bound of the intent also applies).
pub const HTTP_BODY_BYTES_MAX: usize = 64 * 1024;

const _: () = assert!(crate::effector::OUTPUT_BYTES_MAX >= HTTP_RESPONSE_BYTES_MAX);

/// Whether plain `http://` is allowed (tests and loopback services) or only `https://`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlainHttp {
    /// `https://` only (the default).
    Refuse,
    /// `http://` also allowed.
    Allow,
}

/// Whether allow-listed names may resolve to non-public addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivateAddresses {
    /// Refuse loopback, private, link-local, CGNAT, multicast and unspecified
    /// addresses behind a name (the default: stops SSRF and DNS rebinding).
    Refuse,
    /// Allow them (a deployment whose allow-listed services are internal).
    Allow,
}

/// Whether `ip` is reachable only inside a host or network (not public).
#[must_use]
pub fn is_non_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
                || (a == 198 && (b == 18 || b == 19)) // benchmarking 198.18/15
                || a >= 240 // reserved
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_non_public(IpAddr::V4(v4));
            }
            let first = v6.segments().first().copied().unwrap_or(0);
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
        }
    }
}

/// The DNS resolver of the `http` effector: the system resolver, minus
/// non-public addresses under [`PrivateAddresses::Refuse`]. Lookups are
/// blocking on the client's I/O thread (bounded by the request timeout).
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    private: PrivateAddresses,
}

#[derive(Debug)]
struct PrivateAddressRefused(String);

impl std::fmt::Display for PrivateAddressRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` resolves only to non-public addresses", self.0)
    }
}

impl std::error::Error for PrivateAddressRefused {}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let private = self.private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = (host.as_str(), 0).to_socket_addrs()?.collect();
            let usable: Vec<SocketAddr> = match private {
                PrivateAddresses::Allow => found,
                PrivateAddresses::Refuse => found.into_iter().filter(|a| !is_non_public(a.ip())).collect(),
            };
            if usable.is_empty() {
                return Err(Box::new(PrivateAddressRefused(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(usable.into_iter()) as Box<dyn Iterator<Item = SocketAddr> + Send>)
        })
    }
}

/// Host patterns: `example.com` (exact) or `*.example.com` (any subdomain,
/// not the apex).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    exact: Vec<String>,
    suffixes: Vec<String>,
}

impl AllowList {
    /// Parses patterns.
    ///
    /// # Errors
    /// [`EffectError::Invalid`] for an empty pattern, a bare `*`, or too many.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, EffectError> {
        if patterns.len() > HTTP_ALLOW_ENTRIES_MAX {
            return Err(EffectError::Invalid("too many allow-list entries".into()));
        }
        let mut list = Self::default();
        for p in patterns {
            let p = p.as_ref().trim().trim_end_matches('.').to_ascii_lowercase();
            if let Some(suffix) = p.strip_prefix("*.") {
                if suffix.is_empty() || suffix.contains('*') {
                    return Err(EffectError::Invalid(format!("bad allow-list pattern `{p}`")));
                }
                list.suffixes.push(format!(".{suffix}"));
            } else if p.is_empty() || p.contains('*') {
                return Err(EffectError::Invalid(format!("bad allow-list pattern `{p}`")));
            } else {
                list.exact.push(p);
            }
        }
        Ok(list)
    }

    /// Whether `host` is allowed.
    #[must_use]
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.exact.contains(&host) || self.suffixes.iter().any(|s| host.len() > s.len() && host.ends_with(s.as_str()))
    }
}

/// Configuration of the `http` effector.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Allowed hosts.
    pub allow: AllowList,
    /// Request timeout (at most the time left before the lock timeout).
    pub timeout: Duration,
    /// Whether `http://` is allowed.
    pub plain_http: PlainHttp,
    /// Whether names may resolve to non-public addresses.
    pub private_addresses: PrivateAddresses,
}

impl HttpConfig {
    /// `https://` only to `allow`, with [`HTTP_TIMEOUT_DEFAULT`].
    #[must_use]
    pub const fn new(allow: AllowList) -> Self {
        Self {
            allow,
            timeout: HTTP_TIMEOUT_DEFAULT,
            plain_http: PlainHttp::Refuse,
            private_addresses: PrivateAddresses::Refuse,
        }
    }
}

/// The `http` effector.
#[derive(Debug, Clone)]
pub struct HttpEffector {
    config: Arc<HttpConfig>,
    client: reqwest::blocking::Client,
}

impl HttpEffector {
    /// Builds the client. Call outside an async runtime (reqwest's blocking
    /// client starts its own), e.g. from `spawn_blocking` or before the runtime.
    ///
    /// # Errors
    /// [`EffectError::Io`] if the TLS client cannot be built.
    pub fn new(config: HttpConfig) -> Result<Self, EffectError> {
        let config = Arc::new(config);
        let policy_config = Arc::clone(&config);
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            let allowed = scheme_allowed(&policy_config, attempt.url())
                && attempt.url().host_str().is_some_and(|h| policy_config.allow.allows(h));
            if !allowed {
                let host = attempt.url().host_str().unwrap_or("?").to_owned();
                attempt.error(RedirectRefused(host))
            } else if attempt.previous().len() >= HTTP_REDIRECTS_MAX {
                attempt.error(RedirectRefused("too many redirects".into()))
            } else {
                attempt.follow()
            }
        });
        let client = reqwest::blocking::Client::builder()
            .redirect(policy)
            .timeout(config.timeout)
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver { private: config.private_addresses }))
            .build()
            .map_err(|e| EffectError::Io(format!("building the http client: {e}")))?;
        Ok(Self { config, client })
    }

    fn url(&self, intent: &Intent) -> Result<Url, EffectError> {
        let url = Url::parse(str_arg(intent, "url")?).map_err(|_| EffectError::Invalid("malformed url".into()))?;
        if !scheme_allowed(&self.config, &url) {
            return Err(EffectError::Invalid(format!("scheme `{}` is not allowed", url.scheme())));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(EffectError::Invalid("credentials in the url are not allowed".into()));
        }
        let host = url.host_str().ok_or_else(|| EffectError::Invalid("url without a host".into()))?;
        if !self.config.allow.allows(host) {
            return Err(EffectError::Domain(host.to_owned()));
        }
        let declared = intent
            .resources
            .iter()
            .any(|r| r.kind == ResourceKind::Domain && r.value.trim_end_matches('.').eq_ignore_ascii_case(host));
        if !declared {
            return Err(EffectError::Invalid("the url host is not among the intent's domain resources".into()));
        }
        Ok(url)
    }

    fn send(&self, intent: &Intent, key: IntentId, ctx: &ExecContext) -> Result<EffectOutput, EffectError> {
        let url = self.url(intent)?;
        let left = ctx.deadline().saturating_duration_since(Instant::now());
        let timeout = self.config.timeout.min(left);
        let (request, label) = match intent.action.as_str() {
            "http.get" => (self.client.get(url.clone()), OutputLabel::Untrusted),
            "http.post" => {
                let body = str_arg(intent, "body")?;
                if body.len() > HTTP_BODY_BYTES_MAX {
                    return Err(EffectError::TooLarge { what: "request body", max: HTTP_BODY_BYTES_MAX });
                }
                let content_type = intent
                    .args
                    .get("content_type")
                    .and_then(maos_model::ArgValue::as_str)
                    .unwrap_or("text/plain; charset=utf-8");
                if content_type.chars().any(char::is_control) {
                    return Err(EffectError::Invalid("bad content type".into()));
                }
                let request = self
                    .client
                    .post(url.clone())
                    .header("Idempotency-Key", key.to_string())
                    .header("Content-Type", content_type)
                    .body(body.to_owned());
                // A POST response is the remote's answer: untrusted too.
                (request, OutputLabel::Untrusted)
            }
            other => return Err(EffectError::UnknownAction(other.to_owned())),
        };
        ctx.checkpoint()?;
        let response = request.timeout(timeout).send().map_err(map_error)?;
        let status = response.status();
        if response.content_length().is_some_and(|n| n > u64::try_from(HTTP_RESPONSE_BYTES_MAX).unwrap_or(u64::MAX)) {
            return Err(EffectError::TooLarge { what: "response", max: HTTP_RESPONSE_BYTES_MAX });
        }
        let mut body = Vec::new();
        let limit = u64::try_from(HTTP_RESPONSE_BYTES_MAX).unwrap_or(u64::MAX).saturating_add(1);
        response
            .take(limit)
            .read_to_end(&mut body)
            .map_err(|e| EffectError::Remote(format!("reading the body: {}", e.kind())))?;
        if body.len() > HTTP_RESPONSE_BYTES_MAX {
            return Err(EffectError::TooLarge { what: "response", max: HTTP_RESPONSE_BYTES_MAX });
        }
        if !status.is_success() {
            return Err(EffectError::Remote(format!("status {}", status.as_u16())));
        }
        let summary = format!(
            "{} {} -> {} ({} bytes)",
            intent.action,
            url.host_str().unwrap_or("?"),
            status.as_u16(),
            body.len()
        );
        Ok(EffectOutput { body, label, summary })
    }
}

fn scheme_allowed(config: &HttpConfig, url: &Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => config.plain_http == PlainHttp::Allow,
        _ => false,
    }
}

#[derive(Debug)]
struct RedirectRefused(String);

impl std::fmt::Display for RedirectRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "redirect refused: {}", self.0)
    }
}

impl std::error::Error for RedirectRefused {}

fn map_error(e: reqwest::Error) -> EffectError {
    if e.is_redirect() {
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&e);
        while let Some(s) = source {
            if let Some(refused) = s.downcast_ref::<RedirectRefused>() {
                return EffectError::Domain(format!("redirect to {}", refused.0));
            }
            source = s.source();
        }
        return EffectError::Domain("redirect".into());
    }
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&e);
    while let Some(s) = source {
        if let Some(refused) = s.downcast_ref::<PrivateAddressRefused>() {
            return EffectError::Domain(refused.to_string());
        }
        source = s.source();
    }
    if e.is_timeout() {
        return EffectError::Remote("timed out".into());
    }
    EffectError::Remote(if e.is_connect() { "connection failed".into() } else { "request failed".into() })
}

/// The `http` actions' effect classes. A POST cannot be recalled and no target
/// here documents idempotency: irreversible (HACF L2, spec §50.4).
fn http_action(action: &str) -> Option<EffectClass> {
    match action {
        "http.get" => Some(EffectClass::Observe),
        "http.post" => Some(EffectClass::Irreversible),
        _ => None,
    }
}

impl Effector for HttpEffector {
    fn namespace(&self) -> &'static str {
        "http"
    }

    fn remote(&self, intent: &Intent) -> Option<String> {
        let url = self.url(intent).ok()?;
        url.host_str().map(|h| format!("http:{}", h.to_ascii_lowercase()))
    }

    fn describe(&self, intent: &Intent) -> Result<Described, DescribeError> {
        let effect = http_action(&intent.action).ok_or_else(|| DescribeError::UnknownAction(intent.action.clone()))?;
        // The web is public and anyone can write it: an observation reads untrusted data.
        let reads =
            if effect.is_effect() { Vec::new() } else { vec![ReadLabel { level: IfcLevel::Public, untrusted: true }] };
        let url = crate::describe::str_arg(intent, "url")?;
        Ok(Described {
            effect,
            resources: vec![Role::Url.resource("url", url)?],
            sink_level: IfcLevel::Public,
            reads,
            cost: Described::default_cost(effect),
            requires_integrity: effect.is_effect(),
            sensitive_args: Vec::new(),
            provenance_deny: false,
        })
    }

    fn effect_class(&self, intent: &Intent) -> EffectClass {
        // Anything unknown is a write (CT-CL-10).
        http_action(&intent.action).unwrap_or(EffectClass::Write)
    }

    fn resource_keys(&self, intent: &Intent) -> Result<Vec<String>, EffectError> {
        let url = self.url(intent)?;
        Ok(vec![format!("http:{}", url.host_str().unwrap_or("?").to_ascii_lowercase())])
    }

    fn world_state(&self, intent: &Intent) -> Result<[u8; 32], EffectError> {
        // The remote state is not observable without a request; the hash binds
        // only the target, so OCC here checks that the target did not change.
        let url = self.url(intent)?;
        Ok(state_hash(&[b"http", url.as_str().as_bytes()]))
    }

    fn snapshot(&self, _intent: &Intent) -> Result<Snapshot, EffectError> {
        Ok(Snapshot { hold_ms: 0, compensable: Compensable::No, bytes: Vec::new() })
    }

    fn execute(&self, intent: &Intent, key: IntentId, ctx: &ExecContext) -> Result<EffectOutput, EffectError> {
        self.send(intent, key, ctx)
    }

    fn probe(&self, intent: &Intent) -> Result<Probe, EffectError> {
        Ok(match intent.action.as_str() {
            "http.get" => Probe::NotDone,
            // Whether the remote applied a POST cannot be known from here: never repeat it.
            _ => Probe::Unknown,
        })
    }

    fn compensate(&self, _intent: &Intent, _snapshot: &Snapshot) -> Result<(), EffectError> {
        Err(EffectError::NotCompensable("an HTTP request cannot be recalled".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_matches_exact_and_subdomains_only() {
        let list = AllowList::new(&["api.example.com", "*.corp.test"]).unwrap_or_default();
        assert!(list.allows("api.example.com"));
        assert!(list.allows("API.Example.com."));
        assert!(!list.allows("example.com"));
        assert!(!list.allows("evil-api.example.com"));
        assert!(list.allows("a.corp.test"));
        assert!(list.allows("a.b.corp.test"));
        assert!(!list.allows("corp.test"));
        assert!(!list.allows("evilcorp.test"));
        assert!(AllowList::new(&["*"]).is_err());
    }

    #[test]
    fn non_public_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "224.0.0.1",
        ] {
            assert!(is_non_public(ip.parse().unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:2800:220:1::1", "8.8.8.8"] {
            assert!(!is_non_public(ip.parse().unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))), "{ip}");
        }
        assert!(AllowList::new(&["*."]).is_err());
    }
}
