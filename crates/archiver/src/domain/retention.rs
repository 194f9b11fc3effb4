//! Retention policies: the values CloudWatch Logs accepts, and the smallest
//! one that keeps what must stay.

/// The values PutRetentionPolicy accepts, in days (the PutRetentionPolicy
/// API reference); any other value is an InvalidParameterException.
pub const RETENTION_DAYS: [i32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
];

/// The smallest valid retention of at least `days`, or `None` above the
/// largest (3,653 days: then only no retention at all keeps the events).
pub fn smallest_valid_at_least(days: i64) -> Option<i32> {
    RETENTION_DAYS.iter().copied().find(|&valid| i64::from(valid) >= days)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_up_to_a_valid_value() {
        assert_eq!(smallest_valid_at_least(0), Some(1));
        assert_eq!(smallest_valid_at_least(1), Some(1));
        assert_eq!(smallest_valid_at_least(31), Some(60));
        assert_eq!(smallest_valid_at_least(3653), Some(3653));
        assert_eq!(smallest_valid_at_least(3654), None);
    }
}
