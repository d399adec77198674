//! Small helpers shared by every part: wall-clock time in milliseconds and RFC 3339,
//! duration parsing, random secrets and their hashes, retry delays with jitter, and a
//! poison-tolerant mutex lock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use rand::Rng;
use sha2::{Digest, Sha256};

/// Milliseconds since the Unix epoch (wall clock; what is stored and shown).
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// RFC 3339 in UTC with milliseconds, e.g. `2026-02-16T16:00:00.123Z`. Years 0 to 9999
/// are written directly (a node list of 10,000 nodes writes 20,000 of these); others
/// through `time`.
pub fn rfc3339(ms: i64) -> String {
    const LAST: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
    const FIRST: i64 = -62_167_219_200_000; // 0000-01-01T00:00:00.000Z
    if !(FIRST..=LAST).contains(&ms) {
        return rfc3339_by_time(ms);
    }
    let (days, in_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Howard Hinnant's civil_from_days: the proleptic Gregorian date of a day number.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (hour, minute) = (in_day / 3_600_000, in_day / 60_000 % 60);
    let (second, milli) = (in_day / 1000 % 60, in_day % 1000);
    let mut text = [0u8; 24];
    let mut put = |at: usize, value: i64, digits: usize| {
        let mut v = value;
        for i in (0..digits).rev() {
            text[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, year, 4);
    put(5, month, 2);
    put(8, day, 2);
    put(11, hour, 2);
    put(14, minute, 2);
    put(17, second, 2);
    put(20, milli, 3);
    for (at, c) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':'), (19, b'.'), (23, b'Z')] {
        text[at] = c;
    }
    String::from_utf8_lossy(&text).into_owned()
}

fn rfc3339_by_time(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => {
            let format = time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            );
            t.format(&format).unwrap_or_else(|_| ms.to_string())
        }
        Err(_) => ms.to_string(),
    }
}

/// Parses RFC 3339 back to milliseconds.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// A duration: plain seconds (`90`, `1.5`) or humantime text (`90s`, `10m`, `2h 30m`, `500ms`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|_| format!("`{text}` is not a valid number of seconds"));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration ({e}); write seconds (90) or 90s, 10m, 2h"))
}

/// "12s ago", "5m ago", "3h ago", "2d ago" for a moment in the past (ms since epoch).
pub fn ago(then_ms: i64, now_ms: i64) -> String {
    format!("{} ago", short_duration(Duration::from_millis((now_ms - then_ms).max(0) as u64)))
}

/// "850ms", "12s", "5m", "3h", "2d".
pub fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s == 0 && d.as_millis() > 0 {
        format!("{}ms", d.as_millis())
    } else if s < 120 {
        format!("{s}s")
    } else if s < 2 * 3600 {
        format!("{}m", s / 60)
    } else if s < 2 * 86400 {
        format!("{}h", s / 3600)
    } else {
        format!("{}d", s / 86400)
    }
}

/// A new secret: 32 random bytes (256 bits), URL-safe base64 without padding (43 chars),
/// starting with a letter or digit (a token that starts with `-` reads as a flag in
/// `--token <value>`).
pub fn new_secret() -> String {
    loop {
        let mut bytes = [0u8; 32];
        rand::rng().fill(&mut bytes);
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        if secret.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return secret;
        }
    }
}

/// SHA-256 of a secret, hex: what the store keeps instead of the secret itself.
pub fn hash_secret(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Bytes as lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// Constant-time equality of two strings (length is not secret).
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Exponential backoff with jitter: `base * 2^(n-1)` capped at `max`, then scaled by a
/// random factor in [0.5, 1.0] so that many clients do not retry in step.
pub fn backoff(base: Duration, max: Duration, n: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << n.saturating_sub(1).min(20));
    let capped = exp.min(max);
    capped.mul_f64(rand::rng().random_range(0.5..=1.0))
}

/// Locks a std mutex even if a panicking thread poisoned it (release builds abort on panic,
/// so this only matters in tests). Callers never hold the guard across an `.await`.
pub fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A new task id: `task_` and a time-ordered UUID (v7) in hex.
pub fn new_task_id() -> String {
    format!("task_{}", uuid::Uuid::now_v7().simple())
}

/// The candidate nearest to a misspelt `name` ("did you mean"), when one is close enough:
/// at most a third of the name's length in edits (at least one; swapping two neighbours
/// is one edit).
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (strsim::osa_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The direct formatting writes what `time` writes, over every year it covers and
        /// past both ends.
        #[test]
        fn rfc3339_writes_what_time_writes(ms in -62_200_000_000_000i64..253_500_000_000_000) {
            proptest::prop_assert_eq!(rfc3339(ms), rfc3339_by_time(ms));
        }
    }

    #[test]
    fn hex_writes_two_lower_case_digits_per_byte() {
        let all: Vec<u8> = (0..=255).collect();
        let by_format: String = all.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex(&all), by_format);
        assert_eq!(hash_secret("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn rfc3339_at_the_edges() {
        for ms in [0, -1, 1, 951_782_400_000, 253_402_300_799_999, -62_167_219_200_000, 1_709_164_800_000] {
            assert_eq!(rfc3339(ms), rfc3339_by_time(ms), "{ms}");
        }
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_825_600_000), "2000-02-29T12:00:00.000Z");
    }

    #[test]
    fn rfc3339_round_trips() {
        let ms = 1_771_257_600_123;
        let text = rfc3339(ms);
        assert_eq!(text, "2026-02-16T16:00:00.123Z");
        assert_eq!(parse_rfc3339(&text), Some(ms));
    }

    #[test]
    fn the_closest_name_is_suggested_when_near() {
        assert_eq!(closest("ecoh", ["echo", "summarize"]), Some("echo"));
        assert_eq!(closest("prot", ["host", "port"]), Some("port"));
        assert_eq!(closest("transcribe", ["echo", "summarize"]), None);
        assert_eq!(closest("x", Vec::<&str>::new()), None);
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").unwrap_err().contains("soon"));
    }

    #[test]
    fn secrets_are_long_and_url_safe() {
        let s = new_secret();
        assert_eq!(s.len(), 43);
        assert!(s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_ne!(s, new_secret());
        assert!((0..500).all(|_| new_secret().starts_with(|c: char| c.is_ascii_alphanumeric())));
        assert_eq!(hash_secret("x").len(), 64);
        assert!(constant_time_eq("abc", "abc") && !constant_time_eq("abc", "abd") && !constant_time_eq("a", "ab"));
    }

    #[test]
    fn backoff_grows_and_caps() {
        let base = Duration::from_secs(2);
        let max = Duration::from_secs(300);
        for n in 1..30 {
            let d = backoff(base, max, n);
            let full = base.saturating_mul(1 << (n - 1).min(20)).min(max);
            assert!(d <= full && d >= full / 2, "attempt {n}: {d:?} vs {full:?}");
        }
    }
}
