//! Size bounds on every list, map and string of the CRD. The API server estimates the cost of
//! the CEL rules from them (a rule over an unbounded list can make it refuse the CRD), and they
//! cap what one resource can make the operator hold, render and send. Fields with a bound of
//! their own keep it; every other one gets the defaults here.

use schemars::Schema;
use serde_json::{Value, json};

/// Default `maxItems` of a list.
pub const MAX_ITEMS: u64 = 64;
/// Default `maxProperties` of a map (labels, selectors).
pub const MAX_PROPERTIES: u64 = 64;
/// Default `maxLength` of a string.
pub const MAX_LENGTH: u64 = 1024;

/// Adds the default bounds to every list, map and string in `schema` that has none
/// (a schemars transform for the spec).
pub fn bounded(schema: &mut Schema) {
    if let Some(map) = schema.as_object_mut() {
        let mut node = Value::Object(std::mem::take(map));
        bound(&mut node);
        if let Value::Object(bounded) = node {
            *map = bounded;
        }
    }
}

fn bound(node: &mut Value) {
    let Value::Object(map) = node else { return };
    let is = |map: &serde_json::Map<String, Value>, t: &str| {
        map.get("type")
            .is_some_and(|v| v == t || v.as_array().is_some_and(|a| a.contains(&json!(t))))
    };
    if is(map, "array") && !map.contains_key("maxItems") {
        map.insert("maxItems".into(), json!(MAX_ITEMS));
    }
    if is(map, "string")
        && !map.contains_key("maxLength")
        && !map.contains_key("enum")
        && !map.contains_key("format")
    {
        map.insert("maxLength".into(), json!(MAX_LENGTH));
    }
    if is(map, "object")
        && map
            .get("additionalProperties")
            .is_some_and(Value::is_object)
        && !map.contains_key("maxProperties")
    {
        map.insert("maxProperties".into(), json!(MAX_PROPERTIES));
    }
    if let Some(Value::Object(properties)) = map.get_mut("properties") {
        properties.values_mut().for_each(bound);
    }
    for key in ["items", "additionalProperties"] {
        if let Some(child) = map.get_mut(key) {
            bound(child);
        }
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(Value::Array(children)) = map.get_mut(key) {
            children.iter_mut().for_each(bound);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_missing_bounds_and_keeps_given_ones() {
        let mut schema = Schema::try_from(json!({
            "type": "object",
            "properties": {
                "a": {"type": "array", "items": {"type": "string"}},
                "b": {"type": "string", "maxLength": 5},
                "c": {"type": "object", "additionalProperties": {"type": "string"}},
                "d": {"type": "string", "enum": ["x"]}
            }
        }))
        .unwrap();
        bounded(&mut schema);
        let v = schema.as_value();
        assert_eq!(v["properties"]["a"]["maxItems"], MAX_ITEMS);
        assert_eq!(v["properties"]["a"]["items"]["maxLength"], MAX_LENGTH);
        assert_eq!(v["properties"]["b"]["maxLength"], 5);
        assert_eq!(v["properties"]["c"]["maxProperties"], MAX_PROPERTIES);
        assert_eq!(
            v["properties"]["c"]["additionalProperties"]["maxLength"],
            MAX_LENGTH
        );
        assert!(v["properties"]["d"].get("maxLength").is_none());
    }
}
