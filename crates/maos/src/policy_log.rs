//! The MAC policy in force, in the log: `maos up` appends a `kernel.policy`
//! record at every start, before the kernel decides anything, with the profile,
//! the deployed Cedar sources and the configuration hash, so `maos audit replay`
//! re-runs the exact policy offline, whatever `maos.toml` says by then.

use crate::output::coded;
use maos_dsc::DscConfig;
use maos_dsc::aggregate::{AggregateLimits, AggregateMode};
use maos_model::Profile;
use maos_wal::{LogReader, RecordKind, Wal};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Record kind of the policy record (the kernel's range; the kernel's fold ignores it).
pub const KIND_POLICY: RecordKind = RecordKind(0x0320);

/// The payload of a `kernel.policy` record.
#[derive(Debug, Serialize, Deserialize)]
struct PolicyRecord {
    v: u16,
    profile: String,
    /// SHA3-256 of the whole DSC configuration (what every decision record names).
    config_hash: String,
    /// The deployed sources `(file name, text)`, on top of the profile's defaults.
    policies: Vec<(String, String)>,
    /// The aggregate monitor's thresholds and mode (absent: the defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aggregate: Option<(AggregateLimits, AggregateMode)>,
}

/// Appends the policy record for `config`, built from `deployed`.
///
/// # Errors
/// The log refused the record.
pub fn log_policy(wal: &Wal, config: &DscConfig, deployed: &[(String, String)]) -> anyhow::Result<()> {
    let record = PolicyRecord {
        v: 1,
        profile: config.profile().name().to_owned(),
        config_hash: config.hash_hex(),
        policies: deployed.to_vec(),
        aggregate: Some(config.aggregate()).filter(|a| *a != (AggregateLimits::DEFAULT, AggregateMode::Enforce)),
    };
    let payload = serde_json::to_vec(&record)?;
    wal.append(KIND_POLICY, &payload).map_err(|e| coded(e.code(), format!("logging the MAC policy: {e}"), 1))?;
    Ok(())
}

/// Every policy record of the log with the configuration it logged, in log
/// order (a replay re-runs each run's decisions under its own), each rebuilt
/// from its sources (once per distinct text) and checked against its hash.
///
/// # Errors
/// As [`logged_policy`], and `MAOS-POLICY` past [`POLICIES_REPLAYED_MAX`]
/// distinct configurations.
pub fn logged_policies(reader: &LogReader) -> anyhow::Result<Vec<(maos_wal::Lsn, Arc<DscConfig>)>> {
    let mut built: std::collections::BTreeMap<Vec<u8>, Arc<DscConfig>> = std::collections::BTreeMap::new();
    let mut out = Vec::new();
    for record in reader.records()? {
        let record = record?;
        if record.kind != KIND_POLICY {
            continue;
        }
        let config = match built.get(&record.payload) {
            Some(c) => c.clone(),
            None => {
                if built.len() >= POLICIES_REPLAYED_MAX {
                    return Err(coded(
                        "MAOS-POLICY",
                        format!("more than {POLICIES_REPLAYED_MAX} distinct logged policies to replay"),
                        1,
                    ));
                }
                let c = policy_of(record.lsn, &record.payload)?;
                built.insert(record.payload.clone(), c.clone());
                c
            }
        };
        out.push((record.lsn, config));
    }
    Ok(out)
}

/// Distinct logged configurations a replay compiles (each a Cedar policy set).
const POLICIES_REPLAYED_MAX: usize = 256;

/// The configuration of the last policy record in the log, rebuilt from its
/// sources and checked against its hash; `None` for a log without one.
///
/// # Errors
/// `MAOS-POLICY` if a record does not decode, does not load, or rebuilds to
/// another hash (the record was edited, or this build's defaults changed).
pub fn logged_policy(reader: &LogReader) -> anyhow::Result<Option<Arc<DscConfig>>> {
    let mut last = None;
    for record in reader.records()? {
        let record = record?;
        if record.kind == KIND_POLICY {
            last = Some((record.lsn, record.payload));
        }
    }
    let Some((lsn, payload)) = last else { return Ok(None) };
    policy_of(lsn, &payload).map(Some)
}

fn policy_of(lsn: maos_wal::Lsn, payload: &[u8]) -> anyhow::Result<Arc<DscConfig>> {
    let bad = |why: String| coded("MAOS-POLICY", format!("the policy record at lsn {lsn}: {why}"), 1);
    let record: PolicyRecord = serde_json::from_slice(payload).map_err(|e| bad(e.to_string()))?;
    let profile =
        Profile::parse(&record.profile).ok_or_else(|| bad(format!("unknown profile `{}`", record.profile)))?;
    let aggregate = record.aggregate.unwrap_or((AggregateLimits::DEFAULT, AggregateMode::Enforce));
    let config = crate::datadir::dsc_config_from(profile, &record.policies, aggregate)?;
    if config.hash_hex() != record.config_hash {
        return Err(bad(format!("rebuilds to configuration {} instead of {}", config.hash_hex(), record.config_hash)));
    }
    Ok(config)
}
