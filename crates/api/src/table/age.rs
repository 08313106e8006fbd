//! Ages as kubectl shows them: a port of apimachinery's `duration.HumanDuration`
//! and the printers' `translateTimestampSince`.

use jiff::Timestamp;
use serde_json::Value;

/// Kubernetes' `HumanDuration` for a signed number of whole seconds.
///
/// Go truncates `d.Seconds()` toward zero; callers pass that truncated value.
/// Up to one second in the future still reads "0s" to absorb clock skew.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        return format!("{hours}h{m}m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        return format!("{}d{}h", hours / 24, h);
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        return format!("{}y{}d", hours / 24 / 365, dy);
    }
    format!("{}y", hours / 24 / 365)
}

/// Parses an RFC 3339 timestamp field (`metav1.Time` / `MicroTime`); `None`
/// when absent, null or unparsable (Go's zero time).
pub fn parse_time(v: &Value) -> Option<Timestamp> {
    v.as_str().and_then(|s| s.parse::<Timestamp>().ok())
}

/// `translateTimestampSince`: `<unknown>` for a zero time, else the age.
pub fn since(v: &Value, now: Timestamp) -> String {
    match parse_time(v) {
        Some(t) => since_ts(t, now),
        None => "<unknown>".to_string(),
    }
}

/// The age of a parsed timestamp at `now`.
pub fn since_ts(t: Timestamp, now: Timestamp) -> String {
    // SignedDuration::as_secs truncates toward zero, as Go's int(d.Seconds()).
    human_duration(now.duration_since(t).as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_duration_matches_kubernetes_table() {
        // Cases from apimachinery's duration_test.go plus the boundaries.
        let cases: &[(i64, &str)] = &[
            (-2, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (1, "1s"),
            (45, "45s"),
            (119, "119s"),
            (120, "2m"),
            (121, "2m1s"),
            (300, "5m"),
            (310, "5m10s"),
            (599, "9m59s"),
            (600, "10m"),
            (601, "10m"),
            (3 * 3600 - 1, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 60, "3h1m"),
            (8 * 3600 - 1, "7h59m"),
            (8 * 3600, "8h"),
            (48 * 3600 - 1, "47h"),
            (48 * 3600, "2d"),
            (51 * 3600, "2d3h"),
            (8 * 86400 - 1, "7d23h"),
            (8 * 86400, "8d"),
            (10 * 86400, "10d"),
            (2 * 365 * 86400 - 1, "729d"),
            (2 * 365 * 86400, "2y"),
            (2 * 365 * 86400 + 86400, "2y1d"),
            (8 * 365 * 86400 - 1, "7y364d"),
            (8 * 365 * 86400, "8y"),
            (10 * 365 * 86400, "10y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(*secs), *want, "{secs}s");
        }
    }

    #[test]
    fn since_reads_rfc3339_and_reports_unknown() {
        let now: Timestamp = "2026-12-04T12:05:10Z".parse().unwrap();
        assert_eq!(since(&Value::from("2026-12-04T12:00:00Z"), now), "5m10s");
        assert_eq!(since(&Value::Null, now), "<unknown>");
        assert_eq!(since(&Value::from("garbage"), now), "<unknown>");
        // A micro-time with fractional seconds, 1.5s in the future: "0s".
        assert_eq!(
            since(&Value::from("2026-12-04T12:05:11.500000Z"), now),
            "0s"
        );
    }
}
