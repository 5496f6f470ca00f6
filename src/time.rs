//! Wall-clock timestamps as stored in the database: milliseconds since the Unix epoch.

use chrono::{DateTime, SecondsFormat, Utc};

/// Milliseconds since the Unix epoch, the unit of every `*_at` column.
pub type UnixMs = i64;

/// The current wall-clock time in milliseconds.
pub fn now_ms() -> UnixMs {
    Utc::now().timestamp_millis()
}

/// Formats a stored timestamp as RFC 3339 (UTC, millisecond precision) for API responses.
pub fn rfc3339(ms: UnixMs) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Like [`rfc3339`] for nullable columns.
pub fn rfc3339_opt(ms: Option<UnixMs>) -> Option<String> {
    ms.map(rfc3339)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_as_utc_rfc3339_with_milliseconds() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_764_028_800_123), "2025-11-25T00:00:00.123Z");
    }
}
