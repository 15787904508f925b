//! A label selector with bounds (api layer): the schema of `metav1.LabelSelector` as the CRDs
//! admit it — at most 16 labels and 8 expressions of 16 values, keys and values of Kubernetes'
//! own syntax and lengths, the four operators, values exactly for In/NotIn — so a selector is
//! refused at admission, naming the field, instead of being reported unusable later, and no object
//! grows without bound through one.

use schemars::{Schema, SchemaGenerator, json_schema};

/// A qualified label key: an optional DNS-subdomain prefix (at most 253) and `/`, then a name of at
/// most 63 that starts and ends alphanumeric.
pub const KEY_PATTERN: &str =
    r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$";
/// A label value: empty, or at most 63 that start and end alphanumeric.
pub const VALUE_PATTERN: &str = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$";

/// The bounded schema of an optional `LabelSelector` field (`schema_with`).
pub fn bounded(_: &mut SchemaGenerator) -> Schema {
    let key = json_schema!({ "type": "string", "minLength": 1, "maxLength": 317, "pattern": KEY_PATTERN });
    let value = json_schema!({ "type": "string", "maxLength": 63, "pattern": VALUE_PATTERN });
    json_schema!({
        "type": "object",
        "description": "A label selector: matchLabels and matchExpressions (In, NotIn, Exists, DoesNotExist), all of which must hold.",
        "properties": {
            "matchLabels": {
                "type": "object",
                "maxProperties": 16,
                "additionalProperties": value,
                // Map keys have no schema of their own: CEL checks their syntax.
                "x-kubernetes-validations": [{
                    "rule": format!("self.all(k, size(k) <= 317 && k.matches('{KEY_PATTERN}'))"),
                    "message": "matchLabels keys must be label keys: an optional DNS prefix and '/', then at most 63 of [A-Za-z0-9_.-], alphanumeric at both ends",
                }],
            },
            "matchExpressions": {
                "type": "array",
                "maxItems": 8,
                "items": {
                    "type": "object",
                    "required": ["key", "operator"],
                    "properties": {
                        "key": key,
                        "operator": { "type": "string", "enum": ["In", "NotIn", "Exists", "DoesNotExist"] },
                        "values": { "type": "array", "maxItems": 16, "items": value },
                    },
                    "x-kubernetes-validations": [{
                        "rule": "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0) : (!has(self.values) || size(self.values) == 0)",
                        "message": "In and NotIn need values; Exists and DoesNotExist take none",
                    }],
                },
            },
        },
    })
}
