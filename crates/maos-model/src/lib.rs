//! The MAOS vocabulary: identifiers, rings, trust classes, IFC levels and profiles.
//!
//! Guarantees: every type here is validated on construction (an `AgentId` is never
//! empty or oversized, a `TokenId` is always a UUIDv7), every enum has a stable
//! numeric code used by the canonical encodings, and nothing here does I/O.
//!
//! ```
//! use maos_model::{AgentId, IfcLevel, Ring};
//! let agent = AgentId::new("mail-assistant").unwrap();
//! assert_eq!(agent.as_str(), "mail-assistant");
//! assert!(IfcLevel::Public < IfcLevel::Restricted);
//! assert_eq!(Ring::from_code(3), Some(Ring::Untrusted));
//! ```

#![forbid(unsafe_code)]

mod ids;
mod labels;
mod text;
mod time;

pub use ids::{AGENT_ID_BYTES_MAX, AgentId, IdError, TokenId};
pub use labels::{IfcLevel, Profile, Ring, TrustClass};
pub use text::prefix_within;
pub use time::{CivilTime, UnixMillis};

mod intent;
mod verdict;

pub use intent::{
    ARG_NAME_BYTES_MAX, ARG_VALUE_BYTES_MAX, ArgValue, EffectClass, INTENT_ACTION_BYTES_MAX, INTENT_ARGS_MAX,
    INTENT_BYTES_MAX, INTENT_READS_MAX, INTENT_RESOURCES_MAX, Intent, IntentError, IntentId, RESOURCE_VALUE_BYTES_MAX,
    ReadLabel, Resource, ResourceKind, SENSITIVE_ARGS_MAX,
};
pub use verdict::{DenyCode, HacfLevel, Verdict};
