//! A label selector with bounds (api layer): the schema of `metav1.LabelSelector` as the CRDs
//! admit it — at most 32 labels and 16 expressions of 64 values, keys and values of Kubernetes'
//! own lengths, the four operators — so a selector is refused at admission, naming the field,
//! instead of being reported unusable later, and no object grows without bound through one.

use schemars::{Schema, SchemaGenerator, json_schema};

/// The bounded schema of an optional `LabelSelector` field (`schema_with`).
pub fn bounded(_: &mut SchemaGenerator) -> Schema {
    // A qualified key: an optional DNS-subdomain prefix (253) and `/`, then a name (63).
    let key = json_schema!({ "type": "string", "minLength": 1, "maxLength": 317 });
    let value = json_schema!({ "type": "string", "maxLength": 63 });
    json_schema!({
        "type": "object",
        "description": "A label selector: matchLabels and matchExpressions (In, NotIn, Exists, DoesNotExist), all of which must hold.",
        "properties": {
            "matchLabels": {
                "type": "object",
                "maxProperties": 32,
                "additionalProperties": value,
            },
            "matchExpressions": {
                "type": "array",
                "maxItems": 16,
                "items": {
                    "type": "object",
                    "required": ["key", "operator"],
                    "properties": {
                        "key": key,
                        "operator": { "type": "string", "enum": ["In", "NotIn", "Exists", "DoesNotExist"] },
                        "values": { "type": "array", "maxItems": 64, "items": value },
                    },
                },
            },
        },
    })
}
