//! Messages and field paths of JSON decoding errors, in the words of JSON rather than of
//! Rust, shared by the job and schedule routes. The type names come from
//! [`gridcast_models::json_type_names`], which manifest errors use as well.

/// Gives the JSON path of the field a `serde_path_to_error` error is about, from its
/// path and message. serde reports a missing or duplicate field at the enclosing object
/// and names it in backticks in the message, so the name is appended. An unknown or
/// mistyped field is already the last segment of the path. `None` means the whole body.
pub fn json_field_path(path: &str, message: &str) -> Option<String> {
    let parent = if path == "." { "" } else { path };
    let named = ["missing field `", "duplicate field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix));
    if let Some(rest) = named {
        let name = rest.split('`').next().unwrap_or("");
        return Some(if parent.is_empty() {
            name.to_owned()
        } else {
            format!("{parent}.{name}")
        });
    }
    (!parent.is_empty()).then(|| parent.to_owned())
}

/// Names the kind of JSON value a syntactically valid body contains, from its first
/// character: "an object", "an array", "a string", "null", "a boolean" or "a number".
pub fn json_value_kind(body: &[u8]) -> &'static str {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b'n') => "null",
        Some(b't' | b'f') => "a boolean",
        _ => "a number",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_kind_from_first_character() {
        for (body, kind) in [
            (" {\"a\": 1}", "an object"),
            ("[1]", "an array"),
            ("\"x\"", "a string"),
            ("null", "null"),
            ("true", "a boolean"),
            ("-1.5", "a number"),
        ] {
            assert_eq!(json_value_kind(body.as_bytes()), kind, "{body}");
        }
    }
}
