//! Reading the objects a CloudWatch Logs export task writes to S3.
//!
//! An export task writes, for every log stream, gzip objects at
//! `<prefix>/<taskId>/<stream>/000000.gz` (then `000001.gz`, ...). Each holds
//! UTF-8 text with one event per line:
//!
//! ```text
//! 2026-10-01T12:34:56.789Z message text
//! ```
//!
//! that is an ISO-8601 UTC timestamp with milliseconds, one space, and the
//! message. A timestamp without milliseconds (`2026-10-01T12:34:56Z`, as some
//! emulators write it) is read with 0 ms. Events within an object come in no
//! particular order; the reader keeps the order of the object.
//!
//! A message may contain newlines. A line that does not begin with a valid
//! timestamp followed by a space continues the message of the event before
//! it (the two are joined with `\n`). This makes the format ambiguous: a
//! message whose second or later line itself starts with a timestamp and a
//! space is read back as two events. Nothing can tell the two cases apart;
//! [`is_round_trip_safe`] says whether a message avoids the ambiguity.
//!
//! Lines are separated by `\n` only; a `\r` is part of the message. One
//! newline at the very end of the object ends the last line and is not part
//! of the last message (so a writer that does not end the object with a
//! newline, as moto does, loses a newline that ends the last message). Text before the first timestamped line (including a
//! blank first line) is an error, and so is text that is not UTF-8.

use std::io::{BufRead, BufReader, Read};

use flate2::read::MultiGzDecoder;

use crate::domain::event::LogEvent;

/// Earliest timestamp (`0000-01-01T00:00:00.000Z`) whose export line can be
/// parsed back: the format has a four-digit year.
pub const MIN_EXPORT_TIMESTAMP_MS: i64 = -62_167_219_200_000;

/// Latest timestamp (`9999-12-31T23:59:59.999Z`) whose export line can be
/// parsed back.
pub const MAX_EXPORT_TIMESTAMP_MS: i64 = 253_402_300_799_999;

const MS_PER_DAY: i64 = 86_400_000;

/// Why an export object could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ExportFormatError {
    /// The object does not start with a timestamped line.
    #[error("line {line}: text before the first timestamped line")]
    MissingTimestamp {
        /// 1-based line number.
        line: usize,
    },
    /// A line is not valid UTF-8.
    #[error("line {line}: not valid UTF-8")]
    InvalidUtf8 {
        /// 1-based line number.
        line: usize,
    },
    /// Reading failed, for example because the gzip data is corrupt or cut
    /// short.
    #[error("reading line {line} of the export object failed")]
    Read {
        /// 1-based number of the line being read.
        line: usize,
        /// The underlying error (gzip errors arrive as I/O errors).
        #[source]
        source: std::io::Error,
    },
}

/// Where an export object sits: `<prefix>/<task_id>/<stream>/<part>.gz`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExportObjectKey {
    /// The export task id (the first key segment after the prefix).
    pub task_id: String,
    /// The log stream name (may contain `/`).
    pub stream: String,
    /// The object's number within the stream: 0 for `000000.gz`.
    pub part: u32,
    /// For a supplement the archiver wrote beside the export
    /// (`late:<runId>:<part>.gz`, see [`supplement_key`]): the run that wrote it.
    pub supplement: Option<String>,
}

/// The key of a supplement to an export: events of the export's window that
/// CloudWatch Logs ingested too late for the export, read by the archiver and
/// written in the export's own line format beside its objects, so that
/// `restore` and Athena read them as part of the export. Stream names cannot
/// contain `:`, and export object names never do, so supplements are never
/// mistaken for either.
pub fn supplement_key(destination_prefix: &str, task_id: &str, stream: &str, run_id: &str, part: u32) -> String {
    format!("{destination_prefix}/{task_id}/{stream}/late:{run_id}:{part:06}.gz")
}

/// Parses an export object key written under `prefix`.
///
/// The first segment after the prefix is the task id, the last one is
/// `NNNNNN.gz` (one or more ASCII digits), and everything in between is the
/// stream name, slashes included. A trailing `/` on `prefix` is ignored; an
/// empty prefix means the key starts with the task id. Returns `None` for any
/// other key, such as the `aws-logs-write-test` object an export task writes
/// to check its permissions.
pub fn parse_export_key(prefix: &str, key: &str) -> Option<ExportObjectKey> {
    let prefix = prefix.trim_end_matches('/');
    let rest = if prefix.is_empty() {
        key
    } else {
        key.strip_prefix(prefix)?.strip_prefix('/')?
    };
    let (task_id, rest) = rest.split_once('/')?;
    let (stream, file) = rest.rsplit_once('/')?;
    let (supplement, digits) = match file.strip_prefix("late:") {
        Some(late) => {
            let (run_id, part) = late.split_once(':')?;
            if run_id.is_empty() {
                return None;
            }
            (Some(run_id.to_string()), part.strip_suffix(".gz")?)
        }
        None => (None, file.strip_suffix(".gz")?),
    };
    if task_id.is_empty() || stream.is_empty() || digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let part = digits.parse().ok()?;
    Some(ExportObjectKey {
        task_id: task_id.to_string(),
        stream: stream.to_string(),
        part,
        supplement,
    })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (inverse of
/// [`days_from_civil`]); total over every `i64` timestamp's day count.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 31,
    }
}

/// Reads `len` ASCII digits at `at`.
fn digits(bytes: &[u8], at: usize, len: usize) -> Option<i64> {
    let slice = bytes.get(at..at + len)?;
    slice.iter().try_fold(0i64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
    })
}

/// If `line` starts with an export timestamp followed by a space, returns
/// the timestamp in ms and the byte offset where the message starts.
fn split_timestamp(line: &str) -> Option<(i64, usize)> {
    let b = line.as_bytes();
    let punctuation = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if punctuation.iter().any(|&(i, c)| b.get(i) != Some(&c)) {
        return None;
    }
    let year = digits(b, 0, 4)?;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    let hour = digits(b, 11, 2)?;
    let minute = digits(b, 14, 2)?;
    let second = digits(b, 17, 2)?;
    let (millis, zone_at) = match b.get(19) {
        Some(b'.') => (digits(b, 20, 3)?, 23),
        _ => (0, 19),
    };
    if b.get(zone_at) != Some(&b'Z') || b.get(zone_at + 1) != Some(&b' ') {
        return None;
    }
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let ms = days * MS_PER_DAY + ((hour * 60 + minute) * 60 + second) * 1_000 + millis;
    Some((ms, zone_at + 2))
}

/// Formats one event as an export line, without the line's terminating
/// newline: `2026-10-01T12:34:56.789Z message`.
///
/// Every timestamp is formatted, but only those between
/// [`MIN_EXPORT_TIMESTAMP_MS`] and [`MAX_EXPORT_TIMESTAMP_MS`] (four-digit
/// years) parse back; the message survives the round trip when
/// [`is_round_trip_safe`] holds.
pub fn format_export_line(e: &LogEvent) -> String {
    let days = e.timestamp.div_euclid(MS_PER_DAY);
    let in_day = e.timestamp.rem_euclid(MS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let (hour, minute) = (in_day / 3_600_000, in_day / 60_000 % 60);
    let (second, millis) = (in_day / 1_000 % 60, in_day % 1_000);
    format!(
        "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millis:03}Z {}",
        e.message
    )
}

/// Formats events as the text of an export object: one
/// [`format_export_line`] per event, each ended by `\n`.
pub fn format_export_text(events: &[LogEvent]) -> String {
    let mut text = String::new();
    for e in events {
        text.push_str(&format_export_line(e));
        text.push('\n');
    }
    text
}

/// A gzip object of export lines, as an export task writes them: what the
/// archiver writes for supplements (and the memory store for its exports).
pub fn encode_export_object(events: &[LogEvent]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(format_export_text(events).as_bytes())?;
    gz.finish()
}

/// Whether a message reads back unchanged from an export line: true unless
/// one of its lines after the first starts with an export timestamp and a
/// space, which the reader would take for the start of a new event.
pub fn is_round_trip_safe(message: &str) -> bool {
    message.split('\n').skip(1).all(|line| split_timestamp(line).is_none())
}

/// Streaming reader of export object text: yields the events one by one,
/// holding only the event being assembled.
///
/// After the first error the iterator ends.
#[derive(Debug)]
pub struct ExportReader<R: BufRead> {
    reader: R,
    buf: Vec<u8>,
    line: usize,
    pending: Option<LogEvent>,
    done: bool,
}

impl<R: BufRead> ExportReader<R> {
    /// Reads export text (already decompressed) from `reader`.
    pub fn new(reader: R) -> Self {
        Self {
            reader,
            buf: Vec::new(),
            line: 0,
            pending: None,
            done: false,
        }
    }

    /// Number of lines read so far.
    pub fn lines_read(&self) -> usize {
        self.line
    }

    /// Reads the next line without its `\n`, or `None` at the end.
    fn read_line(&mut self) -> Result<Option<String>, ExportFormatError> {
        self.buf.clear();
        let read = self
            .reader
            .read_until(b'\n', &mut self.buf)
            .map_err(|source| ExportFormatError::Read {
                line: self.line + 1,
                source,
            })?;
        if read == 0 {
            return Ok(None);
        }
        self.line += 1;
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
        }
        let bytes = std::mem::take(&mut self.buf);
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| ExportFormatError::InvalidUtf8 { line: self.line })
    }

    fn step(&mut self) -> Result<Option<LogEvent>, ExportFormatError> {
        loop {
            let Some(mut line) = self.read_line()? else {
                return Ok(self.pending.take());
            };
            if let Some((timestamp, message_at)) = split_timestamp(&line) {
                line.replace_range(..message_at, "");
                let next = LogEvent {
                    timestamp,
                    message: line,
                };
                if let Some(complete) = self.pending.replace(next) {
                    return Ok(Some(complete));
                }
            } else if let Some(event) = self.pending.as_mut() {
                event.message.push('\n');
                event.message.push_str(&line);
            } else {
                return Err(ExportFormatError::MissingTimestamp { line: self.line });
            }
        }
    }
}

impl<R: Read> ExportReader<BufReader<MultiGzDecoder<R>>> {
    /// Reads a gzip-compressed export object (one or more gzip members).
    pub fn from_gzip(reader: R) -> Self {
        Self::new(BufReader::new(MultiGzDecoder::new(reader)))
    }
}

impl<R: BufRead> Iterator for ExportReader<R> {
    type Item = Result<LogEvent, ExportFormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(Some(event)) => Some(Ok(event)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                self.pending = None;
                Some(Err(e))
            }
        }
    }
}

/// Parses the (decompressed) text of an export object into its events, in
/// the order of the text.
pub fn parse_export_text(text: &str) -> Result<Vec<LogEvent>, ExportFormatError> {
    ExportReader::new(text.as_bytes()).collect()
}

/// Decompresses a gzip export object and parses its events.
pub fn read_export_object(gz: &[u8]) -> Result<Vec<LogEvent>, ExportFormatError> {
    ExportReader::from_gzip(gz).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use proptest::prelude::*;
    use std::io::Write;

    fn ev(timestamp: i64, message: &str) -> LogEvent {
        LogEvent {
            timestamp,
            message: message.to_string(),
        }
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn chrono_ms(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    #[test]
    fn parses_lines_with_and_without_millis() {
        let text = "2026-10-01T12:34:56.789Z hello world\n2026-10-01T12:34:57Z moto style\n";
        let events = parse_export_text(text).unwrap();
        assert_eq!(
            events,
            vec![
                ev(chrono_ms("2026-10-01T12:34:56.789Z"), "hello world"),
                ev(chrono_ms("2026-10-01T12:34:57.000Z"), "moto style"),
            ]
        );
    }

    #[test]
    fn continuation_lines_join_the_previous_message() {
        let text = "2026-10-01T00:00:00.001Z first\n  at frame 1\n\nlast line\n\
                    2026-10-01T00:00:00.000Z second\n";
        let events = parse_export_text(text).unwrap();
        assert_eq!(
            events,
            vec![
                ev(
                    chrono_ms("2026-10-01T00:00:00.001Z"),
                    "first\n  at frame 1\n\nlast line"
                ),
                ev(chrono_ms("2026-10-01T00:00:00.000Z"), "second"),
            ]
        );
    }

    #[test]
    fn only_one_trailing_newline_is_dropped() {
        let t = chrono_ms("2026-10-01T00:00:00Z");
        assert_eq!(
            parse_export_text("2026-10-01T00:00:00.000Z a").unwrap(),
            vec![ev(t, "a")]
        );
        assert_eq!(
            parse_export_text("2026-10-01T00:00:00.000Z a\n").unwrap(),
            vec![ev(t, "a")]
        );
        assert_eq!(
            parse_export_text("2026-10-01T00:00:00.000Z a\n\n").unwrap(),
            vec![ev(t, "a\n")]
        );
        assert_eq!(
            parse_export_text("2026-10-01T00:00:00.000Z \n").unwrap(),
            vec![ev(t, "")]
        );
    }

    #[test]
    fn carriage_returns_stay_in_the_message() {
        let t = chrono_ms("2026-10-01T00:00:00Z");
        assert_eq!(
            parse_export_text("2026-10-01T00:00:00.000Z a\r\nb\r\n").unwrap(),
            vec![ev(t, "a\r\nb\r")]
        );
    }

    #[test]
    fn empty_object_has_no_events() {
        assert_eq!(parse_export_text("").unwrap(), vec![]);
        assert_eq!(read_export_object(&gzip(b"")).unwrap(), vec![]);
    }

    #[test]
    fn text_before_the_first_timestamp_names_the_line() {
        let err = parse_export_text("garbage\n2026-10-01T00:00:00.000Z a\n").unwrap_err();
        assert!(matches!(err, ExportFormatError::MissingTimestamp { line: 1 }));
        let err = parse_export_text("\n2026-10-01T00:00:00.000Z a\n").unwrap_err();
        assert!(matches!(err, ExportFormatError::MissingTimestamp { line: 1 }));
        assert!(err.to_string().contains("line 1"));
    }

    #[test]
    fn near_timestamps_are_continuations() {
        let base = "2026-10-01T00:00:00.000Z a\n";
        for cont in [
            "2026-10-01T00:00:00.000Z",        // no space after it
            "2026-10-01T00:00:00.000Zb",       // no space after it
            "2026-10-01 00:00:00.000Z b",      // no T
            "2026-13-01T00:00:00.000Z b",      // month 13
            "2026-02-29T00:00:00.000Z b",      // not a leap year
            "2026-10-01T24:00:00.000Z b",      // hour 24
            "2026-10-01T00:00:60.000Z b",      // leap second
            "2026-10-01T00:00:00.00Z b",       // two-digit millis
            "2026-10-01T00:00:00.000+00:00 b", // offset instead of Z
            "+2026-10-01T00:00:00.000Z b",
            "20261001T000000Z b",
        ] {
            let events = parse_export_text(&format!("{base}{cont}\n")).unwrap();
            assert_eq!(events.len(), 1, "{cont:?}");
            assert_eq!(events[0].message, format!("a\n{cont}"));
        }
        // A real leap day is a timestamp.
        let events = parse_export_text(&format!("{base}2024-02-29T00:00:00.000Z b\n")).unwrap();
        assert_eq!(events.len(), 2);
    }

    #[test]
    fn invalid_utf8_names_the_line() {
        let mut data = b"2026-10-01T00:00:00.000Z a\n2026-10-01T00:00:00.000Z ".to_vec();
        data.extend_from_slice(&[0xff, 0xfe, b'\n']);
        let err = read_export_object(&gzip(&data)).unwrap_err();
        assert!(matches!(err, ExportFormatError::InvalidUtf8 { line: 2 }));
    }

    #[test]
    fn gzip_errors_are_reported() {
        let good = gzip(b"2026-10-01T00:00:00.000Z a\n");
        let cut = &good[..good.len() - 4];
        assert!(matches!(read_export_object(cut), Err(ExportFormatError::Read { .. })));
        assert!(matches!(
            read_export_object(b"not gzip at all"),
            Err(ExportFormatError::Read { .. })
        ));
    }

    #[test]
    fn concatenated_gzip_members_are_read() {
        let mut data = gzip(b"2026-10-01T00:00:00.000Z a\n");
        data.extend(gzip(b"2026-10-01T00:00:01.000Z b\n"));
        let events = read_export_object(&data).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].message, "b");
    }

    #[test]
    fn reader_stops_after_an_error() {
        let mut reader = ExportReader::new("oops\n2026-10-01T00:00:00.000Z a\n".as_bytes());
        assert!(matches!(reader.next(), Some(Err(_))));
        assert!(reader.next().is_none());
    }

    #[test]
    fn ambiguity_of_timestamped_continuation_lines() {
        let message = "first line\n2026-10-01T00:00:00.000Z looks like an event";
        assert!(!is_round_trip_safe(message));
        assert!(is_round_trip_safe("2026-10-01T00:00:00.000Z first line is fine"));
        let events = parse_export_text(&format_export_text(&[ev(0, message)])).unwrap();
        assert_eq!(events.len(), 2);
    }

    #[test]
    fn formats_like_aws() {
        let t = chrono_ms("2026-10-01T12:34:56.789Z");
        assert_eq!(
            format_export_line(&ev(t, "hi there")),
            "2026-10-01T12:34:56.789Z hi there"
        );
        assert_eq!(format_export_line(&ev(0, "")), "1970-01-01T00:00:00.000Z ");
        assert_eq!(format_export_line(&ev(-1, "x")), "1969-12-31T23:59:59.999Z x");
    }

    #[test]
    fn timestamp_range_constants_match_chrono() {
        assert_eq!(MIN_EXPORT_TIMESTAMP_MS, chrono_ms("0000-01-01T00:00:00.000Z"));
        assert_eq!(MAX_EXPORT_TIMESTAMP_MS, chrono_ms("9999-12-31T23:59:59.999Z"));
        for t in [MIN_EXPORT_TIMESTAMP_MS, MAX_EXPORT_TIMESTAMP_MS] {
            let text = format_export_text(&[ev(t, "edge")]);
            assert_eq!(parse_export_text(&text).unwrap(), vec![ev(t, "edge")]);
        }
    }

    #[test]
    fn formatting_never_panics_at_the_extremes() {
        for t in [i64::MIN, i64::MAX, i64::MIN + 1, i64::MAX - 1] {
            let line = format_export_line(&ev(t, "x"));
            assert!(line.ends_with("Z x"));
        }
    }

    #[test]
    fn supplement_keys_parse_back_as_the_stream_of_their_export() {
        let key = supplement_key("exports/app", "t-1", "2026/10/01/[$LATEST]ab", "run-7", 2);
        assert_eq!(key, "exports/app/t-1/2026/10/01/[$LATEST]ab/late:run-7:000002.gz");
        assert_eq!(
            parse_export_key("exports/app", &key),
            Some(ExportObjectKey {
                task_id: "t-1".into(),
                stream: "2026/10/01/[$LATEST]ab".into(),
                part: 2,
                supplement: Some("run-7".into()),
            })
        );
    }

    #[test]
    fn export_keys() {
        let key = |task: &str, stream: &str, part| ExportObjectKey {
            task_id: task.to_string(),
            stream: stream.to_string(),
            part,
            supplement: None,
        };
        assert_eq!(
            parse_export_key("exports/app", "exports/app/1234-abcd/web-1/000000.gz"),
            Some(key("1234-abcd", "web-1", 0))
        );
        assert_eq!(
            parse_export_key("exports/app/", "exports/app/t/2026/10/01/[$LATEST]ab/000012.gz"),
            Some(key("t", "2026/10/01/[$LATEST]ab", 12))
        );
        assert_eq!(parse_export_key("", "t/s/000001.gz"), Some(key("t", "s", 1)));
        assert_eq!(
            parse_export_key("p", "p/t/s/000000.gz/000003.gz"),
            Some(key("t", "s/000000.gz", 3))
        );
        for bad in [
            "exports/app/aws-logs-write-test",
            "exports/aws-logs-write-test",
            "exports/app2/t/s/000000.gz",
            "other/t/s/000000.gz",
            "exports/app/t/000000.gz",
            "exports/app//s/000000.gz",
            "exports/app/t//000000.gz",
            "exports/app/t/s/000000",
            "exports/app/t/s/.gz",
            "exports/app/t/s/00a000.gz",
            "exports/app/t/s/99999999999.gz",
            "exports/app/t/s/+1.gz",
            "exports/app/t/s/late::000001.gz",
            "exports/app/t/s/late:r:x.gz",
            "exports/app/t/s/late:r.gz",
        ] {
            assert_eq!(parse_export_key("exports/app", bad), None, "{bad}");
        }
    }

    const PIECES: &[&str] = &[
        "a",
        "Z",
        " ",
        "  ",
        "\n",
        "\r",
        "\t",
        "é",
        "日本語",
        "🦀",
        "\u{0}",
        "\"",
        "\\",
        "2026-10-01T00:00:00.000Z",
        "2026-10-01T00:00:00Z",
        "T",
        ":",
        "-",
        "0",
        "9",
    ];

    fn message() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(PIECES), 0..16)
            .prop_map(|p| p.concat())
            .prop_filter("ambiguous continuation line", |m| is_round_trip_safe(m))
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(
            events in prop::collection::vec(
                (MIN_EXPORT_TIMESTAMP_MS..=MAX_EXPORT_TIMESTAMP_MS, message())
                    .prop_map(|(timestamp, message)| LogEvent { timestamp, message }),
                0..20,
            )
        ) {
            let text = format_export_text(&events);
            prop_assert_eq!(&parse_export_text(&text).unwrap(), &events);
            prop_assert_eq!(&read_export_object(&gzip(text.as_bytes())).unwrap(), &events);
            // Lines joined without a final newline (as moto writes them) read
            // the same, unless the last message itself ends with a newline.
            if !events.last().is_some_and(|e| e.message.ends_with('\n')) {
                let joined: Vec<String> = events.iter().map(format_export_line).collect();
                prop_assert_eq!(&parse_export_text(&joined.join("\n")).unwrap(), &events);
            }
        }

        #[test]
        fn timestamps_agree_with_chrono(t in MIN_EXPORT_TIMESTAMP_MS..=MAX_EXPORT_TIMESTAMP_MS) {
            let line = format_export_line(&ev(t, "m"));
            let ts = line.split(' ').next().unwrap();
            let expected = chrono::DateTime::from_timestamp_millis(t)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string();
            prop_assert_eq!(ts, expected);
            prop_assert_eq!(split_timestamp(&line), Some((t, 25)));
            // The form without milliseconds reads as the whole second.
            let whole = format!("{}Z m", &ts[..19]);
            prop_assert_eq!(split_timestamp(&whole), Some((t - t.rem_euclid(1000), 21)));
        }
    }
}
