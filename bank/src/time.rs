//! Timestamps are stored as RFC 3339 text in UTC with millisecond precision and a `Z`
//! suffix. That fixed width makes text order equal time order in SQL.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::BankError;

pub fn to_text(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn from_text(field: &str, text: &str) -> Result<DateTime<Utc>, BankError> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|err| BankError::InvalidValue {
            field: field.to_string(),
            message: format!("{text:?} is not an RFC 3339 time: {err}"),
        })
}
