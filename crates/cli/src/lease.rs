//! The group's lease, `{prefix}/{group path}/@lease.json`: one run per group
//! at a time. The workflow takes it with `If-None-Match: *` and renews and
//! releases it with `If-Match`; the command line reads it before starting a
//! run, and `stop` releases it for the execution it stopped.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{AwsFailure, CliError, CliResult};

/// The S3 root of a group's objects: `{prefix}/{group path}`.
pub fn group_root(prefix: &str, group: &str) -> String {
    format!("{}/{}", prefix.trim_matches('/'), group.trim_start_matches('/'))
}

/// The key of a group's lease.
pub fn lease_key(prefix: &str, group: &str) -> String {
    format!("{}/@lease.json", group_root(prefix, group))
}

/// The lease object (fields the command line does not know are kept when
/// it rewrites the lease).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    /// The run holding it.
    pub run_id: String,
    /// Its execution.
    #[serde(default)]
    pub execution_arn: Option<String>,
    /// Its mode.
    #[serde(default)]
    pub mode: Option<String>,
    /// Its cutoff.
    #[serde(default)]
    pub cutoff: Option<String>,
    /// When it was taken (RFC 3339).
    #[serde(default)]
    pub acquired_at: Option<String>,
    /// When it lapses unless renewed (RFC 3339).
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Whether the run let go of it.
    #[serde(default)]
    pub released: bool,
    /// Anything else the workflow writes.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl Lease {
    /// Whether a run holds it at `now`: not released and not expired.
    pub fn is_held(&self, now: DateTime<Utc>) -> bool {
        if self.released {
            return false;
        }
        match self.expires_at.as_deref().map(DateTime::parse_from_rfc3339) {
            Some(Ok(t)) => t.with_timezone(&Utc) > now,
            // A lease without a readable expiry counts as held: better to
            // say "busy" than to start a second run.
            _ => true,
        }
    }

    /// The sentence that says who holds it and how to follow or stop it.
    pub fn describe_holder(&self, group: &str) -> String {
        let since = self.acquired_at.as_deref().unwrap_or("an unknown time");
        let until = self.expires_at.as_deref().unwrap_or("unknown");
        let mode = self.mode.as_deref().unwrap_or("unknown");
        match &self.execution_arn {
            Some(arn) => format!(
                "a run of {group} is in progress: execution {arn} (run {}, mode {mode}, since {since}, lease until {until}); follow it with `cwl-archiver watch {arn}` or stop it with `cwl-archiver stop {arn}`",
                self.run_id
            ),
            None => format!(
                "a run of {group} is in progress: run {} (mode {mode}, since {since}, lease until {until}); wait for it to end",
                self.run_id
            ),
        }
    }
}

/// A lease as read, with its ETag for a conditional rewrite.
#[derive(Debug, Clone)]
pub struct ReadLease {
    /// The lease.
    pub lease: Lease,
    /// Its ETag.
    pub etag: Option<String>,
}

/// Reads the group's lease; `None` when the group has none.
pub async fn read(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> CliResult<Option<ReadLease>> {
    let out = match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => out,
        Err(e) => {
            let f = AwsFailure::of("GetObject", &e);
            if f.code() == Some("NoSuchKey") {
                return Ok(None);
            }
            if f.code() == Some("NoSuchBucket") {
                return Err(f.input(format!(
                    "--bucket {bucket}: no such bucket in this account and region; check the name and --region"
                )));
            }
            return Err(f.generic(&format!("s3://{bucket}/{key}")));
        }
    };
    let etag = out.e_tag().map(str::to_string);
    let body = out
        .body
        .collect()
        .await
        .map_err(|e| CliError::failed(format!("reading s3://{bucket}/{key}: {e}")))?
        .into_bytes();
    let lease: Lease = serde_json::from_slice(&body).map_err(|e| {
        CliError::failed(format!(
            "s3://{bucket}/{key} is not a lease ({e}); it is the workflow's: leave it, or delete it only when no run of the group is active"
        ))
    })?;
    Ok(Some(ReadLease { lease, etag }))
}

/// What releasing the lease for an execution did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Release {
    /// The lease was this execution's and is now released.
    Released,
    /// The group has no lease.
    NoLease,
    /// The lease is another run's (or already released): untouched.
    NotHeldBy,
    /// The lease changed between the read and the write: untouched.
    Changed,
}

/// Releases the group's lease if `execution_arn` holds it: rewritten with
/// `"released": true` under `If-Match` its ETag, never deleted.
pub async fn release(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, execution_arn: &str) -> CliResult<Release> {
    let Some(read) = read(s3, bucket, key).await? else {
        return Ok(Release::NoLease);
    };
    if read.lease.released || read.lease.execution_arn.as_deref() != Some(execution_arn) {
        return Ok(Release::NotHeldBy);
    }
    let mut lease = read.lease;
    lease.released = true;
    let body = serde_json::to_vec(&lease).map_err(|e| CliError::failed(format!("encoding the lease: {e}")))?;
    let mut put = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type("application/json")
        .body(body.into());
    if let Some(etag) = &read.etag {
        put = put.if_match(etag);
    }
    match put.send().await {
        Ok(_) => Ok(Release::Released),
        Err(e) => {
            let f = AwsFailure::of("PutObject", &e);
            if matches!(f.code(), Some("PreconditionFailed" | "ConditionalRequestConflict")) || f.status == Some(412) {
                Ok(Release::Changed)
            } else {
                Err(f.generic(&format!("s3://{bucket}/{key}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_until_expired_or_released() {
        let now = DateTime::parse_from_rfc3339("2026-11-24T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let lease: Lease = serde_json::from_value(serde_json::json!({
            "runId": "r", "executionArn": "arn:x", "mode": "rebuild", "cutoff": "c",
            "acquiredAt": "2026-11-24T09:00:00Z", "expiresAt": "2026-11-24T11:00:00Z",
            "released": false, "renewals": 3
        }))
        .unwrap();
        assert!(lease.is_held(now));
        assert!(!lease.is_held(now + chrono::Duration::hours(2)));
        let released = Lease {
            released: true,
            ..lease.clone()
        };
        assert!(!released.is_held(now));
        let text = serde_json::to_value(&released).unwrap();
        assert_eq!(text["renewals"], 3, "unknown fields survive a rewrite");
        assert!(lease.describe_holder("/g").contains("cwl-archiver watch arn:x"));
        assert_eq!(lease_key("p/", "/a/b"), "p/a/b/@lease.json");
    }
}
