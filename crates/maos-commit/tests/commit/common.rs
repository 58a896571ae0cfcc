//! Shared fixtures: a WAL in a temp dir, allow decisions, intents, a layer.

use maos_commit::effectors::fs::FsEffector;
use maos_commit::effectors::mail::MailEffector;
use maos_commit::records::CommitRecord;
use maos_commit::{Authorized, CommitConfig, CommitLayer, Effector, Effectors, Fault, FaultHook, Stage};
use maos_dsc::{CheckId, CheckResult, Decision, DeltaOp, Outcome, StateDelta, Vote};
use maos_model::{
    AgentId, ArgValue, EffectClass, IfcLevel, Intent, IntentId, Profile, Resource, ResourceKind, TokenId, UnixMillis,
    Verdict,
};
use maos_wal::{Wal, WalConfig};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const T0: UnixMillis = UnixMillis(1_795_296_251_000);
pub const MINUTE_MS: u64 = 60_000;
pub const HOUR_MS: u64 = 60 * MINUTE_MS;

static NEXT: AtomicU64 = AtomicU64::new(1);

pub fn new_id() -> IntentId {
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&n.to_be_bytes());
    IntentId::new_v7(T0.0, random)
}

pub fn intent(action: &str, effect: EffectClass, resources: &[(ResourceKind, &str)], args: &[(&str, &str)]) -> Intent {
    Intent {
        id: new_id(),
        agent: AgentId::new("tester").unwrap(),
        action: action.to_owned(),
        resources: resources.iter().map(|(kind, value)| Resource { kind: *kind, value: (*value).to_owned() }).collect(),
        args: args.iter().map(|(k, v)| ((*k).to_owned(), ArgValue::Str((*v).to_owned()))).collect::<BTreeMap<_, _>>(),
        effect,
        cost: 1,
        sink_level: IfcLevel::Internal,
        requires_integrity: false,
        reads: Vec::new(),
        sensitive_args: Vec::new(),
        provenance_deny: false,
        world_state_hash: None,
    }
}

pub fn fs_write(path: &str, content: &str) -> Intent {
    intent("fs.write", EffectClass::Write, &[(ResourceKind::Path, path)], &[("content", content)])
}

pub fn fs_delete(path: &str) -> Intent {
    intent("fs.delete", EffectClass::Write, &[(ResourceKind::Path, path)], &[])
}

pub fn fs_read(path: &str) -> Intent {
    intent("fs.read", EffectClass::Observe, &[(ResourceKind::Path, path)], &[])
}

pub fn mail_send(to: &str, subject: &str, body: &str) -> Intent {
    intent(
        "mail.send",
        EffectClass::Write,
        &[(ResourceKind::Recipient, to)],
        &[("to", to), ("subject", subject), ("body", body)],
    )
}

/// An Allow decision as the DSC makes it for `intent`.
pub fn allow(intent: &Intent) -> Decision {
    Decision::for_tests(
        Verdict::Allow,
        CheckId::ALL.map(|check| CheckResult { check, outcome: Outcome::Pass }),
        StateDelta {
            ops: vec![DeltaOp::Charge {
                agent: intent.agent.clone(),
                token: TokenId::new_v7(T0.0, [9; 10]),
                token_tat_us: 0,
                agent_tat_us: 0,
                cost: intent.cost,
                egress: None,
            }],
        },
        [7; 32],
        vec![Vote { instance: "alpha", verdict: Verdict::Allow }],
    )
}

pub fn open_wal(dir: &Path) -> Arc<Wal> {
    Arc::new(Wal::open(WalConfig::new(Profile::Standard, dir)).unwrap().0)
}

/// A test world: workspace root, fs state, maildir, WAL and rollback zone in one temp dir.
pub struct World {
    pub dir: tempfile::TempDir,
    pub fs: Arc<FsEffector>,
    pub mail: Arc<MailEffector>,
}

impl World {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let fs = Arc::new(FsEffector::new(dir.path().join("root"), dir.path().join("state/fs")).unwrap());
        let mail = Arc::new(MailEffector::new(dir.path().join("mail"), "assistant@example.com").unwrap());
        Self { dir, fs, mail }
    }

    pub fn root(&self) -> PathBuf {
        self.fs.root().to_path_buf()
    }

    pub fn file(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.root().join(rel)).ok()
    }

    pub fn put(&self, rel: &str, content: &str) {
        let path = self.root().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    pub fn maildir_count(&self, dir: &str) -> usize {
        std::fs::read_dir(self.mail.root().join(dir)).unwrap().count()
    }

    pub fn effectors(&self, extra: &[Arc<dyn Effector>]) -> Effectors {
        let mut e = Effectors::new().with(self.fs.clone()).unwrap().with(self.mail.clone()).unwrap();
        for x in extra {
            e.insert(x.clone()).unwrap();
        }
        e
    }

    pub fn config(&self) -> CommitConfig {
        let mut c = CommitConfig::new(self.dir.path().join("rollback"));
        c.lock_wait = Duration::from_millis(500);
        c
    }

    pub fn wal(&self) -> Arc<Wal> {
        open_wal(&self.dir.path().join("wal"))
    }

    pub fn layer(&self) -> CommitLayer {
        CommitLayer::open(self.wal(), self.effectors(&[]), self.config()).unwrap()
    }
}

/// Authorize, log and commit in one go.
pub fn run(
    layer: &CommitLayer,
    intent: Intent,
    now: UnixMillis,
) -> Result<maos_commit::Committed, maos_commit::CommitError> {
    let decision = allow(&intent);
    let logged = layer.log_intent(Authorized::new(intent, &decision).unwrap())?;
    layer.commit(logged, now)
}

/// Every commit record in the WAL, in order.
pub fn records(wal: &Wal) -> Vec<CommitRecord> {
    wal.reader()
        .records()
        .unwrap()
        .map(|r| r.unwrap())
        .filter_map(|r| CommitRecord::decode(r.kind, &r.payload))
        .map(|r| r.unwrap())
        .collect()
}

/// Record kinds for one intent: "intent", "executing", "result", "failed", "undone".
pub fn trail(wal: &Wal, id: IntentId) -> Vec<&'static str> {
    records(wal)
        .into_iter()
        .filter(|r| r.intent_id() == id)
        .map(|r| match r {
            CommitRecord::Intent(_) => "intent",
            CommitRecord::Executing(_) => "executing",
            CommitRecord::Result(_) => "result",
            CommitRecord::Failed(_) => "failed",
            CommitRecord::Undone(_) => "undone",
            CommitRecord::Released(_) => "released",
            CommitRecord::Releasing(_) => "releasing",
        })
        .collect()
}

/// Injects `fault` before one stage of every intent (or runs `hook` instead).
pub struct FaultAt {
    pub stage: Stage,
    pub fault: Fault,
    pub hook: Mutex<Option<Box<dyn Fn() + Send>>>,
}

impl FaultAt {
    pub fn new(stage: Stage, fault: Fault) -> Arc<Self> {
        Arc::new(Self { stage, fault, hook: Mutex::new(None) })
    }
}

impl std::fmt::Debug for FaultAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FaultAt({:?}, {:?})", self.stage, self.fault)
    }
}

impl FaultHook for FaultAt {
    fn before(&self, stage: Stage, _intent: &Intent) -> Option<Fault> {
        if stage != self.stage {
            return None;
        }
        if let Some(hook) = self.hook.lock().unwrap().as_ref() {
            hook();
            return None;
        }
        Some(self.fault)
    }
}
