//! The DSC's error type. Errors never leave `decide`: every one becomes a deny
//! (`DSC-INTERNAL`); they surface only when loading a configuration.

/// Why a DSC configuration could not be loaded or a state delta not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DscError {
    /// `DSC-CONFIG-POLICY`: a Cedar policy file does not parse or uses an unsupported feature.
    #[error("invalid MAC policy: {0}")]
    Policy(String),
    /// `DSC-CONFIG-PREFILTER`: the pre-filter pattern file is invalid.
    #[error("invalid pre-filter pattern file: {0}")]
    Prefilter(String),
    /// `DSC-CONFIG`: another configuration value is invalid.
    #[error("invalid DSC configuration: {0}")]
    Config(String),
    /// `DSC-STATE-LIMIT`: applying a delta would exceed a state bound.
    #[error("state limit: `{field}` is over its limit of {max}")]
    StateLimit {
        /// Which collection.
        field: &'static str,
        /// The bound.
        max: usize,
    },
    /// `DSC-INTERNAL`: an invariant failed while deciding.
    #[error("internal DSC error: {0}")]
    Internal(String),
}

impl DscError {
    /// The stable code.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Policy(_) => "DSC-CONFIG-POLICY",
            Self::Prefilter(_) => "DSC-CONFIG-PREFILTER",
            Self::Config(_) => "DSC-CONFIG",
            Self::StateLimit { .. } => "DSC-STATE-LIMIT",
            Self::Internal(_) => "DSC-INTERNAL",
        }
    }
}
