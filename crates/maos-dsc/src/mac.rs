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
    ActionConstraint, Authorizer, Context, Decision as CedarDecision, Effect, Entities, EntityId, EntityTypeName,
    EntityUid, Policy, PolicySet, PrincipalConstraint, Request, ResourceConstraint, RestrictedExpression,
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
///
/// `all` is every policy whose scope admits the action; `set` is what Cedar
/// evaluates: `all` minus the policies [`never_applies`] proves can never be
/// satisfied for this action (for example `context.family == "fs"` in the
/// slice of `svc.invoke`). A pruned policy would evaluate to `false` without
/// error on every request of the action, so it can neither forbid, permit nor
/// error: pruning changes no decision and no reason.
#[derive(Debug)]
struct Slice {
    all: PolicySet,
    set: PolicySet,
    fields: Vec<&'static str>,
    /// The argument names the policies read (`context.args.x`,
    /// `context.args has x`, `context.args["x"]`), or `None` if `args` is used
    /// any other way (then every argument is built). An argument no policy
    /// names cannot change a result: records are only compared or listed by a
    /// whole-record use, which selects every argument.
    args: Option<Vec<String>>,
    /// The slice has a permit that is satisfied, without error, by every
    /// request of the action (e.g. `std-baseline-permit`). It is left out of
    /// `set`: the decision is then Allow iff Cedar reports no error and no
    /// satisfied forbid, exactly as with the permit in the set (a Deny's
    /// reasons only ever name forbids).
    permit_always: bool,
}

impl Slice {
    /// `action`: the slice's action, if the slice is for exactly one action
    /// (then the action-derived context fields are known at load time).
    fn new(list: Vec<Policy>, action: Option<&str>) -> Result<Self, DscError> {
        let all = PolicySet::from_policies(list.iter().cloned()).map_err(|e| DscError::Policy(e.to_string()))?;
        let kept: Vec<Policy> = match action {
            Some(action) => list.into_iter().filter(|p| !never_applies(p, action)).collect(),
            None => list,
        };
        let (always, kept): (Vec<Policy>, Vec<Policy>) = kept.into_iter().partition(|p| always_permits(p, action));
        let permit_always = !always.is_empty();
        let mut wanted = std::collections::BTreeSet::new();
        let mut every = false;
        let mut arg_names = Some(std::collections::BTreeSet::new());
        for p in &kept {
            let text = p.to_string();
            every |= scan_context_fields(&text, &mut wanted);
            if let Some(names) = arg_names.as_mut()
                && scan_arg_names(&text, names)
            {
                arg_names = None;
            }
        }
        let fields = CONTEXT_FIELDS.iter().copied().filter(|f| every || wanted.contains(*f)).collect();
        let args = if every { None } else { arg_names.map(|names| names.into_iter().collect()) };
        let kept = match action {
            Some(_) => kept.iter().map(without_action_scope).collect(),
            None => kept,
        };
        let set = PolicySet::from_policies(kept).map_err(|e| DscError::Policy(e.to_string()))?;
        Ok(Self { all, set, fields, args, permit_always })
    }
}

/// Whether `p` is a permit satisfied without error by every request of the
/// slice: unconstrained principal and resource, an action scope that admits
/// the slice's action (every action in a single-action slice; only an
/// unconstrained one otherwise), and `when`/`unless` clauses that evaluate
/// (see [`never_applies`]) to definitely satisfied.
fn always_permits(p: &Policy, action: Option<&str>) -> bool {
    let scope = matches!(p.principal_constraint(), PrincipalConstraint::Any)
        && matches!(p.resource_constraint(), ResourceConstraint::Any)
        && (action.is_some() || matches!(p.action_constraint(), ActionConstraint::Any));
    if p.effect() != Effect::Permit || !scope {
        return false;
    }
    let Ok(json) = p.to_json() else { return false };
    let Some(conditions) = json.get("conditions").and_then(serde_json::Value::as_array) else { return false };
    let statics = action.map(|a| [("action", a), ("family", family(a))]);
    conditions.iter().all(|c| {
        let value = c.get("body").and_then(|b| static_eval(b, statics.as_ref().map_or(&[], |s| s.as_slice())));
        matches!(
            (c.get("kind").and_then(serde_json::Value::as_str), value),
            (Some("when"), Some(Known::Bool(true))) | (Some("unless"), Some(Known::Bool(false)))
        )
    })
}

/// In a single-action slice every request has that action, and a policy is
/// in the slice only if its action scope admits it, so the scope is
/// always satisfied (scope constraints cannot error): the copy Cedar
/// evaluates has `action` unconstrained, which saves evaluating the scope on
/// every request. Same id and annotations. Falls back to the policy itself if
/// the rewrite fails.
fn without_action_scope(p: &Policy) -> Policy {
    if matches!(p.action_constraint(), ActionConstraint::Any) {
        return p.clone();
    }
    let rewritten = p.to_json().ok().and_then(|mut json| {
        *json.get_mut("action")? = serde_json::json!({ "op": "All" });
        Policy::from_json(Some(p.id().clone()), json).ok()
    });
    rewritten.unwrap_or_else(|| p.clone())
}

/// The `family` context field of an action: its first segment.
fn family(action: &str) -> &str {
    action.split(['.', ':', '/']).next().unwrap_or_default()
}

/// A value known at load time (three-valued evaluation: `None` is unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Known {
    Str(String),
    Bool(bool),
    Long(i64),
    Set(Vec<Self>),
}

/// Whether `p` is provably never satisfied on a request for `action`.
///
/// Evaluates the policy's `when`/`unless` clauses in Cedar's order (they are
/// a left-to-right `&&` chain after the scope, which cannot error) with only
/// the context fields that are a function of the action (`action`, `family`)
/// known. Evaluation follows Cedar's short-circuit semantics and stops at the
/// first unknown or anything it does not model; the policy is pruned only if
/// a clause is definitely false (a `when`) or definitely true (an `unless`)
/// after every earlier clause was definitely satisfied without error. Any
/// doubt keeps the policy.
fn never_applies(p: &Policy, action: &str) -> bool {
    let Ok(json) = p.to_json() else { return false };
    let Some(conditions) = json.get("conditions").and_then(serde_json::Value::as_array) else { return false };
    let statics = [("action", action), ("family", family(action))];
    for c in conditions {
        let value = c.get("body").and_then(|b| static_eval(b, &statics));
        match (c.get("kind").and_then(serde_json::Value::as_str), value) {
            (Some("when"), Some(Known::Bool(false))) | (Some("unless"), Some(Known::Bool(true))) => return true,
            (Some("when"), Some(Known::Bool(true))) | (Some("unless"), Some(Known::Bool(false))) => {}
            _ => return false,
        }
    }
    false
}

/// Evaluates a policy JSON (EST) expression if it only depends on `statics`.
fn static_eval(e: &serde_json::Value, statics: &[(&str, &str)]) -> Option<Known> {
    let obj = e.as_object()?;
    if obj.len() != 1 {
        return None;
    }
    let (op, arg) = obj.iter().next()?;
    let side = |name: &str| arg.get(name).and_then(|x| static_eval(x, statics));
    let scalar = |k: &Known| !matches!(k, Known::Set(_));
    match op.as_str() {
        "Value" => match arg {
            serde_json::Value::String(s) => Some(Known::Str(s.clone())),
            serde_json::Value::Bool(b) => Some(Known::Bool(*b)),
            serde_json::Value::Number(n) => n.as_i64().map(Known::Long),
            _ => None,
        },
        "." => {
            if arg.get("left")?.get("Var")?.as_str()? != "context" {
                return None;
            }
            let attr = arg.get("attr")?.as_str()?;
            statics.iter().find(|(k, _)| *k == attr).map(|(_, v)| Known::Str((*v).to_owned()))
        }
        "==" | "!=" => {
            let left = side("left")?;
            let right = side("right")?;
            if !scalar(&left) || !scalar(&right) {
                return None;
            }
            Some(Known::Bool((left == right) == (op == "==")))
        }
        "&&" | "||" => {
            let short = op == "||";
            match side("left")? {
                Known::Bool(b) if b == short => Some(Known::Bool(b)),
                Known::Bool(_) => match side("right")? {
                    Known::Bool(b) => Some(Known::Bool(b)),
                    _ => None,
                },
                _ => None,
            }
        }
        "!" => match side("arg")? {
            Known::Bool(b) => Some(Known::Bool(!b)),
            _ => None,
        },
        "Set" => {
            let items = arg.as_array()?.iter().map(|x| static_eval(x, statics)).collect::<Option<Vec<_>>>()?;
            items.iter().all(scalar).then_some(Known::Set(items))
        }
        "contains" => {
            let Known::Set(items) = side("left")? else { return None };
            let needle = side("right")?;
            scalar(&needle).then(|| Known::Bool(items.contains(&needle)))
        }
        _ => None,
    }
}

/// Collects the argument names in `context.args.x`, `context.args has x`,
/// `context.args has "x"` and `context.args["x"]` (also with `context["args"]`);
/// returns true if `context.args` is used in any other way (then every
/// argument is built). Over-collecting (a name in a string literal or a
/// comment) only builds more.
fn scan_arg_names(text: &str, out: &mut std::collections::BTreeSet<String>) -> bool {
    let ident =
        |s: &str| -> String { s.trim_start().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect() };
    // A quoted name with an escape sequence yields "" (then every argument is built).
    let quoted = |s: &str| -> Option<String> {
        s.trim_start().strip_prefix('"').map(|q| {
            let name: String = q.chars().take_while(|c| *c != '"').collect();
            if name.contains('\\') { String::new() } else { name }
        })
    };
    for after in context_words(text) {
        let t = after.trim_start();
        // The rest after the `args` field access, if this is one.
        let tail = if let Some(r) = t.strip_prefix('.') {
            let r = r.trim_start();
            if ident(r) != "args" {
                continue;
            }
            r.get("args".len()..).unwrap_or_default()
        } else if let Some(r) = t.strip_prefix('[') {
            let r = r.trim_start();
            let Some(q) = r.strip_prefix("\"args\"") else { continue };
            match q.trim_start().strip_prefix(']') {
                Some(r) => r,
                None => return true,
            }
        } else {
            continue;
        };
        let tail = tail.trim_start();
        let name = if let Some(r) = tail.strip_prefix('.') {
            let name = ident(r);
            let r = r.trim_start();
            if r.get(name.len()..).unwrap_or_default().trim_start().starts_with('(') {
                // A method call on the record (`.isEmpty()`, `.contains(..)`).
                return true;
            }
            Some(name)
        } else if let Some(r) = tail.strip_prefix("has") {
            if r.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                return true;
            }
            quoted(r).or_else(|| Some(ident(r)))
        } else if let Some(r) = tail.strip_prefix('[') {
            quoted(r)
        } else {
            None
        };
        match name {
            Some(n) if !n.is_empty() => {
                out.insert(n);
            }
            _ => return true,
        }
    }
    false
}

/// The text after each occurrence of `context` that stands as a word of its
/// own (not part of `my_context` or `contexts`), for the field scanners below.
fn context_words(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        while let Some(pos) = rest.find("context") {
            let before_ok =
                rest.get(..pos).and_then(|b| b.chars().last()).is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
            let after = rest.get(pos + "context".len()..).unwrap_or_default();
            rest = after;
            if before_ok {
                return Some(after);
            }
        }
        None
    })
}

/// Collects `context.x`, `context has x` and `context["x"]` names; returns
/// true if `context` is used in any other way (then every field is built).
fn scan_context_fields(text: &str, out: &mut std::collections::BTreeSet<String>) -> bool {
    let ident =
        |s: &str| -> String { s.trim_start().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect() };
    for after in context_words(text) {
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
        // An escape sequence in a quoted name (`context["ri\u{6e}g"]`) is not
        // decoded here: build every field rather than miss one.
        if name.is_empty() || name.contains('\\') {
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
            let slice = Slice::new(list, Some(&action))?;
            slices.insert(action, slice);
        }
        Ok(Self {
            slices,
            agnostic: Slice::new(agnostic_list, None)?,
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

    /// The policies whose scope admits `action` (its slice).
    #[must_use]
    pub fn slice(&self, action: &str) -> &PolicySet {
        &self.slice_for(action).all
    }

    /// The policies a decision on `action` evaluates: its slice minus the
    /// policies proven at load time never to be satisfied for `action`.
    #[must_use]
    pub fn evaluated_slice(&self, action: &str) -> &PolicySet {
        &self.slice_for(action).set
    }

    /// Whether `action`'s slice has a permit every request of it satisfies
    /// (left out of the evaluated slice and applied after Cedar).
    #[must_use]
    pub fn permits_always(&self, action: &str) -> bool {
        self.slice_for(action).permit_always
    }

    /// Number of policies a decision on `action` evaluates.
    #[must_use]
    pub fn evaluated_len(&self, action: &str) -> usize {
        self.evaluated_slice(action).policies().count()
    }

    /// The argument names `action`'s evaluated slice reads (`None`: all).
    #[must_use]
    pub fn slice_args(&self, action: &str) -> Option<&[String]> {
        self.slice_for(action).args.as_deref()
    }

    /// The context fields `action`'s evaluated slice reads.
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
        let slice = self.slice_for(req.action);
        let context = Context::from_pairs(context_pairs(req, &slice.fields, slice.args.as_deref())?)
            .map_err(|e| format!("context: {e}"))?;
        Request::new(principal, action, resource, context, None).map_err(|e| format!("request: {e}"))
    }

    /// Runs Cedar on `action`'s evaluated slice (no DSC logic around it).
    /// `action` must be the request's action: the evaluated slice relies on
    /// it. A permit that always matches is not in the evaluated slice (see
    /// [`Self::permits_always`]), so Cedar alone may answer Deny (no reasons)
    /// where the MAC allows.
    #[must_use]
    pub fn authorize(&self, request: &Request, action: &str) -> cedar_policy::Response {
        self.authorizer.is_authorized(request, self.evaluated_slice(action), &self.entities)
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
                if ids.is_empty() && self.slice_for(req.action).permit_always {
                    // No forbid matched and the left-out permit always matches.
                    return Ok(MacOutcome::Allow);
                }
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

fn context_pairs(
    req: &MacRequest<'_>,
    fields: &[&str],
    arg_names: Option<&[String]>,
) -> Result<Vec<(String, RestrictedExpression)>, String> {
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
            "family" => s(family(req.action)),
            "effect" => s(req.effect),
            "resource_kind" => s(req.resource_kind),
            "resource" => s(req.resource),
            "resources" => RestrictedExpression::new_set(req.resources.iter().map(|r| s(r))),
            "in_workspace" => b(req.in_workspace),
            "args" => {
                let arg = |(k, v): (&String, &ArgValue)| {
                    let value = match v {
                        ArgValue::Str(text) => s(text),
                        ArgValue::Int(n) => RestrictedExpression::new_long(*n),
                        ArgValue::Bool(flag) => b(*flag),
                    };
                    (k.clone(), value)
                };
                let record = match arg_names {
                    Some(names) => RestrictedExpression::new_record(
                        names.iter().filter_map(|n| req.args.get_key_value(n.as_str())).map(arg),
                    ),
                    None => RestrictedExpression::new_record(req.args.iter().map(arg)),
                };
                record.map_err(|e| format!("args: {e}"))?
            }
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
        assert!(scan_context_fields(r#"when { context has "ri\u{6e}g" }"#, &mut out), "escapes build everything");
    }

    fn args_of(text: &str) -> Option<Vec<String>> {
        let mut out = std::collections::BTreeSet::new();
        (!scan_arg_names(text, &mut out)).then(|| out.into_iter().collect())
    }

    #[test]
    fn arg_name_scan() {
        let names = args_of(
            r#"when { context.args has amount && context.args.amount > 1 && context["args"]["to"] like "*" && context.args has "a b" && context . args . url == "" && context has args && context.argsx }"#,
        );
        assert_eq!(names.unwrap(), ["a b", "amount", "to", "url"]);
        assert_eq!(args_of("when { context.effect == \"x\" }").unwrap(), Vec::<String>::new());
        assert!(args_of("when { context.args == {} }").is_none(), "whole-record use builds every argument");
        assert!(args_of("when { context.args hasx }").is_none());
        assert!(args_of("when { context[\"args\"] == {} }").is_none());
        assert!(args_of("when { context.args[x] }").is_none());
        assert!(args_of("when { context.args.isEmpty() }").is_none());
        assert!(args_of(r#"when { context.args has "a\"b" }"#).is_none(), "escapes build every argument");
        assert!(args_of(r#"when { context.args["\u{61}"] }"#).is_none());
        assert!(args_of("when { context.args.contains (1) }").is_none());
    }

    fn never(text: &str, action: &str) -> bool {
        never_applies(&Policy::parse(None, text).unwrap(), action)
    }

    #[test]
    fn pruning_only_on_definite_static_false() {
        let fs = r#"forbid (principal, action, resource) when { context.family == "fs" && context.effect != "observe" } unless { context.in_workspace };"#;
        assert!(never(fs, "svc.invoke"));
        assert!(!never(fs, "fs.write"));
        let net = r#"forbid (principal, action, resource) when { ["http", "net", "web"].contains(context.family) } unless { context.resource_kind == "domain" };"#;
        assert!(never(net, "svc.invoke"));
        assert!(!never(net, "http.get"));
        // An earlier clause that may error or is unknown blocks pruning.
        assert!(!never(
            r#"forbid (principal, action, resource) when { context.args.x > 1 && context.family == "fs" };"#,
            "svc.a"
        ));
        assert!(!never(
            r#"forbid (principal, action, resource) when { context.ring == 3 } when { context.family == "fs" };"#,
            "svc.a"
        ));
        // Known-true earlier clauses are passed; `unless` true prunes.
        assert!(never(
            r#"forbid (principal, action, resource) when { context.action == "svc.a" } unless { context.family == "svc" };"#,
            "svc.a"
        ));
        // A non-boolean where Cedar would error is never pruned.
        assert!(!never(r#"forbid (principal, action, resource) when { context.family && false };"#, "svc.a"));
        assert!(!never(r#"forbid (principal, action, resource) when { context.family };"#, "svc.a"));
        assert!(!never("permit (principal, action, resource);", "svc.a"));
        assert!(never(r#"permit (principal, action, resource) when { context.family == "x" || false };"#, "svc.a"));
    }

    /// The unoptimised MAC: the full scope slice, every context field, every argument.
    fn naive(mac: &MacPolicy, req: &MacRequest<'_>) -> MacOutcome {
        let uid = |t: &str, id: &str| EntityUid::from_type_name_and_id(type_name(t).unwrap(), EntityId::new(id));
        let context = Context::from_pairs(context_pairs(req, &CONTEXT_FIELDS, None).unwrap()).unwrap();
        let request = Request::new(
            uid("Agent", req.agent),
            uid("Action", req.action),
            uid("Resource", req.resource),
            context,
            None,
        )
        .unwrap();
        let response = Authorizer::new().is_authorized(&request, mac.slice(req.action), &Entities::empty());
        let mut errors: Vec<String> = response.diagnostics().errors().map(ToString::to_string).collect();
        if !errors.is_empty() {
            errors.sort();
            errors.truncate(4);
            return MacOutcome::Deny { reason: format!("policy evaluation error: {}", errors.join("; ")) };
        }
        match response.decision() {
            CedarDecision::Allow => MacOutcome::Allow,
            CedarDecision::Deny => {
                let mut ids: Vec<String> = response.diagnostics().reason().map(ToString::to_string).collect();
                ids.sort();
                MacOutcome::Deny {
                    reason: if ids.is_empty() { "no permit policy matched".to_owned() } else { ids.join(",") },
                }
            }
        }
    }

    #[test]
    fn optimised_slices_decide_like_the_naive_evaluation() {
        let extra = r#"
            @id("x-amount") forbid (principal, action == Action::"svc.a", resource) when { context.args.amount > 100 };
            @id("x-has") forbid (principal, action in [Action::"svc.a", Action::"fs.write"], resource) when { context.args has note && context.args.note like "*admin*" };
            @id("x-ring") forbid (principal, action == Action::"svc.a", resource) when { context.ring == 3 && context.effect == "irreversible" };
            @id("x-fam") forbid (principal, action == Action::"svc.a", resource) when { context.family == "svc" && context.resource like "*/admin/*" };
            @id("x-whole") forbid (principal, action == Action::"http.get", resource) when { context.args == {} };
            @id("x-permit-fs") permit (principal, action, resource) when { context.family == "fs" };
        "#;
        let full = MacPolicy::compile(&[
            ("std".to_owned(), STANDARD_POLICIES.to_owned()),
            ("hard".to_owned(), HARDENED_POLICIES.to_owned()),
            ("iso".to_owned(), ISOLATED_POLICIES.to_owned()),
            ("x".to_owned(), extra.to_owned()),
        ])
        .unwrap();
        // Without the baseline permit: "no permit policy matched" and conditional permits.
        let bare = MacPolicy::compile(&[("x".to_owned(), extra.to_owned())]).unwrap();
        let mut arg_sets = Vec::new();
        arg_sets.push(BTreeMap::new());
        let mut a = BTreeMap::new();
        a.insert("amount".to_owned(), ArgValue::Int(250));
        a.insert("note".to_owned(), ArgValue::Str("go to /admin/ now".to_owned()));
        a.insert("url".to_owned(), ArgValue::Str("http://x".to_owned()));
        arg_sets.push(a.clone());
        a.insert("amount".to_owned(), ArgValue::Str("many".to_owned()));
        a.insert("via_gateway".to_owned(), ArgValue::Bool(true));
        a.insert("signature_verified".to_owned(), ArgValue::Bool(false));
        arg_sets.push(a);
        let mut checked = 0;
        let mut kinds = std::collections::BTreeSet::new();
        for (mac, action) in [&full, &bare].into_iter().flat_map(|mac| {
            ["svc.a", "fs.write", "http.get", "mailbox.read", "agent.send", "exec.run", "other"].map(|a| (mac, a))
        }) {
            for args in &arg_sets {
                for (ring, effect) in [(1, "write"), (3, "irreversible"), (2, "observe")] {
                    for resource in ["orders/1", "/work/a/admin/.x", "agent-1"] {
                        for flag in [false, true] {
                            let req = MacRequest {
                                agent: "agent-1",
                                ring,
                                trust_class: "transparent",
                                clearance: 2,
                                profile: "standard",
                                action,
                                effect,
                                resource_kind: if flag { "domain" } else { "path" },
                                resource,
                                resources: vec![resource],
                                in_workspace: flag,
                                args,
                                sink_level: u8::from(!flag),
                                context_level: 2,
                                untrusted: flag,
                                requires_integrity: flag,
                                pii: flag,
                                cost: 1,
                            };
                            let outcome = mac.evaluate(&req);
                            assert_eq!(outcome, naive(mac, &req), "{req:?}");
                            kinds.insert(match outcome {
                                MacOutcome::Allow => "allow",
                                MacOutcome::Deny { reason } if reason.starts_with("policy evaluation error") => "error",
                                MacOutcome::Deny { reason } if reason == "no permit policy matched" => "no permit",
                                MacOutcome::Deny { .. } => "forbid",
                            });
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(checked, 2 * 7 * 3 * 3 * 3 * 2);
        assert_eq!(kinds.into_iter().collect::<Vec<_>>(), ["allow", "error", "forbid", "no permit"]);
    }

    #[test]
    fn always_permits_only_unconditional_permits() {
        let always = |text: &str, action: Option<&str>| always_permits(&Policy::parse(None, text).unwrap(), action);
        assert!(always("permit (principal, action, resource);", None));
        assert!(always(r#"permit (principal, action == Action::"svc.a", resource);"#, Some("svc.a")));
        assert!(!always(r#"permit (principal, action == Action::"svc.a", resource);"#, None));
        assert!(always(r#"permit (principal, action, resource) when { context.family == "svc" };"#, Some("svc.a")));
        assert!(!always(r#"permit (principal, action, resource) when { context.family == "svc" };"#, None));
        assert!(!always(r#"permit (principal, action, resource) when { context.ring == 1 };"#, Some("svc.a")));
        assert!(!always(r#"permit (principal == Agent::"a", action, resource);"#, Some("svc.a")));
        assert!(!always(r#"permit (principal, action, resource in Resource::"r");"#, Some("svc.a")));
        assert!(!always("forbid (principal, action, resource);", None));
    }

    #[test]
    fn pruned_slice_keeps_reported_slice() {
        let mac = MacPolicy::compile(&[
            ("std".to_owned(), STANDARD_POLICIES.to_owned()),
            (
                "x".to_owned(),
                r#"@id("x") forbid (principal, action == Action::"svc.a", resource) when { context.ring == 3 };"#
                    .to_owned(),
            ),
        ])
        .unwrap();
        assert_eq!(mac.slice_len("svc.a"), 4);
        assert_eq!(
            mac.evaluated_len("svc.a"),
            1,
            "fs and net defaults cannot apply to `svc`; the baseline permit always does"
        );
        assert!(mac.permits_always("svc.a") && mac.permits_always("unlisted"));
        assert_eq!(mac.slice_fields("svc.a"), ["ring"]);
        assert_eq!(mac.evaluated_len("unlisted"), mac.slice_len("unlisted") - 1, "no pruning without a known action");
    }
}
