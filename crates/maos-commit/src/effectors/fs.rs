//! `fs.*`: files inside one configured root (spec §13; issue #5).
//!
//! - `fs.read`, `fs.list`: observe. `fs.write` (argument `content`),
//!   `fs.delete`: write, with a snapshot of the previous content (or "absent")
//!   held 24 h for undo.
//! - The target is the intent's single `path` resource, relative to the root or
//!   under the virtual root `/workspace/`. `..`, other absolute paths, NUL and
//!   symlinks that leave the root are refused; writes and deletes never follow a
//!   final symlink.
//! - Writes are atomic (temp file, `fsync`, rename, directory `fsync`) and
//!   idempotent by intent id: a marker per applied intent, kept in a state
//!   directory outside the root, makes a re-execution a no-op and lets `probe`
//!   answer.
//!
//! - Descriptor: the target is the argument `path` (relative, or under
//!   `/workspace/`); reads and lists observe, writes write, deletes write and
//!   require integrity; the sink level is the root's label; cost 1 per effect.
//! - Labels from the data (spec §11): every write stores the label the writing
//!   session carried (its context level and taint) in the state directory; a
//!   read returns the file's stored label joined with the root's configured
//!   label, and an untrusted one comes back as an `untrusted` output, so taint
//!   cannot be laundered through a file. A path's label only rises: it is kept
//!   across overwrites by less-labelled sessions and after a delete (so undo
//!   brings the data back with its label).
//!
//! Agents have no direct file access (CT-CL-01), so nothing swaps a checked
//! directory for a symlink between resolution and use.

use super::{state_hash, str_arg};
use crate::describe::{DescribeError, Described, workspace_path};
use crate::effector::{Compensable, EffectOutput, Effector, ExecContext, OutputLabel, Probe, Snapshot};
use crate::error::EffectError;
use crate::fsutil::{sync_dir, write_atomic};
use crate::zone::HOLD_FILE_MS;
use maos_model::{EffectClass, IfcLevel, Intent, IntentId, ReadLabel, Resource, ResourceKind};
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// Largest file `fs.read` returns or a snapshot copies: bounds memory per
/// intent and the Rollback Zone's growth per write.
pub const FS_FILE_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Entries `fs.list` returns: a directory with millions of entries cannot make
/// the kernel build a huge answer.
pub const FS_LIST_ENTRIES_MAX: usize = 4096;
/// Path components: bounds the resolution walk.
pub const FS_PATH_DEPTH_MAX: usize = 64;
/// The virtual root agents see (the DSC's `WORKSPACE_ROOT`).
pub const VIRTUAL_ROOT: &str = maos_dsc::WORKSPACE_ROOT;

const TAG_ABSENT: u8 = 0;
const TAG_FILE: u8 = 1;

/// Whether resolution may follow a final symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reads follow a final symlink if it stays inside the root.
    Read,
    /// Writes and deletes refuse a final symlink.
    Write,
}

/// The `fs` effector.
#[derive(Debug, Clone)]
pub struct FsEffector {
    root: PathBuf,
    applied_dir: PathBuf,
    labels_dir: PathBuf,
    root_label: ReadLabel,
    /// Serializes label updates: a write's and a quarantine's
    /// read-modify-write of the same label must not lose either.
    labels_lock: std::sync::Arc<std::sync::Mutex<()>>,
}

/// The label of workspace files nobody labelled: internal, trusted.
pub const ROOT_LABEL_DEFAULT: ReadLabel = ReadLabel { level: IfcLevel::Internal, untrusted: false };

impl FsEffector {
    /// An effector over `root` (created if missing), keeping its idempotency
    /// markers in `state_dir`, which must lie outside the root (an agent that
    /// could write markers could make a real write look done).
    ///
    /// # Errors
    /// [`EffectError::Io`] or [`EffectError::Invalid`].
    pub fn new(root: impl AsRef<Path>, state_dir: impl AsRef<Path>) -> Result<Self, EffectError> {
        std::fs::create_dir_all(root.as_ref()).map_err(|e| EffectError::io("creating the fs root", &e))?;
        let root = root.as_ref().canonicalize().map_err(|e| EffectError::io("resolving the fs root", &e))?;
        let applied_dir = state_dir.as_ref().join("applied");
        std::fs::create_dir_all(&applied_dir).map_err(|e| EffectError::io("creating the fs state dir", &e))?;
        let applied_dir = applied_dir.canonicalize().map_err(|e| EffectError::io("resolving the fs state dir", &e))?;
        if applied_dir.starts_with(&root) {
            return Err(EffectError::Invalid("the fs state directory must be outside the root".into()));
        }
        let labels_dir = state_dir.as_ref().join("labels");
        std::fs::create_dir_all(&labels_dir).map_err(|e| EffectError::io("creating the fs label dir", &e))?;
        let labels_dir = labels_dir.canonicalize().map_err(|e| EffectError::io("resolving the fs label dir", &e))?;
        Ok(Self { root, applied_dir, labels_dir, root_label: ROOT_LABEL_DEFAULT, labels_lock: Default::default() })
    }

    /// The same effector with `label` as the root's label (the floor of every
    /// file's label; default [`ROOT_LABEL_DEFAULT`]).
    #[must_use]
    pub const fn with_root_label(mut self, label: ReadLabel) -> Self {
        self.root_label = label;
        self
    }

    fn label_file(&self, real: &Path) -> PathBuf {
        let relative = real.strip_prefix(&self.root).unwrap_or(real);
        let key = maos_crypto::sha3_256(relative.as_os_str().as_encoded_bytes()).to_hex();
        self.labels_dir.join(key)
    }

    fn stored_label(&self, real: &Path) -> Result<Option<ReadLabel>, EffectError> {
        match std::fs::read(self.label_file(real)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|_| EffectError::Io(format!("the label of `{}` is unreadable", self.display(real)))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(EffectError::io("reading a file label", &e)),
        }
    }

    /// The label a read of `virtual_path` returns: the stored label joined with
    /// the root's. A path that does not resolve reads the root's label (the
    /// read itself then fails).
    ///
    /// # Errors
    /// [`EffectError::Io`] when a stored label cannot be read (fail closed).
    pub fn label_of(&self, virtual_path: &str) -> Result<ReadLabel, EffectError> {
        let Ok(real) = self.resolve(virtual_path, Access::Read) else { return Ok(self.root_label) };
        Ok(self.stored_label(&real)?.map_or(self.root_label, |l| l.join(self.root_label)))
    }

    /// Raises the stored label of `real` to include `carried` (durably, before
    /// the content it labels lands).
    fn raise_label(&self, real: &Path, carried: ReadLabel) -> Result<(), EffectError> {
        // A poisoned lock only means another update panicked: the label file
        // itself is replaced atomically, so going on is safe.
        let _guard = self.labels_lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let old = self.stored_label(real)?;
        let new = old.map_or(carried, |o| o.join(carried));
        if old == Some(new) {
            return Ok(());
        }
        let bytes = serde_json::to_vec(&new).map_err(|e| EffectError::Io(e.to_string()))?;
        write_atomic(&self.label_file(real), &bytes).map_err(EffectError::Io)
    }

    /// The canonical root.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn target(intent: &Intent) -> Result<&str, EffectError> {
        let mut paths = intent.resources.iter().filter(|r| r.kind == ResourceKind::Path);
        match (paths.next(), paths.next()) {
            (Some(p), None) => Ok(&p.value),
            (None, _) => Err(EffectError::Invalid("fs actions need one `path` resource".into())),
            (Some(_), Some(_)) => Err(EffectError::Invalid("fs actions take exactly one `path` resource".into())),
        }
    }

    /// Resolves an agent-supplied path to a real path inside the root.
    ///
    /// # Errors
    /// [`EffectError::PathEscape`] for `..`, NUL, absolute paths outside the
    /// virtual root and symlinks leaving the root; [`EffectError::Symlink`] for
    /// a final symlink under [`Access::Write`]; [`EffectError::NotFound`] for a
    /// missing parent when reading.
    pub fn resolve(&self, raw: &str, access: Access) -> Result<PathBuf, EffectError> {
        let escape = || EffectError::PathEscape(raw.chars().take(200).collect());
        if raw.contains('\0') || raw.chars().any(char::is_control) {
            return Err(escape());
        }
        let relative = if raw.starts_with('/') {
            let bare = VIRTUAL_ROOT.trim_end_matches('/');
            if raw == bare { "" } else { raw.strip_prefix(VIRTUAL_ROOT).ok_or_else(escape)? }
        } else {
            raw
        };
        let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
        for component in Path::new(relative).components() {
            match component {
                Component::Normal(c) => parts.push(c),
                Component::CurDir => {}
                Component::ParentDir | Component::RootDir | Component::Prefix(_) => return Err(escape()),
            }
        }
        if parts.len() > FS_PATH_DEPTH_MAX {
            return Err(escape());
        }
        let Some((last, parents)) = parts.split_last() else {
            return match access {
                Access::Read => Ok(self.root.clone()),
                Access::Write => Err(EffectError::Invalid("cannot write the root itself".into())),
            };
        };
        let mut current = self.root.clone();
        let mut missing = false;
        for part in parents {
            let next = current.join(part);
            if missing {
                current = next;
                continue;
            }
            match std::fs::symlink_metadata(&next) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    let real = next.canonicalize().map_err(|_| escape())?;
                    if !real.starts_with(&self.root) {
                        return Err(escape());
                    }
                    if !real.is_dir() {
                        return Err(EffectError::Invalid("a path component is not a directory".into()));
                    }
                    current = real;
                }
                Ok(meta) if meta.is_dir() => current = next,
                Ok(_) => return Err(EffectError::Invalid("a path component is not a directory".into())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => match access {
                    Access::Read => return Err(EffectError::NotFound(raw.chars().take(200).collect())),
                    Access::Write => {
                        missing = true;
                        current = next;
                    }
                },
                Err(e) => return Err(EffectError::io("resolving a path", &e)),
            }
        }
        let target = current.join(last);
        if let (false, Ok(meta)) = (missing, std::fs::symlink_metadata(&target))
            && meta.file_type().is_symlink()
        {
            return match access {
                Access::Write => Err(EffectError::Symlink(raw.chars().take(200).collect())),
                Access::Read => {
                    let real = target.canonicalize().map_err(|_| escape())?;
                    if real.starts_with(&self.root) { Ok(real) } else { Err(escape()) }
                }
            };
        }
        // INVARIANT: every returned path is the canonical root joined with
        // normal components whose existing prefixes were checked to stay inside.
        if !target.starts_with(&self.root) {
            return Err(escape());
        }
        Ok(target)
    }

    fn marker(&self, key: IntentId) -> PathBuf {
        self.applied_dir.join(key.to_string())
    }

    fn applied(&self, key: IntentId) -> bool {
        self.marker(key).exists()
    }

    fn mark_applied(&self, key: IntentId, summary: &str) -> Result<(), EffectError> {
        write_atomic(&self.marker(key), summary.as_bytes()).map_err(EffectError::Io)
    }

    fn display(&self, path: &Path) -> String {
        path.strip_prefix(&self.root).map_or_else(|_| String::from("?"), |p| p.display().to_string())
    }

    /// Reads a regular file of at most [`FS_FILE_BYTES_MAX`] bytes. The open
    /// never blocks (`O_NONBLOCK`: opening a fifo for reading would wait for
    /// a writer) and the opened file itself is checked, so a fifo, device or
    /// socket swapped in after resolution is refused too.
    fn read_bounded(path: &Path) -> Result<Vec<u8>, EffectError> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .map_err(|e| EffectError::io("opening a file", &e))?;
        let meta = file.metadata().map_err(|e| EffectError::io("inspecting a file", &e))?;
        if !meta.is_file() {
            let name = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            return Err(EffectError::NotRegular(name.chars().take(200).collect()));
        }
        let mut bytes = Vec::new();
        let limit = u64::try_from(FS_FILE_BYTES_MAX).unwrap_or(u64::MAX).saturating_add(1);
        file.take(limit).read_to_end(&mut bytes).map_err(|e| EffectError::io("reading a file", &e))?;
        if bytes.len() > FS_FILE_BYTES_MAX {
            return Err(EffectError::TooLarge { what: "file", max: FS_FILE_BYTES_MAX });
        }
        Ok(bytes)
    }

    fn content(intent: &Intent) -> Result<&[u8], EffectError> {
        let content = str_arg(intent, "content")?.as_bytes();
        if content.len() > FS_FILE_BYTES_MAX {
            return Err(EffectError::TooLarge { what: "content", max: FS_FILE_BYTES_MAX });
        }
        Ok(content)
    }

    fn write(&self, intent: &Intent, key: IntentId, ctx: &ExecContext) -> Result<EffectOutput, EffectError> {
        let path = self.resolve(Self::target(intent)?, Access::Write)?;
        let content = Self::content(intent)?;
        let summary = format!("wrote {} bytes to `{}`", content.len(), self.display(&path));
        if self.applied(key) {
            return Ok(EffectOutput::empty(OutputLabel::Trusted, summary));
        }
        if path.is_dir() {
            return Err(EffectError::Invalid("the target is a directory".into()));
        }
        let parent = path.parent().ok_or_else(|| EffectError::Invalid("no parent directory".into()))?;
        std::fs::create_dir_all(parent).map_err(|e| EffectError::io("creating parent directories", &e))?;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
        let tmp = parent.join(format!(".{name}.{key}.maos-tmp"));
        let staged = (|| -> std::io::Result<()> {
            let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
            std::io::Write::write_all(&mut file, content)?;
            file.sync_all()
        })();
        if let Err(e) = staged {
            let _ = std::fs::remove_file(&tmp);
            return Err(EffectError::io("writing a temp file", &e));
        }
        // The last point at which a timed-out execution can still stop cleanly.
        if let Err(e) = ctx.checkpoint() {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        let carried = intent.reads.iter().fold(ReadLabel::BOTTOM, |a, r| a.join(*r));
        if let Err(e) = self.raise_label(&path, carried) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, &path).map_err(|e| EffectError::io("renaming into place", &e))?;
        sync_dir(parent).map_err(|e| EffectError::io("syncing a directory", &e))?;
        self.mark_applied(key, &summary)?;
        Ok(EffectOutput::empty(OutputLabel::Trusted, summary))
    }

    fn delete(&self, intent: &Intent, key: IntentId, ctx: &ExecContext) -> Result<EffectOutput, EffectError> {
        let path = self.resolve(Self::target(intent)?, Access::Write)?;
        let summary = format!("deleted `{}`", self.display(&path));
        if self.applied(key) {
            return Ok(EffectOutput::empty(OutputLabel::Trusted, summary));
        }
        let meta = std::fs::symlink_metadata(&path).map_err(|_| EffectError::NotFound(self.display(&path)))?;
        if !meta.is_file() {
            return Err(EffectError::Invalid("fs.delete removes regular files only".into()));
        }
        ctx.checkpoint()?;
        std::fs::remove_file(&path).map_err(|e| EffectError::io("deleting a file", &e))?;
        if let Some(parent) = path.parent() {
            sync_dir(parent).map_err(|e| EffectError::io("syncing a directory", &e))?;
        }
        self.mark_applied(key, &summary)?;
        Ok(EffectOutput::empty(OutputLabel::Trusted, summary))
    }

    fn read(&self, intent: &Intent) -> Result<EffectOutput, EffectError> {
        let path = self.resolve(Self::target(intent)?, Access::Read)?;
        if path.is_dir() {
            return Err(EffectError::Invalid("the target is a directory; use fs.list".into()));
        }
        let body = Self::read_bounded(&path).map_err(|e| match e {
            EffectError::Io(_) if !path.exists() => EffectError::NotFound(self.display(&path)),
            other => other,
        })?;
        if body.len() > crate::effector::OUTPUT_BYTES_MAX {
            return Err(EffectError::TooLarge { what: "file read", max: crate::effector::OUTPUT_BYTES_MAX });
        }
        let summary = format!("read {} bytes from `{}`", body.len(), self.display(&path));
        let untrusted = self.root_label.untrusted || self.stored_label(&path)?.is_some_and(|l| l.untrusted);
        let label = if untrusted { OutputLabel::Untrusted } else { OutputLabel::Trusted };
        Ok(EffectOutput { body, label, summary })
    }

    fn list(&self, intent: &Intent) -> Result<EffectOutput, EffectError> {
        let path = self.resolve(Self::target(intent)?, Access::Read)?;
        let listing = std::fs::read_dir(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => EffectError::NotFound(self.display(&path)),
            _ => EffectError::io("listing a directory", &e),
        })?;
        let mut names = Vec::new();
        for entry in listing {
            let entry = entry.map_err(|e| EffectError::io("listing a directory", &e))?;
            if names.len() >= FS_LIST_ENTRIES_MAX {
                return Err(EffectError::TooLarge { what: "directory listing", max: FS_LIST_ENTRIES_MAX });
            }
            let mut name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                name.push('/');
            }
            names.push(name);
        }
        names.sort();
        let summary = format!("listed {} entries in `{}`", names.len(), self.display(&path));
        // File names are chosen by whoever wrote the files: as trusted as the root.
        let label = if self.root_label.untrusted { OutputLabel::Untrusted } else { OutputLabel::Trusted };
        Ok(EffectOutput { body: names.join("\n").into_bytes(), label, summary })
    }

    fn current_state(path: &Path) -> Result<Option<Vec<u8>>, EffectError> {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.is_file() => Self::read_bounded(path).map(Some),
            Ok(meta) if meta.is_dir() => Err(EffectError::Invalid("the target is a directory".into())),
            Ok(meta) if meta.file_type().is_symlink() => Err(EffectError::Symlink(String::from("target"))),
            Ok(_) => Err(EffectError::NotRegular(String::from("target"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(EffectError::io("reading the target", &e)),
        }
    }
}

/// The `fs` actions: their effect class and whether they require integrity.
fn fs_action(action: &str) -> Option<(EffectClass, bool)> {
    match action {
        "fs.read" | "fs.list" => Some((EffectClass::Observe, false)),
        "fs.write" => Some((EffectClass::Write, false)),
        // A deletion is one of design.md's integrity-requiring effects.
        "fs.delete" => Some((EffectClass::Write, true)),
        _ => None,
    }
}

impl Effector for FsEffector {
    /// Marks the paths `resources` name untrusted, whether or not a file is
    /// there yet (labels are kept by path: a write still in flight lands
    /// under the mark, and a deleted file comes back with it): a later read
    /// returns them as untrusted output. A path that does not resolve inside
    /// the root (an escape, a final symlink) is a failure, listed.
    fn quarantine(&self, resources: &[maos_model::Resource]) -> crate::Quarantined {
        let untrusted = ReadLabel { level: maos_model::IfcLevel::Public, untrusted: true };
        let mut done = crate::Quarantined::default();
        for r in resources.iter().filter(|r| r.kind == maos_model::ResourceKind::Path) {
            match self.resolve(&r.value, Access::Write).and_then(|real| self.raise_label(&real, untrusted)) {
                Ok(()) => done.marked = done.marked.saturating_add(1),
                Err(e) => done.fail(format!("{}: {e}", maos_model::prefix_within(&r.value, 200))),
            }
        }
        done
    }

    fn namespace(&self) -> &'static str {
        "fs"
    }

    fn describe(&self, intent: &Intent) -> Result<Described, DescribeError> {
        let (effect, requires_integrity) =
            fs_action(&intent.action).ok_or_else(|| DescribeError::UnknownAction(intent.action.clone()))?;
        let raw = crate::describe::str_arg(intent, "path")?;
        let path = workspace_path("path", raw)?;
        let reads = if effect.is_effect() {
            Vec::new()
        } else {
            vec![self.label_of(&path).map_err(|_| DescribeError::Label(path.clone()))?]
        };
        Ok(Described {
            effect,
            resources: vec![Resource { kind: ResourceKind::Path, value: path }],
            sink_level: self.root_label.level,
            reads,
            cost: Described::default_cost(effect),
            requires_integrity,
            sensitive_args: Vec::new(),
            provenance_deny: false,
        })
    }

    fn effect_class(&self, intent: &Intent) -> EffectClass {
        // Anything unknown is a write (CT-CL-10).
        fs_action(&intent.action).map_or(EffectClass::Write, |(class, _)| class)
    }

    fn resource_keys(&self, intent: &Intent) -> Result<Vec<String>, EffectError> {
        let path = self.resolve(Self::target(intent)?, Access::Write)?;
        Ok(vec![format!("fs:{}", path.display())])
    }

    fn world_state(&self, intent: &Intent) -> Result<[u8; 32], EffectError> {
        let path = self.resolve(Self::target(intent)?, Access::Write)?;
        Ok(match Self::current_state(&path)? {
            None => state_hash(&[b"fs", b"absent"]),
            Some(bytes) => state_hash(&[b"fs", b"file", &bytes]),
        })
    }

    fn snapshot(&self, intent: &Intent) -> Result<Snapshot, EffectError> {
        let path = self.resolve(Self::target(intent)?, Access::Write)?;
        let bytes = match Self::current_state(&path)? {
            None => vec![TAG_ABSENT],
            Some(content) => {
                let mut bytes = Vec::with_capacity(content.len().saturating_add(1));
                bytes.push(TAG_FILE);
                bytes.extend_from_slice(&content);
                bytes
            }
        };
        Ok(Snapshot { hold_ms: HOLD_FILE_MS, compensable: Compensable::Yes, bytes })
    }

    fn execute(&self, intent: &Intent, key: IntentId, ctx: &ExecContext) -> Result<EffectOutput, EffectError> {
        match intent.action.as_str() {
            "fs.read" => self.read(intent),
            "fs.list" => self.list(intent),
            "fs.write" => self.write(intent, key, ctx),
            "fs.delete" => self.delete(intent, key, ctx),
            other => Err(EffectError::UnknownAction(other.to_owned())),
        }
    }

    fn probe(&self, intent: &Intent) -> Result<Probe, EffectError> {
        let path = self.resolve(Self::target(intent)?, Access::Write)?;
        let done = |summary: String| Probe::Done(EffectOutput::empty(OutputLabel::Trusted, summary));
        if self.applied(intent.id) {
            return Ok(done(format!("`{}` (already applied)", self.display(&path))));
        }
        match intent.action.as_str() {
            "fs.write" => {
                // A crash between the rename and the marker leaves the new
                // content in place without a marker.
                let content = Self::content(intent)?;
                match Self::current_state(&path)? {
                    Some(current) if current == content => Ok(done(format!("wrote `{}`", self.display(&path)))),
                    _ => Ok(Probe::NotDone),
                }
            }
            "fs.delete" => match Self::current_state(&path)? {
                None => Ok(done(format!("deleted `{}`", self.display(&path)))),
                Some(_) => Ok(Probe::NotDone),
            },
            "fs.read" | "fs.list" => Ok(Probe::NotDone),
            _ => Ok(Probe::Unknown),
        }
    }

    fn compensate(&self, intent: &Intent, snapshot: &Snapshot) -> Result<(), EffectError> {
        let path = self.resolve(Self::target(intent)?, Access::Write)?;
        match snapshot.bytes.split_first() {
            Some((&TAG_ABSENT, [])) => match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_file() => {
                    std::fs::remove_file(&path).map_err(|e| EffectError::io("removing a file", &e))?;
                    if let Some(parent) = path.parent() {
                        sync_dir(parent).map_err(|e| EffectError::io("syncing a directory", &e))?;
                    }
                    Ok(())
                }
                Ok(_) => Err(EffectError::Invalid("the target is no longer a regular file".into())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(EffectError::io("inspecting the target", &e)),
            },
            Some((&TAG_FILE, content)) => {
                let parent = path.parent().ok_or_else(|| EffectError::Invalid("no parent directory".into()))?;
                std::fs::create_dir_all(parent).map_err(|e| EffectError::io("creating parent directories", &e))?;
                write_atomic(&path, content).map_err(EffectError::Io)
            }
            _ => Err(EffectError::Invalid("unrecognised fs snapshot".into())),
        }
    }
}
