//! The schema both record targets decode into: every column type (nested structs and
//! lists, decimals, timestamps).

pub const SCHEMA: &str = r#"{"properties": {
    "id": {"type": "integer"}, "x": {"type": ["null", "number"]}, "ok": {"type": "boolean"},
    "s": {"type": "string"}, "ts": {"type": "string", "format": "date-time"},
    "d": {"type": "string", "format": "date"}, "t": {"type": "string", "format": "time"},
    "j": {}, "price": {"type": "number", "multipleOf": 0.01},
    "big": {"type": "number", "multipleOf": 1, "maximum": 1e60},
    "o": {"type": "object", "properties": {"a": {"type": "integer"},
          "b": {"type": "array", "items": {"type": "object", "properties": {"c": {"type": "string"}}}}}}}}"#;
