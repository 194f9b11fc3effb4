//! In-memory [`LogStore`] and [`ArchiveStore`] for the library's unit tests.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{ArchiverError, Result};
use crate::event::LogEvent;
use crate::store::{
    ArchiveStore, EventsPage, ExportRequest, ExportStart, ExportTask, GroupInfo, LogStore, ObjectInfo, StreamInfo,
};

#[derive(Default)]
struct Stream {
    events: Vec<LogEvent>,
    last_ingestion: Option<i64>,
}

/// One log group in memory; GetLogEvents pages of at most 3 events so that
/// paging is exercised.
pub struct MemoryLogs {
    group: String,
    retention_days: Option<i32>,
    streams: Mutex<BTreeMap<String, Stream>>,
}

impl MemoryLogs {
    pub fn new(group: &str, retention_days: Option<i32>) -> Self {
        Self {
            group: group.into(),
            retention_days,
            streams: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn seed(&self, stream: &str, events: impl IntoIterator<Item = (i64, String)>, last_ingestion: i64) {
        let mut events: Vec<LogEvent> = events.into_iter().map(|(t, m)| LogEvent::new(t, m)).collect();
        events.sort_by_key(|e| e.timestamp);
        self.streams.lock().unwrap().insert(
            stream.into(),
            Stream {
                events,
                last_ingestion: Some(last_ingestion),
            },
        );
    }

    pub fn events(&self, stream: &str) -> Option<Vec<LogEvent>> {
        self.streams.lock().unwrap().get(stream).map(|s| s.events.clone())
    }

    fn info(name: &str, s: &Stream) -> StreamInfo {
        StreamInfo {
            name: name.into(),
            creation_time: 0,
            first_event_timestamp: s.events.first().map(|e| e.timestamp),
            last_event_timestamp: s.events.last().map(|e| e.timestamp),
            last_ingestion_time: s.last_ingestion,
            stored_bytes: Some(s.events.iter().map(|e| e.message.len() as i64).sum()),
        }
    }
}

fn unsupported(what: &str) -> ArchiverError {
    ArchiverError::Internal(format!("{what} is not supported in memory"))
}

#[async_trait]
impl LogStore for MemoryLogs {
    async fn describe_group(&self, group: &str) -> Result<Option<GroupInfo>> {
        Ok((group == self.group).then(|| GroupInfo {
            name: group.into(),
            creation_time: 0,
            retention_in_days: self.retention_days,
        }))
    }
    async fn list_streams(&self, _group: &str) -> Result<Vec<StreamInfo>> {
        let streams = self.streams.lock().unwrap();
        Ok(streams.iter().map(|(n, s)| Self::info(n, s)).collect())
    }
    async fn describe_stream(&self, _group: &str, stream: &str) -> Result<Option<StreamInfo>> {
        let streams = self.streams.lock().unwrap();
        Ok(streams.get(stream).map(|s| Self::info(stream, s)))
    }
    async fn get_events_page(
        &self,
        _group: &str,
        stream: &str,
        start_ms: i64,
        end_ms: Option<i64>,
        token: Option<&str>,
        limit: Option<i32>,
    ) -> Result<Option<EventsPage>> {
        let streams = self.streams.lock().unwrap();
        let Some(s) = streams.get(stream) else { return Ok(None) };
        let matching: Vec<&LogEvent> = s
            .events
            .iter()
            .filter(|e| e.timestamp >= start_ms && end_ms.is_none_or(|end| e.timestamp < end))
            .collect();
        let offset: usize = token.and_then(|t| t.parse().ok()).unwrap_or(0);
        let size = limit.map_or(3, |l| l.clamp(1, 3) as usize);
        let events: Vec<LogEvent> = matching.iter().skip(offset).take(size).map(|e| (*e).clone()).collect();
        let next = offset + events.len();
        Ok(Some(EventsPage {
            events,
            next_forward_token: Some(next.to_string()),
        }))
    }
    async fn put_events(&self, _group: &str, stream: &str, batch: &[LogEvent]) -> Result<()> {
        crate::batch::validate_batch(batch).map_err(|e| ArchiverError::Internal(e.to_string()))?;
        let mut streams = self.streams.lock().unwrap();
        let s = streams
            .get_mut(stream)
            .ok_or_else(|| unsupported("PutLogEvents into a missing stream"))?;
        s.events.extend(batch.iter().cloned());
        s.events.sort_by_key(|e| e.timestamp);
        Ok(())
    }
    async fn create_stream(&self, _group: &str, stream: &str) -> Result<bool> {
        let mut streams = self.streams.lock().unwrap();
        if streams.contains_key(stream) {
            return Ok(false);
        }
        streams.insert(stream.into(), Stream::default());
        Ok(true)
    }
    async fn delete_stream(&self, _group: &str, stream: &str) -> Result<bool> {
        Ok(self.streams.lock().unwrap().remove(stream).is_some())
    }
    async fn create_export_task(&self, _request: &ExportRequest) -> Result<ExportStart> {
        Err(unsupported("CreateExportTask"))
    }
    async fn describe_export_task(&self, _task_id: &str) -> Result<Option<ExportTask>> {
        Err(unsupported("DescribeExportTasks"))
    }
    async fn active_export_task(&self) -> Result<Option<ExportTask>> {
        Ok(None)
    }
}

/// A bucket-less object store: keys are `bucket/key`.
#[derive(Default)]
pub struct MemoryArchive {
    objects: Mutex<BTreeMap<String, Bytes>>,
}

impl MemoryArchive {
    fn path(bucket: &str, key: &str) -> String {
        format!("{bucket}/{key}")
    }
}

#[async_trait]
impl ArchiveStore for MemoryArchive {
    async fn bucket_exists(&self, _bucket: &str) -> Result<bool> {
        Ok(true)
    }
    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Bytes>> {
        Ok(self.objects.lock().unwrap().get(&Self::path(bucket, key)).cloned())
    }
    async fn exists(&self, bucket: &str, key: &str) -> Result<bool> {
        Ok(self.objects.lock().unwrap().contains_key(&Self::path(bucket, key)))
    }
    async fn put(&self, bucket: &str, key: &str, body: Bytes) -> Result<()> {
        self.objects.lock().unwrap().insert(Self::path(bucket, key), body);
        Ok(())
    }
    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let start = Self::path(bucket, prefix);
        let objects = self.objects.lock().unwrap();
        Ok(objects
            .iter()
            .filter(|(k, _)| k.starts_with(&start))
            .map(|(k, v)| ObjectInfo {
                key: k[bucket.len() + 1..].to_string(),
                size: v.len() as i64,
            })
            .collect())
    }
    async fn delete(&self, bucket: &str, key: &str) -> Result<()> {
        self.objects.lock().unwrap().remove(&Self::path(bucket, key));
        Ok(())
    }
    async fn start_upload(&self, _bucket: &str, _key: &str) -> Result<String> {
        Err(unsupported("multipart upload"))
    }
    async fn upload_part(&self, _: &str, _: &str, _: &str, _: i32, _: Bytes) -> Result<String> {
        Err(unsupported("multipart upload"))
    }
    async fn complete_upload(&self, _: &str, _: &str, _: &str, _: Vec<String>) -> Result<()> {
        Err(unsupported("multipart upload"))
    }
    async fn abort_upload(&self, _: &str, _: &str, _: &str) -> Result<()> {
        Err(unsupported("multipart upload"))
    }
}
