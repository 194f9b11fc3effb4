//! Where the archiver writes in S3. The layout is stable: tools and Athena
//! tables depend on it.
//!
//! ```text
//! {prefix}/{group path}/@checkpoint.json                  (compare-and-swap)
//! {prefix}/{group path}/@lease.json                       (one run at a time)
//! {prefix}/{group path}/@retention.json                   (the retention the archiver replaced)
//! {prefix}/{group path}/@exports/dt={YYYY-MM-DD}/{taskId}/{stream}/000000.gz
//! {prefix}/{group path}/@exports/dt={YYYY-MM-DD}/{taskId}/{stream}/late:{runId}:000000.gz
//! {prefix}/{group path}/@runs/{runId}/streams/{part}.json   (while streams are listed)
//! {prefix}/{group path}/@runs/{runId}/manifest.json
//! {prefix}/{group path}/@runs/{runId}/plans/{batch}.json
//! {prefix}/{group path}/@runs/{runId}/progress/{batch}.json
//! {prefix}/{group path}/@runs/{runId}/outcomes/{batch}.json
//! {prefix}/{group path}/@runs/{runId}/report.json
//! {prefix}/{group path}/@staging/{runId}/{stream}:{segment}.jsonl.gz
//! {prefix}/{group path}/@staging/{runId}/{stream}:rebuilding
//! ```
//!
//! Every key a run writes carries its run id (the execution name), so two
//! runs never share one. A stream's kept events are staged in numbered
//! segments (from 000001), each a complete staging object, so a scan or a
//! replay can stop between segments and go on in the next invocation. Run
//! ids never contain `/` and stream names cannot contain `:`, so a staging
//! key parses back unambiguously. The `late:` objects are supplements: events
//! of an export's window that arrived too late for it, written by the
//! archiver before it deleted them from CloudWatch Logs.
//!
//! `{group path}` is the group name without its leading `/`. Log group names
//! cannot contain `@`, so the `@` segments end the group path unambiguously:
//! the objects of `/app` never share a listing prefix with those of `/app/api`.

use chrono::{DateTime, Utc};

use crate::domain::input::RunSettings;

const SEGMENT_SUFFIX: &str = ".jsonl.gz";
const REBUILDING_MARKER: &str = "rebuilding";

/// The S3 keys of one log group.
#[derive(Debug, Clone)]
pub struct GroupLayout {
    root: String,
}

impl GroupLayout {
    /// The layout of `group` under `prefix`.
    pub fn new(prefix: &str, group: &str) -> Self {
        let group_path = group.trim_start_matches('/');
        Self {
            root: format!("{}/{}", prefix.trim_matches('/'), group_path),
        }
    }

    /// The layout of a run's group.
    pub fn of(settings: &RunSettings) -> Self {
        Self::new(&settings.prefix, &settings.log_group_name)
    }

    /// The checkpoint object of the group.
    pub fn checkpoint(&self) -> String {
        format!("{}/@checkpoint.json", self.root)
    }

    /// The group's lease: which run holds it.
    pub fn lease(&self) -> String {
        format!("{}/@lease.json", self.root)
    }

    /// The retention the archiver replaced (by the guard or the hand-off),
    /// so that it can be put back.
    pub fn retention_record(&self) -> String {
        format!("{}/@retention.json", self.root)
    }

    /// Every run's bookkeeping objects.
    pub fn runs_root(&self) -> String {
        format!("{}/@runs/", self.root)
    }

    /// The destination prefix given to CreateExportTask for a window ending at `cutoff_ms`.
    pub fn export_prefix(&self, cutoff_ms: i64) -> String {
        let day = DateTime::<Utc>::from_timestamp_millis(cutoff_ms)
            .map(|t| t.format("%Y-%m-%d").to_string())
            .unwrap_or_else(|| "unknown".into());
        format!("{}/@exports/dt={day}", self.root)
    }

    /// Everything the exports of the group wrote.
    pub fn exports_root(&self) -> String {
        format!("{}/@exports/", self.root)
    }

    /// The prefix of one run's bookkeeping objects.
    pub fn run_root(&self, run_id: &str) -> String {
        format!("{}/@runs/{run_id}", self.root)
    }

    /// The manifest of candidate streams of a run (the Map's ItemReader).
    pub fn manifest(&self, run_id: &str) -> String {
        format!("{}/manifest.json", self.run_root(run_id))
    }

    /// One invocation's share of the group's candidate streams, kept until
    /// the manifest is written.
    pub fn listing_part(&self, run_id: &str, part: u32) -> String {
        format!("{}/streams/{part:06}.json", self.run_root(run_id))
    }

    /// The outcomes of one Map item.
    pub fn outcome(&self, run_id: &str, batch: u32) -> String {
        format!("{}/outcomes/{batch:06}.json", self.run_root(run_id))
    }

    /// The prefix of all outcome objects of a run.
    pub fn outcomes_root(&self, run_id: &str) -> String {
        format!("{}/outcomes/", self.run_root(run_id))
    }

    /// What scan-stream planned for one Map item.
    pub fn plans(&self, run_id: &str, batch: u32) -> String {
        format!("{}{batch:06}.json", self.plans_root(run_id))
    }

    /// Every plans object of a run.
    pub fn plans_root(&self, run_id: &str) -> String {
        format!("{}/plans/", self.run_root(run_id))
    }

    /// Every progress object of a run.
    pub fn progress_root(&self, run_id: &str) -> String {
        format!("{}/progress/", self.run_root(run_id))
    }

    /// How far rebuild-stream got with one Map item: the outcomes so far and
    /// the stream it is deleting, so a retried invocation never redoes a
    /// finished stream.
    pub fn progress(&self, run_id: &str, batch: u32) -> String {
        format!("{}{batch:06}.json", self.progress_root(run_id))
    }

    /// The full report of a run.
    pub fn report(&self, run_id: &str) -> String {
        format!("{}/report.json", self.run_root(run_id))
    }

    /// The prefix of the group's staging objects, of every run.
    pub fn staging_root(&self) -> String {
        format!("{}/@staging/", self.root)
    }

    /// The prefix of one run's staging objects of one stream.
    pub fn stream_staging_root(&self, run_id: &str, stream: &str) -> String {
        format!("{}{run_id}/{stream}:", self.staging_root())
    }

    /// Segment `segment` (from 1) of a stream's staged kept events.
    pub fn staging_segment(&self, run_id: &str, stream: &str, segment: u32) -> String {
        format!(
            "{}{segment:06}{SEGMENT_SUFFIX}",
            self.stream_staging_root(run_id, stream)
        )
    }

    /// The marker written before a staged stream is deleted: while it exists
    /// the staging segments, not the stream, hold the truth.
    pub fn rebuilding_marker(&self, run_id: &str, stream: &str) -> String {
        format!("{}{REBUILDING_MARKER}", self.stream_staging_root(run_id, stream))
    }

    /// The run and stream a staging-area key belongs to, and what the key is.
    pub fn parse_staging_key(&self, key: &str) -> Option<StagingKey> {
        let rest = key.strip_prefix(&self.staging_root())?;
        let (run_id, rest) = rest.split_once('/')?;
        let (stream, what) = rest.rsplit_once(':')?;
        let kind = if what == REBUILDING_MARKER {
            StagingKeyKind::RebuildingMarker
        } else {
            StagingKeyKind::Segment(what.strip_suffix(SEGMENT_SUFFIX)?.parse().ok()?)
        };
        (!run_id.is_empty() && !stream.is_empty()).then(|| StagingKey {
            run_id: run_id.to_string(),
            stream: stream.to_string(),
            kind,
        })
    }
}

/// A key of the staging area, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagingKey {
    /// The run that staged it.
    pub run_id: String,
    /// The stream.
    pub stream: String,
    /// What the key is.
    pub kind: StagingKeyKind,
}

/// What a key in the staging area is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StagingKeyKind {
    /// A segment of the staged kept events of a stream.
    Segment(u32),
    /// The marker that the stream is being rebuilt.
    RebuildingMarker,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable() {
        let l = GroupLayout::new("arch/", "/aws/lambda/api");
        assert_eq!(l.checkpoint(), "arch/aws/lambda/api/@checkpoint.json");
        assert_eq!(
            l.export_prefix(1_761_350_400_000),
            "arch/aws/lambda/api/@exports/dt=2025-10-25"
        );
        assert_eq!(
            l.manifest("20251025T000000Z"),
            "arch/aws/lambda/api/@runs/20251025T000000Z/manifest.json"
        );
        assert_eq!(l.outcome("r", 7), "arch/aws/lambda/api/@runs/r/outcomes/000007.json");
        assert_eq!(
            l.staging_segment("run-1", "2025/10/25/[$LATEST]abc", 3),
            "arch/aws/lambda/api/@staging/run-1/2025/10/25/[$LATEST]abc:000003.jsonl.gz"
        );
        assert_eq!(l.lease(), "arch/aws/lambda/api/@lease.json");
        assert_eq!(l.progress("r", 7), "arch/aws/lambda/api/@runs/r/progress/000007.json");
    }

    #[test]
    fn staging_keys_parse_back_even_for_odd_stream_names() {
        let l = GroupLayout::new("p", "g");
        for stream in ["a", "a/b/c", "x.rebuilding", "y.jsonl.gz", "ünï côdé"] {
            let key = |kind| StagingKey {
                run_id: "run".into(),
                stream: stream.to_string(),
                kind,
            };
            assert_eq!(
                l.parse_staging_key(&l.staging_segment("run", stream, 12)),
                Some(key(StagingKeyKind::Segment(12)))
            );
            assert_eq!(
                l.parse_staging_key(&l.rebuilding_marker("run", stream)),
                Some(key(StagingKeyKind::RebuildingMarker))
            );
        }
    }

    #[test]
    fn nested_groups_never_share_a_listing_prefix() {
        let parent = GroupLayout::new("p", "/app");
        let child = GroupLayout::new("p", "/app/api");
        assert!(!child.staging_segment("r", "s", 1).starts_with(&parent.staging_root()));
        assert!(!child.export_prefix(0).starts_with(&parent.exports_root()));
    }
}
