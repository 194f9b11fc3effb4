//! The group's retention: the guard that keeps unexported events from
//! expiring, the hand-off of retention mode, and putting back what the
//! archiver replaced (see [`crate::domain::retention`]).

use bytes::Bytes;

use super::Clients;
use crate::domain::input::{Mode, RetentionConflict, RunSettings};
use crate::domain::layout::GroupLayout;
use crate::domain::lease::rfc3339;
use crate::domain::retention::{
    RetentionChange, RetentionDays, RetentionRecord, describe, policy_for, protects, required_days,
    smallest_valid_at_least,
};
use crate::error::{ArchiverError, Result};

/// The group's retention now.
async fn current(clients: &Clients, group: &str) -> Result<RetentionDays> {
    Ok(clients
        .logs
        .describe_group(group)
        .await?
        .and_then(|g| g.retention_in_days))
}

/// Sets the group's retention (`None`: deletes the policy).
async fn set(clients: &Clients, group: &str, days: RetentionDays) -> Result<()> {
    match days {
        Some(days) => clients.logs.put_retention(group, days).await,
        None => clients.logs.delete_retention(group).await,
    }
}

async fn read_record(clients: &Clients, bucket: &str, key: &str) -> Result<Option<RetentionRecord>> {
    match clients.archive.get(bucket, key).await? {
        None => Ok(None),
        Some(body) => serde_json::from_slice(&body).map(Some).map_err(|e| {
            ArchiverError::Internal(format!(
                "the retention record s3://{bucket}/{key} is unreadable ({e}); restore it from a previous version"
            ))
        }),
    }
}

/// Changes the retention and records the value it replaced (the first time).
async fn change(
    clients: &Clients,
    settings: &RunSettings,
    from: RetentionDays,
    to: RetentionDays,
    reason: &str,
) -> Result<RetentionChange> {
    let key = GroupLayout::of(settings).retention_record();
    let previous = read_record(clients, &settings.bucket, &key)
        .await?
        .map_or(from, |r| r.previous_retention_days);
    let record = RetentionRecord {
        log_group_name: settings.log_group_name.clone(),
        previous_retention_days: previous,
        set_retention_days: to,
        reason: reason.to_string(),
        run_id: settings.run_id.clone(),
        set_at: rfc3339(clients.logs.now_ms()),
    };
    let body = serde_json::to_vec_pretty(&record).map_err(|e| ArchiverError::Internal(e.to_string()))?;
    // The record first: a retention changed without it could not be put back.
    clients.archive.put(&settings.bucket, &key, Bytes::from(body)).await?;
    set(clients, &settings.log_group_name, to).await?;
    tracing::warn!(
        from = describe(from),
        to = describe(to),
        reason,
        "the group's retention changed"
    );
    Ok(RetentionChange {
        from,
        to,
        reason: reason.to_string(),
    })
}

/// The retention guard, on every run before anything else and on the
/// failure path: if the group's retention could expire an event newer than
/// the checkpoint before a later run can export it, raise it (or, with
/// `retentionConflict: refuse`, stop the run). Returns the retention it
/// found and the change it made.
pub async fn guard(
    clients: &Clients,
    settings: &RunSettings,
    exported_until_ms: i64,
) -> Result<(RetentionDays, Option<RetentionChange>)> {
    let now = clients.logs.now_ms();
    let group = &settings.log_group_name;
    let found = current(clients, group).await?;
    let required = required_days(now, exported_until_ms, settings.retention_slack_days);
    if protects(found, required) || settings.mode == Mode::Plan {
        return Ok((found, None));
    }
    if settings.retention_conflict == RetentionConflict::Refuse {
        return Err(ArchiverError::RetentionConflict {
            group: group.clone(),
            current: describe(found),
            required: required.map_or_else(|| describe(None), |days| format!("at least {days} days")),
        });
    }
    let to = policy_for(required);
    let made = change(clients, settings, found, to, "guard").await?;
    Ok((found, Some(made)))
}

/// After the export advanced the checkpoint: in retention mode, hand the
/// archived events to the group's retention (the smallest valid value of at
/// least the cutoff's age plus the slack, never shorter than the guard
/// needs); otherwise undo a raise of the guard once the group's previous
/// retention protects everything again.
pub async fn after_export(
    clients: &Clients,
    settings: &RunSettings,
    exported_until_ms: i64,
) -> Result<Option<RetentionChange>> {
    let now = clients.logs.now_ms();
    let group = &settings.log_group_name;
    let required = required_days(now, exported_until_ms, settings.retention_slack_days);
    let found = current(clients, group).await?;
    if settings.mode == Mode::Retention {
        let asked = settings.older_than_days() + settings.retention_slack_days;
        let need = required.map(|r| r.max(asked));
        let to = need.and_then(smallest_valid_at_least);
        if to == found || !protects(to, required) {
            return Ok(None);
        }
        return change(clients, settings, found, to, "hand-off").await.map(Some);
    }
    // The guard's raise, as far as the export now allows: back to the
    // group's own retention if that protects everything again, else down to
    // the shortest that does. Only while nobody else changed it since.
    let key = GroupLayout::of(settings).retention_record();
    let Some(record) = read_record(clients, &settings.bucket, &key).await? else {
        return Ok(None);
    };
    if record.reason != "guard" || record.set_retention_days != found {
        return Ok(None);
    }
    let previous = record.previous_retention_days;
    let to = if protects(previous, required) {
        previous
    } else {
        policy_for(required)
    };
    if to == found || !protects(to, required) {
        return Ok(None);
    }
    let made = if to == previous {
        set(clients, group, to).await?;
        clients.archive.delete(&settings.bucket, &key).await?;
        RetentionChange {
            from: found,
            to,
            reason: "relaxed".into(),
        }
    } else {
        RetentionChange {
            reason: "relaxed".into(),
            ..change(clients, settings, found, to, "guard").await?
        }
    };
    tracing::info!(to = describe(to), "the guard's raise is relaxed");
    Ok(Some(made))
}

/// What putting the previous retention back did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restored {
    /// The archiver never changed the group's retention (or it was put back).
    NothingRecorded,
    /// The group's retention is back to what it was before the archiver.
    Restored(RetentionChange),
}

/// Puts back the retention the archiver replaced (`cwl-archiver retention
/// restore`). Refused, unless `force`, when the previous retention would
/// expire events no export holds yet.
pub async fn restore_previous(
    clients: &Clients,
    layout: &GroupLayout,
    bucket: &str,
    group: &str,
    slack_days: i64,
    force: bool,
) -> Result<Restored> {
    let key = layout.retention_record();
    let Some(record) = read_record(clients, bucket, &key).await? else {
        return Ok(Restored::NothingRecorded);
    };
    let checkpoint = super::start::load_checkpoint(clients, bucket, &layout.checkpoint()).await?;
    let exported_until = checkpoint.map_or(0, |c| c.exported_until_ms);
    let required = required_days(clients.logs.now_ms(), exported_until, slack_days);
    if !force && !protects(record.previous_retention_days, required) {
        return Err(ArchiverError::RetentionConflict {
            group: group.to_string(),
            current: describe(record.previous_retention_days),
            required: required.map_or_else(|| describe(None), |days| format!("at least {days} days")),
        });
    }
    let found = current(clients, group).await?;
    set(clients, group, record.previous_retention_days).await?;
    clients.archive.delete(bucket, &key).await?;
    Ok(Restored::Restored(RetentionChange {
        from: found,
        to: record.previous_retention_days,
        reason: "restored".into(),
    }))
}
