//! The settings an error message suggests, written as the exact JSON to paste into a
//! config file: `"inexact_numbers": "warn"`, or
//! `"column_types": {"public-orders": {"big": "decimal(38,0)"}}` for the stream and
//! column at hand.
//!
//! Owns: the snippet forms, and the mark with which `values` (which sees a value but
//! not its stream or column) asks for a `column_types` snippet that `batch` fills in.
//! Must not touch: which type fits a value (`values` decides) or which column a field
//! is (`schema`).

use serde_json::{Value, json};

/// `"key": value`, one setting as a config file spells it.
pub fn setting(key: &str, value: Value) -> String {
    format!("{}: {value}", json!(key))
}

/// `"column_types": {"<stream>": {"<column>": "<type>"}}`.
pub fn column_type(stream: &str, column: &str, ty: &str) -> String {
    let (stream, column, ty) = (json!(stream), json!(column), json!(ty));
    format!("\"column_types\": {{{stream}: {{{column}: {ty}}}}}")
}

/// Stands for a column type snippet in a reason from `values`; `fill` replaces it.
const MARK: char = '\u{1}';

/// A `column_types` snippet of `ty` for the column being decoded, to be filled in.
pub fn column_type_mark(ty: &str) -> String {
    format!("{MARK}{ty}{MARK}")
}

/// Replaces each mark in `message` with its snippet for `stream` and `column`. When
/// `whole` is false the field is inside the column (a struct or list that is not
/// flattened), which only a type for the whole value reaches: `json` keeps it exactly.
pub fn fill(message: &str, stream: &str, column: &str, whole: bool) -> String {
    let mut out = String::with_capacity(message.len());
    let mut pieces = message.split(MARK);
    out.push_str(pieces.next().unwrap_or_default());
    while let Some(ty) = pieces.next() {
        out.push_str(&column_type(
            stream,
            column,
            if whole { ty } else { "json" },
        ));
        out.push_str(pieces.next().unwrap_or_default());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every snippet is valid JSON once wrapped in braces, as a config file holds it.
    fn as_config(snippet: &str) -> Value {
        serde_json::from_str(&format!("{{{snippet}}}")).unwrap()
    }

    #[test]
    fn snippets_are_config_json() {
        assert_eq!(
            setting("inexact_numbers", json!("warn")),
            r#""inexact_numbers": "warn""#
        );
        assert_eq!(
            setting("validate_records", json!(false)),
            r#""validate_records": false"#
        );
        let snippet = column_type("public-orders", "big", "decimal(38,0)");
        assert_eq!(
            snippet,
            r#""column_types": {"public-orders": {"big": "decimal(38,0)"}}"#
        );
        assert_eq!(
            as_config(&snippet)["column_types"]["public-orders"]["big"],
            "decimal(38,0)"
        );
        // Names that need escaping stay valid JSON.
        let odd = column_type("a\"b", "c\\d", "string");
        assert_eq!(as_config(&odd)["column_types"]["a\"b"]["c\\d"], "string");
    }

    #[test]
    fn marks_are_filled_with_the_stream_and_column() {
        let reason = format!(
            "beyond int64; set {} to keep it",
            column_type_mark("decimal(38,0)")
        );
        assert_eq!(
            fill(&reason, "s", "n", true),
            r#"beyond int64; set "column_types": {"s": {"n": "decimal(38,0)"}} to keep it"#
        );
        assert_eq!(
            fill(&reason, "s", "o", false),
            r#"beyond int64; set "column_types": {"s": {"o": "json"}} to keep it"#
        );
        assert_eq!(fill("no mark", "s", "c", true), "no mark");
    }
}
