//! The byte format: segment headers and record frames (pure, no I/O).
//! `docs/wal-format.md` describes the same layout byte by byte; the golden test
//! at the bottom pins it.

use crate::types::{Lsn, RecordHash, RecordKind};
use maos_crypto::Sha3Hasher;
use maos_model::UnixMillis;

/// The four bytes that open every record frame.
pub const RECORD_MAGIC: [u8; 4] = *b"MWAL";
/// The eight bytes that open every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"MAOS-WAL";
/// The only format version this build reads and writes.
pub const FORMAT_VERSION: u16 = 1;
/// Bytes of a segment header.
pub const SEGMENT_HEADER_LEN: usize = 32;
/// Bytes of a record header (before the payload).
pub const RECORD_HEADER_LEN: usize = 32;
/// Bytes after the payload: previous hash, hash, CRC32C.
pub const RECORD_TRAILER_LEN: usize = 32 + 32 + 4;
/// Bytes a frame adds to its payload.
pub const RECORD_OVERHEAD: usize = RECORD_HEADER_LEN + RECORD_TRAILER_LEN;
/// Largest frame, header to CRC. Stops a caller (or an attacker who controls what a
/// caller logs, such as a tool argument) from stalling every other appender behind
/// one huge write, and bounds what the reader allocates for one record.
pub const RECORD_BYTES_MAX: usize = 1 << 20;
/// Largest stored payload (ciphertext when sealed).
pub const STORED_PAYLOAD_BYTES_MAX: usize = RECORD_BYTES_MAX - RECORD_OVERHEAD;
/// Largest payload a caller may append. The same with or without encryption, so
/// turning encryption on never makes a previously valid record too large.
pub const PAYLOAD_BYTES_MAX: usize = STORED_PAYLOAD_BYTES_MAX - maos_crypto::SEALED_OVERHEAD;

/// Flag: the payload is AES-256-GCM sealed.
pub const FLAG_SEALED: u16 = 1 << 0;
/// Flag: the last record of a commit group (one write, one sync). Lets recovery
/// tell a torn, never-acknowledged group from damage to acknowledged records.
pub const FLAG_GROUP_END: u16 = 1 << 1;
const FLAGS_KNOWN: u16 = FLAG_SEALED | FLAG_GROUP_END;

// A frame's length field is a u32 and a CRC'd header must fit before any payload.
const _: () = assert!(RECORD_BYTES_MAX <= u32::MAX as usize);
const _: () = assert!(PAYLOAD_BYTES_MAX > 64 * 1024);

/// Why bytes are not a valid frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The bytes end before the frame does (a torn write, or a record still being written).
    Incomplete,
    /// The frame does not start with [`RECORD_MAGIC`].
    BadMagic,
    /// A version this build does not know.
    BadVersion,
    /// The length field is below the minimum or above [`RECORD_BYTES_MAX`].
    BadLength,
    /// The CRC32C does not match.
    BadCrc,
    /// Unknown flag bits or a non-zero reserved field.
    Reserved,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Incomplete => "incomplete frame",
            Self::BadMagic => "bad magic",
            Self::BadVersion => "unknown format version",
            Self::BadLength => "impossible length",
            Self::BadCrc => "crc mismatch",
            Self::Reserved => "reserved bits set",
        })
    }
}

impl std::error::Error for FrameError {}

/// One decoded frame, borrowing its payload from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRecord<'a> {
    /// Sequence number.
    pub lsn: Lsn,
    /// Record kind.
    pub kind: RecordKind,
    /// Flag bits ([`FLAG_SEALED`], [`FLAG_GROUP_END`]).
    pub flags: u16,
    /// Wall-clock time of the commit group.
    pub timestamp: UnixMillis,
    /// Stored payload (ciphertext when sealed).
    pub payload: &'a [u8],
    /// Hash of the previous record.
    pub prev_hash: RecordHash,
    /// The stored hash of this record.
    pub hash: RecordHash,
    /// The frame's bytes up to (not including) the stored hash.
    pub hashed: &'a [u8],
}

impl RawRecord<'_> {
    /// Whether the stored hash is the SHA3-256 of the frame's bytes before it.
    #[must_use]
    pub fn hash_is_valid(&self) -> bool {
        hash_bytes(self.hashed) == self.hash
    }

    /// Whether the payload is sealed.
    #[must_use]
    pub const fn is_sealed(&self) -> bool {
        self.flags & FLAG_SEALED != 0
    }

    /// Whether this record closes a commit group.
    #[must_use]
    pub const fn is_group_end(&self) -> bool {
        self.flags & FLAG_GROUP_END != 0
    }
}

pub(crate) fn hash_bytes(bytes: &[u8]) -> RecordHash {
    let mut h = Sha3Hasher::new();
    h.update(bytes);
    RecordHash(h.finish().0)
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes(s.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(s.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(s.try_into().ok()?))
}

fn hash_at(b: &[u8], at: usize) -> Option<RecordHash> {
    let s = b.get(at..at.checked_add(32)?)?;
    Some(RecordHash(s.try_into().ok()?))
}

/// Decodes the frame at the start of `buf`, checking magic, version, length, CRC and
/// reserved bits (not the SHA3 hash: see [`RawRecord::hash_is_valid`]). Returns the
/// record and the frame length. Never panics, whatever the bytes.
///
/// # Errors
/// A [`FrameError`] saying why the bytes are not a frame.
pub fn decode_frame(buf: &[u8]) -> Result<(RawRecord<'_>, usize), FrameError> {
    let magic_seen = buf.get(..RECORD_MAGIC.len().min(buf.len())).ok_or(FrameError::Incomplete)?;
    if RECORD_MAGIC.get(..magic_seen.len()) != Some(magic_seen) {
        return Err(FrameError::BadMagic);
    }
    let version = u16_at(buf, 4).ok_or(FrameError::Incomplete)?;
    if version != FORMAT_VERSION {
        return Err(FrameError::BadVersion);
    }
    let total = usize::try_from(u32_at(buf, 8).ok_or(FrameError::Incomplete)?).map_err(|_| FrameError::BadLength)?;
    if !(RECORD_OVERHEAD..=RECORD_BYTES_MAX).contains(&total) {
        return Err(FrameError::BadLength);
    }
    let frame = buf.get(..total).ok_or(FrameError::Incomplete)?;
    let crc_at = total - 4;
    let body = frame.get(..crc_at).ok_or(FrameError::BadLength)?;
    let crc = u32_at(frame, crc_at).ok_or(FrameError::BadLength)?;
    if crc32c::crc32c(body) != crc {
        return Err(FrameError::BadCrc);
    }
    let flags = u16_at(frame, 6).ok_or(FrameError::BadLength)?;
    let reserved = u16_at(frame, 14).ok_or(FrameError::BadLength)?;
    if flags & !FLAGS_KNOWN != 0 || reserved != 0 {
        return Err(FrameError::Reserved);
    }
    let kind = RecordKind(u16_at(frame, 12).ok_or(FrameError::BadLength)?);
    let lsn = Lsn(u64_at(frame, 16).ok_or(FrameError::BadLength)?);
    let timestamp = UnixMillis(u64_at(frame, 24).ok_or(FrameError::BadLength)?);
    let payload_end = total - RECORD_TRAILER_LEN;
    let payload = frame.get(RECORD_HEADER_LEN..payload_end).ok_or(FrameError::BadLength)?;
    let prev_hash = hash_at(frame, payload_end).ok_or(FrameError::BadLength)?;
    let hash = hash_at(frame, payload_end + 32).ok_or(FrameError::BadLength)?;
    let hashed = frame.get(..payload_end + 32).ok_or(FrameError::BadLength)?;
    Ok((RawRecord { lsn, kind, flags, timestamp, payload, prev_hash, hash, hashed }, total))
}

/// The fields of a frame to encode.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameFields<'a> {
    pub lsn: Lsn,
    pub kind: RecordKind,
    pub flags: u16,
    pub timestamp: UnixMillis,
    pub payload: &'a [u8],
    pub prev_hash: RecordHash,
}

/// Appends one frame to `out` and returns its hash. The caller has checked the
/// payload length against [`STORED_PAYLOAD_BYTES_MAX`].
pub(crate) fn encode_frame(out: &mut Vec<u8>, f: &FrameFields<'_>) -> RecordHash {
    let start = out.len();
    let total = RECORD_OVERHEAD + f.payload.len();
    // INVARIANT: callers bound payloads by STORED_PAYLOAD_BYTES_MAX, so this fits a u32.
    assert!(total <= RECORD_BYTES_MAX, "wal frame over the size limit");
    let total32 = u32::try_from(total).unwrap_or(u32::MAX);
    out.reserve(total);
    out.extend_from_slice(&RECORD_MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&f.flags.to_le_bytes());
    out.extend_from_slice(&total32.to_le_bytes());
    out.extend_from_slice(&f.kind.0.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&f.lsn.0.to_le_bytes());
    out.extend_from_slice(&f.timestamp.0.to_le_bytes());
    out.extend_from_slice(f.payload);
    out.extend_from_slice(&f.prev_hash.0);
    let hash = hash_bytes(out.get(start..).unwrap_or_default());
    out.extend_from_slice(&hash.0);
    let crc = crc32c::crc32c(out.get(start..).unwrap_or_default());
    out.extend_from_slice(&crc.to_le_bytes());
    hash
}

/// Sets [`FLAG_GROUP_END`] on the frame at `buf[start..]` (the last frame of `buf`)
/// and recomputes its hash and CRC. Returns the new hash, or `None` if no frame is there.
pub(crate) fn mark_group_end(buf: &mut [u8], start: usize) -> Option<RecordHash> {
    let frame = buf.get_mut(start..)?;
    let total = frame.len();
    let flags = u16_at(frame, 6)? | FLAG_GROUP_END;
    frame.get_mut(6..8)?.copy_from_slice(&flags.to_le_bytes());
    let hash_at_off = total.checked_sub(4 + 32)?;
    let hash = hash_bytes(frame.get(..hash_at_off)?);
    frame.get_mut(hash_at_off..hash_at_off + 32)?.copy_from_slice(&hash.0);
    let crc_at = total.checked_sub(4)?;
    let crc = crc32c::crc32c(frame.get(..crc_at)?);
    frame.get_mut(crc_at..)?.copy_from_slice(&crc.to_le_bytes());
    Some(hash)
}

/// A decoded segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The Lsn of the segment's first record (also its file name).
    pub first_lsn: Lsn,
}

/// The header bytes of a segment whose first record is `first_lsn`.
#[must_use]
pub fn encode_segment_header(first_lsn: Lsn) -> [u8; SEGMENT_HEADER_LEN] {
    let mut out = [0u8; SEGMENT_HEADER_LEN];
    let mut v = Vec::with_capacity(SEGMENT_HEADER_LEN);
    v.extend_from_slice(&SEGMENT_MAGIC);
    v.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    v.extend_from_slice(&u16::try_from(SEGMENT_HEADER_LEN).unwrap_or(0).to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&first_lsn.0.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    let crc = crc32c::crc32c(&v);
    v.extend_from_slice(&crc.to_le_bytes());
    out.copy_from_slice(&v);
    out
}

/// Decodes a segment header.
///
/// # Errors
/// [`FrameError::Incomplete`] if fewer than [`SEGMENT_HEADER_LEN`] bytes, otherwise
/// the first check that failed.
pub fn decode_segment_header(buf: &[u8]) -> Result<SegmentHeader, FrameError> {
    let h = buf.get(..SEGMENT_HEADER_LEN).ok_or(FrameError::Incomplete)?;
    if h.get(..8) != Some(&SEGMENT_MAGIC[..]) {
        return Err(FrameError::BadMagic);
    }
    if u16_at(h, 8) != Some(FORMAT_VERSION) {
        return Err(FrameError::BadVersion);
    }
    if u16_at(h, 10).map(usize::from) != Some(SEGMENT_HEADER_LEN) {
        return Err(FrameError::BadLength);
    }
    let crc = u32_at(h, 28).ok_or(FrameError::Incomplete)?;
    if crc32c::crc32c(h.get(..28).ok_or(FrameError::Incomplete)?) != crc {
        return Err(FrameError::BadCrc);
    }
    if u32_at(h, 12) != Some(0) || u32_at(h, 24) != Some(0) {
        return Err(FrameError::Reserved);
    }
    let first_lsn = Lsn(u64_at(h, 16).ok_or(FrameError::Incomplete)?);
    Ok(SegmentHeader { first_lsn })
}

/// The file name of the segment starting at `first_lsn`: 20 decimal digits, `.seg`.
#[must_use]
pub fn segment_name(first_lsn: Lsn) -> String {
    format!("{:020}.seg", first_lsn.0)
}

/// Parses a segment file name back to its first Lsn.
#[must_use]
pub fn parse_segment_name(name: &str) -> Option<Lsn> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(Lsn)
}

/// Where scanning a segment's bytes stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanEnd {
    /// Every byte belongs to a valid frame.
    Clean,
    /// The bytes end inside a frame at `offset`.
    Incomplete {
        /// Where the incomplete frame starts.
        offset: usize,
    },
    /// The frame at `offset` is invalid.
    Bad {
        /// Where the bad frame starts.
        offset: usize,
        /// Why it is invalid.
        error: FrameError,
        /// Whether the bytes after it can only be a torn, never-synced commit group:
        /// no valid frame follows, or the only valid frames after it belong to one
        /// group (none of them but the very last closes a group).
        torn_shaped: bool,
    },
}

/// The result of scanning one segment's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentScan<'a> {
    /// The header, or why it is invalid.
    pub header: Result<SegmentHeader, FrameError>,
    /// The valid frames in order with their byte offsets (empty if the header is invalid).
    pub records: Vec<(usize, RawRecord<'a>)>,
    /// Bytes from the start that hold the header and valid frames.
    pub valid_len: usize,
    /// Where and why scanning stopped.
    pub end: ScanEnd,
}

/// Scans a whole segment: the header, then frames until the bytes end or a frame is
/// invalid. Checks each frame's CRC but not Lsn order or the hash chain (callers do).
/// Never panics, whatever the bytes; the fuzz target `wal_reader` drives it.
#[must_use]
pub fn scan_segment(bytes: &[u8]) -> SegmentScan<'_> {
    let header = decode_segment_header(bytes);
    if header.is_err() {
        let end = if bytes.len() < SEGMENT_HEADER_LEN {
            ScanEnd::Incomplete { offset: 0 }
        } else {
            // A segment's header is durable before any record is written to it, so a bad
            // header is a torn creation only if no record follows.
            ScanEnd::Bad { offset: 0, error: FrameError::BadMagic, torn_shaped: !any_valid_frame(bytes) }
        };
        return SegmentScan { header, records: Vec::new(), valid_len: 0, end };
    }
    let (records, valid_len, end) = scan_frames(bytes, SEGMENT_HEADER_LEN);
    SegmentScan { header, records, valid_len, end }
}

/// Frames found by [`scan_frames`], with their offsets.
pub type ScannedFrames<'a> = Vec<(usize, RawRecord<'a>)>;

/// Decodes frames from `bytes[start..]` until the bytes end or a frame is invalid.
/// Returns the frames with their offsets, the offset after the last valid frame, and
/// why scanning stopped. Never panics.
#[must_use]
pub fn scan_frames(bytes: &[u8], start: usize) -> (ScannedFrames<'_>, usize, ScanEnd) {
    let mut records = Vec::new();
    let mut at = start;
    let end = loop {
        let Some(rest) = bytes.get(at..) else { break ScanEnd::Clean };
        if rest.is_empty() {
            break ScanEnd::Clean;
        }
        match decode_frame(rest) {
            Ok((rec, len)) => {
                records.push((at, rec));
                at += len;
            }
            Err(FrameError::Incomplete) => break ScanEnd::Incomplete { offset: at },
            Err(error) => break ScanEnd::Bad { offset: at, error, torn_shaped: torn_shaped(bytes, at) },
        }
    };
    (records, at, end)
}

/// Whether everything after a bad frame at `bad` is consistent with one torn commit
/// group: a group is written only after the previous one is durable, so valid frames
/// of a *later* group after the damage prove the damaged group had been synced.
///
/// A bad frame whose header still reads as a group end (the damage is in its
/// payload or checksum) closed its group: any valid frame after it belongs to
/// a later group, so the damaged group had been synced and acknowledged.
fn torn_shaped(bytes: &[u8], bad: usize) -> bool {
    let flags_at = bad.saturating_add(RECORD_MAGIC.len() + 2);
    let closed_its_group = bytes.get(bad..bad + RECORD_MAGIC.len()) == Some(&RECORD_MAGIC[..])
        && bytes
            .get(flags_at..flags_at + 2)
            .and_then(|f| <[u8; 2]>::try_from(f).ok())
            .is_some_and(|f| u16::from_le_bytes(f) & FLAG_GROUP_END != 0);
    if closed_its_group && any_valid_frame(bytes.get(bad.saturating_add(1)..).unwrap_or_default()) {
        return false;
    }
    let mut group_ends_followed = false;
    let mut saw_group_end = false;
    let mut at = bad.saturating_add(1);
    while let Some(rest) = bytes.get(at..) {
        let Some(pos) = find_magic(rest) else { break };
        let start = at + pos;
        match bytes.get(start..).map(decode_frame) {
            Some(Ok((rec, len))) => {
                if saw_group_end {
                    group_ends_followed = true;
                    break;
                }
                saw_group_end = rec.is_group_end();
                at = start + len;
            }
            _ => at = start + 1,
        }
    }
    !group_ends_followed
}

fn any_valid_frame(bytes: &[u8]) -> bool {
    let mut at = 0;
    while let Some(rest) = bytes.get(at..) {
        let Some(pos) = find_magic(rest) else { return false };
        let start = at + pos;
        if bytes.get(start..).map(decode_frame).is_some_and(|r| r.is_ok()) {
            return true;
        }
        at = start + 1;
    }
    false
}

fn find_magic(hay: &[u8]) -> Option<usize> {
    hay.windows(RECORD_MAGIC.len()).position(|w| w == RECORD_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_frame(payload: &[u8], flags: u16) -> (Vec<u8>, RecordHash) {
        let mut out = Vec::new();
        let h = encode_frame(
            &mut out,
            &FrameFields {
                lsn: Lsn(7),
                kind: RecordKind(0x0101),
                flags,
                timestamp: UnixMillis(1_700_000_000_000),
                payload,
                prev_hash: RecordHash([0xAB; 32]),
            },
        );
        (out, h)
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// Pins the record format: any change to these bytes is a format change and needs
    /// a new `FORMAT_VERSION` and an update of `docs/wal-format.md`.
    #[test]
    fn golden_record_bytes() {
        let (bytes, hash) = one_frame(b"{\"a\":1}", FLAG_GROUP_END);
        assert_eq!(bytes.len(), RECORD_OVERHEAD + 7);
        let header = bytes.get(..RECORD_HEADER_LEN).map(hex);
        assert_eq!(
            header.as_deref(),
            Some(concat!(
                "4d57414c", // "MWAL"
                "0100",     // version 1
                "0200",     // flags: group end
                "6b000000", // total length 107
                "0101",     // kind 0x0101
                "0000",     // reserved
                "0700000000000000",
                "0068e5cf8b010000" // 1_700_000_000_000 ms
            ))
        );
        assert_eq!(bytes.get(32..39), Some(&b"{\"a\":1}"[..]));
        assert_eq!(bytes.get(39..71), Some(&[0xAB; 32][..]));
        assert_eq!(bytes.get(71..103), Some(&hash.0[..]));
        assert_eq!(
            hash.to_hex(),
            hash_bytes(bytes.get(..71).unwrap_or_default()).to_hex(),
            "the hash covers everything before it"
        );
        assert_eq!(
            hex(&bytes),
            concat!(
                "4d57414c010002006b000000010100000700000000000000",
                "0068e5cf8b0100007b2261223a317d",
                "abababababababababababababababababababababababababababababababab",
                "GOLDEN_HASH",
                "GOLDEN_CRC"
            )
            .replace("GOLDEN_HASH", GOLDEN_HASH)
            .replace("GOLDEN_CRC", GOLDEN_CRC)
        );
    }

    const GOLDEN_HASH: &str = "231fc626747049446e6b9dd2830e5b5902f8723243ca38b1d189c6098565e69a";
    const GOLDEN_CRC: &str = "56f0b139";

    #[test]
    fn golden_segment_header() {
        let h = encode_segment_header(Lsn(1));
        assert_eq!(
            hex(&h),
            concat!("4d414f532d57414c", "0100", "2000", "00000000", "0100000000000000", "00000000", "GOLDEN_SEG_CRC")
                .replace("GOLDEN_SEG_CRC", GOLDEN_SEG_CRC)
        );
        assert_eq!(decode_segment_header(&h), Ok(SegmentHeader { first_lsn: Lsn(1) }));
        assert_eq!(segment_name(Lsn(1)), "00000000000000000001.seg");
        assert_eq!(parse_segment_name("00000000000000000001.seg"), Some(Lsn(1)));
        assert_eq!(parse_segment_name("1.seg"), None);
        assert_eq!(parse_segment_name("0000000000000000000a.seg"), None);
    }

    const GOLDEN_SEG_CRC: &str = "d11625e8";

    #[test]
    fn round_trip_and_every_bit_flip_is_caught() -> Result<(), FrameError> {
        let (bytes, hash) = one_frame(b"payload", 0);
        let (rec, len) = decode_frame(&bytes)?;
        assert_eq!(len, bytes.len());
        assert_eq!(rec.lsn, Lsn(7));
        assert_eq!(rec.payload, b"payload");
        assert_eq!(rec.hash, hash);
        assert!(rec.hash_is_valid());
        for bit in 0..bytes.len() * 8 {
            let mut bent = bytes.clone();
            if let Some(b) = bent.get_mut(bit / 8) {
                *b ^= 1 << (bit % 8);
            }
            assert!(decode_frame(&bent).is_err(), "flip of bit {bit} not caught");
        }
        Ok(())
    }

    #[test]
    fn prefixes_are_incomplete_not_errors() {
        let (bytes, _) = one_frame(b"abc", 0);
        for cut in 0..bytes.len() {
            assert_eq!(decode_frame(bytes.get(..cut).unwrap_or_default()).err(), Some(FrameError::Incomplete));
        }
    }

    #[test]
    fn oversized_length_is_rejected_before_reading() {
        let (mut bytes, _) = one_frame(b"abc", 0);
        if let Some(b) = bytes.get_mut(8..12) {
            b.copy_from_slice(&u32::try_from(RECORD_BYTES_MAX + 1).unwrap_or(u32::MAX).to_le_bytes());
        }
        assert_eq!(decode_frame(&bytes).err(), Some(FrameError::BadLength));
    }

    #[test]
    fn group_end_marking_rehashes() {
        let (mut bytes, h0) = one_frame(b"abc", 0);
        let h1 = mark_group_end(&mut bytes, 0);
        assert!(h1.is_some_and(|h| h != h0));
        let decoded = decode_frame(&bytes).ok().map(|(r, _)| (r.is_group_end(), r.hash_is_valid(), r.hash));
        assert_eq!(decoded, Some((true, true, h1.unwrap_or_default())));
    }

    #[test]
    fn torn_group_versus_damage_to_synced_records() {
        let mut seg = encode_segment_header(Lsn(1)).to_vec();
        let mut prev = RecordHash::ZERO;
        let mut offsets = Vec::new();
        for (i, flags) in [FLAG_GROUP_END, 0, 0, FLAG_GROUP_END, 0, FLAG_GROUP_END].into_iter().enumerate() {
            offsets.push(seg.len());
            prev = encode_frame(
                &mut seg,
                &FrameFields {
                    lsn: Lsn(i as u64 + 1),
                    kind: RecordKind(0x100),
                    flags,
                    timestamp: UnixMillis(0),
                    payload: b"x",
                    prev_hash: prev,
                },
            );
        }
        let zero_at = |i: usize| {
            let mut s = seg.clone();
            let at = offsets.get(i).copied().unwrap_or(0);
            for b in s.get_mut(at..at + 8).unwrap_or_default() {
                *b = 0;
            }
            s
        };
        // Damage in the last group (records 5..6): torn-shaped.
        let s = zero_at(4);
        assert!(matches!(scan_segment(&s).end, ScanEnd::Bad { torn_shaped: true, .. }));
        // CT-WAL-08: an acknowledged one-record group whose payload is damaged,
        // followed by a complete later group (records 2..4): real damage, even
        // though the frames after it could otherwise pass for one torn group.
        let mut s = seg.clone();
        let payload_at = offsets.first().copied().unwrap_or(0) + RECORD_HEADER_LEN;
        if let Some(b) = s.get_mut(payload_at) {
            *b ^= 0xFF;
        }
        let prefix_len = offsets.get(4).copied().unwrap_or(0);
        let two_groups = s.get(..prefix_len).unwrap_or_default();
        assert!(matches!(scan_segment(two_groups).end, ScanEnd::Bad { torn_shaped: false, .. }));
        // Damage in group 2 (records 2..4) followed by group 3: real damage.
        let s = zero_at(1);
        assert!(matches!(scan_segment(&s).end, ScanEnd::Bad { torn_shaped: false, .. }));
        let clean = scan_segment(&seg);
        assert_eq!(clean.end, ScanEnd::Clean);
        assert_eq!(clean.records.len(), 6);
    }
}
