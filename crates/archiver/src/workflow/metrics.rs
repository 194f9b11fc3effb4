//! CloudWatch Embedded Metric Format (EMF): metrics written as one JSON log
//! line that CloudWatch Logs turns into metrics, so the Lambdas publish them
//! without a PutMetricData call (no extra permission, no extra latency).
//!
//! A line looks like:
//!
//! ```json
//! {"_aws":{"Timestamp":1761350400000,"CloudWatchMetrics":[{"Namespace":"CwlArchiver",
//!   "Dimensions":[["LogGroup"]],"Metrics":[{"Name":"EventsReplayed","Unit":"Count"}]}]},
//!  "LogGroup":"/aws/lambda/api","EventsReplayed":42}
//! ```

use serde_json::{Map, Value, json};

use crate::workflow::RunReport;

/// The CloudWatch metrics namespace of the archiver.
pub const NAMESPACE: &str = "CwlArchiver";

/// The dimension every metric carries: the archived log group.
pub const LOG_GROUP_DIMENSION: &str = "LogGroup";

/// The unit of a metric, as EMF spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A plain count.
    Count,
    /// Bytes.
    Bytes,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Bytes => "Bytes",
        }
    }
}

/// A set of metrics sharing one namespace, timestamp and dimension values.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSet {
    timestamp_ms: i64,
    dimensions: Vec<(String, String)>,
    metrics: Vec<(String, Unit, f64)>,
}

impl MetricSet {
    /// An empty set for `log_group` at `timestamp_ms`.
    pub fn for_group(log_group: &str, timestamp_ms: i64) -> Self {
        Self {
            timestamp_ms,
            dimensions: vec![(LOG_GROUP_DIMENSION.to_string(), log_group.to_string())],
            metrics: Vec::new(),
        }
    }

    /// Adds one metric value.
    pub fn add(&mut self, name: &str, unit: Unit, value: f64) -> &mut Self {
        self.metrics.push((name.to_string(), unit, value));
        self
    }

    /// The EMF document.
    pub fn to_json(&self) -> Value {
        let dimension_names: Vec<&str> = self.dimensions.iter().map(|(k, _)| k.as_str()).collect();
        let definitions: Vec<Value> = self
            .metrics
            .iter()
            .map(|(name, unit, _)| json!({"Name": name, "Unit": unit.as_str()}))
            .collect();
        let mut root = Map::new();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": self.timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [dimension_names],
                    "Metrics": definitions,
                }],
            }),
        );
        for (name, value) in &self.dimensions {
            root.insert(name.clone(), Value::from(value.as_str()));
        }
        for (name, _, value) in &self.metrics {
            root.insert(name.clone(), json!(value));
        }
        Value::Object(root)
    }

    /// Prints the document as one line on stdout, where the Lambda runtime
    /// sends it to CloudWatch Logs (EMF is read from the function's log).
    /// Outside Lambda (the local stack, tests, tools) there is no log to
    /// read metrics from, so it goes to the debug log instead.
    pub fn emit(&self) {
        if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
            println!("{}", self.to_json());
        } else {
            tracing::debug!(metrics = %self.to_json(), "run metrics");
        }
    }
}

/// A run that succeeded, counted without a dimension: the template's alarm
/// on "no successful run for N days" watches it (missing data breaches), the
/// backstop once retention is in place (docs/safety.md).
pub fn run_succeeded(timestamp_ms: i64) -> MetricSet {
    let mut set = MetricSet {
        timestamp_ms,
        dimensions: Vec::new(),
        metrics: Vec::new(),
    };
    set.add("RunsSucceeded", Unit::Count, 1.0);
    set
}

/// The metrics of a finished run: events and bytes replayed, export volume,
/// and streams per action (`StreamsDeleted`, `StreamsRebuilt`, ...).
///
/// The run counts events only where it reads them (the replayed and the
/// supplemented ones); the exported and deleted volume is known in bytes of
/// the export objects (a stream's `storedBytes` has been 0 on AWS since 2019).
pub fn run_metrics(report: &RunReport, timestamp_ms: i64) -> MetricSet {
    let totals = &report.totals;
    let mut set = MetricSet::for_group(&report.log_group_name, timestamp_ms);
    set.add("EventsReplayed", Unit::Count, totals.events_replayed as f64)
        .add("BytesReingested", Unit::Bytes, totals.bytes_replayed as f64)
        .add("ExportObjects", Unit::Count, totals.export_objects as f64)
        .add("BytesExported", Unit::Bytes, totals.export_bytes as f64)
        .add(
            "DeletedStreamsExportBytes",
            Unit::Bytes,
            totals.deleted_streams_export_bytes as f64,
        )
        .add("EventsSupplemented", Unit::Count, totals.events_supplemented as f64);
    for (action, count) in &totals.streams {
        set.add(&format!("Streams{}", camel(action)), Unit::Count, *count as f64);
    }
    set
}

/// `would-delete` -> `WouldDelete`.
fn camel(action: &str) -> String {
    action
        .split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::input::Mode;
    use crate::workflow::RunTotals;

    #[test]
    fn the_document_has_the_exact_emf_shape() {
        let mut set = MetricSet::for_group("/app/api", 1_761_350_400_000);
        set.add("EventsReplayed", Unit::Count, 42.0)
            .add("BytesReingested", Unit::Bytes, 1000.0);
        assert_eq!(
            set.to_json(),
            json!({
                "_aws": {
                    "Timestamp": 1_761_350_400_000i64,
                    "CloudWatchMetrics": [{
                        "Namespace": "CwlArchiver",
                        "Dimensions": [["LogGroup"]],
                        "Metrics": [
                            {"Name": "EventsReplayed", "Unit": "Count"},
                            {"Name": "BytesReingested", "Unit": "Bytes"}
                        ]
                    }]
                },
                "LogGroup": "/app/api",
                "EventsReplayed": 42.0,
                "BytesReingested": 1000.0
            })
        );
    }

    #[test]
    fn a_run_reports_streams_per_action() {
        let mut totals = RunTotals {
            events_replayed: 7,
            bytes_replayed: 700,
            ..RunTotals::default()
        };
        totals.streams.insert("deleted".into(), 2);
        totals.streams.insert("would-rebuild".into(), 1);
        let report = RunReport {
            log_group_name: "/g".into(),
            mode: Mode::Rebuild,
            cutoff: String::new(),
            run_id: "r".into(),
            status: "SUCCEEDED".into(),
            execution_arn: None,
            started_at: String::new(),
            finished_at: String::new(),
            export_task_id: None,
            totals,
            retention: Default::default(),
            report_bucket: "b".into(),
            report_key: "k".into(),
            outcomes: Vec::new(),
        };
        let doc = run_metrics(&report, 0).to_json();
        assert_eq!(doc["StreamsDeleted"], json!(2.0));
        assert_eq!(doc["StreamsWouldRebuild"], json!(1.0));
        assert_eq!(doc["EventsReplayed"], json!(7.0));
        let names: Vec<&str> = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"StreamsDeleted") && names.contains(&"BytesReingested"));
    }
}
