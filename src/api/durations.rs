//! Durations as written in the spec: the subset common to Prometheus and Go (`1h30m`, `15s`,
//! `500ms`), so the API server's CEL `duration()` and Prometheus both accept every value.

use std::time::Duration;

/// The schema pattern every duration field carries (kept equal to the literal in the derive
/// attributes by a test).
pub const DURATION_PATTERN: &str = r"^(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?$";

/// Parses `1h30m`, `15s`, `500ms` (units in descending order, each at most once).
pub fn parse_duration(text: &str) -> Option<Duration> {
    const UNITS: [(&str, u64); 4] = [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];
    if text.is_empty() {
        return None;
    }
    let mut rest = text;
    let mut millis: u64 = 0;
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let value: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        // "ms" must be tried before "m".
        let (index, unit, factor) = UNITS
            .iter()
            .enumerate()
            .skip(next_unit)
            .filter(|(_, (unit, _))| rest.starts_with(unit))
            .max_by_key(|(_, (unit, _))| unit.len())
            .map(|(i, (u, f))| (i, *u, *f))?;
        millis = millis.checked_add(value.checked_mul(factor)?)?;
        rest = &rest[unit.len()..];
        next_unit = index + 1;
    }
    Some(Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_common_forms() {
        assert_eq!(parse_duration("15s"), Some(Duration::from_secs(15)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(
            parse_duration("1m30s500ms"),
            Some(Duration::from_millis(90_500))
        );
    }

    #[test]
    fn rejects_malformed_durations() {
        for bad in [
            "",
            "15",
            "s",
            "5 minutes",
            "1d",
            "30s1m",
            "1m1m",
            "-5s",
            "1.5s",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?} should be rejected");
        }
    }
}
