//! One run per group at a time: the lease a run holds in S3.
//!
//! The lease is an object (`@lease.json`) taken with a conditional create
//! (`If-None-Match: *`) and renewed or released with a compare-and-swap
//! (`If-Match`), which S3 applies atomically: of two runs that try at once,
//! exactly one gets it. A lease that expired (its run stopped renewing it: it
//! was stopped, or timed out) or that its run released may be taken over.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How long a lease lasts without renewal. Every step of a run renews it once
/// less than half is left, and no step lasts longer than a Lambda invocation
/// (15 minutes) or a Wait between export polls (at most an hour), so a live
/// run never loses its lease; a run that was stopped frees the group after
/// this long at the latest (`cwl-archiver stop` frees it at once).
pub const LEASE_TTL_MS: i64 = 2 * 3_600_000;

/// The lease object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    /// The run holding it (its execution name).
    pub run_id: String,
    /// Its execution, to follow or stop it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_arn: Option<String>,
    /// Its mode.
    pub mode: String,
    /// Its cutoff, RFC 3339.
    pub cutoff: String,
    /// When it took the lease, RFC 3339.
    pub acquired_at: String,
    /// When the lease lapses unless renewed, RFC 3339.
    pub expires_at: String,
    /// Whether the run let it go (it ended).
    #[serde(default)]
    pub released: bool,
}

impl Lease {
    /// When the lease lapses (ms); an unreadable time counts as lapsed.
    pub fn expires_at_ms(&self) -> i64 {
        DateTime::parse_from_rfc3339(&self.expires_at).map_or(i64::MIN, |t| t.timestamp_millis())
    }

    /// Whether another run may take it at `now_ms`.
    pub fn is_free(&self, now_ms: i64) -> bool {
        self.released || self.expires_at_ms() <= now_ms
    }

    /// Whether its holder should renew it now.
    pub fn needs_renewal(&self, now_ms: i64) -> bool {
        self.expires_at_ms() - now_ms < LEASE_TTL_MS / 2
    }

    /// The same lease, renewed from `now_ms`.
    pub fn renewed(&self, now_ms: i64) -> Lease {
        Lease {
            expires_at: rfc3339(now_ms + LEASE_TTL_MS),
            ..self.clone()
        }
    }
}

/// A time in ms as RFC 3339 (UTC, milliseconds).
pub fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(expires_ms: i64) -> Lease {
        Lease {
            run_id: "r".into(),
            execution_arn: None,
            mode: "rebuild".into(),
            cutoff: rfc3339(0),
            acquired_at: rfc3339(0),
            expires_at: rfc3339(expires_ms),
            released: false,
        }
    }

    #[test]
    fn a_lease_is_free_once_expired_or_released() {
        let now = 1_800_000_000_000;
        assert!(!lease(now + 1).is_free(now));
        assert!(lease(now).is_free(now));
        assert!(
            Lease {
                released: true,
                ..lease(now + LEASE_TTL_MS)
            }
            .is_free(now)
        );
        assert!(
            Lease {
                expires_at: "garbage".into(),
                ..lease(0)
            }
            .is_free(now)
        );
    }

    #[test]
    fn renewal_starts_when_half_the_lease_is_left() {
        let now = 1_800_000_000_000;
        assert!(!lease(now + LEASE_TTL_MS / 2).needs_renewal(now));
        assert!(lease(now + LEASE_TTL_MS / 2 - 1).needs_renewal(now));
        assert_eq!(lease(now).renewed(now).expires_at_ms(), now + LEASE_TTL_MS);
    }
}
