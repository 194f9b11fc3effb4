//! Where the archiver writes in S3. The layout is stable: tools and Athena
//! tables depend on it.
//!
//! ```text
//! {prefix}/{group path}/@checkpoint.json
//! {prefix}/{group path}/@exports/dt={YYYY-MM-DD}/{taskId}/{stream}/000000.gz
//! {prefix}/{group path}/@runs/{runId}/streams/{part}.json   (while streams are listed)
//! {prefix}/{group path}/@runs/{runId}/manifest.json
//! {prefix}/{group path}/@runs/{runId}/outcomes/{batch}.json
//! {prefix}/{group path}/@runs/{runId}/report.json
//! {prefix}/{group path}/@staging/{stream}:{segment}.jsonl.gz
//! {prefix}/{group path}/@staging/{stream}:rebuilding
//! ```
//!
//! A stream's kept events are staged in numbered segments (from 000001), each
//! a complete staging object, so a scan or a replay can stop between segments
//! and go on in the next invocation. Stream names cannot contain `:`, so the
//! stream part of a staging key is unambiguous.
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

    /// The full report of a run.
    pub fn report(&self, run_id: &str) -> String {
        format!("{}/report.json", self.run_root(run_id))
    }

    /// The prefix of the group's staging objects.
    pub fn staging_root(&self) -> String {
        format!("{}/@staging/", self.root)
    }

    /// Segment `segment` (from 1) of a stream's staged kept events.
    pub fn staging_segment(&self, stream: &str, segment: u32) -> String {
        format!("{}{stream}:{segment:06}{SEGMENT_SUFFIX}", self.staging_root())
    }

    /// The marker written just before a staged stream is deleted: while it
    /// exists the staging segments, not the stream, hold the truth.
    pub fn rebuilding_marker(&self, stream: &str) -> String {
        format!("{}{stream}:{REBUILDING_MARKER}", self.staging_root())
    }

    /// The stream a staging-area key belongs to, and what the key is.
    pub fn parse_staging_key(&self, key: &str) -> Option<(String, StagingKeyKind)> {
        let rest = key.strip_prefix(&self.staging_root())?;
        let (stream, what) = rest.rsplit_once(':')?;
        if what == REBUILDING_MARKER {
            return Some((stream.to_string(), StagingKeyKind::RebuildingMarker));
        }
        let segment = what.strip_suffix(SEGMENT_SUFFIX)?.parse().ok()?;
        Some((stream.to_string(), StagingKeyKind::Segment(segment)))
    }
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
            l.staging_segment("2025/10/25/[$LATEST]abc", 3),
            "arch/aws/lambda/api/@staging/2025/10/25/[$LATEST]abc:000003.jsonl.gz"
        );
    }

    #[test]
    fn staging_keys_parse_back_even_for_odd_stream_names() {
        let l = GroupLayout::new("p", "g");
        for stream in ["a", "a/b/c", "x.rebuilding", "y.jsonl.gz", "ünï côdé"] {
            assert_eq!(
                l.parse_staging_key(&l.staging_segment(stream, 12)),
                Some((stream.to_string(), StagingKeyKind::Segment(12)))
            );
            assert_eq!(
                l.parse_staging_key(&l.rebuilding_marker(stream)),
                Some((stream.to_string(), StagingKeyKind::RebuildingMarker))
            );
        }
    }

    #[test]
    fn nested_groups_never_share_a_listing_prefix() {
        let parent = GroupLayout::new("p", "/app");
        let child = GroupLayout::new("p", "/app/api");
        assert!(!child.staging_segment("s", 1).starts_with(&parent.staging_root()));
        assert!(!child.export_prefix(0).starts_with(&parent.exports_root()));
    }
}
