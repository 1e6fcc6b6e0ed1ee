//! The one parser for the UTC times that requests name: init times on the command line,
//! in job submissions and batch files, and the range of a scheduler backfill.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};

/// The accepted time forms, as error messages and help text state them.
pub const TIME_FORMS: &str = "an RFC 3339 time such as 1996-01-16T00:00:00Z (an offset \
     such as +01:00 is converted to UTC), or a UTC time without offset: 1996-01-16 \
     (00:00), 1996-01-16T06, 1996-01-16T06:00 or 1996-01-16 06:00:00";

/// Formats of a date and time without offset, read as UTC.
const NAIVE_FORMATS: [&str; 4] = [
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
];

/// Parses a time in any of the [`TIME_FORMS`]. A date alone is 00:00 UTC, and a date
/// and time without offset is UTC. The error names the text and the accepted forms.
pub fn parse_utc_time(text: &str) -> Result<DateTime<Utc>, String> {
    let trimmed = text.trim();
    // chrono's own parser takes RFC 3339 and also a space between date and time.
    if let Ok(time) = trimmed.parse::<DateTime<Utc>>() {
        return Ok(time);
    }
    for format in NAIVE_FORMATS {
        if let Ok(time) = NaiveDateTime::parse_from_str(trimmed, format) {
            return Ok(time.and_utc());
        }
    }
    if let Some(time) = parse_date_and_hour(trimmed) {
        return Ok(time);
    }
    Err(format!(
        "invalid time {}: use {TIME_FORMS}",
        quote_input(text)
    ))
}

/// Maximum number of characters of a request value that an error message repeats.
pub const MAX_ECHOED_CHARS: usize = 64;

/// Quotes a request value for an error message. A value longer than
/// [`MAX_ECHOED_CHARS`] characters is cut there, with an ellipsis and its length, so
/// that a huge value does not flood logs and responses.
pub fn quote_input(text: &str) -> String {
    let length = text.chars().count();
    if length <= MAX_ECHOED_CHARS {
        return format!("{text:?}");
    }
    let prefix: String = text.chars().take(MAX_ECHOED_CHARS).collect();
    format!("{prefix:?}... ({length} characters, the first {MAX_ECHOED_CHARS} shown)")
}

/// Parses `YYYY-MM-DD` and `YYYY-MM-DDTHH`. chrono's format parser needs the minutes of
/// a time, so the hour-only form is split by hand.
fn parse_date_and_hour(text: &str) -> Option<DateTime<Utc>> {
    let (date, hour) = match text.split_once('T') {
        Some((date, hour)) => (date, Some(hour)),
        None => (text, None),
    };
    let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    let time = match hour {
        None => NaiveTime::MIN,
        Some(hour) if (1..=2).contains(&hour.len()) && hour.bytes().all(|b| b.is_ascii_digit()) => {
            NaiveTime::from_hms_opt(hour.parse().ok()?, 0, 0)?
        }
        Some(_) => return None,
    };
    Some(date.and_time(time).and_utc())
}

/// `#[serde(deserialize_with = "...")]` for a `DateTime<Utc>` field read with
/// [`parse_utc_time`]. Serialization stays chrono's RFC 3339.
pub fn deserialize_utc_time<'de, D>(deserializer: D) -> Result<DateTime<Utc>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    deserializer.deserialize_str(UtcTimeVisitor)
}

struct UtcTimeVisitor;

impl serde::de::Visitor<'_> for UtcTimeVisitor {
    type Value = DateTime<Utc>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(formatter, "a time as a string: {TIME_FORMS}")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
        parse_utc_time(text).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn utc(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(1996, 1, day, hour, minute, 0).unwrap()
    }

    #[test]
    fn accepted_forms() {
        let cases = [
            ("1996-01-16T00:00:00Z", utc(16, 0, 0)),
            ("1996-01-16T06:00:00+00:00", utc(16, 6, 0)),
            ("1996-01-16T07:00:00+01:00", utc(16, 6, 0)),
            ("1996-01-16 06:00:00Z", utc(16, 6, 0)),
            ("1996-01-16", utc(16, 0, 0)),
            ("1996-01-16T06", utc(16, 6, 0)),
            ("1996-01-16T6", utc(16, 6, 0)),
            ("1996-01-16T06:30", utc(16, 6, 30)),
            ("1996-01-16 06:30", utc(16, 6, 30)),
            ("1996-01-16 06:30:00", utc(16, 6, 30)),
            (" 1996-01-16 ", utc(16, 0, 0)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_utc_time(text), Ok(expected), "{text:?}");
        }
    }

    #[test]
    fn rejected_forms_name_value_and_forms() {
        for text in [
            "",
            "1996-01-32",
            "1996-13-16",
            "1996-01-16T24",
            "1996-01-16T",
            "1996-01-16T006",
            "16/01/1996",
            "yesterday",
        ] {
            let err = parse_utc_time(text).unwrap_err();
            assert!(err.contains(&format!("{text:?}")), "{err}");
            assert!(err.contains("1996-01-16T00:00:00Z"), "{err}");
            assert!(err.contains("1996-01-16T06"), "{err}");
        }
    }

    #[test]
    fn long_value_cut_in_error() {
        let text = "9".repeat(100_000);
        let err = parse_utc_time(&text).unwrap_err();
        assert!(err.len() < 1_000, "{} bytes", err.len());
        let shown = format!("\"{}\"...", "9".repeat(MAX_ECHOED_CHARS));
        assert!(err.contains(&shown), "{err}");
        assert!(
            err.contains("(100000 characters, the first 64 shown)"),
            "{err}"
        );
        assert!(err.contains("1996-01-16T00:00:00Z"), "{err}");
        let exact = "x".repeat(MAX_ECHOED_CHARS);
        assert_eq!(quote_input(&exact), format!("{exact:?}"));
    }

    #[test]
    fn serde_field_uses_parser() {
        #[derive(serde::Deserialize)]
        struct Body {
            #[serde(deserialize_with = "deserialize_utc_time")]
            time: DateTime<Utc>,
        }
        let body: Body = serde_json::from_str(r#"{"time": "1996-01-16"}"#).unwrap();
        assert_eq!(body.time, utc(16, 0, 0));
        let err = serde_json::from_str::<Body>(r#"{"time": "1996-01-32"}"#)
            .err()
            .unwrap();
        assert!(err.to_string().contains("1996-01-16T00:00:00Z"), "{err}");
        let err = serde_json::from_str::<Body>(r#"{"time": 19960116}"#)
            .err()
            .unwrap();
        assert!(err.to_string().contains("as a string"), "{err}");
    }
}
