//! The data directory: configuration, keys and logs, laid out as
//! ```text
//! <data-dir>/maos.toml            commented configuration (profile, ...)
//! <data-dir>/keys/kernel.key      kernel signing key (0600): signs tokens, checkpoints
//! <data-dir>/keys/kernel.pub      its public key: what auditors and verifiers need
//! <data-dir>/keys/commander.key   the human operator's key (0600), kept apart from the kernel's
//! <data-dir>/keys/commander.pub
//! <data-dir>/ledger/              the security event log
//! ```

use crate::output::coded;
use anyhow::Context as _;
use maos_crypto::{SigningKey, VerifyingKey};
use maos_model::UnixMillis;
use std::path::{Path, PathBuf};

/// Paths inside one data directory.
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: &Path) -> Self {
        Self { root: root.to_path_buf() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn config(&self) -> PathBuf {
        self.root.join("maos.toml")
    }

    pub fn keys(&self) -> PathBuf {
        self.root.join("keys")
    }

    pub fn kernel_key(&self) -> PathBuf {
        self.keys().join("kernel.key")
    }

    pub fn kernel_pub(&self) -> PathBuf {
        self.keys().join("kernel.pub")
    }

    pub fn commander_key(&self) -> PathBuf {
        self.keys().join("commander.key")
    }

    pub fn commander_pub(&self) -> PathBuf {
        self.keys().join("commander.pub")
    }

    pub fn ledger(&self) -> PathBuf {
        self.root.join("ledger")
    }

    /// Fails with a helpful message unless `maos init` has run here.
    pub fn require_initialized(&self) -> anyhow::Result<()> {
        if self.kernel_pub().exists() {
            Ok(())
        } else {
            Err(coded(
                "MAOS-NOT-INITIALIZED",
                format!(
                    "no MAOS data directory at `{}`; run `maos init` first (or pass --data-dir)",
                    self.root.display()
                ),
                1,
            ))
        }
    }

    pub fn kernel_signing_key(&self) -> anyhow::Result<SigningKey> {
        self.require_initialized()?;
        Ok(maos_crypto::read_secret_key_file(&self.kernel_key())?)
    }

    pub fn kernel_verifying_key(&self) -> anyhow::Result<VerifyingKey> {
        self.require_initialized()?;
        Ok(maos_crypto::read_public_key_file(&self.kernel_pub())?)
    }
}

/// Creates `dir` (and parents) with mode 0700: keys and logs are for the operator only.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir).with_context(|| format!("creating `{}`", dir.display()))
}

/// Wall-clock now. Only the binary reads the clock; libraries take time as input.
pub fn now() -> UnixMillis {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    UnixMillis(ms)
}

/// Ten random bytes for a UUIDv7.
pub fn random10() -> anyhow::Result<[u8; 10]> {
    Ok(maos_crypto::random_bytes::<10>()?)
}
