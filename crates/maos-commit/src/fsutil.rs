//! Durable file primitives shared by the zone and the effectors.

use std::io::Write;
use std::path::Path;

/// Syncs a directory so a rename or unlink in it is durable.
///
/// # Errors
/// The I/O error.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Writes `data` to `path` atomically: a temp file in the same directory,
/// `fsync`, rename over the target, `fsync` of the directory. A crash leaves
/// either the old or the new content, never a torn file.
///
/// # Errors
/// A message with the I/O error kind.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<(), String> {
    let dir = path.parent().ok_or("path has no parent")?;
    let name = path.file_name().and_then(|n| n.to_str()).ok_or("path has no file name")?;
    let tmp = dir.join(format!(".{name}.maos-tmp"));
    let result = (|| -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
        file.write_all(data)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("atomic write: {}", e.kind())
    })
}
