//! The benchmark workload, shared by `benches/dsc.rs` and the profiling target
//! `examples/decide_loop.rs` so both measure exactly the same thing: 50 agents,
//! each with its own action and token, 4 extra Cedar policies per action on top
//! of the profile defaults, sessions with reads.

use maos_crypto::SigningKey;
use maos_dsc::{DscConfig, DscState};
use maos_model::{
    AgentId, ArgValue, EffectClass, IfcLevel, Intent, IntentId, Profile, Resource, ResourceKind, Ring, TrustClass,
    UnixMillis,
};
use maos_token::{KeyRing, MintRequest, RevocationState, UnverifiedToken, VerifiedToken, parse_permission};
use std::collections::BTreeMap;

pub const AGENTS: usize = 50;
pub const POLICIES_PER_ACTION: usize = 4;
pub const NOW: UnixMillis = UnixMillis(1_767_225_600_000);

pub fn action(i: usize) -> String {
    format!("svc{i:02}.invoke")
}

pub fn policies() -> String {
    let mut text = String::new();
    for i in 0..AGENTS {
        let a = action(i);
        text.push_str(&format!(
            "@id(\"p{i}-a\") forbid (principal, action == Action::\"{a}\", resource) when {{ context.ring == 3 && context.effect == \"irreversible\" }};\n\
             @id(\"p{i}-b\") forbid (principal, action == Action::\"{a}\", resource) when {{ context.args has amount && context.args.amount > 10000 }};\n\
             @id(\"p{i}-c\") forbid (principal, action == Action::\"{a}\", resource) when {{ context.sink_level == 0 && context.context_level >= 2 }};\n\
             @id(\"p{i}-d\") forbid (principal, action == Action::\"{a}\", resource) when {{ context.resource like \"*/admin/*\" }};\n"
        ));
    }
    text
}

pub struct Fixture {
    pub state: DscState,
    pub intents: Vec<Intent>,
    pub tokens: Vec<VerifiedToken>,
}

pub fn fixture(profile: Profile) -> Fixture {
    let config = DscConfig::builder(profile).policy("bench.cedar", &policies()).build().unwrap();
    assert_eq!(config.mac().slice_len(&action(0)), POLICIES_PER_ACTION + config.mac().slice_len("unlisted.action"));
    let key = SigningKey::from_seeds(&[9; 64]).unwrap();
    let keys = KeyRing::with(key.verifying_key().clone());
    let mut state = DscState::new(config);
    let mut intents = Vec::new();
    let mut tokens = Vec::new();
    for i in 0..AGENTS {
        let agent = AgentId::new(&format!("agent-{i:02}")).unwrap();
        let req = MintRequest {
            agent: agent.clone(),
            ring: Ring::Trusted,
            trust_class: TrustClass::Transparent,
            clearance: IfcLevel::Confidential,
            permissions: vec![parse_permission(&format!("{}=resource:orders/*", action(i))).unwrap()],
            ttl_ms: None,
            rate_per_hour: 3_600_000,
            max_ops: u64::MAX,
            budget: u64::MAX,
            mission: Some(format!("Process today's orders for customer-{i}@example.com.")),
            commander_ack: false,
        };
        let minted = maos_token::mint(&key, req, NOW, 0, [u8::try_from(i).unwrap(); 10]).unwrap();
        let token =
            UnverifiedToken::parse(minted.text()).unwrap().verify(&keys, NOW, &RevocationState::default()).unwrap();
        state
            .apply(&DscState::record_read(&agent, IfcLevel::Internal, i % 3 == 0, Some("order list: 42 items, 3 late")))
            .unwrap();
        // Ring-2 tokens need a ring-2 registration (Rule 4).
        state.apply(&DscState::register_agent(&agent, Ring::Trusted, Some(TrustClass::Transparent))).unwrap();
        let mut args = BTreeMap::new();
        args.insert("amount".to_owned(), ArgValue::Int(250));
        args.insert("note".to_owned(), ArgValue::Str("Ship the backlog before Friday; notify the warehouse.".into()));
        args.insert("to".to_owned(), ArgValue::Str(format!("customer-{i}@example.com")));
        intents.push(Intent {
            id: IntentId::new_v7(NOW.0, [1; 10]),
            agent,
            action: action(i),
            resources: vec![Resource { kind: ResourceKind::Resource, value: format!("orders/{i}") }],
            args,
            effect: EffectClass::Write,
            cost: 1,
            sink_level: IfcLevel::Internal,
            requires_integrity: false,
            reads: vec![],
            sensitive_args: vec![],
            provenance_deny: false,
            world_state_hash: None,
        });
        tokens.push(token);
    }
    Fixture { state, intents, tokens }
}
