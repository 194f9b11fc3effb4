//! check-export: polls the export task; once it completed, verifies its
//! objects, advances the checkpoint and writes the manifest. At the end of
//! the run it also writes the report. For the account-wide state machine it
//! lists the groups to archive and sums up what became of them.

use archiver::workflow::lambda::call_step;
use archiver::workflow::{
    Clients, GroupsRequest, ListGroupsCall, RunState, StartRequest, SummarizeCall, abandon_run, abandon_start,
    check_export, list_groups, release_groups, report_run, summarize_groups,
};
use serde::Deserialize;
use serde_json::Value;

/// The calls the state machines make.
#[derive(Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
enum Request {
    /// Poll the export; write the manifest when it is done.
    Check { run: RunState },
    /// Aggregate the outcomes into the run report; let the group go.
    Report { run: RunState },
    /// The failure path: let the group go.
    Abandon { run: RunState },
    /// The failure path of start-export, before the run state exists.
    AbandonStart { request: StartRequest },
    /// Account-wide: take the account-wide lease, list the groups, write them for the Map.
    ListGroups(ListGroupsCall),
    /// Account-wide: count what became of every group; let the lease go.
    SummarizeGroups(SummarizeCall),
    /// Account-wide failure path: let the lease go.
    ReleaseGroups { request: GroupsRequest },
}

/// Handles `{"action": "check" | "report" | "abandon", "run": ...}`,
/// `{"action": "abandon-start", "request": ...}`, and for the account-wide
/// state machine `{"action": "list-groups" | "summarize-groups" |
/// "release-groups", "request": ..., ...}`.
pub async fn handler(event: Value, clients: Clients) -> archiver::error::Result<Value> {
    call_step(event, |request: Request| async move {
        match request {
            Request::Check { run } => serde_json::to_value(check_export(run, &clients).await?),
            Request::Report { run } => serde_json::to_value(report_run(run, &clients).await?),
            Request::Abandon { run } => serde_json::to_value(abandon_run(run, &clients).await?),
            Request::AbandonStart { request } => serde_json::to_value(abandon_start(request, &clients).await?),
            Request::ListGroups(call) => serde_json::to_value(list_groups(call, &clients).await?),
            Request::SummarizeGroups(call) => serde_json::to_value(summarize_groups(call, &clients).await?),
            Request::ReleaseGroups { request } => serde_json::to_value(release_groups(request, &clients).await?),
        }
        .map_err(|e| archiver::ArchiverError::Internal(e.to_string()))
    })
    .await
}
