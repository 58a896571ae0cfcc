//! Fixtures: fixed keys, a temp-dir world (real WAL on disk, fs and mail
//! effectors), token minting, intents and per-lifetime runtimes.

use maos_commit::effectors::fs::FsEffector;
use maos_commit::effectors::mail::MailEffector;
use maos_commit::{
    CommitConfig, CommitLayer, DescribeError, Described, EffectError, EffectOutput, Effector, Effectors, ExecContext,
    FaultHook, Probe, Snapshot,
};
use maos_crypto::SigningKey;
use maos_dsc::DscConfig;
use maos_kernel::{Kernel, KernelConfig, KernelHandle, Reply, StartReport};
use maos_model::{
    AgentId, ArgValue, EffectClass, IfcLevel, Intent, IntentId, Profile, ReadLabel, Resource, ResourceKind, Ring,
    TrustClass, UnixMillis,
};
use maos_token::{KeyRing, MintRequest, parse_permission};
use maos_wal::{ManualClock, Wal, WalConfig};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub const NOW: UnixMillis = UnixMillis(1_767_225_600_000); // 2026-01-01T00:00:00Z

pub fn issuer() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::from_seeds(&[0x5A; 64]).unwrap())
}

pub fn commander() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::from_seeds(&[0xC0; 64]).unwrap())
}

pub fn impostor() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::from_seeds(&[0x66; 64]).unwrap())
}

pub fn dsc() -> Arc<DscConfig> {
    DscConfig::default_for(Profile::Standard).unwrap()
}

pub fn keys() -> KeyRing {
    KeyRing::with(issuer().verifying_key().clone())
}

/// Test tokens are for ring 3 (agents nobody registered are ring 3, Rule 4)
/// with the hour a ring-2 token lives by default, so timelines of up to an
/// hour need no re-issue (four times ring 3's 15-minute default: no
/// commander acknowledgement needed).
pub const RING3_TEST_TTL_MS: u64 = 60 * 60 * 1000;

/// A token for `writer` on the workspace with `budget` units.
pub fn token(budget: u64) -> String {
    let req = MintRequest {
        agent: AgentId::new("writer").unwrap(),
        ring: Ring::Untrusted,
        trust_class: TrustClass::Transparent,
        clearance: IfcLevel::Internal,
        permissions: [
            "fs.write=/workspace/**",
            "fs.read=/workspace/**",
            "feed.get=news",
            "outbox.write=path:/workspace/**",
        ]
        .iter()
        .map(|p| parse_permission(p).unwrap())
        .collect(),
        ttl_ms: Some(RING3_TEST_TTL_MS),
        rate_per_hour: 3600,
        max_ops: 1000,
        budget,
        mission: Some("Maintain the workspace notes.".into()),
        commander_ack: false,
    };
    maos_token::mint(issuer(), req, NOW, 0, [1; 10]).unwrap().text().to_owned()
}

static NEXT: AtomicU64 = AtomicU64::new(1);

pub fn new_id() -> IntentId {
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&n.to_be_bytes());
    IntentId::new_v7(NOW.0, random)
}

/// The role argument a resource kind is derived from (the kernel derives
/// resources from arguments; the declared `resources` are overwritten).
pub fn role_arg(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::Path => "path",
        ResourceKind::Recipient => "to",
        ResourceKind::Domain => "url",
        ResourceKind::Resource => "key",
    }
}

pub fn intent(action: &str, effect: EffectClass, kind: ResourceKind, value: &str) -> Intent {
    let mut args = BTreeMap::new();
    args.insert(role_arg(kind).to_owned(), ArgValue::Str(value.into()));
    Intent {
        id: new_id(),
        agent: AgentId::new("writer").unwrap(),
        action: action.into(),
        resources: vec![Resource { kind, value: value.into() }],
        args,
        effect,
        cost: 1,
        sink_level: IfcLevel::Internal,
        requires_integrity: false,
        reads: vec![],
        sensitive_args: vec![],
        provenance_deny: false,
        world_state_hash: None,
    }
}

pub fn fs_write(name: &str, content: &str) -> Intent {
    let mut i = intent("fs.write", EffectClass::Write, ResourceKind::Path, &format!("/workspace/{name}"));
    i.args.insert("content".into(), ArgValue::Str(content.into()));
    i
}

/// `mail.send` to `to` with a fixed subject and body.
pub fn mail(to: &str) -> Intent {
    let mut i = intent("mail.send", EffectClass::Write, ResourceKind::Recipient, to);
    i.args.insert("subject".into(), maos_model::ArgValue::Str("figures".into()));
    i.args.insert("body".into(), maos_model::ArgValue::Str("Q3: 42".into()));
    i
}

pub fn fs_read(name: &str) -> Intent {
    intent("fs.read", EffectClass::Observe, ResourceKind::Path, &format!("/workspace/{name}"))
}

/// A write of internal data to a public sink: Standard escalates it (declassification, HACF L2).
pub fn declassify(name: &str) -> Intent {
    let mut i = fs_write(name, "quarterly figures");
    i.action = "outbox.write".into();
    i
}

/// `outbox.write`: an `fs.write` whose descriptor says it publishes internal
/// data (sink public, carries internal), so Standard escalates every call to a
/// declassification approval. The write itself is the real fs effector's.
#[derive(Debug)]
pub struct Outbox(pub Arc<FsEffector>);

fn as_fs(intent: &Intent) -> Intent {
    let mut i = intent.clone();
    i.action = "fs.write".into();
    i
}

impl Effector for Outbox {
    fn namespace(&self) -> &'static str {
        "outbox"
    }
    fn describe(&self, intent: &Intent) -> Result<Described, DescribeError> {
        if intent.action != "outbox.write" {
            return Err(DescribeError::UnknownAction(intent.action.clone()));
        }
        let mut d = self.0.describe(&as_fs(intent))?;
        d.sink_level = IfcLevel::Public;
        d.reads = vec![ReadLabel { level: IfcLevel::Internal, untrusted: false }];
        Ok(d)
    }
    fn effect_class(&self, _intent: &Intent) -> EffectClass {
        EffectClass::Write
    }
    fn resource_keys(&self, intent: &Intent) -> Result<Vec<String>, EffectError> {
        self.0.resource_keys(&as_fs(intent))
    }
    fn world_state(&self, intent: &Intent) -> Result<[u8; 32], EffectError> {
        self.0.world_state(&as_fs(intent))
    }
    fn snapshot(&self, intent: &Intent) -> Result<Snapshot, EffectError> {
        self.0.snapshot(&as_fs(intent))
    }
    fn execute(&self, intent: &Intent, key: IntentId, ctx: &ExecContext) -> Result<EffectOutput, EffectError> {
        self.0.execute(&as_fs(intent), key, ctx)
    }
    fn probe(&self, intent: &Intent) -> Result<Probe, EffectError> {
        self.0.probe(&as_fs(intent))
    }
    fn compensate(&self, intent: &Intent, snapshot: &Snapshot) -> Result<(), EffectError> {
        self.0.compensate(&as_fs(intent), snapshot)
    }
}

/// A workspace, effectors state, maildir, WAL and rollback zone in one temp dir.
pub struct World {
    pub dir: tempfile::TempDir,
    pub clock: Arc<ManualClock>,
}

impl World {
    pub fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap(), clock: Arc::new(ManualClock::new(NOW)) }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn file(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.root().join(name)).ok()
    }

    pub fn put(&self, name: &str, content: &str) {
        std::fs::create_dir_all(self.root()).unwrap();
        std::fs::write(self.root().join(name), content).unwrap();
    }

    pub fn wal_config(&self) -> WalConfig {
        WalConfig::new(Profile::Standard, self.dir.path().join("wal")).clock(self.clock.clone())
    }

    pub fn effectors(&self, extra: &[Arc<dyn Effector>]) -> Effectors {
        let fs = Arc::new(FsEffector::new(self.root(), self.dir.path().join("state/fs")).unwrap());
        let mail = Arc::new(MailEffector::new(self.dir.path().join("mail"), "writer@example.com").unwrap());
        let outbox = Arc::new(Outbox(fs.clone()));
        let mut e = Effectors::new().with(fs).unwrap().with(mail).unwrap().with(outbox).unwrap();
        for x in extra {
            e.insert(x.clone()).unwrap();
        }
        e
    }

    pub fn layer_on(
        &self,
        wal: Wal,
        extra: &[Arc<dyn Effector>],
        hook: Option<Arc<dyn FaultHook>>,
    ) -> Arc<CommitLayer> {
        let mut config = CommitConfig::new(self.dir.path().join("rollback"));
        config.lock_wait = Duration::from_millis(500);
        let layer = CommitLayer::open(Arc::new(wal), self.effectors(extra), config).unwrap();
        Arc::new(match hook {
            Some(h) => layer.with_fault_injection(h),
            None => layer,
        })
    }

    pub fn layer(&self) -> Arc<CommitLayer> {
        self.layer_on(Wal::open(self.wal_config()).unwrap().0, &[], None)
    }

    pub fn config(&self, layer: Arc<CommitLayer>) -> KernelConfig {
        let mut c = KernelConfig::new(layer, dsc(), keys(), commander().verifying_key().clone());
        c.clock = self.clock.clone();
        c.heartbeat_interval = Duration::from_millis(50);
        c.dsc_heartbeat_interval = Duration::from_millis(20);
        // The host's memory use must not decide a test: a fixed, low
        // reading, which the memory drill can only raise.
        c.memory_reader = Some(Arc::new(|| Some(10)));
        c
    }

    pub fn wal_reader(&self) -> maos_wal::LogReader {
        maos_wal::LogReader::open_dir(&self.dir.path().join("wal")).unwrap()
    }
}

/// Runs one kernel lifetime on its own runtime; everything it spawned is
/// dropped with the runtime, which releases the WAL for the next lifetime.
pub fn lifetime<T>(f: impl std::future::Future<Output = T>) -> T {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let out = rt.block_on(f);
    rt.shutdown_timeout(Duration::from_secs(10));
    out
}

pub async fn start(world: &World) -> (KernelHandle, StartReport) {
    Kernel::start(world.config(world.layer())).await.unwrap()
}

/// [`start`] with one more effector.
pub async fn start_with(world: &World, extra: Arc<dyn Effector>) -> KernelHandle {
    let layer = world.layer_on(Wal::open(world.wal_config()).unwrap().0, &[extra], None);
    Kernel::start(world.config(layer)).await.unwrap().0
}

/// Every kernel record of the world's log, decoded.
pub fn kernel_records(world: &World) -> Vec<maos_kernel::records::KernelRecord> {
    world
        .wal_reader()
        .records()
        .unwrap()
        .map(|r| r.unwrap())
        .filter_map(|r| maos_kernel::records::KernelRecord::decode(r.kind, &r.payload).map(|x| x.unwrap()))
        .collect()
}

/// Every TSCA record of the world's log, in order.
pub fn tsca_records(world: &World) -> Vec<maos_kernel::records::TscaRecord> {
    kernel_records(world)
        .into_iter()
        .filter_map(|r| match r {
            maos_kernel::records::KernelRecord::Tsca(t) => Some(*t),
            _ => None,
        })
        .collect()
}

/// The issue event of a token the tests minted (as `maos token issue` logs it).
pub fn issued(token: &str) -> maos_token::TokenEvent {
    let verified = maos_token::UnverifiedToken::parse(token)
        .unwrap()
        .verify(&keys(), NOW, &maos_token::RevocationState::default())
        .unwrap();
    maos_token::TokenEvent::Issued(maos_token::TokenIssued::from_verified(&verified))
}

/// Logs issuing `token` with the kernel, which accepts only tokens in its
/// ledger; a token already logged stays as it is (the duplicate is refused).
pub async fn logged(kernel: &KernelHandle, token: &str) {
    if maos_token::UnverifiedToken::parse(token).is_ok() {
        let _ = kernel.token_event(issued(token)).await;
    }
}

/// Submits `intent` with `token` (logged first) and waits for the reply.
pub async fn submit(kernel: &KernelHandle, intent: Intent, token: &str) -> Reply {
    logged(kernel, token).await;
    kernel.submit_and_wait(intent, token).await.unwrap()
}

pub async fn wait_state(kernel: &KernelHandle, state: maos_kernel::posture::CanonicalState) {
    until(kernel, &format!("reach {state}"), |k| k.state() == state).await;
}

/// Polls `f` every 5 ms for up to 15 s; panics naming `what` and the status.
pub async fn until(kernel: &KernelHandle, what: &str, f: impl Fn(&KernelHandle) -> bool) {
    for _ in 0..3000 {
        if f(kernel) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let status = kernel.status();
    panic!("never: {what}: {:?}; TSCA {:?}", status.posture, status.tsca);
}

/// A token for `agent` with `permissions` and `budget` units, a high rate (so
/// a simulation is not throttled) and the id random bytes `[nonce; 10]`.
pub fn token_for(agent: &str, permissions: &[&str], budget: u64, nonce: u8) -> String {
    let req = MintRequest {
        agent: AgentId::new(agent).unwrap(),
        ring: Ring::Untrusted,
        trust_class: TrustClass::Transparent,
        clearance: IfcLevel::Internal,
        permissions: permissions.iter().map(|p| parse_permission(p).unwrap()).collect(),
        ttl_ms: Some(RING3_TEST_TTL_MS),
        rate_per_hour: 360_000,
        max_ops: 100_000,
        budget,
        mission: Some("Maintain the workspace notes.".into()),
        commander_ack: false,
    };
    maos_token::mint(issuer(), req, NOW, 0, [nonce; 10]).unwrap().text().to_owned()
}

/// An observation whose output comes from outside (a web page, an inbox): it
/// names one `resource`, reads public untrusted data and returns `body`.
#[derive(Debug)]
pub struct UntrustedFeed {
    pub namespace: &'static str,
    pub resource: &'static str,
    pub body: &'static [u8],
}

impl Effector for UntrustedFeed {
    fn namespace(&self) -> &'static str {
        self.namespace
    }
    fn describe(&self, _intent: &Intent) -> Result<Described, DescribeError> {
        Ok(Described {
            effect: EffectClass::Observe,
            resources: vec![Resource { kind: ResourceKind::Resource, value: self.resource.into() }],
            sink_level: IfcLevel::Internal,
            reads: vec![ReadLabel { level: IfcLevel::Public, untrusted: true }],
            cost: 0,
            requires_integrity: false,
            sensitive_args: vec![],
            provenance_deny: false,
        })
    }
    fn effect_class(&self, _intent: &Intent) -> EffectClass {
        EffectClass::Observe
    }
    fn resource_keys(&self, _intent: &Intent) -> Result<Vec<String>, EffectError> {
        Ok(vec![format!("{}:{}", self.namespace, self.resource)])
    }
    fn world_state(&self, _intent: &Intent) -> Result<[u8; 32], EffectError> {
        Ok([0; 32])
    }
    fn snapshot(&self, _intent: &Intent) -> Result<Snapshot, EffectError> {
        Err(EffectError::Invalid("observations take no snapshot".into()))
    }
    fn execute(&self, _intent: &Intent, _key: IntentId, _ctx: &ExecContext) -> Result<EffectOutput, EffectError> {
        Ok(EffectOutput {
            body: self.body.to_vec(),
            label: maos_commit::OutputLabel::Untrusted,
            summary: format!("read {}", self.resource),
        })
    }
    fn probe(&self, _intent: &Intent) -> Result<Probe, EffectError> {
        Ok(Probe::NotDone)
    }
    fn compensate(&self, _intent: &Intent, _snapshot: &Snapshot) -> Result<(), EffectError> {
        Ok(())
    }
}

/// The grant of open packet `id`, signed with `key` (the commander's, or an impostor's).
pub async fn sign_grant(kernel: &KernelHandle, id: IntentId, key: &SigningKey) -> maos_commit::SignedApproval {
    let packets = kernel.approvals().await.unwrap();
    let packet = packets.iter().find(|p| p.id == id).expect("packet is open");
    let grant = KernelHandle::grant_for(packet).unwrap();
    let signature = key.sign(maos_crypto::SignatureDomain::ApprovalDecision, &grant.message()).unwrap();
    maos_commit::SignedApproval { grant, signature }
}
