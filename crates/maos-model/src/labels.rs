//! Rings, trust classes, IFC levels and security profiles, each with a stable code.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Protection ring (spec §7). Lower numbers are more trusted; agents live in 2 and 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ring {
    /// Ring 0: the kernel (DSC, Commit Layer, WAL). Never holds agent code.
    Kernel,
    /// Ring 1: system services.
    System,
    /// Ring 2: verified agents.
    Trusted,
    /// Ring 3: unverified agents, sandboxed.
    Untrusted,
}

impl Ring {
    /// The ring number, used in encodings and on the command line.
    #[must_use]
    pub const fn code(self) -> u8 {
        match self {
            Self::Kernel => 0,
            Self::System => 1,
            Self::Trusted => 2,
            Self::Untrusted => 3,
        }
    }

    /// The ring for a number, or `None` outside 0..=3.
    #[must_use]
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Kernel),
            1 => Some(Self::System),
            2 => Some(Self::Trusted),
            3 => Some(Self::Untrusted),
            _ => None,
        }
    }

    /// Whether `self` is at least as trusted as `other` (a smaller or equal ring number).
    #[must_use]
    pub const fn at_least_as_trusted_as(self, other: Self) -> bool {
        self.code() <= other.code()
    }
}

impl fmt::Display for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ring {}", self.code())
    }
}

/// Trust class of the holder (spec §41.5), plus `External` for agents outside this
/// MAOS (A2A peers), whose tokens get the shortest lifetime (spec §9.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrustClass {
    /// Class A: open source, reproducible build, SBOM.
    Transparent,
    /// Class B: source-available or fully documented binary.
    Inspectable,
    /// Class C: sealed binary.
    Opaque,
    /// An external agent reached over A2A.
    External,
}

impl TrustClass {
    /// Stable code for encodings.
    #[must_use]
    pub const fn code(self) -> u8 {
        match self {
            Self::Transparent => 1,
            Self::Inspectable => 2,
            Self::Opaque => 3,
            Self::External => 4,
        }
    }

    /// The class for a code, or `None` if unknown.
    #[must_use]
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Transparent),
            2 => Some(Self::Inspectable),
            3 => Some(Self::Opaque),
            4 => Some(Self::External),
            _ => None,
        }
    }

    /// Lowercase name as used in config and output.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Transparent => "transparent",
            Self::Inspectable => "inspectable",
            Self::Opaque => "opaque",
            Self::External => "external",
        }
    }

    /// Parses a name or the spec's letter (`a`, `b`, `c`).
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "a" | "transparent" => Some(Self::Transparent),
            "b" | "inspectable" => Some(Self::Inspectable),
            "c" | "opaque" => Some(Self::Opaque),
            "external" | "a2a" => Some(Self::External),
            _ => None,
        }
    }
}

/// IFC confidentiality level (spec §11): a linear lattice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IfcLevel {
    /// Anyone may see it.
    Public,
    /// Inside the organisation; personal data is at least this (spec §5.3.1).
    Internal,
    /// Need to know.
    Confidential,
    /// Highest level; declassifying it always needs a human.
    Restricted,
}

impl IfcLevel {
    /// All levels, lowest first.
    pub const ALL: [Self; 4] = [Self::Public, Self::Internal, Self::Confidential, Self::Restricted];

    /// Stable code for encodings.
    #[must_use]
    pub const fn code(self) -> u8 {
        match self {
            Self::Public => 0,
            Self::Internal => 1,
            Self::Confidential => 2,
            Self::Restricted => 3,
        }
    }

    /// The level for a code, or `None` if unknown.
    #[must_use]
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Public),
            1 => Some(Self::Internal),
            2 => Some(Self::Confidential),
            3 => Some(Self::Restricted),
            _ => None,
        }
    }

    /// Lowercase name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Internal => "internal",
            Self::Confidential => "confidential",
            Self::Restricted => "restricted",
        }
    }

    /// Parses a lowercase or capitalised name.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.name().eq_ignore_ascii_case(text))
    }

    /// The least upper bound of two levels.
    #[must_use]
    pub fn join(self, other: Self) -> Self {
        self.max(other)
    }
}

impl fmt::Display for IfcLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Security profile (spec §5.2): one governs the whole system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Development and personal use.
    Standard,
    /// Business and sensitive data.
    Hardened,
    /// Regulated industries.
    Isolated,
}

impl Profile {
    /// Lowercase name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Hardened => "hardened",
            Self::Isolated => "isolated",
        }
    }

    /// Parses a lowercase name.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Standard, Self::Hardened, Self::Isolated].into_iter().find(|p| p.name().eq_ignore_ascii_case(text))
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for code in 0..=255u8 {
            if let Some(r) = Ring::from_code(code) {
                assert_eq!(r.code(), code);
            }
            if let Some(l) = IfcLevel::from_code(code) {
                assert_eq!(l.code(), code);
            }
            if let Some(t) = TrustClass::from_code(code) {
                assert_eq!(t.code(), code);
            }
        }
    }

    #[test]
    fn lattice_order_and_join() {
        assert!(IfcLevel::Public < IfcLevel::Internal);
        assert!(IfcLevel::Internal < IfcLevel::Confidential);
        assert!(IfcLevel::Confidential < IfcLevel::Restricted);
        assert_eq!(IfcLevel::Internal.join(IfcLevel::Confidential), IfcLevel::Confidential);
        assert!(Ring::Trusted.at_least_as_trusted_as(Ring::Untrusted));
        assert!(!Ring::Untrusted.at_least_as_trusted_as(Ring::Trusted));
    }

    #[test]
    fn names_parse() {
        assert_eq!(IfcLevel::parse("Confidential"), Some(IfcLevel::Confidential));
        assert_eq!(Profile::parse("hardened"), Some(Profile::Hardened));
        assert_eq!(TrustClass::parse("B"), Some(TrustClass::Inspectable));
        assert_eq!(TrustClass::parse("nope"), None);
    }
}
