-- Athena table over cwl-archiver's export archive.
--
-- Replace before running: cwl_archiver (database), my-log-archive (bucket),
-- cwl-archiver (the archiver's key prefix, the default). Both statements run
-- as they are in the Athena console or with `aws athena start-query-execution`.
--
-- Layout (crates/archiver/src/layout.rs):
--   {prefix}/{group path}/@exports/dt={YYYY-MM-DD}/{taskId}/{stream}/000000.gz
-- `group path` is the log group name without its leading '/'. Each object is
-- gzip text, one event per line: an ISO-8601 UTC timestamp, one space, the
-- message (crates/archiver/src/export_format.rs).
--
-- Partitions are projected, so no MSCK REPAIR or crawler is needed:
--   log_group  injected: every query names it, e.g. log_group = 'aws/lambda/orders-api'
--              (the group path: the name without its leading '/');
--   dt         the day of the run's cutoff, not of the events: a run exports
--              every event older than its cutoff, so an event of day D lies in
--              a partition with dt >= D. Filter on dt >= D for pruning and on
--              event_time for the exact range.
--
-- Multi-line messages: Athena splits objects on newlines, so each further
-- line of a message is a row of its own with event_time NULL and the line in
-- message. Rows of one object keep no reliable order across splits, so a
-- multi-line message cannot be reassembled in SQL: use `cwl-archiver restore`
-- for exact events. (The export format itself cannot tell a continuation line
-- that starts with a timestamp and a space from a new event.)

CREATE EXTERNAL TABLE IF NOT EXISTS cwl_archiver.exported_events (
  event_time string COMMENT 'ISO-8601 UTC, e.g. 2026-01-31T12:34:56.789Z; NULL on continuation lines',
  message string COMMENT 'the message, or one continuation line of a multi-line message'
)
PARTITIONED BY (log_group string, dt string)
ROW FORMAT SERDE 'org.apache.hadoop.hive.serde2.RegexSerDe'
WITH SERDEPROPERTIES (
  'input.regex' = '^(?:(\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(?:\\.\\d{3})?Z) )?(.*)$'
)
STORED AS INPUTFORMAT 'org.apache.hadoop.mapred.TextInputFormat'
OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'
LOCATION 's3://my-log-archive/cwl-archiver/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.log_group.type' = 'injected',
  'projection.dt.type' = 'date',
  'projection.dt.format' = 'yyyy-MM-dd',
  'projection.dt.range' = '2015-01-01,NOW',
  'projection.dt.interval' = '1',
  'projection.dt.interval.unit' = 'DAYS',
  'storage.location.template' = 's3://my-log-archive/cwl-archiver/${log_group}/@exports/dt=${dt}/'
);

-- The events with their stream and a real timestamp. The stream is the key
-- between the task id and the object name; it may contain '/'.
CREATE OR REPLACE VIEW cwl_archiver.archived_events AS
SELECT
  log_group,
  dt,
  regexp_extract("$path", '/@exports/dt=[^/]+/[^/]+/(.+)/[0-9]+\.gz$', 1) AS stream,
  from_iso8601_timestamp(event_time) AS event_time,
  message
FROM cwl_archiver.exported_events
WHERE event_time IS NOT NULL;

-- Example: the errors of one group in January 2026.
--   SELECT event_time, stream, message
--   FROM cwl_archiver.archived_events
--   WHERE log_group = 'aws/lambda/orders-api' AND dt >= '2026-01-01'
--     AND event_time >= TIMESTAMP '2026-01-01 00:00:00 UTC'
--     AND event_time <  TIMESTAMP '2026-02-01 00:00:00 UTC'
--     AND message LIKE '%ERROR%'
--   ORDER BY event_time;
