//! Serde messages in the words of JSON rather than of Rust, for manifest errors here
//! and, through the engine, for the HTTP routes' body errors.

/// Rewrites the Rust type names in a serde message as JSON types: "expected u32"
/// becomes "expected a whole number from 0 to 4294967295".
pub fn json_type_names(message: &str) -> String {
    const NAMES: [(&str, &str); 16] = [
        ("expected u8", "expected a whole number from 0 to 255"),
        ("expected u16", "expected a whole number from 0 to 65535"),
        (
            "expected u32",
            "expected a whole number from 0 to 4294967295",
        ),
        ("expected u64", "expected a whole number of 0 or more"),
        ("expected usize", "expected a whole number of 0 or more"),
        ("expected isize", "expected a whole number"),
        (
            "expected i32",
            "expected a whole number from -2147483648 to 2147483647",
        ),
        ("expected i64", "expected a whole number"),
        ("expected f32", "expected a number"),
        ("expected f64", "expected a number"),
        ("expected a sequence", "expected an array"),
        ("expected a map", "expected an object"),
        ("invalid type: sequence", "invalid type: array"),
        ("invalid type: map", "invalid type: object"),
        ("floating point `", "number `"),
        ("integer `", "number `"),
    ];
    let mut text = message.to_owned();
    for (rust, json) in NAMES {
        if let Some(at) = text.find(rust) {
            let end = at + rust.len();
            // Only whole type names: "expected u32" but not "expected u32x".
            let name_ends = rust.ends_with(|c: char| c.is_ascii_alphanumeric());
            if !(name_ends && text[end..].starts_with(|c: char| c.is_ascii_alphanumeric())) {
                text.replace_range(at..end, json);
            }
        }
    }
    if let Some(at) = text.find("expected struct ") {
        let name_end = text[at + 16..]
            .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .map_or(text.len(), |n| at + 16 + n);
        text.replace_range(at..name_end, "expected an object");
    }
    // serde reads an array into a struct field by field, and calls an array of the
    // wrong length an invalid length. In JSON words, an object was expected.
    if text.starts_with("invalid length ") && text.contains("expected an object with ") {
        let position = text
            .find(" at line ")
            .map_or(String::new(), |at| text[at..].to_owned());
        text = format!("invalid type: array, expected an object{position}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_types_get_their_range() {
        let message = "invalid value: integer `3000000000`, expected i32";
        assert_eq!(
            json_type_names(message),
            "invalid value: number `3000000000`, expected a whole number from -2147483648 to \
             2147483647"
        );
        assert_eq!(
            json_type_names("invalid type: floating point `1.5`, expected isize"),
            "invalid type: number `1.5`, expected a whole number"
        );
        // Only whole type names are rewritten.
        assert_eq!(json_type_names("expected i32x"), "expected i32x");
    }

    #[test]
    fn array_for_struct_is_type_error() {
        assert_eq!(
            json_type_names("invalid length 0, expected struct Manifest with 13 elements"),
            "invalid type: array, expected an object"
        );
        assert_eq!(
            json_type_names(
                "invalid length 1, expected struct Grid with 2 elements at line 1 column 9"
            ),
            "invalid type: array, expected an object at line 1 column 9"
        );
    }
}
