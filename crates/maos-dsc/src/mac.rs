//! Profile MAC policy in Cedar (spec §10.3), evaluated inside check 5.
//!
//! Model: principal `Agent::"<agent id>"`, action `Action::"<action>"`, resource
//! `Resource::"<first resource value>"`, no entity store (no hierarchy to
//! poison), and everything else in `context` (see [`MacRequest`] and
//! `docs/dsc.md`). The policy set is **sliced by action** at load time: a
//! policy whose scope names actions (`action == A` or `action in [A, B]`) goes
//! into those actions' slices; a policy with an unconstrained action goes into
//! every slice. A decision evaluates only its action's slice.
//!
//! The MAC can only narrow: the DSC verdict is the AND of the Rust checks and
//! this policy, so no permit can lift a Rust deny. A Cedar evaluation error,
//! a forbid, or the absence of any permit is a deny (`DSC-5-MAC`).

use crate::DscError;
use cedar_policy::{
    ActionConstraint, Authorizer, Context, Decision as CedarDecision, Entities, EntityId, EntityTypeName, EntityUid,
    Policy, PolicySet, Request, RestrictedExpression,
};
use maos_model::ArgValue;
use std::collections::BTreeMap;
use std::str::FromStr as _;

/// Default Standard (Minimal MAC) policies.
pub const STANDARD_POLICIES: &str = include_str!("../policies/standard.cedar");
/// Additional Hardened (Expanded MAC) policies.
pub const HARDENED_POLICIES: &str = include_str!("../policies/hardened.cedar");
/// Additional Isolated (Strict MAC) policies.
pub const ISOLATED_POLICIES: &str = include_str!("../policies/isolated.cedar");

/// Policies in one configuration: bounds load time and slice sizes.
pub const POLICIES_MAX: usize = 10_000;
/// Bytes of policy text in one configuration.
pub const POLICY_TEXT_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Everything a MAC policy can see about one intent.
#[derive(Debug, Clone)]
pub struct MacRequest<'a> {
    /// Agent id (also the principal's id).
    pub agent: &'a str,
    /// Ring number 0..=3 (3 for an unauthenticated intent).
    pub ring: u8,
    /// Trust class name.
    pub trust_class: &'a str,
    /// Clearance as a number 0..=3.
    pub clearance: u8,
    /// Profile name.
    pub profile: &'a str,
    /// The action.
    pub action: &'a str,
    /// `observe`, `write` or `irreversible`.
    pub effect: &'a str,
    /// Kind of the first resource (`""` if none).
    pub resource_kind: &'a str,
    /// Value of the first resource (`""` if none).
    pub resource: &'a str,
    /// All resource values.
    pub resources: Vec<&'a str>,
    /// Whether every path resource lies inside the workspace root.
    pub in_workspace: bool,
    /// Arguments.
    pub args: &'a BTreeMap<String, ArgValue>,
    /// Sink level 0..=3.
    pub sink_level: u8,
    /// Session context level 0..=3 (after joining this intent's read labels).
    pub context_level: u8,
    /// Session carries the `untrusted` taint.
    pub untrusted: bool,
    /// The intent needs integrity.
    pub requires_integrity: bool,
    /// Whether an argument looks like personal data (IBAN, card, national id).
    pub pii: bool,
    /// Budget cost.
    pub cost: u64,
}

/// The MAC outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MacOutcome {
    /// Some permit matched and no forbid did.
    Allow,
    /// A forbid matched, no permit matched, or evaluation failed.
    Deny {
        /// Policy ids (their `@id` annotation) or the error.
        reason: String,
    },
}

/// Every context field the DSC can provide, in a fixed order.
pub const CONTEXT_FIELDS: [&str; 19] = [
    "agent",
    "ring",
    "trust_class",
    "clearance",
    "profile",
    "action",
    "family",
    "effect",
    "resource_kind",
    "resource",
    "resources",
    "in_workspace",
    "args",
    "sink_level",
    "context_level",
    "untrusted",
    "requires_integrity",
    "pii",
    "cost",
];

/// One action's policies and the context fields they read. Building the
/// Cedar context is the largest cost of a MAC evaluation, so only fields a
/// slice's policies mention are built; a field a policy needs but the scan
/// missed would make Cedar error, which denies (fail-closed).
#[derive(Debug)]
struct Slice {
    set: PolicySet,
    fields: Vec<&'static str>,
}

impl Slice {
    fn new(list: Vec<Policy>) -> Result<Self, DscError> {
        let mut wanted = std::collections::BTreeSet::new();
        let mut all = false;
        for p in &list {
            all |= scan_context_fields(&p.to_string(), &mut wanted);
        }
        let fields = CONTEXT_FIELDS.iter().copied().filter(|f| all || wanted.contains(*f)).collect();
        let set = PolicySet::from_policies(list).map_err(|e| DscError::Policy(e.to_string()))?;
        Ok(Self { set, fields })
    }
}

/// Collects `context.x`, `context has x` and `context["x"]` names; returns
/// true if `context` is used in any other way (then every field is built).
fn scan_context_fields(text: &str, out: &mut std::collections::BTreeSet<String>) -> bool {
    let ident =
        |s: &str| -> String { s.trim_start().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect() };
    let mut rest = text;
    while let Some(pos) = rest.find("context") {
        let before_ok =
            rest.get(..pos).and_then(|b| b.chars().last()).is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
        let after = rest.get(pos + "context".len()..).unwrap_or_default();
        rest = after;
        if !before_ok {
            continue;
        }
        let trimmed = after.trim_start();
        let name = if let Some(r) = trimmed.strip_prefix('.') {
            ident(r)
        } else if let Some(r) = trimmed.strip_prefix("has ") {
            let r = r.trim_start();
            match r.strip_prefix('"') {
                Some(q) => q.chars().take_while(|c| *c != '"').collect(),
                None => ident(r),
            }
        } else if let Some(r) = trimmed.strip_prefix('[') {
            match r.trim_start().strip_prefix('"') {
                Some(q) => q.chars().take_while(|c| *c != '"').collect(),
                None => return true,
            }
        } else if trimmed.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            // Part of a longer identifier such as `context_level`: not the variable.
            continue;
        } else {
            return true;
        };
        if name.is_empty() {
            return true;
        }
        out.insert(name);
    }
    false
}

/// A compiled, action-sliced MAC policy set.
#[derive(Debug)]
pub struct MacPolicy {
    slices: BTreeMap<String, Slice>,
    agnostic: Slice,
    policy_count: usize,
    authorizer: Authorizer,
    entities: Entities,
    agent_type: EntityTypeName,
    action_type: EntityTypeName,
    resource_type: EntityTypeName,
}

fn type_name(name: &str) -> Result<EntityTypeName, DscError> {
    EntityTypeName::from_str(name).map_err(|e| DscError::Policy(e.to_string()))
}

impl MacPolicy {
    /// Parses and slices policy sources `(name, text)`.
    ///
    /// # Errors
    /// [`DscError::Policy`] for a parse error, a template (templates are not
    /// supported: slots would be filled at runtime), a duplicate `@id`, or a bound.
    pub fn compile(sources: &[(String, String)]) -> Result<Self, DscError> {
        let total: usize = sources.iter().map(|(_, t)| t.len()).sum();
        if total > POLICY_TEXT_BYTES_MAX {
            return Err(DscError::Policy(format!("policy text over {POLICY_TEXT_BYTES_MAX} bytes")));
        }
        let action_type = type_name("Action")?;
        let mut all: Vec<Policy> = Vec::new();
        let mut seen_ids = std::collections::BTreeSet::new();
        for (name, text) in sources {
            let set = PolicySet::from_str(text).map_err(|e| DscError::Policy(format!("{name}: {e}")))?;
            if set.templates().next().is_some() {
                return Err(DscError::Policy(format!("{name}: templates are not supported")));
            }
            for p in set.policies() {
                let label = p.annotation("id").map_or_else(|| format!("{name}:{}", p.id()), str::to_owned);
                if !seen_ids.insert(label.clone()) {
                    return Err(DscError::Policy(format!("{name}: duplicate policy @id `{label}`")));
                }
                let renamed = p.clone().new_id(cedar_policy::PolicyId::new(&label));
                all.push(renamed);
            }
        }
        if all.len() > POLICIES_MAX {
            return Err(DscError::Policy(format!("more than {POLICIES_MAX} policies")));
        }
        let mut agnostic_list: Vec<Policy> = Vec::new();
        let mut by_action: BTreeMap<String, Vec<Policy>> = BTreeMap::new();
        for p in &all {
            match p.action_constraint() {
                ActionConstraint::Any => agnostic_list.push(p.clone()),
                ActionConstraint::Eq(uid) => {
                    Self::index(&mut by_action, &action_type, &uid, p)?;
                }
                ActionConstraint::In(uids) => {
                    for uid in &uids {
                        Self::index(&mut by_action, &action_type, uid, p)?;
                    }
                }
            }
        }
        let mut slices = BTreeMap::new();
        for (action, mut list) in by_action {
            list.extend(agnostic_list.iter().cloned());
            slices.insert(action, Slice::new(list)?);
        }
        Ok(Self {
            slices,
            agnostic: Slice::new(agnostic_list)?,
            policy_count: all.len(),
            authorizer: Authorizer::new(),
            entities: Entities::empty(),
            agent_type: type_name("Agent")?,
            action_type,
            resource_type: type_name("Resource")?,
        })
    }

    fn index(
        by_action: &mut BTreeMap<String, Vec<Policy>>,
        action_type: &EntityTypeName,
        uid: &EntityUid,
        p: &Policy,
    ) -> Result<(), DscError> {
        if uid.type_name() != action_type {
            return Err(DscError::Policy(format!("policy `{}`: actions must be `Action::\"…\"`", p.id())));
        }
        let list = by_action.entry(uid.id().unescaped().to_owned()).or_default();
        // A policy listing the same action twice is indexed once.
        if !list.iter().any(|q| q.id() == p.id()) {
            list.push(p.clone());
        }
        Ok(())
    }

    fn slice_for(&self, action: &str) -> &Slice {
        self.slices.get(action).unwrap_or(&self.agnostic)
    }

    /// The policies a decision on `action` evaluates.
    #[must_use]
    pub fn slice(&self, action: &str) -> &PolicySet {
        &self.slice_for(action).set
    }

    /// The context fields `action`'s slice reads.
    #[must_use]
    pub fn slice_fields(&self, action: &str) -> &[&'static str] {
        &self.slice_for(action).fields
    }

    /// Number of policies in `action`'s slice.
    #[must_use]
    pub fn slice_len(&self, action: &str) -> usize {
        self.slice(action).policies().count()
    }

    /// Number of policies loaded.
    #[must_use]
    pub fn policy_count(&self) -> usize {
        self.policy_count
    }

    /// Evaluates the request on its action's slice.
    #[must_use]
    pub fn evaluate(&self, req: &MacRequest<'_>) -> MacOutcome {
        match self.try_evaluate(req) {
            Ok(outcome) => outcome,
            Err(reason) => MacOutcome::Deny { reason },
        }
    }

    /// Builds the Cedar request for an intent (public for the benchmark, which
    /// times Cedar alone on the same sliced set).
    ///
    /// # Errors
    /// A description if the context or request cannot be built.
    pub fn build_request(&self, req: &MacRequest<'_>) -> Result<Request, String> {
        let principal = EntityUid::from_type_name_and_id(self.agent_type.clone(), EntityId::new(req.agent));
        let action = EntityUid::from_type_name_and_id(self.action_type.clone(), EntityId::new(req.action));
        let resource = EntityUid::from_type_name_and_id(self.resource_type.clone(), EntityId::new(req.resource));
        let fields = self.slice_fields(req.action);
        let context = Context::from_pairs(context_pairs(req, fields)?).map_err(|e| format!("context: {e}"))?;
        Request::new(principal, action, resource, context, None).map_err(|e| format!("request: {e}"))
    }

    /// Runs Cedar on `action`'s slice (no DSC logic around it).
    #[must_use]
    pub fn authorize(&self, request: &Request, action: &str) -> cedar_policy::Response {
        self.authorizer.is_authorized(request, self.slice(action), &self.entities)
    }

    fn try_evaluate(&self, req: &MacRequest<'_>) -> Result<MacOutcome, String> {
        let request = self.build_request(req)?;
        let response = self.authorize(&request, req.action);
        let diagnostics = response.diagnostics();
        let mut errors: Vec<String> = diagnostics.errors().map(ToString::to_string).collect();
        if !errors.is_empty() {
            // Cedar skips a policy that errors; a skipped forbid would be a silent
            // allow, so any error denies. Sorted: Cedar's order is not guaranteed,
            // and the decision record must be deterministic.
            errors.sort();
            errors.truncate(4);
            return Ok(MacOutcome::Deny { reason: format!("policy evaluation error: {}", errors.join("; ")) });
        }
        match response.decision() {
            CedarDecision::Allow => Ok(MacOutcome::Allow),
            CedarDecision::Deny => {
                let mut ids: Vec<String> = diagnostics.reason().map(ToString::to_string).collect();
                ids.sort();
                let reason = if ids.is_empty() { "no permit policy matched".to_owned() } else { ids.join(",") };
                Ok(MacOutcome::Deny { reason })
            }
        }
    }
}

fn long(n: u64) -> RestrictedExpression {
    RestrictedExpression::new_long(i64::try_from(n).unwrap_or(i64::MAX))
}

fn context_pairs(req: &MacRequest<'_>, fields: &[&str]) -> Result<Vec<(String, RestrictedExpression)>, String> {
    let s = |v: &str| RestrictedExpression::new_string(v.to_owned());
    let b = RestrictedExpression::new_bool;
    let mut out = Vec::with_capacity(fields.len());
    for field in fields {
        let value = match *field {
            "agent" => s(req.agent),
            "ring" => long(u64::from(req.ring)),
            "trust_class" => s(req.trust_class),
            "clearance" => long(u64::from(req.clearance)),
            "profile" => s(req.profile),
            "action" => s(req.action),
            "family" => s(req.action.split(['.', ':', '/']).next().unwrap_or_default()),
            "effect" => s(req.effect),
            "resource_kind" => s(req.resource_kind),
            "resource" => s(req.resource),
            "resources" => RestrictedExpression::new_set(req.resources.iter().map(|r| s(r))),
            "in_workspace" => b(req.in_workspace),
            "args" => RestrictedExpression::new_record(req.args.iter().map(|(k, v)| {
                let value = match v {
                    ArgValue::Str(text) => s(text),
                    ArgValue::Int(n) => RestrictedExpression::new_long(*n),
                    ArgValue::Bool(flag) => b(*flag),
                };
                (k.clone(), value)
            }))
            .map_err(|e| format!("args: {e}"))?,
            "sink_level" => long(u64::from(req.sink_level)),
            "context_level" => long(u64::from(req.context_level)),
            "untrusted" => b(req.untrusted),
            "requires_integrity" => b(req.requires_integrity),
            "pii" => b(req.pii),
            "cost" => long(req.cost),
            other => return Err(format!("unknown context field `{other}`")),
        };
        out.push(((*field).to_owned(), value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_field_scan() {
        let mut out = std::collections::BTreeSet::new();
        let all = scan_context_fields(
            "forbid (principal, action, resource) when { context.effect == \"x\" && context has args && context.args.url like \"a\" && context[\"pii\"] && context.context_level > 1 };",
            &mut out,
        );
        assert!(!all);
        let names: Vec<&str> = out.iter().map(String::as_str).collect();
        assert_eq!(names, vec!["args", "context_level", "effect", "pii"]);
        assert!(scan_context_fields("when { context == {} }", &mut out), "whole-context use builds everything");
    }
}
