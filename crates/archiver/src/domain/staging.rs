//! The staging object: the events of a stream to keep, saved in S3 before
//! the stream is deleted, and replayed from there.
//!
//! The object is one gzip stream of JSON lines, each ended by `\n`:
//!
//! ```text
//! {"format":"cwl-archiver-staging/1","logGroupName":"g","logStreamName":"s","cutoffMs":1700000000000}
//! {"t":1700000000000,"m":"first message"}
//! {"t":1700000000005,"m":"line one\nline two"}
//! {"end":true,"events":2,"messageBytes":31,"lastTimestamp":1700000000005}
//! ```
//!
//! The header names the stream and the cutoff; every event line holds a
//! timestamp (ms) and a message; the trailer repeats the event count, the sum
//! of the UTF-8 message lengths and the last timestamp (`null` when there are
//! no events). Events are in non-decreasing timestamp order. The decoder
//! refuses an object whose trailer is missing or disagrees with what it read,
//! whose gzip stream is cut short, or that has anything after the trailer, so
//! a partial upload can never be mistaken for a short stream.
//!
//! The format does not check that events are at or after `cutoffMs`; that is
//! the writer's business.

use std::io::{BufRead, BufReader, Read, Write};

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

use crate::domain::event::LogEvent;

/// Value of the header's `format` field for this version of the format.
pub const STAGING_FORMAT: &str = "cwl-archiver-staging/1";

/// Longest line the decoder accepts, in bytes. A CloudWatch message is at
/// most about 1 MiB, which JSON escaping can grow at most sixfold.
pub const MAX_STAGING_LINE_BYTES: u64 = 8 * 1024 * 1024;

/// What a staging object holds events of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StagingHeader {
    /// The log group of the stream.
    pub log_group_name: String,
    /// The stream whose events are staged.
    pub log_stream_name: String,
    /// The cutoff (ms since the epoch): the staged events are those at or
    /// after it.
    pub cutoff_ms: i64,
}

/// Totals over the events written or read so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StagingSummary {
    /// Number of events.
    pub events: u64,
    /// Sum of the UTF-8 lengths of the messages.
    pub message_bytes: u64,
    /// Timestamp of the first event, if any.
    pub first_timestamp: Option<i64>,
    /// Timestamp of the last event, if any.
    pub last_timestamp: Option<i64>,
}

impl StagingSummary {
    fn record(&mut self, event: &LogEvent) {
        self.events += 1;
        self.message_bytes = self.message_bytes.saturating_add(event.message.len() as u64);
        self.first_timestamp.get_or_insert(event.timestamp);
        self.last_timestamp = Some(event.timestamp);
    }
}

/// Why a staging object could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum StagingError {
    /// The encoder was given an event earlier than the one before it.
    #[error("event {index} has timestamp {timestamp}, earlier than the previous event's {previous}")]
    OutOfOrder {
        /// 0-based position of the event among those pushed.
        index: u64,
        /// Timestamp of the event before it.
        previous: i64,
        /// Its own timestamp.
        timestamp: i64,
    },
    /// The object ends before its trailer, or its gzip stream is cut short.
    #[error("staging object is truncated: {detail}")]
    Truncated {
        /// What was missing.
        detail: String,
    },
    /// The object is damaged or disagrees with its own trailer.
    #[error("staging object is corrupt at line {line}: {detail}")]
    Corrupt {
        /// 1-based line of the decompressed text where the problem showed.
        line: u64,
        /// What is wrong.
        detail: String,
    },
    /// The header names another format (or version) than [`STAGING_FORMAT`].
    #[error("unsupported staging format {found:?}, expected {STAGING_FORMAT:?}")]
    UnsupportedFormat {
        /// The header's `format` value.
        found: String,
    },
    /// Reading or writing failed for a reason other than the above.
    #[error("staging object I/O failed")]
    Io(#[source] std::io::Error),
}

#[derive(Serialize)]
struct HeaderOut<'a> {
    format: &'a str,
    #[serde(flatten)]
    header: &'a StagingHeader,
}

#[derive(Deserialize)]
struct FormatOnly {
    format: String,
}

#[derive(Serialize)]
struct EventOut<'a> {
    t: i64,
    m: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TrailerOut {
    end: bool,
    events: u64,
    message_bytes: u64,
    last_timestamp: Option<i64>,
}

/// Any line after the header: an event (`t`, `m`) or the trailer (the rest).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct BodyLine {
    t: Option<i64>,
    m: Option<String>,
    end: Option<bool>,
    events: Option<u64>,
    message_bytes: Option<u64>,
    #[serde(default)]
    last_timestamp: Option<i64>,
}

/// Streaming writer of a staging object with bounded memory.
///
/// Push events in order, collect compressed bytes with
/// [`take_ready_chunk`](Self::take_ready_chunk) as they accumulate (for
/// example as multipart-upload parts of at least 5 MiB), and end with
/// [`finish`](Self::finish). The chunks and the final bytes, concatenated in
/// order, form one gzip stream. Only the compressed bytes not yet taken are
/// held (see [`buffered_len`](Self::buffered_len)), plus the compressor's
/// fixed-size state.
pub struct StagingEncoder {
    gz: GzEncoder<Vec<u8>>,
    header: Option<StagingHeader>,
    line: Vec<u8>,
    summary: StagingSummary,
}

impl std::fmt::Debug for StagingEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagingEncoder")
            .field("buffered_len", &self.buffered_len())
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

impl StagingEncoder {
    /// Starts an object for `header`. The header line is written with the
    /// first push, chunk request or finish.
    pub fn new(header: StagingHeader) -> Self {
        Self {
            gz: GzEncoder::new(Vec::new(), Compression::default()),
            header: Some(header),
            line: Vec::new(),
            summary: StagingSummary::default(),
        }
    }

    fn write_line<T: Serialize>(&mut self, value: &T) -> Result<(), StagingError> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, value).map_err(|e| StagingError::Io(std::io::Error::other(e)))?;
        self.line.push(b'\n');
        self.gz.write_all(&self.line).map_err(StagingError::Io)
    }

    fn write_header(&mut self) -> Result<(), StagingError> {
        if let Some(header) = self.header.take() {
            self.write_line(&HeaderOut {
                format: STAGING_FORMAT,
                header: &header,
            })?;
        }
        Ok(())
    }

    /// Appends one event. An event with a lower timestamp than the previous
    /// one is refused with [`StagingError::OutOfOrder`] and not written.
    pub fn push(&mut self, event: &LogEvent) -> Result<(), StagingError> {
        if let Some(previous) = self.summary.last_timestamp
            && event.timestamp < previous
        {
            return Err(StagingError::OutOfOrder {
                index: self.summary.events,
                previous,
                timestamp: event.timestamp,
            });
        }
        self.write_header()?;
        self.write_line(&EventOut {
            t: event.timestamp,
            m: &event.message,
        })?;
        self.summary.record(event);
        Ok(())
    }

    /// Hands over the compressed bytes produced so far once there are at
    /// least `min_bytes` of them (and at least one); otherwise `None`.
    ///
    /// The compressor works in blocks, so bytes appear in bursts: after a
    /// push the buffer may exceed `min_bytes` by about one compressed block
    /// plus the pushed line.
    pub fn take_ready_chunk(&mut self, min_bytes: usize) -> Option<Vec<u8>> {
        let buffered = self.gz.get_ref().len();
        if buffered == 0 || buffered < min_bytes {
            return None;
        }
        Some(std::mem::take(self.gz.get_mut()))
    }

    /// Compressed bytes produced and not yet taken.
    pub fn buffered_len(&self) -> usize {
        self.gz.get_ref().len()
    }

    /// Totals of the events pushed so far.
    pub fn summary(&self) -> &StagingSummary {
        &self.summary
    }

    /// Writes the trailer and ends the gzip stream. Returns the compressed
    /// bytes not yet taken (the last part of the object) and the totals.
    pub fn finish(mut self) -> Result<(Vec<u8>, StagingSummary), StagingError> {
        self.write_header()?;
        let trailer = TrailerOut {
            end: true,
            events: self.summary.events,
            message_bytes: self.summary.message_bytes,
            last_timestamp: self.summary.last_timestamp,
        };
        self.write_line(&trailer)?;
        let bytes = self.gz.finish().map_err(StagingError::Io)?;
        Ok((bytes, self.summary))
    }
}

/// Encodes a whole staging object in memory.
pub fn encode_all(header: StagingHeader, events: &[LogEvent]) -> Result<(Vec<u8>, StagingSummary), StagingError> {
    let mut encoder = StagingEncoder::new(header);
    for event in events {
        encoder.push(event)?;
    }
    encoder.finish()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DecoderState {
    Events,
    Done,
    Failed,
}

/// Streaming reader of a staging object.
///
/// [`new`](Self::new) reads the header; iterating yields the events and, at
/// the end, checks the trailer against what was read and that the gzip
/// stream ends cleanly right after it. Any problem is yielded as an error
/// (after which iteration stops), so a run that ends without an error has
/// read the complete object.
pub struct StagingDecoder<R: Read> {
    lines: BufReader<MultiGzDecoder<R>>,
    header: StagingHeader,
    summary: StagingSummary,
    line: u64,
    buf: Vec<u8>,
    state: DecoderState,
}

impl<R: Read> std::fmt::Debug for StagingDecoder<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagingDecoder")
            .field("header", &self.header)
            .field("summary", &self.summary)
            .field("line", &self.line)
            .finish_non_exhaustive()
    }
}

impl<R: Read> StagingDecoder<R> {
    /// Opens a staging object (gzip bytes from `reader`) and reads its header.
    pub fn new(reader: R) -> Result<Self, StagingError> {
        let mut decoder = Self {
            lines: BufReader::new(MultiGzDecoder::new(reader)),
            header: StagingHeader {
                log_group_name: String::new(),
                log_stream_name: String::new(),
                cutoff_ms: 0,
            },
            summary: StagingSummary::default(),
            line: 0,
            buf: Vec::new(),
            state: DecoderState::Events,
        };
        if !decoder.next_line()? {
            return Err(StagingError::Truncated {
                detail: "no header line".to_string(),
            });
        }
        let format: FormatOnly = decoder.parse_line()?;
        if format.format != STAGING_FORMAT {
            return Err(StagingError::UnsupportedFormat { found: format.format });
        }
        decoder.header = decoder.parse_line()?;
        Ok(decoder)
    }

    /// The header of the object.
    pub fn header(&self) -> &StagingHeader {
        &self.header
    }

    /// Totals of the events read so far.
    pub fn summary(&self) -> &StagingSummary {
        &self.summary
    }

    /// Whether the trailer has been read and checked.
    pub fn is_complete(&self) -> bool {
        self.state == DecoderState::Done
    }

    fn corrupt(&self, detail: impl Into<String>) -> StagingError {
        StagingError::Corrupt {
            line: self.line,
            detail: detail.into(),
        }
    }

    fn io_error(&self, error: std::io::Error) -> StagingError {
        match error.kind() {
            std::io::ErrorKind::UnexpectedEof => StagingError::Truncated {
                detail: format!("gzip stream ends early after line {}", self.line),
            },
            std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput => StagingError::Corrupt {
                line: self.line + 1,
                detail: format!("bad gzip data: {error}"),
            },
            _ => StagingError::Io(error),
        }
    }

    /// Reads the next line into `buf`, without its `\n`. `Ok(false)` at a
    /// clean end of the stream.
    fn next_line(&mut self) -> Result<bool, StagingError> {
        self.buf.clear();
        let read = (&mut self.lines)
            .take(MAX_STAGING_LINE_BYTES + 1)
            .read_until(b'\n', &mut self.buf);
        let read = read.map_err(|e| self.io_error(e))?;
        if read == 0 {
            return Ok(false);
        }
        self.line += 1;
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
            Ok(true)
        } else if self.buf.len() as u64 > MAX_STAGING_LINE_BYTES {
            Err(self.corrupt("line too long"))
        } else {
            Err(StagingError::Truncated {
                detail: format!("line {} has no end", self.line),
            })
        }
    }

    fn parse_line<T: for<'de> Deserialize<'de>>(&self) -> Result<T, StagingError> {
        serde_json::from_slice(&self.buf).map_err(|e| self.corrupt(e.to_string()))
    }

    fn step(&mut self) -> Result<Option<LogEvent>, StagingError> {
        if !self.next_line()? {
            return Err(StagingError::Truncated {
                detail: format!("no trailer after {} events", self.summary.events),
            });
        }
        let line: BodyLine = self.parse_line()?;
        match line {
            BodyLine {
                t: Some(timestamp),
                m: Some(message),
                end: None,
                events: None,
                message_bytes: None,
                last_timestamp: None,
            } => {
                if let Some(previous) = self.summary.last_timestamp
                    && timestamp < previous
                {
                    return Err(self.corrupt(format!("event at {timestamp} follows an event at {previous}")));
                }
                let event = LogEvent { timestamp, message };
                self.summary.record(&event);
                Ok(Some(event))
            }
            BodyLine {
                t: None,
                m: None,
                end: Some(true),
                events: Some(events),
                message_bytes: Some(message_bytes),
                last_timestamp,
            } => {
                self.check_trailer(events, message_bytes, last_timestamp)?;
                if self.next_line()? {
                    return Err(self.corrupt("data after the trailer"));
                }
                Ok(None)
            }
            _ => Err(self.corrupt("neither an event nor a trailer")),
        }
    }

    fn check_trailer(&self, events: u64, message_bytes: u64, last_timestamp: Option<i64>) -> Result<(), StagingError> {
        let read = &self.summary;
        if events != read.events {
            return Err(self.corrupt(format!("trailer counts {events} events, {} were read", read.events)));
        }
        if message_bytes != read.message_bytes {
            return Err(self.corrupt(format!(
                "trailer counts {message_bytes} message bytes, {} were read",
                read.message_bytes
            )));
        }
        if last_timestamp != read.last_timestamp {
            return Err(self.corrupt(format!(
                "trailer's last timestamp {last_timestamp:?} differs from the last read, {:?}",
                read.last_timestamp
            )));
        }
        Ok(())
    }
}

impl<R: Read> Iterator for StagingDecoder<R> {
    type Item = Result<LogEvent, StagingError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.state != DecoderState::Events {
            return None;
        }
        match self.step() {
            Ok(Some(event)) => Some(Ok(event)),
            Ok(None) => {
                self.state = DecoderState::Done;
                None
            }
            Err(e) => {
                self.state = DecoderState::Failed;
                Some(Err(e))
            }
        }
    }
}

/// Decodes a whole staging object held in memory.
pub fn decode_all(bytes: &[u8]) -> Result<(StagingHeader, Vec<LogEvent>), StagingError> {
    let decoder = StagingDecoder::new(bytes)?;
    let header = decoder.header().clone();
    let events = decoder.collect::<Result<Vec<_>, _>>()?;
    Ok((header, events))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header() -> StagingHeader {
        StagingHeader {
            log_group_name: "/aws/lambda/app".to_string(),
            log_stream_name: "2026/10/01/[$LATEST]abc".to_string(),
            cutoff_ms: 1_700_000_000_000,
        }
    }

    fn ev(timestamp: i64, message: &str) -> LogEvent {
        LogEvent {
            timestamp,
            message: message.to_string(),
        }
    }

    fn sample(n: i64) -> Vec<LogEvent> {
        (0..n)
            .map(|i| ev(1_700_000_000_000 + i / 3, &format!("event {i} é\n\"x\"")))
            .collect()
    }

    fn gzip(text: &str) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(text.as_bytes()).unwrap();
        enc.finish().unwrap()
    }

    fn plain(bytes: &[u8]) -> String {
        let mut text = String::new();
        MultiGzDecoder::new(bytes).read_to_string(&mut text).unwrap();
        text
    }

    const HEADER_LINE: &str =
        r#"{"format":"cwl-archiver-staging/1","logGroupName":"g","logStreamName":"s","cutoffMs":5}"#;

    #[test]
    fn writes_the_documented_lines() {
        let h = StagingHeader {
            log_group_name: "g".to_string(),
            log_stream_name: "s".to_string(),
            cutoff_ms: 5,
        };
        let (bytes, summary) = encode_all(h, &[ev(5, "a\nb"), ev(7, "日本")]).unwrap();
        assert_eq!(
            plain(&bytes),
            format!(
                "{HEADER_LINE}\n{}\n{}\n{}\n",
                r#"{"t":5,"m":"a\nb"}"#,
                r#"{"t":7,"m":"日本"}"#,
                r#"{"end":true,"events":2,"messageBytes":9,"lastTimestamp":7}"#
            )
        );
        assert_eq!(
            summary,
            StagingSummary {
                events: 2,
                message_bytes: 9,
                first_timestamp: Some(5),
                last_timestamp: Some(7)
            }
        );
    }

    #[test]
    fn empty_object_round_trips() {
        let (bytes, summary) = encode_all(header(), &[]).unwrap();
        assert_eq!(summary, StagingSummary::default());
        assert!(plain(&bytes).ends_with("{\"end\":true,\"events\":0,\"messageBytes\":0,\"lastTimestamp\":null}\n"));
        assert_eq!(decode_all(&bytes).unwrap(), (header(), vec![]));
    }

    #[test]
    fn encoder_refuses_out_of_order_events() {
        let mut enc = StagingEncoder::new(header());
        enc.push(&ev(10, "a")).unwrap();
        enc.push(&ev(10, "b")).unwrap();
        let err = enc.push(&ev(9, "c")).unwrap_err();
        assert!(matches!(
            err,
            StagingError::OutOfOrder {
                index: 2,
                previous: 10,
                timestamp: 9
            }
        ));
        enc.push(&ev(11, "d")).unwrap();
        let (bytes, summary) = enc.finish().unwrap();
        assert_eq!(summary.events, 3);
        let (_, events) = decode_all(&bytes).unwrap();
        assert_eq!(events, vec![ev(10, "a"), ev(10, "b"), ev(11, "d")]);
    }

    /// Decodes hand-written text and returns the error.
    fn decode_text_err(text: &str) -> StagingError {
        decode_all(&gzip(text)).unwrap_err()
    }

    #[test]
    fn trailer_mismatches_are_detected() {
        let body = r#"{"t":5,"m":"ab"}
{"t":6,"m":"c"}
"#;
        let ok = format!(
            "{HEADER_LINE}\n{body}{}\n",
            r#"{"end":true,"events":2,"messageBytes":3,"lastTimestamp":6}"#
        );
        assert_eq!(decode_all(&gzip(&ok)).unwrap().1, vec![ev(5, "ab"), ev(6, "c")]);
        for trailer in [
            r#"{"end":true,"events":3,"messageBytes":3,"lastTimestamp":6}"#,
            r#"{"end":true,"events":1,"messageBytes":3,"lastTimestamp":6}"#,
            r#"{"end":true,"events":2,"messageBytes":4,"lastTimestamp":6}"#,
            r#"{"end":true,"events":2,"messageBytes":3,"lastTimestamp":5}"#,
            r#"{"end":true,"events":2,"messageBytes":3,"lastTimestamp":null}"#,
            r#"{"end":true,"events":2,"messageBytes":3}"#,
            r#"{"end":false,"events":2,"messageBytes":3,"lastTimestamp":6}"#,
            r#"{"end":true,"messageBytes":3,"lastTimestamp":6}"#,
            r#"{"end":true,"events":2,"messageBytes":3,"lastTimestamp":6,"extra":1}"#,
        ] {
            let err = decode_text_err(&format!("{HEADER_LINE}\n{body}{trailer}\n"));
            assert!(matches!(err, StagingError::Corrupt { line: 4, .. }), "{trailer}: {err}");
        }
    }

    #[test]
    fn damaged_bodies_are_detected() {
        let trailer = r#"{"end":true,"events":2,"messageBytes":2,"lastTimestamp":5}"#;
        let cases = [
            // Out of order.
            (
                format!("{HEADER_LINE}\n{{\"t\":6,\"m\":\"a\"}}\n{{\"t\":5,\"m\":\"b\"}}\n{trailer}\n"),
                true,
            ),
            // Not JSON.
            (
                format!("{HEADER_LINE}\n{{\"t\":5,\"m\":\"a\"}}\nnot json\n{trailer}\n"),
                true,
            ),
            // An event missing its message.
            (
                format!("{HEADER_LINE}\n{{\"t\":5}}\n{{\"t\":5,\"m\":\"b\"}}\n{trailer}\n"),
                true,
            ),
            // Data after the trailer.
            (
                format!(
                    "{HEADER_LINE}\n{{\"t\":5,\"m\":\"a\"}}\n{{\"t\":5,\"m\":\"b\"}}\n{trailer}\n{{\"t\":5,\"m\":\"c\"}}\n"
                ),
                true,
            ),
            // A blank line after the trailer.
            (
                format!("{HEADER_LINE}\n{{\"t\":5,\"m\":\"a\"}}\n{{\"t\":5,\"m\":\"b\"}}\n{trailer}\n\n"),
                true,
            ),
            // No trailer.
            (
                format!("{HEADER_LINE}\n{{\"t\":5,\"m\":\"a\"}}\n{{\"t\":5,\"m\":\"b\"}}\n"),
                false,
            ),
            // Trailer without its newline.
            (
                format!("{HEADER_LINE}\n{{\"t\":5,\"m\":\"a\"}}\n{{\"t\":5,\"m\":\"b\"}}\n{trailer}"),
                false,
            ),
        ];
        for (text, corrupt) in cases {
            let err = decode_text_err(&text);
            if corrupt {
                assert!(matches!(err, StagingError::Corrupt { .. }), "{text}: {err}");
            } else {
                assert!(matches!(err, StagingError::Truncated { .. }), "{text}: {err}");
            }
        }
    }

    #[test]
    fn headers_are_checked() {
        assert!(matches!(
            decode_text_err("{\"format\":\"cwl-archiver-staging/2\",\"x\":1}\n"),
            StagingError::UnsupportedFormat { found } if found == "cwl-archiver-staging/2"
        ));
        assert!(matches!(
            decode_text_err("{\"format\":\"cwl-archiver-staging/1\"}\n"),
            StagingError::Corrupt { line: 1, .. }
        ));
        assert!(matches!(
            decode_text_err("hello\n"),
            StagingError::Corrupt { line: 1, .. }
        ));
        assert!(matches!(decode_text_err(""), StagingError::Truncated { .. }));
        assert!(matches!(decode_all(b""), Err(StagingError::Truncated { .. })));
    }

    #[test]
    fn garbage_after_the_gzip_stream_is_detected() {
        let (mut bytes, _) = encode_all(header(), &sample(5)).unwrap();
        bytes.extend_from_slice(b"junk");
        assert!(decode_all(&bytes).is_err());
    }

    #[test]
    fn flipped_bytes_are_detected() {
        let (bytes, _) = encode_all(header(), &sample(40)).unwrap();
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x55;
            // The gzip CRC catches what the JSON checks do not, except in the
            // header's flag-free fields (mtime, OS), which nothing checks.
            if (4..10).contains(&i) {
                continue;
            }
            assert!(decode_all(&damaged).is_err(), "flip at {i} undetected");
        }
    }

    #[test]
    fn every_truncation_of_a_small_object_is_detected() {
        let (bytes, _) = encode_all(header(), &sample(60)).unwrap();
        assert_eq!(decode_all(&bytes).unwrap().1, sample(60));
        for cut in 0..bytes.len() {
            match decode_all(&bytes[..cut]) {
                Err(StagingError::Truncated { .. } | StagingError::Corrupt { .. }) => {}
                other => panic!("cut at {cut} of {}: {other:?}", bytes.len()),
            }
        }
    }

    #[test]
    fn truncation_seen_while_streaming_is_an_error_not_an_end() {
        let (bytes, _) = encode_all(header(), &sample(2_000)).unwrap();
        let cut = &bytes[..bytes.len() / 2];
        let mut decoder = StagingDecoder::new(cut).unwrap();
        let mut read = 0;
        let err = loop {
            match decoder.next() {
                Some(Ok(_)) => read += 1,
                Some(Err(e)) => break e,
                None => panic!("a truncated object ended cleanly"),
            }
        };
        assert!(read < 2_000);
        assert!(matches!(err, StagingError::Truncated { .. }), "{err}");
        assert!(decoder.next().is_none());
        assert!(!decoder.is_complete());
    }

    #[test]
    fn chunks_stay_bounded_and_concatenate_to_the_object() {
        const CHUNK: usize = 64 * 1024;
        // One compressed block plus one line is the most a push can add.
        const SLACK: usize = 64 * 1024;
        let mut enc = StagingEncoder::new(header());
        let mut object = Vec::new();
        let mut chunks = 0;
        let mut max_buffered = 0;
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for i in 0..200_000i64 {
            // Varying content so the compressor has work to do.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let event = ev(1_700_000_000_000 + i, &format!("request {i} id={state:016x} ok"));
            enc.push(&event).unwrap();
            max_buffered = max_buffered.max(enc.buffered_len());
            assert!(enc.buffered_len() < CHUNK + SLACK, "{} bytes held", enc.buffered_len());
            if let Some(chunk) = enc.take_ready_chunk(CHUNK) {
                assert!(chunk.len() >= CHUNK);
                object.extend_from_slice(&chunk);
                chunks += 1;
            }
            assert!(enc.buffered_len() < CHUNK);
        }
        let (tail, summary) = enc.finish().unwrap();
        object.extend_from_slice(&tail);
        assert!(chunks > 10, "only {chunks} chunks");
        assert!(max_buffered >= CHUNK);
        assert_eq!(summary.events, 200_000);

        let mut decoder = StagingDecoder::new(object.as_slice()).unwrap();
        let mut count = 0i64;
        for event in &mut decoder {
            let event = event.unwrap();
            assert_eq!(event.timestamp, 1_700_000_000_000 + count);
            count += 1;
        }
        assert_eq!(count, 200_000);
        assert!(decoder.is_complete());
        assert_eq!(decoder.summary(), &summary);
    }

    #[test]
    fn take_ready_chunk_needs_enough_bytes() {
        let mut enc = StagingEncoder::new(header());
        assert_eq!(enc.take_ready_chunk(0), None);
        enc.push(&ev(1, "a")).unwrap();
        assert_eq!(enc.take_ready_chunk(usize::MAX), None);
    }

    const PIECES: &[&str] = &[
        "a",
        " ",
        "\n",
        "\r\n",
        "\t",
        "\u{0}",
        "\u{1f}",
        "\"",
        "\\",
        "é",
        "日本語",
        "🦀",
        "\u{2028}",
        "{\"end\":true}",
        "}",
    ];

    fn message() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(PIECES), 0..12).prop_map(|p| p.concat())
    }

    fn events() -> impl Strategy<Value = Vec<LogEvent>> {
        (any::<i64>(), prop::collection::vec((0i64..3, message()), 0..60)).prop_map(|(start, items)| {
            let mut t = start / 2;
            items
                .into_iter()
                .map(|(step, message)| {
                    t = t.saturating_add(step);
                    LogEvent { timestamp: t, message }
                })
                .collect()
        })
    }

    fn any_header() -> impl Strategy<Value = StagingHeader> {
        (message(), message(), any::<i64>()).prop_map(|(g, s, cutoff_ms)| StagingHeader {
            log_group_name: g,
            log_stream_name: s,
            cutoff_ms,
        })
    }

    proptest! {
        #[test]
        fn round_trip(
            header in any_header(),
            events in events(),
            chunk_sizes in prop::collection::vec(0usize..512, 1..8),
        ) {
            let (whole, summary) = encode_all(header.clone(), &events).unwrap();
            prop_assert_eq!(decode_all(&whole).unwrap(), (header.clone(), events.clone()));
            prop_assert_eq!(summary.events, events.len() as u64);
            prop_assert_eq!(
                summary.message_bytes,
                events.iter().map(|e| e.message.len() as u64).sum::<u64>()
            );
            prop_assert_eq!(summary.first_timestamp, events.first().map(|e| e.timestamp));
            prop_assert_eq!(summary.last_timestamp, events.last().map(|e| e.timestamp));

            // The same events, taken out in chunks of varying sizes.
            let mut enc = StagingEncoder::new(header.clone());
            let mut chunked = Vec::new();
            for (i, event) in events.iter().enumerate() {
                enc.push(event).unwrap();
                if let Some(chunk) = enc.take_ready_chunk(chunk_sizes[i % chunk_sizes.len()]) {
                    prop_assert!(!chunk.is_empty());
                    chunked.extend(chunk);
                }
            }
            let (tail, chunked_summary) = enc.finish().unwrap();
            chunked.extend(tail);
            prop_assert_eq!(&chunked_summary, &summary);
            prop_assert_eq!(&chunked, &whole);
            prop_assert_eq!(plain(&chunked), plain(&whole));
        }

        #[test]
        fn any_truncation_is_an_error(events in events(), cut in any::<prop::sample::Index>()) {
            let (bytes, _) = encode_all(header(), &events).unwrap();
            let cut = cut.index(bytes.len());
            prop_assert!(decode_all(&bytes[..cut]).is_err());
        }
    }
}
