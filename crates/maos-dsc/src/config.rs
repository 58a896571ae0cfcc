//! The DSC configuration (Rule 1: immutable at runtime, spec §10.2, §15.7.4).
//!
//! A [`DscConfig`] is built once by [`DscConfigBuilder::build`], compiled
//! (Cedar slices, pre-filter automata) and hashed with SHA3-256 over a
//! canonical serialization. It is handed out as `Arc<DscConfig>` and has no
//! setters: changing it means building a new one, which has a new hash, and
//! every [`crate::Decision`] records the hash it was made under.

use crate::DscError;
use crate::aggregate::{AggregateLimits, AggregateMode};
use crate::mac::{HARDENED_POLICIES, ISOLATED_POLICIES, MacPolicy, STANDARD_POLICIES};
use crate::prefilter::{DEFAULT_PATTERNS, Prefilter};
use maos_model::{Profile, Ring};
use std::sync::Arc;

/// Version of the check definitions; part of the config hash so two builds with
/// different rule code never claim the same configuration.
pub const CHECK_DEFINITIONS_VERSION: &str = "maos-dsc/checks/v3";

/// Workspace root for the Minimal MAC filesystem rule (spec §10.3).
pub const WORKSPACE_ROOT: &str = "/workspace/";

/// Per-agent rate limits by ring (operations per hour), on top of each
/// capability's own rate (spec §15.3 check 2, §8.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateTable {
    /// Ring 2 agents, per hour.
    pub ring2_per_hour: u32,
    /// Ring 3 agents, per hour.
    pub ring3_per_hour: u32,
}

impl RateTable {
    /// Defaults: the gateway ceiling of 1,000 calls/s for ring 2 (spec §8.3) and
    /// a tenth of it for ring 3.
    pub const DEFAULT: Self = Self { ring2_per_hour: 3_600_000, ring3_per_hour: 360_000 };

    /// The per-agent rate for a ring (kernel and system rings use ring 2's).
    #[must_use]
    pub const fn for_ring(&self, ring: Ring) -> u32 {
        match ring {
            Ring::Untrusted => self.ring3_per_hour,
            Ring::Kernel | Ring::System | Ring::Trusted => self.ring2_per_hour,
        }
    }
}

/// The immutable DSC configuration.
#[derive(Debug)]
pub struct DscConfig {
    profile: Profile,
    policy_sources: Vec<(String, String)>,
    prefilter_source: String,
    rates: RateTable,
    aggregate: (AggregateLimits, AggregateMode),
    hash: [u8; 32],
    mac: MacPolicy,
    prefilter: Prefilter,
}

/// Builds a [`DscConfig`]. Defaults for the profile are always included;
/// additions can only add policies (domain extensions add, never subtract).
#[derive(Debug, Clone)]
pub struct DscConfigBuilder {
    profile: Profile,
    extra_policies: Vec<(String, String)>,
    extra_patterns: Option<String>,
    rates: RateTable,
    aggregate: (AggregateLimits, AggregateMode),
}

impl DscConfigBuilder {
    /// Adds a Cedar policy source (name for error messages, text).
    #[must_use]
    pub fn policy(mut self, name: &str, text: &str) -> Self {
        self.extra_policies.push((name.to_owned(), text.to_owned()));
        self
    }

    /// Adds pre-filter patterns (TOML `[[pattern]]` entries) after the defaults.
    #[must_use]
    pub fn extra_patterns(mut self, toml_text: &str) -> Self {
        self.extra_patterns = Some(toml_text.to_owned());
        self
    }

    /// Sets the per-agent rate table.
    #[must_use]
    pub fn rates(mut self, rates: RateTable) -> Self {
        self.rates = rates;
        self
    }

    /// Sets the aggregate monitor's thresholds and mode (spec §49.11).
    #[must_use]
    pub fn aggregate(mut self, limits: AggregateLimits, mode: AggregateMode) -> Self {
        self.aggregate = (limits, mode);
        self
    }

    /// Compiles and hashes the configuration.
    ///
    /// # Errors
    /// [`DscError::Policy`], [`DscError::Prefilter`] or [`DscError::Config`].
    pub fn build(self) -> Result<Arc<DscConfig>, DscError> {
        if self.rates.ring2_per_hour == 0 || self.rates.ring3_per_hour == 0 {
            return Err(DscError::Config("per-agent rates must be at least 1 per hour".into()));
        }
        let (limits, mode) = self.aggregate;
        limits.validate(self.profile, mode).map_err(|e| DscError::Config(format!("[aggregate] {e}")))?;
        let mut sources = vec![("standard.cedar".to_owned(), STANDARD_POLICIES.to_owned())];
        match self.profile {
            Profile::Standard => {}
            Profile::Hardened => sources.push(("hardened.cedar".into(), HARDENED_POLICIES.into())),
            Profile::Isolated => {
                sources.push(("hardened.cedar".into(), HARDENED_POLICIES.into()));
                sources.push(("isolated.cedar".into(), ISOLATED_POLICIES.into()));
            }
        }
        sources.extend(self.extra_policies);
        let mut prefilter_source = DEFAULT_PATTERNS.to_owned();
        if let Some(extra) = self.extra_patterns {
            prefilter_source.push('\n');
            prefilter_source.push_str(&extra);
        }
        let mac = MacPolicy::compile(&sources)?;
        let prefilter = Prefilter::compile(&prefilter_source)?;
        let hash = canonical_hash(self.profile, &sources, &prefilter_source, self.rates, self.aggregate);
        Ok(Arc::new(DscConfig {
            profile: self.profile,
            policy_sources: sources,
            prefilter_source,
            rates: self.rates,
            aggregate: self.aggregate,
            hash,
            mac,
            prefilter,
        }))
    }
}

fn put(h: &mut maos_crypto::Sha3Hasher, bytes: &[u8]) {
    h.update(&(bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

fn canonical_hash(
    profile: Profile,
    sources: &[(String, String)],
    prefilter: &str,
    rates: RateTable,
    aggregate: (AggregateLimits, AggregateMode),
) -> [u8; 32] {
    let mut h = maos_crypto::Sha3Hasher::new();
    put(&mut h, b"maos-dsc-config/v1");
    put(&mut h, CHECK_DEFINITIONS_VERSION.as_bytes());
    put(&mut h, profile.name().as_bytes());
    put(&mut h, &(sources.len() as u64).to_be_bytes());
    for (name, text) in sources {
        put(&mut h, name.as_bytes());
        put(&mut h, text.as_bytes());
    }
    put(&mut h, prefilter.as_bytes());
    put(&mut h, &rates.ring2_per_hour.to_be_bytes());
    put(&mut h, &rates.ring3_per_hour.to_be_bytes());
    put(&mut h, WORKSPACE_ROOT.as_bytes());
    // Only when changed, so every configuration hashed before the monitor
    // was configurable keeps its hash (and old logs replay).
    if aggregate != (AggregateLimits::DEFAULT, AggregateMode::Enforce) {
        put(&mut h, b"aggregate");
        put(&mut h, &aggregate.0.outbound_bytes.to_be_bytes());
        put(&mut h, &aggregate.0.recipients.to_be_bytes());
        put(&mut h, &aggregate.0.external_calls.to_be_bytes());
        put(&mut h, &[u8::from(aggregate.1 == AggregateMode::Calibrate)]);
    }
    h.finish().0
}

impl DscConfig {
    /// A builder for `profile` with its default policies and patterns.
    #[must_use]
    pub fn builder(profile: Profile) -> DscConfigBuilder {
        DscConfigBuilder {
            profile,
            extra_policies: Vec::new(),
            extra_patterns: None,
            rates: RateTable::DEFAULT,
            aggregate: (AggregateLimits::DEFAULT, AggregateMode::Enforce),
        }
    }

    /// The default configuration of a profile.
    ///
    /// # Errors
    /// Only if the embedded defaults are broken (a test guards against it).
    pub fn default_for(profile: Profile) -> Result<Arc<Self>, DscError> {
        Self::builder(profile).build()
    }

    /// The aggregate monitor's thresholds and mode.
    #[must_use]
    pub const fn aggregate(&self) -> (AggregateLimits, AggregateMode) {
        self.aggregate
    }

    /// The profile.
    #[must_use]
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// SHA3-256 over the canonical serialization.
    #[must_use]
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }

    /// The hash in hex.
    #[must_use]
    pub fn hash_hex(&self) -> String {
        maos_crypto::Digest(self.hash).to_hex()
    }

    /// The Cedar sources `(name, text)`, in load order.
    #[must_use]
    pub fn policy_sources(&self) -> &[(String, String)] {
        &self.policy_sources
    }

    /// The pre-filter pattern text.
    #[must_use]
    pub fn prefilter_source(&self) -> &str {
        &self.prefilter_source
    }

    /// The per-agent rate table.
    #[must_use]
    pub fn rates(&self) -> RateTable {
        self.rates
    }

    /// The compiled MAC policy.
    #[must_use]
    pub fn mac(&self) -> &MacPolicy {
        &self.mac
    }

    /// The compiled pre-filter.
    #[must_use]
    pub fn prefilter(&self) -> &Prefilter {
        &self.prefilter
    }
}
