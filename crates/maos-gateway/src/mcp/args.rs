//! Tool arguments ⇄ intent arguments. The DSC checks intent arguments
//! (provenance, constraints), the log keeps them, and crash recovery re-runs
//! from them, so the tool call must be rebuilt from the intent alone.
//!
//! Top-level strings, integers and booleans map to themselves; anything else
//! (objects, arrays, floats, null) is kept as its JSON text under the name
//! `<arg>.json`, which the intent's name rules allow and tool argument names
//! never end with. Every bound of `maos_model::Intent` applies (an argument
//! string is at most `ARG_VALUE_BYTES_MAX`).

use maos_model::ArgValue;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

const JSON_SUFFIX: &str = ".json";

/// The intent arguments for a tool call.
///
/// # Errors
/// A message naming an argument whose name an intent cannot carry.
pub fn to_intent(arguments: &Map<String, Value>) -> Result<BTreeMap<String, ArgValue>, String> {
    let mut out = BTreeMap::new();
    for (name, value) in arguments {
        if name.ends_with(JSON_SUFFIX) {
            return Err(format!("argument `{name}`: names ending in `{JSON_SUFFIX}` are reserved"));
        }
        let (key, arg) = match value {
            Value::String(s) => (name.clone(), ArgValue::Str(s.clone())),
            Value::Bool(b) => (name.clone(), ArgValue::Bool(*b)),
            Value::Number(n) if n.as_i64().is_some() => (name.clone(), ArgValue::Int(n.as_i64().unwrap_or_default())),
            other => (format!("{name}{JSON_SUFFIX}"), ArgValue::Str(other.to_string())),
        };
        out.insert(key, arg);
    }
    Ok(out)
}

/// The tool call's arguments, rebuilt from the intent.
///
/// # Errors
/// A message if a `.json` argument does not parse (a record edited by hand).
pub fn from_intent(args: &BTreeMap<String, ArgValue>) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for (name, arg) in args {
        if let Some(base) = name.strip_suffix(JSON_SUFFIX) {
            let text = arg.as_str().ok_or_else(|| format!("argument `{name}` is not JSON text"))?;
            let value: Value = serde_json::from_str(text).map_err(|e| format!("argument `{name}`: {e}"))?;
            out.insert(base.to_owned(), value);
        } else {
            let value = match arg {
                ArgValue::Str(s) => Value::String(s.clone()),
                ArgValue::Bool(b) => Value::Bool(*b),
                ArgValue::Int(i) => Value::from(*i),
            };
            out.insert(name.clone(), value);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[a-z ]{0,12}".prop_map(Value::String),
            Just(Value::Null),
            (-1.0e6f64..1.0e6).prop_map(|f| serde_json::json!(f)),
        ]
    }

    proptest! {
        #[test]
        fn tool_arguments_survive_the_round_trip_through_an_intent(
            args in proptest::collection::btree_map("[a-z][a-z_]{0,8}", prop_oneof![leaf(), proptest::collection::vec(leaf(), 0..3).prop_map(Value::Array)], 0..6)
        ) {
            let map: Map<String, Value> = args.into_iter().collect();
            let back = from_intent(&to_intent(&map).unwrap()).unwrap();
            prop_assert_eq!(back, map);
        }
    }

    #[test]
    fn reserved_names_are_refused() {
        let map: Map<String, Value> = serde_json::from_str(r#"{"x.json": 1}"#).unwrap();
        assert!(to_intent(&map).is_err());
    }
}
