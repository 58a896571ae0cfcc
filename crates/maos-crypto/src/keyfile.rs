//! Key files. Secret files are created with mode 0600 and never overwritten;
//! reading refuses a secret file that other users could read, as ssh does.

use crate::hybrid::SEEDS_LEN;
use crate::{CryptoError, KeyId, PublicKey, SigningKey, SuiteId, VerifyingKey};
use base64::Engine as _;
use std::io::Write as _;
use std::path::Path;
use zeroize::Zeroizing;

const SECRET_HEADER: &str = "maos-secret-key v1";
const PUBLIC_HEADER: &str = "maos-public-key v1";
/// Largest key file we read: a public key file is about 2.7 KB; this bounds a read
/// of a file someone swapped for something huge.
const KEY_FILE_BYTES_MAX: u64 = 16 * 1024;

fn file_err(path: &Path, why: impl Into<String>) -> CryptoError {
    CryptoError::KeyFile { path: path.display().to_string(), why: why.into() }
}

/// Writes `contents` to a new file with mode 0600, refusing to replace an existing file.
pub(crate) fn write_private_file(path: &Path, contents: &[u8]) -> Result<(), CryptoError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            file_err(path, "already exists; refusing to overwrite a key")
        } else {
            file_err(path, e.to_string())
        }
    })?;
    file.write_all(contents).map_err(|e| file_err(path, e.to_string()))?;
    file.sync_all().map_err(|e| file_err(path, e.to_string()))?;
    Ok(())
}

/// Reads a small file, optionally refusing one readable by group or others.
pub(crate) fn read_small_file(path: &Path, private: bool) -> Result<Zeroizing<String>, CryptoError> {
    let meta = std::fs::metadata(path).map_err(|e| file_err(path, e.to_string()))?;
    if meta.len() > KEY_FILE_BYTES_MAX {
        return Err(file_err(path, "too large to be a key file"));
    }
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(file_err(path, format!("mode {mode:o} lets other users read it; run `chmod 600` on it")));
        }
    }
    let text = std::fs::read_to_string(path).map_err(|e| file_err(path, e.to_string()))?;
    Ok(Zeroizing::new(text))
}

/// Finds `name value` among the lines after the header.
fn field<'a>(text: &'a str, header: &str, name: &str, path: &Path) -> Result<&'a str, CryptoError> {
    let mut lines = text.lines().filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty());
    if lines.next().map(str::trim) != Some(header) {
        return Err(file_err(path, format!("not a `{header}` file")));
    }
    lines
        .filter_map(|l| l.trim().split_once(' '))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .ok_or_else(|| file_err(path, format!("missing `{name}` line")))
}

fn check_suite(text: &str, header: &str, path: &Path) -> Result<SuiteId, CryptoError> {
    let suite = field(text, header, "suite", path)?;
    if suite == SuiteId::MlDsa65Ed25519.name() {
        Ok(SuiteId::MlDsa65Ed25519)
    } else {
        Err(file_err(path, format!("unknown suite `{suite}`")))
    }
}

fn check_key_id(text: &str, header: &str, path: &Path, actual: KeyId) -> Result<(), CryptoError> {
    let written = field(text, header, "key-id", path)?;
    if written == actual.to_hex() {
        Ok(())
    } else {
        Err(file_err(path, "key-id line does not match the key (corrupt or edited file)"))
    }
}

/// Writes a secret key file (mode 0600, never overwriting).
///
/// # Errors
/// [`CryptoError::KeyFile`] if the file exists or cannot be written.
pub fn write_secret_key_file(path: &Path, key: &SigningKey) -> Result<(), CryptoError> {
    let seeds = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(key.seeds()));
    let text = Zeroizing::new(format!(
        "# MAOS secret key. Never share or commit this file; it must stay mode 0600.\n{SECRET_HEADER}\nsuite {}\nkey-id {}\nseeds {}\n",
        SuiteId::MlDsa65Ed25519.name(),
        key.key_id().to_hex(),
        seeds.as_str()
    ));
    write_private_file(path, text.as_bytes())
}

/// Reads a secret key file written by [`write_secret_key_file`].
///
/// # Errors
/// [`CryptoError::KeyFile`] if the file is missing, readable by others, malformed,
/// or its key id does not match its seeds.
pub fn read_secret_key_file(path: &Path) -> Result<SigningKey, CryptoError> {
    let text = read_small_file(path, true)?;
    check_suite(&text, SECRET_HEADER, path)?;
    let encoded = field(&text, SECRET_HEADER, "seeds", path)?;
    let decoded = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| file_err(path, "seeds are not base64"))?,
    );
    let seeds: Zeroizing<[u8; SEEDS_LEN]> =
        Zeroizing::new(decoded.as_slice().try_into().map_err(|_| file_err(path, "seeds have the wrong length"))?);
    let key = SigningKey::from_seeds(&seeds)?;
    check_key_id(&text, SECRET_HEADER, path, key.key_id())?;
    Ok(key)
}

/// Writes a public key file (mode 0644 is fine; it holds no secret). Refuses to overwrite.
///
/// # Errors
/// [`CryptoError::KeyFile`] if the file exists or cannot be written.
pub fn write_public_key_file(path: &Path, key: &VerifyingKey) -> Result<(), CryptoError> {
    let text = format!(
        "{PUBLIC_HEADER}\nsuite {}\nkey-id {}\nkey {}\n",
        key.suite().name(),
        key.key_id().to_hex(),
        base64::engine::general_purpose::STANDARD.encode(key.public_key().as_bytes())
    );
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    let mut file = options.open(path).map_err(|e| file_err(path, e.to_string()))?;
    file.write_all(text.as_bytes()).map_err(|e| file_err(path, e.to_string()))?;
    file.sync_all().map_err(|e| file_err(path, e.to_string()))
}

/// Reads a public key file; the auditor's entry point for offline verification.
///
/// # Errors
/// [`CryptoError::KeyFile`] if the file is missing or malformed.
pub fn read_public_key_file(path: &Path) -> Result<VerifyingKey, CryptoError> {
    let text = read_small_file(path, false)?;
    check_suite(&text, PUBLIC_HEADER, path)?;
    let encoded = field(&text, PUBLIC_HEADER, "key", path)?;
    let bytes =
        base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|_| file_err(path, "key is not base64"))?;
    let key = VerifyingKey::new(PublicKey::from_bytes(&bytes)?)?;
    check_key_id(&text, PUBLIC_HEADER, path, key.key_id())?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_key_round_trip_with_mode_0600() -> Result<(), CryptoError> {
        let dir = tempfile::tempdir().map_err(|_| CryptoError::Random)?;
        let path = dir.path().join("k.key");
        let key = SigningKey::from_seeds(&[9; SEEDS_LEN])?;
        write_secret_key_file(&path, &key)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).map_err(|_| CryptoError::Random)?.permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(read_secret_key_file(&path)?.key_id(), key.key_id());
        // Never overwrite.
        assert!(matches!(write_secret_key_file(&path, &key), Err(CryptoError::KeyFile { .. })));
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn world_readable_secret_is_refused() -> Result<(), CryptoError> {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().map_err(|_| CryptoError::Random)?;
        let path = dir.path().join("k.key");
        write_secret_key_file(&path, &SigningKey::from_seeds(&[1; SEEDS_LEN])?)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).map_err(|_| CryptoError::Random)?;
        let err = read_secret_key_file(&path).err();
        assert!(matches!(err, Some(CryptoError::KeyFile { ref why, .. }) if why.contains("chmod 600")));
        Ok(())
    }

    #[test]
    fn errors_never_contain_the_seed() -> Result<(), CryptoError> {
        let dir = tempfile::tempdir().map_err(|_| CryptoError::Random)?;
        let path = dir.path().join("k.key");
        let key = SigningKey::from_seeds(&[0x42; SEEDS_LEN])?;
        write_secret_key_file(&path, &key)?;
        let text = std::fs::read_to_string(&path).map_err(|_| CryptoError::Random)?;
        let seed_line = text.lines().find(|l| l.starts_with("seeds ")).unwrap_or_default().to_owned();
        // Corrupt the key id so reading fails, then check the message.
        let edited = text.replace("key-id ", "key-id 00");
        std::fs::remove_file(&path).map_err(|_| CryptoError::Random)?;
        write_private_file(&path, edited.as_bytes())?;
        let err = read_secret_key_file(&path).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(!err.is_empty());
        assert!(!err.contains(seed_line.trim_start_matches("seeds ")));
        Ok(())
    }

    #[test]
    fn public_key_round_trip() -> Result<(), CryptoError> {
        let dir = tempfile::tempdir().map_err(|_| CryptoError::Random)?;
        let path = dir.path().join("k.pub");
        let key = SigningKey::from_seeds(&[3; SEEDS_LEN])?;
        write_public_key_file(&path, key.verifying_key())?;
        assert_eq!(read_public_key_file(&path)?.key_id(), key.key_id());
        Ok(())
    }
}
