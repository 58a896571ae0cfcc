//! `noop.*`: an effector that changes nothing, for `maos bench` (issue #5:
//! "a no-op effector"). It isolates the cost of the path every effect takes —
//! token check, DSC, WAL records, locks, Rollback Zone — from the cost of any
//! real side effect.
//!
//! - `noop.read`: observe. `noop.write` and anything else: write (CT-CL-10).
//! - The lock key is the argument `key` (a `resource`; `noop:default` when
//!   absent), so a benchmark chooses how much its writers contend.
//! - Registered only when the operator asks (`maos up --noop-effector`): a
//!   token must still grant `noop.*`, like any other action.

use crate::describe::{DescribeError, Described};
use crate::effector::{Compensable, EffectOutput, Effector, ExecContext, OutputLabel, Probe, Snapshot};
use crate::error::EffectError;
use maos_model::{ArgValue, EffectClass, IfcLevel, Intent, IntentId};

/// The no-op effector.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopEffector;

impl Effector for NoopEffector {
    fn namespace(&self) -> &'static str {
        "noop"
    }

    fn describe(&self, intent: &Intent) -> Result<Described, DescribeError> {
        let effect = self.effect_class(intent);
        let resources = match intent.args.get("key") {
            Some(ArgValue::Str(key)) => vec![crate::Role::Account.resource("key", key)?],
            Some(_) => return Err(DescribeError::RoleType { arg: "key".into(), want: "a string" }),
            None => Vec::new(),
        };
        Ok(Described {
            effect,
            resources,
            sink_level: IfcLevel::Internal,
            reads: Vec::new(),
            cost: Described::default_cost(effect),
            requires_integrity: false,
            sensitive_args: Vec::new(),
            provenance_deny: false,
        })
    }

    fn effect_class(&self, intent: &Intent) -> EffectClass {
        if intent.action == "noop.read" { EffectClass::Observe } else { EffectClass::Write }
    }

    fn resource_keys(&self, intent: &Intent) -> Result<Vec<String>, EffectError> {
        let key = intent.resources.first().map_or("default", |r| r.value.as_str());
        Ok(vec![format!("noop:{key}")])
    }

    fn world_state(&self, _intent: &Intent) -> Result<[u8; 32], EffectError> {
        Ok([0; 32])
    }

    fn snapshot(&self, _intent: &Intent) -> Result<Snapshot, EffectError> {
        Ok(Snapshot { hold_ms: 0, compensable: Compensable::Yes, bytes: Vec::new() })
    }

    fn execute(&self, intent: &Intent, _key: IntentId, ctx: &ExecContext) -> Result<EffectOutput, EffectError> {
        ctx.checkpoint()?;
        Ok(EffectOutput::empty(OutputLabel::Trusted, format!("{} did nothing", intent.action)))
    }

    fn probe(&self, intent: &Intent) -> Result<Probe, EffectError> {
        Ok(Probe::Done(EffectOutput::empty(OutputLabel::Trusted, format!("{} did nothing", intent.action))))
    }

    fn compensate(&self, _intent: &Intent, _snapshot: &Snapshot) -> Result<(), EffectError> {
        Ok(())
    }
}
