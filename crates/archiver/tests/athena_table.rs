//! `infra/athena.sql` and the export reader agree: the table's RegexSerDe
//! regex splits sample export lines exactly as `export_format` parses them,
//! and its location template and `$path` stream extraction follow the layout.

use std::io::Read;

use archiver::LogEvent;
use archiver::domain::export_format::{format_export_line, format_export_text, parse_export_key, read_export_object};
use archiver::domain::layout::GroupLayout;
use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use regex::Regex;

fn sql() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/athena.sql");
    std::fs::read_to_string(path).expect("infra/athena.sql")
}

/// The value of a `'name' = 'value'` property, with Hive's string escapes
/// undone (`\\` is one backslash, `''` one quote).
fn property(sql: &str, name: &str) -> String {
    let marker = format!("'{name}' = '");
    let start = sql.find(&marker).unwrap_or_else(|| panic!("{name} in athena.sql")) + marker.len();
    let rest = &sql[start..];
    let end = rest
        .find("'\n")
        .or_else(|| rest.find("',\n"))
        .expect("end of the value");
    rest[..end]
        .trim_end_matches('\'')
        .replace("\\\\", "\\")
        .replace("''", "'")
}

/// The rows Athena makes of an object's text, reassembled as the export
/// reader joins lines: a row with a timestamp starts an event, a row
/// without one continues the previous message.
fn rows_as_events(regex: &Regex, text: &str) -> Vec<LogEvent> {
    let text = text.strip_suffix('\n').unwrap_or(text);
    let mut events: Vec<LogEvent> = Vec::new();
    for line in text.split('\n') {
        let caps = regex
            .captures(line)
            .unwrap_or_else(|| panic!("the regex rejects {line:?}"));
        let message = caps.get(2).map_or("", |m| m.as_str());
        match caps.get(1) {
            Some(ts) => {
                let t = chrono::DateTime::parse_from_rfc3339(ts.as_str()).expect("an ISO-8601 time");
                events.push(LogEvent::new(t.timestamp_millis(), message));
            }
            None => {
                let last = events.last_mut().expect("a continuation after an event");
                last.message.push('\n');
                last.message.push_str(message);
            }
        }
    }
    events
}

fn samples() -> Vec<LogEvent> {
    vec![
        LogEvent::new(1_767_225_600_000, "GET /api/orders 200 12ms"),
        LogEvent::new(1_767_225_600_123, "{\"level\":\"error\",\"msg\":\"boom\"}"),
        LogEvent::new(
            1_767_225_601_999,
            "Traceback (most recent call last):\n  File \"app.py\", line 3\nValueError: boom",
        ),
        LogEvent::new(1_767_225_602_000, "événement — ünïcödé ✓ 日本語"),
        LogEvent::new(1_767_225_603_004, "trailing spaces and a tab\t  "),
        LogEvent::new(1_767_225_604_005, ""),
        LogEvent::new(1_767_225_605_006, "  indented first line\n\nafter a blank line"),
        LogEvent::new(1_767_225_606_007, "2026-01-01T00:00:00 is not a timestamp line (no Z)"),
    ]
}

#[test]
fn the_regex_splits_export_lines_as_the_reader_parses_them() {
    let regex = Regex::new(&property(&sql(), "input.regex")).expect("the table's regex compiles");
    let events = samples();
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    std::io::Write::write_all(&mut gz, format_export_text(&events).as_bytes()).unwrap();
    let object = gz.finish().unwrap();

    let mut text = String::new();
    MultiGzDecoder::new(object.as_slice())
        .read_to_string(&mut text)
        .unwrap();
    let parsed = read_export_object(&object).unwrap();
    assert_eq!(parsed, events, "the reader round-trips the samples");
    assert_eq!(rows_as_events(&regex, &text), parsed);

    // Each event's first line is one row with its timestamp and message start.
    for e in &events {
        let line = format_export_line(e);
        let first = line.split('\n').next().unwrap();
        let caps = regex.captures(first).unwrap();
        assert!(caps.get(1).is_some(), "{first:?}");
        assert_eq!(caps.get(2).unwrap().as_str(), e.message.split('\n').next().unwrap());
    }

    // Lines as an emulator writes them (no milliseconds) are read with 0 ms by both.
    let moto = "2026-01-01T00:00:05Z no millis\n";
    assert_eq!(
        rows_as_events(&regex, moto),
        archiver::domain::export_format::parse_export_text(moto).unwrap()
    );
}

#[test]
fn the_location_template_and_the_stream_column_follow_the_layout() {
    let sql = sql();
    let layout = GroupLayout::new("cwl-archiver", "/aws/lambda/orders-api");
    let prefix = layout.export_prefix(1_767_225_600_000);
    let key = format!("{prefix}/0f1e2d3c/2026/01/01/[$LATEST]abc/000001.gz");

    let template = property(&sql, "storage.location.template");
    let location = template
        .replace("${log_group}", "aws/lambda/orders-api")
        .replace("${dt}", "2026-01-01");
    let path = format!("s3://my-log-archive/{key}");
    assert!(path.starts_with(&location), "{path} under {location}");
    assert_eq!(
        location.trim_end_matches('/'),
        format!("s3://my-log-archive/{prefix}").as_str()
    );

    // The view's regexp_extract on "$path" (Trino regex, no Hive escaping).
    let start = sql.find("regexp_extract(\"$path\", '").unwrap() + "regexp_extract(\"$path\", '".len();
    let stream_regex = Regex::new(&sql[start..start + sql[start..].find('\'').unwrap()]).unwrap();
    let stream = stream_regex.captures(&path).unwrap().get(1).unwrap().as_str();
    assert_eq!(stream, parse_export_key(&prefix, &key).unwrap().stream);
    assert_eq!(stream, "2026/01/01/[$LATEST]abc");
}
