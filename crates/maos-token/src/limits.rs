//! Every bound on a token, with the attack or failure it prevents.

/// Largest encoded token in bytes. The hybrid signature alone is 3,373 bytes; the
/// rest bounds the claims so a token cannot be used to make every verifier
/// allocate and hash megabytes per request.
pub const TOKEN_BYTES_MAX: usize = 12 * 1024;
/// Largest text form: the `maos1.` prefix plus unpadded base64url of the bytes.
/// Checked before decoding so oversized input costs nothing.
pub const TOKEN_TEXT_MAX: usize = crate::encoding::TEXT_PREFIX.len() + TOKEN_BYTES_MAX.div_ceil(3) * 4;
/// Permissions per token: a token is a short list of duties, not a policy file.
pub const PERMISSIONS_MAX: usize = 32;
/// Resource scopes per permission.
pub const SCOPES_PER_PERMISSION_MAX: usize = 16;
/// Argument constraints per permission.
pub const CONSTRAINTS_PER_PERMISSION_MAX: usize = 8;
/// Allowed values in one `one-of` argument constraint.
pub const ONE_OF_VALUES_MAX: usize = 16;
/// Bytes in an action pattern such as `mcp.github.create_issue`.
pub const ACTION_BYTES_MAX: usize = 128;
/// Bytes in a scope or constraint pattern (a DNS name is at most 253).
pub const PATTERN_BYTES_MAX: usize = 255;
/// Bytes in the human-authored mission statement carried by a token.
pub const MISSION_BYTES_MAX: usize = 2048;
/// Delegation depth: root, child, grandchild (spec §33.8.4). Deeper chains make
/// revocation and budget accounting harder to reason about.
pub const DELEGATION_DEPTH_MAX: usize = 3;
/// Live children per token (spec §40.5: ≤5 concurrent subagents per parent);
/// stops one agent fanning out into a swarm.
pub const LIVE_CHILDREN_MAX: usize = 5;
/// Highest rate a token may carry: the gateway default of 1,000 calls/s (spec §8.3).
pub const RATE_PER_HOUR_MAX: u32 = 3_600_000;

/// Default lifetime of a Ring 2 agent's token (spec §9.3).
pub const TTL_RING2_DEFAULT_MS: u64 = 60 * 60 * 1000;
/// Default lifetime of a Ring 3 agent's token (spec §9.3).
pub const TTL_RING3_DEFAULT_MS: u64 = 15 * 60 * 1000;
/// Default lifetime of an external (A2A) agent's token (spec §9.3).
pub const TTL_EXTERNAL_DEFAULT_MS: u64 = 5 * 60 * 1000;
/// A lifetime above this multiple of the default needs a commander acknowledgement.
pub const TTL_ACK_FACTOR: u64 = 4;
/// Longest lifetime even with acknowledgement: a forgotten token must still die.
pub const TTL_ABSOLUTE_MAX_MS: u64 = 30 * 24 * 60 * 60 * 1000;

const _: () = assert!(TTL_RING3_DEFAULT_MS * TTL_ACK_FACTOR < TTL_ABSOLUTE_MAX_MS);
const _: () = assert!(TTL_RING2_DEFAULT_MS * TTL_ACK_FACTOR < TTL_ABSOLUTE_MAX_MS);
const _: () = assert!(PATTERN_BYTES_MAX <= u8::MAX as usize);
const _: () = assert!(ACTION_BYTES_MAX <= u8::MAX as usize);
const _: () = assert!(PERMISSIONS_MAX <= u8::MAX as usize);
