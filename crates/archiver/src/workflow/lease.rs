//! Taking, renewing and releasing a lease (see [`crate::domain::lease`]):
//! the group's, which every run holds, and the account-wide run's (see
//! [`super::groups`]), both through [`acquire_key`] and [`release_key`].

use bytes::Bytes;

use super::Clients;
use crate::domain::input::RunSettings;
use crate::domain::layout::GroupLayout;
use crate::domain::lease::{LEASE_TTL_MS, Lease, rfc3339};
use crate::error::{ArchiverError, Result};
use crate::store::{Versioned, WriteCondition};

/// How often a conditional write is tried again after another writer won
/// the race; each try reads the lease first, so this only bounds a storm.
const CAS_TRIES: u32 = 8;

/// What taking the lease gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// This run holds the group.
    Held,
    /// Another run holds it.
    Busy(Lease),
}

/// The lease kept changing under our conditional writes: transient, the
/// state machine retries the step.
fn contended(bucket: &str, key: &str) -> ArchiverError {
    ArchiverError::Service {
        operation: "PutObject",
        message: format!("the lease s3://{bucket}/{key} kept changing under {CAS_TRIES} conditional writes"),
        retryable: true,
    }
}

fn encode(lease: &Lease) -> Result<Bytes> {
    serde_json::to_vec_pretty(lease)
        .map(Bytes::from)
        .map_err(|e| ArchiverError::Internal(format!("encoding the lease: {e}")))
}

async fn read(clients: &Clients, bucket: &str, key: &str) -> Result<Option<(Lease, String)>> {
    let Some(Versioned { body, etag }) = clients.archive.get_versioned(bucket, key).await? else {
        return Ok(None);
    };
    // An unreadable lease is treated as lapsed: it was not written by this
    // release, and keeping the group blocked forever would help nobody.
    let lease = serde_json::from_slice(&body).unwrap_or_else(|_| Lease {
        run_id: "unreadable".into(),
        execution_arn: None,
        mode: String::new(),
        cutoff: String::new(),
        acquired_at: String::new(),
        expires_at: String::new(),
        released: true,
    });
    Ok(Some((lease, etag)))
}

fn new_lease(settings: &RunSettings) -> Lease {
    Lease {
        run_id: settings.run_id.clone(),
        execution_arn: settings.execution_id.clone(),
        mode: settings.mode.as_str().to_string(),
        cutoff: rfc3339(settings.cutoff_ms),
        acquired_at: String::new(),
        expires_at: String::new(),
        released: false,
    }
}

/// Takes the group's lease for the run, or says who holds it. Taking it
/// again (a retried step of the same run) renews it.
pub async fn acquire(clients: &Clients, settings: &RunSettings) -> Result<Acquired> {
    let key = GroupLayout::of(settings).lease();
    let acquired = acquire_key(
        clients,
        &settings.bucket,
        &key,
        &new_lease(settings),
        LEASE_TTL_MS,
        None,
    )
    .await?;
    if acquired == Acquired::Held {
        tracing::info!(run_id = settings.run_id, "group lease taken");
    }
    Ok(acquired)
}

/// Takes the lease at `bucket/key` for `claimant` (its `acquired_at` and
/// `expires_at` are set here, `expires_at` `ttl_ms` from now), or says who
/// holds it. A lease is taken when there is none, when the claimant already
/// holds it (a retried step renews it), when it is free (released or
/// lapsed), or when its holder is `take_over`: a run the caller found
/// ended. Of two claimants at once exactly one wins: every write is
/// conditional on the version read (S3 conditional writes).
pub async fn acquire_key(
    clients: &Clients,
    bucket: &str,
    key: &str,
    claimant: &Lease,
    ttl_ms: i64,
    take_over: Option<&str>,
) -> Result<Acquired> {
    for _ in 0..CAS_TRIES {
        let now = clients.logs.now_ms();
        let condition = match read(clients, bucket, key).await? {
            None => WriteCondition::IfAbsent,
            Some((current, etag))
                if current.run_id == claimant.run_id
                    || current.is_free(now)
                    || take_over.is_some_and(|ended| ended == current.run_id) =>
            {
                WriteCondition::IfMatch(etag)
            }
            Some((current, _)) => return Ok(Acquired::Busy(current)),
        };
        let lease = Lease {
            acquired_at: rfc3339(now),
            expires_at: rfc3339(now + ttl_ms),
            released: false,
            ..claimant.clone()
        };
        if clients
            .archive
            .put_if(bucket, key, encode(&lease)?, condition)
            .await?
            .is_some()
        {
            return Ok(Acquired::Held);
        }
    }
    Err(contended(bucket, key))
}

/// Checks that the run still holds the group, renewing the lease once less
/// than half of it is left. Every step calls it before it touches anything.
pub async fn confirm(clients: &Clients, settings: &RunSettings) -> Result<()> {
    let key = GroupLayout::of(settings).lease();
    let bucket = &settings.bucket;
    for _ in 0..CAS_TRIES {
        let now = clients.logs.now_ms();
        let (current, etag) = match read(clients, bucket, &key).await? {
            Some((lease, etag)) if lease.run_id == settings.run_id && !lease.released => (lease, etag),
            other => {
                return Err(ArchiverError::LeaseLost {
                    group: settings.log_group_name.clone(),
                    holder: other.map_or_else(|| "nobody".into(), |(lease, _)| lease.run_id),
                });
            }
        };
        if !current.needs_renewal(now) {
            return Ok(());
        }
        let renewed = current.renewed(now);
        let written = clients
            .archive
            .put_if(bucket, &key, encode(&renewed)?, WriteCondition::IfMatch(etag))
            .await?;
        if written.is_some() {
            return Ok(());
        }
    }
    Err(contended(bucket, &key))
}

/// Lets the group go, if the run still holds it.
pub async fn release(clients: &Clients, settings: &RunSettings) -> Result<()> {
    let key = GroupLayout::of(settings).lease();
    if release_key(clients, &settings.bucket, &key, &settings.run_id).await? {
        tracing::info!(run_id = settings.run_id, "group lease released");
    }
    Ok(())
}

/// Releases the lease at `bucket/key` if `run_id` still holds it; says
/// whether this call released it.
pub async fn release_key(clients: &Clients, bucket: &str, key: &str, run_id: &str) -> Result<bool> {
    for _ in 0..CAS_TRIES {
        let Some((current, etag)) = read(clients, bucket, key).await? else {
            return Ok(false);
        };
        if current.run_id != run_id || current.released {
            return Ok(false);
        }
        let released = Lease {
            released: true,
            ..current
        };
        let written = clients
            .archive
            .put_if(bucket, key, encode(&released)?, WriteCondition::IfMatch(etag))
            .await?;
        if written.is_some() {
            return Ok(true);
        }
    }
    Err(contended(bucket, key))
}
