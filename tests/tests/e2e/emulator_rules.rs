//! The emulator says no where AWS says no: one test per rule of
//! `tests/emulator/RULES.md` that the strict emulator added on top of moto
//! (quotas, stream metadata, retention, data protection, S3 conditional
//! writes, Lambda and Step Functions limits), through the AWS Rust SDK.
//!
//! Run: `cargo test -p cwl-archiver-e2e --test e2e emulator_rules::`
//! (needs `make venv`, or `CWL_EMULATOR_PYTHON`; `CWL_EMULATOR_LOG=1` echoes
//! the emulator's stderr).

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_cloudwatchlogs::error::ProvideErrorMetadata;
use aws_sdk_cloudwatchlogs::types::{ExportTaskStatusCode, InputLogEvent, PolicyType};
use aws_sdk_sfn::types::ExecutionStatus;
use chrono::Utc;
use cwl_archiver_e2e::emulator::{Emulator, EmulatorOptions};
use serde_json::{Value, json};

const DAY_MS: i64 = 24 * 3600 * 1000;
const EMAIL_ARN: &str = "arn:aws:dataprotection::aws:data-identifier/EmailAddress";

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

async fn start() -> Emulator {
    start_with_lambda(None).await
}

async fn start_with_lambda(lambda_endpoint: Option<String>) -> Emulator {
    match Emulator::start(EmulatorOptions {
        lambda_endpoint,
        export_delay_seconds: 0.3,
    })
    .await
    {
        Ok(emu) => emu,
        Err(e) => panic!("{e}"),
    }
}

fn code<E: ProvideErrorMetadata>(err: &E) -> String {
    err.code().unwrap_or("<no code>").to_string()
}

fn ev(ts: i64, msg: &str) -> InputLogEvent {
    InputLogEvent::builder().timestamp(ts).message(msg).build().unwrap()
}

async fn group_and_stream(emu: &Emulator, group: &str, stream: &str) {
    let logs = emu.logs();
    logs.create_log_group().log_group_name(group).send().await.unwrap();
    logs.create_log_stream()
        .log_group_name(group)
        .log_stream_name(stream)
        .send()
        .await
        .unwrap();
}

async fn put(emu: &Emulator, group: &str, stream: &str, events: Vec<InputLogEvent>) {
    let out = emu
        .logs()
        .put_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .set_log_events(Some(events))
        .send()
        .await
        .unwrap();
    assert!(out.rejected_log_events_info().is_none(), "{out:?}");
}

/// Every event of a stream through GetLogEvents, forward, with the repeated-token end rule.
async fn read(emu: &Emulator, group: &str, stream: &str, unmask: bool) -> Vec<(i64, String, i64)> {
    let logs = emu.logs();
    let mut token: Option<String> = None;
    let mut out = Vec::new();
    loop {
        let resp = logs
            .get_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .start_from_head(true)
            .unmask(unmask)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        out.extend(resp.events().iter().map(|e| {
            (
                e.timestamp().unwrap(),
                e.message().unwrap().to_string(),
                e.ingestion_time().unwrap_or(-1),
            )
        }));
        let next = resp.next_forward_token().unwrap().to_string();
        if token.as_deref() == Some(next.as_str()) {
            return out;
        }
        token = Some(next);
    }
}

fn messages(events: &[(i64, String, i64)]) -> Vec<&str> {
    events.iter().map(|(_, m, _)| m.as_str()).collect()
}

async fn describe_stream(emu: &Emulator, group: &str, stream: &str) -> aws_sdk_cloudwatchlogs::types::LogStream {
    let out = emu
        .logs()
        .describe_log_streams()
        .log_group_name(group)
        .log_stream_name_prefix(stream)
        .send()
        .await
        .unwrap();
    out.log_streams()
        .iter()
        .find(|s| s.log_stream_name() == Some(stream))
        .cloned()
        .expect("stream listed")
}

async fn describe_group(emu: &Emulator, group: &str) -> aws_sdk_cloudwatchlogs::types::LogGroup {
    let out = emu
        .logs()
        .describe_log_groups()
        .log_group_name_prefix(group)
        .send()
        .await
        .unwrap();
    out.log_groups()
        .iter()
        .find(|g| g.log_group_name() == Some(group))
        .cloned()
        .expect("group listed")
}

// ---------------------------------------------------------------------------
// DescribeLogStreams / DescribeLogGroups metadata
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn stream_stored_bytes_is_always_zero_and_the_group_stored_bytes_is_real() {
    let emu = start().await;
    group_and_stream(&emu, "/rules/bytes", "s").await;
    let t = now_ms() - 60_000;
    put(&emu, "/rules/bytes", "s", vec![ev(t, "hello"), ev(t + 1, "wörld")]).await;
    let stream = describe_stream(&emu, "/rules/bytes", "s").await;
    #[allow(deprecated)] // deprecated precisely because AWS always reports 0
    let stored = stream.stored_bytes();
    assert_eq!(stored, Some(0));
    assert_eq!(stream.last_event_timestamp(), Some(t + 1));
    let group = describe_group(&emu, "/rules/bytes").await;
    assert_eq!(group.stored_bytes(), Some(5 + 6), "UTF-8 bytes of the messages");
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_metadata_is_stale_by_the_configured_lag() {
    let emu = start().await;
    let g = "/rules/lag";
    let now = now_ms();
    // Ingested two hours ago, and now.
    emu.seed_with_ingestion(g, "old", &[(now - 3 * 3_600_000, "a".into())], now - 2 * 3_600_000)
        .await
        .unwrap();
    emu.seed_with_ingestion(g, "mixed", &[(now - 3 * 3_600_000, "a".into())], now - 2 * 3_600_000)
        .await
        .unwrap();
    emu.seed(g, "mixed", &[(now - 1_000, "b".into())]).await.unwrap();
    emu.seed(g, "new", &[(now - 1_000, "c".into())]).await.unwrap();

    emu.set_metadata_lag(Some(Duration::from_secs(1800))).await.unwrap();
    let old = describe_stream(&emu, g, "old").await;
    assert_eq!(old.last_event_timestamp(), Some(now - 3 * 3_600_000));
    assert_eq!(old.last_ingestion_time(), Some(now - 2 * 3_600_000));
    let mixed = describe_stream(&emu, g, "mixed").await;
    assert_eq!(
        mixed.last_event_timestamp(),
        Some(now - 3 * 3_600_000),
        "the new event is not visible yet"
    );
    assert_eq!(mixed.last_ingestion_time(), Some(now - 2 * 3_600_000));
    let new = describe_stream(&emu, g, "new").await;
    assert_eq!(new.first_event_timestamp(), None);
    assert_eq!(new.last_event_timestamp(), None);
    assert_eq!(new.last_ingestion_time(), None);
    // Reads are not lagged.
    assert_eq!(read(&emu, g, "new", false).await.len(), 1);

    emu.set_metadata_lag(None).await.unwrap();
    let mixed = describe_stream(&emu, g, "mixed").await;
    assert_eq!(mixed.last_event_timestamp(), Some(now - 1_000));
    assert!(mixed.last_ingestion_time().unwrap() >= now - 5_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_metadata_can_be_frozen_at_an_instant() {
    let emu = start().await;
    let g = "/rules/frozen";
    group_and_stream(&emu, g, "s").await;
    let t = now_ms() - 60_000;
    put(&emu, g, "s", vec![ev(t, "before")]).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let frozen = now_ms();
    emu.freeze_metadata_at(Some(frozen)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    put(&emu, g, "s", vec![ev(t + 10, "after")]).await;
    let s = describe_stream(&emu, g, "s").await;
    assert_eq!(s.last_event_timestamp(), Some(t));
    assert!(s.last_ingestion_time().unwrap() <= frozen);
    emu.freeze_metadata_at(None).await.unwrap();
    let s = describe_stream(&emu, g, "s").await;
    assert_eq!(s.last_event_timestamp(), Some(t + 10));
    assert!(s.last_ingestion_time().unwrap() > frozen);
}

// ---------------------------------------------------------------------------
// Quotas
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn quotas_default_to_aws_values() {
    let emu = start().await;
    let config = emu.config().await.unwrap();
    assert_eq!(config["quotasEnabled"], true);
    assert_eq!(config["quotaScale"], 1.0);
    let expected = json!({
        "CancelExportTask": 5, "CreateExportTask": 5, "CreateLogGroup": 10, "CreateLogStream": 50,
        "DeleteDataProtectionPolicy": 5, "DeleteLogGroup": 10, "DeleteLogStream": 5,
        "DeleteRetentionPolicy": 5, "DescribeExportTasks": 5, "DescribeLogGroups": 5,
        "DescribeLogStreams": 5, "FilterLogEvents": 5, "GetDataProtectionPolicy": 5,
        "GetLogEvents": 10, "PutDataProtectionPolicy": 5, "PutLogEvents": 5000, "PutRetentionPolicy": 5
    });
    assert_eq!(config["quotas"], expected);
}

/// DeleteLogStream at 5 TPS: a burst of 12 deletes through a client without
/// retries gets ThrottlingException (HTTP 400) after the first 5.
#[tokio::test(flavor = "multi_thread")]
async fn quota_throttles_delete_log_stream_above_5_per_second() {
    let emu = start().await;
    let g = "/rules/quota";
    emu.logs().create_log_group().log_group_name(g).send().await.unwrap();
    for i in 0..12 {
        emu.logs()
            .create_log_stream()
            .log_group_name(g)
            .log_stream_name(format!("s{i}"))
            .send()
            .await
            .unwrap();
    }
    emu.reset_throttled().await.unwrap();
    let no_retry = emu.logs_no_retry();
    let mut outcomes = Vec::new();
    for i in 0..12 {
        let r = no_retry
            .delete_log_stream()
            .log_group_name(g)
            .log_stream_name(format!("s{i}"))
            .send()
            .await;
        outcomes.push(match r {
            Ok(_) => "ok".to_string(),
            Err(e) => {
                assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(400));
                assert_eq!(e.message(), Some("Rate exceeded"));
                code(&e)
            }
        });
    }
    let ok = outcomes.iter().filter(|o| *o == "ok").count();
    assert!((5..=6).contains(&ok), "{outcomes:?}");
    assert!(
        outcomes.iter().all(|o| o == "ok" || o == "ThrottlingException"),
        "{outcomes:?}"
    );
    let throttled = emu.throttled().await.unwrap();
    assert_eq!(throttled.get("logs.DeleteLogStream").copied(), Some(12 - ok as u64));
    // The control API never counts: the reader works whatever the quotas.
    emu.stored_events(g).await.unwrap();
    // The SDK's standard retry rides out the throttling.
    let logs = emu.logs();
    for i in 0..12 {
        let _ = logs
            .delete_log_stream()
            .log_group_name(g)
            .log_stream_name(format!("s{i}"))
            .send()
            .await;
    }
    assert!(emu.stored_events(g).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn quotas_can_be_overridden_scaled_and_switched_off() {
    let emu = start().await;
    let g = "/rules/quota-config";
    group_and_stream(&emu, g, "s").await;
    let no_retry = emu.logs_no_retry();
    let burst = |n: usize| {
        let client = no_retry.clone();
        async move {
            let mut throttled = 0;
            for _ in 0..n {
                if let Err(e) = client
                    .get_log_events()
                    .log_group_name(g)
                    .log_stream_name("s")
                    .send()
                    .await
                {
                    assert_eq!(code(&e), "ThrottlingException");
                    throttled += 1;
                }
            }
            throttled
        }
    };
    emu.set_quota("GetLogEvents", Some(2.0)).await.unwrap();
    assert!(burst(6).await >= 3, "a quota of 2 TPS");
    emu.set_quota_scale(10.0).await.unwrap();
    assert_eq!(burst(15).await, 0, "x10: a burst of 20");
    emu.set_quota_scale(1.0).await.unwrap();
    emu.set_quotas_enabled(false).await.unwrap();
    assert_eq!(burst(40).await, 0, "quotas off");
    emu.set_quotas_enabled(true).await.unwrap();
    emu.set_quota("GetLogEvents", None).await.unwrap();
    assert_eq!(burst(40).await, 0, "no quota for the operation");
    emu.configure(json!({"quotas": "aws"})).await.unwrap();
    assert!(burst(25).await >= 10, "back to 10 TPS");
}

// ---------------------------------------------------------------------------
// GetLogEvents and the independent reader
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn get_log_events_returns_each_event_ingestion_time() {
    let emu = start().await;
    let g = "/rules/ingestion";
    group_and_stream(&emu, g, "s").await;
    let before = now_ms();
    put(&emu, g, "s", vec![ev(before - 10_000, "a"), ev(before - 9_000, "b")]).await;
    let after = now_ms();
    let events = read(&emu, g, "s", false).await;
    assert_eq!(events.len(), 2);
    for (_, _, ingestion) in &events {
        assert!((before..=after).contains(ingestion), "{events:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn independent_reader_returns_original_text_and_ingestion_time_past_quotas_masks_and_lag() {
    let emu = start().await;
    let g = "/rules/reader";
    group_and_stream(&emu, g, "s").await;
    put_email_policy(&emu, g).await;
    let t = now_ms() - 60_000;
    put(&emu, g, "s", vec![ev(t, "mail bob@example.com"), ev(t + 1, "plain")]).await;
    emu.seed_with_ingestion(g, "other", &[(t - 5, "seeded".into())], t - 4)
        .await
        .unwrap();
    emu.set_metadata_lag(Some(Duration::from_secs(3600))).await.unwrap();
    emu.set_quota("GetLogEvents", Some(0.001)).await.unwrap();
    emu.set_quota("DescribeLogStreams", Some(0.001)).await.unwrap();
    let all = emu.stored_events(g).await.unwrap();
    for _ in 0..20 {
        assert_eq!(emu.stored_events(g).await.unwrap(), all);
    }
    let s = &all["s"];
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].message, "mail bob@example.com");
    assert_eq!(s[0].masked_message.as_deref(), Some("mail *****"));
    assert_eq!(s[1].masked_message, None);
    assert!(s[0].ingestion_time >= t);
    assert_eq!(all["other"][0].ingestion_time, t - 4);
    let one = emu.stored_stream_events(g, "other").await.unwrap();
    assert_eq!(one, all["other"]);
    assert!(emu.stored_events("/rules/no-such-group").await.is_err());
}

// ---------------------------------------------------------------------------
// Data protection
// ---------------------------------------------------------------------------

fn policy(identifiers: &[&str], custom: Option<(&str, &str)>) -> String {
    let mut doc = json!({
        "Name": "mask",
        "Version": "2021-06-01",
        "Statement": [
            {"Sid": "audit", "DataIdentifier": identifiers, "Operation": {"Audit": {"FindingsDestination": {}}}},
            {"Sid": "mask", "DataIdentifier": identifiers, "Operation": {"Deidentify": {"MaskConfig": {}}}}
        ]
    });
    if let Some((name, regex)) = custom {
        doc["Configuration"] = json!({"CustomDataIdentifier": [{"Name": name, "Regex": regex}]});
    }
    doc.to_string()
}

async fn put_email_policy(emu: &Emulator, group: &str) {
    emu.logs()
        .put_data_protection_policy()
        .log_group_identifier(group)
        .policy_document(policy(&[EMAIL_ARN], None))
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn data_protection_masks_events_ingested_after_the_policy_unless_unmask() {
    let emu = start().await;
    let g = "/rules/mask";
    group_and_stream(&emu, g, "s").await;
    let logs = emu.logs();
    let t = now_ms() - 60_000;
    put(&emu, g, "s", vec![ev(t, "before a@b.io")]).await;
    let none = logs
        .get_data_protection_policy()
        .log_group_identifier(g)
        .send()
        .await
        .unwrap();
    assert_eq!(none.policy_document(), None);
    assert_eq!(describe_group(&emu, g).await.data_protection_status(), None);

    put_email_policy(&emu, g).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    put(&emu, g, "s", vec![ev(t + 1, "after x.y@ex.org and z@q.io")]).await;
    let got = logs
        .get_data_protection_policy()
        .log_group_identifier(g)
        .send()
        .await
        .unwrap();
    assert!(got.policy_document().unwrap().contains("EmailAddress"));
    assert_eq!(
        describe_group(&emu, g)
            .await
            .data_protection_status()
            .map(|s| s.as_str()),
        Some("ACTIVATED")
    );

    let masked = read(&emu, g, "s", false).await;
    assert_eq!(messages(&masked), vec!["before a@b.io", "after ***** and *****"]);
    let unmasked = read(&emu, g, "s", true).await;
    assert_eq!(
        messages(&unmasked),
        vec!["before a@b.io", "after x.y@ex.org and z@q.io"]
    );
    let filtered = logs.filter_log_events().log_group_name(g).send().await.unwrap();
    let filtered: Vec<&str> = filtered.events().iter().map(|e| e.message().unwrap()).collect();
    assert_eq!(filtered, vec!["before a@b.io", "after ***** and *****"]);
    let filtered = logs
        .filter_log_events()
        .log_group_name(g)
        .unmask(true)
        .send()
        .await
        .unwrap();
    assert_eq!(filtered.events()[1].message(), Some("after x.y@ex.org and z@q.io"));

    // Deleting the policy does not unmask what was ingested under it.
    logs.delete_data_protection_policy()
        .log_group_identifier(g)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    put(&emu, g, "s", vec![ev(t + 2, "later c@d.io")]).await;
    let masked = read(&emu, g, "s", false).await;
    assert_eq!(
        messages(&masked),
        vec!["before a@b.io", "after ***** and *****", "later c@d.io"]
    );
    let err = logs
        .delete_data_protection_policy()
        .log_group_identifier(g)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ResourceNotFoundException");
    let err = logs
        .put_data_protection_policy()
        .log_group_identifier("/rules/no-such-group")
        .policy_document(policy(&[EMAIL_ARN], None))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ResourceNotFoundException");
}

#[tokio::test(flavor = "multi_thread")]
async fn data_protection_custom_identifiers_and_the_account_policy_apply_together() {
    let emu = start().await;
    let logs = emu.logs();
    group_and_stream(&emu, "/rules/acct-a", "s").await;
    group_and_stream(&emu, "/rules/acct-b", "s").await;
    logs.put_data_protection_policy()
        .log_group_identifier("arn:aws:logs:us-east-1:123456789012:log-group:/rules/acct-a:*")
        .policy_document(policy(&["EmployeeId"], Some(("EmployeeId", "EmployeeId-\\d{9}"))))
        .send()
        .await
        .unwrap();
    logs.put_account_policy()
        .policy_name("account-mask")
        .policy_type(PolicyType::DataProtectionPolicy)
        .policy_document(policy(&[EMAIL_ARN], None))
        .send()
        .await
        .unwrap();
    let listed = logs
        .describe_account_policies()
        .policy_type(PolicyType::DataProtectionPolicy)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.account_policies().len(), 1);
    assert_eq!(listed.account_policies()[0].policy_name(), Some("account-mask"));
    let t = now_ms() - 60_000;
    let text = "EmployeeId-123456789 wrote to ann@corp.example";
    put(&emu, "/rules/acct-a", "s", vec![ev(t, text)]).await;
    put(&emu, "/rules/acct-b", "s", vec![ev(t, text)]).await;
    assert_eq!(
        messages(&read(&emu, "/rules/acct-a", "s", false).await),
        vec!["***** wrote to *****"]
    );
    assert_eq!(
        messages(&read(&emu, "/rules/acct-b", "s", false).await),
        vec!["EmployeeId-123456789 wrote to *****"]
    );
    let b = describe_group(&emu, "/rules/acct-b").await;
    assert_eq!(b.data_protection_status(), None);
    assert_eq!(
        b.inherited_properties().iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        vec!["ACCOUNT_DATA_PROTECTION"]
    );
    logs.delete_account_policy()
        .policy_name("account-mask")
        .policy_type(PolicyType::DataProtectionPolicy)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    put(&emu, "/rules/acct-b", "s", vec![ev(t + 1, "ann@corp.example")]).await;
    assert_eq!(
        messages(&read(&emu, "/rules/acct-b", "s", false).await),
        vec!["EmployeeId-123456789 wrote to *****", "ann@corp.example"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn data_protection_rejects_invalid_policies() {
    let emu = start().await;
    let g = "/rules/bad-policy";
    group_and_stream(&emu, g, "s").await;
    let email = json!([EMAIL_ARN]);
    let bad = [
        // Audit and Deidentify identifiers differ.
        json!({"Statement": [
            {"DataIdentifier": email, "Operation": {"Audit": {"FindingsDestination": {}}}},
            {"DataIdentifier": ["arn:aws:dataprotection::aws:data-identifier/IpAddress"], "Operation": {"Deidentify": {"MaskConfig": {}}}}
        ]}),
        // MaskConfig must be {}.
        json!({"Statement": [
            {"DataIdentifier": email, "Operation": {"Audit": {"FindingsDestination": {}}}},
            {"DataIdentifier": email, "Operation": {"Deidentify": {"MaskConfig": {"x": 1}}}}
        ]}),
        // No Audit statement.
        json!({"Statement": [{"DataIdentifier": email, "Operation": {"Deidentify": {"MaskConfig": {}}}}]}),
        // An unknown custom identifier.
        json!({"Statement": [
            {"DataIdentifier": ["Nope"], "Operation": {"Audit": {"FindingsDestination": {}}}},
            {"DataIdentifier": ["Nope"], "Operation": {"Deidentify": {"MaskConfig": {}}}}
        ]}),
    ];
    for doc in bad {
        let err = emu
            .logs()
            .put_data_protection_policy()
            .log_group_identifier(g)
            .policy_document(doc.to_string())
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&err), "InvalidParameterException", "{doc}");
    }
    let err = emu
        .logs()
        .put_data_protection_policy()
        .log_group_identifier(g)
        .policy_document("x".repeat(30_721))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidParameterException");
}

#[tokio::test(flavor = "multi_thread")]
async fn export_tasks_write_the_masked_text() {
    let emu = start().await;
    let g = "/rules/export-mask";
    group_and_stream(&emu, g, "s").await;
    emu.s3()
        .create_bucket()
        .bucket("rules-export-mask")
        .send()
        .await
        .unwrap();
    put_email_policy(&emu, g).await;
    let t = now_ms() - 60_000;
    put(&emu, g, "s", vec![ev(t, "to bob@example.com")]).await;
    let lines = export_lines(&emu, g, "rules-export-mask", t, t).await;
    assert_eq!(lines.len(), 1);
    assert!(lines[0].ends_with(" to *****"), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn export_tasks_leave_out_events_ingested_within_the_availability_lag() {
    let emu = start().await;
    let g = "/rules/export-lag";
    emu.s3()
        .create_bucket()
        .bucket("rules-export-lag")
        .send()
        .await
        .unwrap();
    let now = now_ms();
    let t = now - 20 * 3_600_000;
    // Same timestamp window; one ingested 13 hours ago, one 11 hours ago, one now.
    emu.seed_with_ingestion(g, "s", &[(t, "early".into())], now - 13 * 3_600_000)
        .await
        .unwrap();
    emu.seed_with_ingestion(g, "s", &[(t + 1, "within".into())], now - 11 * 3_600_000)
        .await
        .unwrap();
    emu.seed(g, "s", &[(t + 2, "fresh".into())]).await.unwrap();

    emu.configure(json!({"exportAvailabilityLagSeconds": 12 * 3600}))
        .await
        .unwrap();
    let lines = export_lines(&emu, g, "rules-export-lag", t, t + 2).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].ends_with(" early"), "{lines:?}");

    // Off (the default): everything ingested before the task was created.
    emu.configure(json!({"exportAvailabilityLagSeconds": 0})).await.unwrap();
    let lines = export_lines(&emu, g, "rules-export-lag", t, t + 2).await;
    assert_eq!(lines.len(), 3, "{lines:?}");
}

/// Runs an export of `[from, to]` and returns the lines of its objects.
async fn export_lines(emu: &Emulator, group: &str, bucket: &str, from: i64, to: i64) -> Vec<String> {
    let task = emu
        .logs()
        .create_export_task()
        .log_group_name(group)
        .from(from)
        .to(to)
        .destination(bucket)
        .destination_prefix("x")
        .send()
        .await
        .unwrap()
        .task_id()
        .unwrap()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = emu.logs().describe_export_tasks().task_id(&task).send().await.unwrap();
        let status = out.export_tasks()[0].status().unwrap().code().unwrap().clone();
        if status == ExportTaskStatusCode::Completed {
            break;
        }
        assert!(Instant::now() < deadline, "{status:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let listed = emu
        .s3()
        .list_objects_v2()
        .bucket(bucket)
        .prefix(format!("x/{task}/"))
        .send()
        .await
        .unwrap();
    let mut lines = Vec::new();
    for object in listed.contents() {
        let body = emu
            .s3()
            .get_object()
            .bucket(bucket)
            .key(object.key().unwrap())
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes();
        let mut text = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut text)
            .unwrap();
        lines.extend(text.lines().map(str::to_string));
    }
    lines
}

// ---------------------------------------------------------------------------
// Retention
// ---------------------------------------------------------------------------

const VALID_RETENTION: [i32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
];

#[tokio::test(flavor = "multi_thread")]
async fn put_retention_policy_accepts_only_aws_values() {
    let emu = start().await;
    let g = "/rules/retention-values";
    emu.logs().create_log_group().log_group_name(g).send().await.unwrap();
    emu.set_quotas_enabled(false).await.unwrap();
    for days in [0, 2, 4, 13, 31, 366, 3654] {
        let err = emu
            .logs()
            .put_retention_policy()
            .log_group_name(g)
            .retention_in_days(days)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&err), "InvalidParameterException", "{days}");
    }
    for days in VALID_RETENTION {
        emu.logs()
            .put_retention_policy()
            .log_group_name(g)
            .retention_in_days(days)
            .send()
            .await
            .unwrap();
        assert_eq!(describe_group(&emu, g).await.retention_in_days(), Some(days));
    }
    emu.logs()
        .delete_retention_policy()
        .log_group_name(g)
        .send()
        .await
        .unwrap();
    assert_eq!(describe_group(&emu, g).await.retention_in_days(), None);
    let err = emu
        .logs()
        .put_retention_policy()
        .log_group_name("/rules/none")
        .retention_in_days(1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ResourceNotFoundException");
}

#[tokio::test(flavor = "multi_thread")]
async fn events_past_retention_are_gone_from_reads_exports_and_stored_bytes() {
    let emu = start().await;
    let g = "/rules/retention";
    emu.s3().create_bucket().bucket("rules-retention").send().await.unwrap();
    let now = now_ms();
    let old = now - 10 * DAY_MS;
    let recent = now - DAY_MS;
    // Seeding is not PutLogEvents: it may store events of any age.
    emu.seed(g, "s", &[(old, "old".into()), (recent, "recent".into())])
        .await
        .unwrap();
    emu.seed(g, "only-old", &[(old, "old".into())]).await.unwrap();
    assert_eq!(describe_group(&emu, g).await.stored_bytes(), Some(3 + 6 + 3));
    emu.logs()
        .put_retention_policy()
        .log_group_name(g)
        .retention_in_days(7)
        .send()
        .await
        .unwrap();
    assert_eq!(messages(&read(&emu, g, "s", false).await), vec!["recent"]);
    assert!(read(&emu, g, "only-old", false).await.is_empty());
    let filtered = emu.logs().filter_log_events().log_group_name(g).send().await.unwrap();
    assert_eq!(filtered.events().len(), 1);
    assert_eq!(describe_group(&emu, g).await.stored_bytes(), Some(6));
    let s = describe_stream(&emu, g, "s").await;
    assert_eq!(s.first_event_timestamp(), Some(recent));
    assert_eq!(describe_stream(&emu, g, "only-old").await.last_event_timestamp(), None);
    let lines = export_lines(&emu, g, "rules-retention", old - 1, now).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].ends_with(" recent"));
    let stored = emu.stored_events(g).await.unwrap();
    assert_eq!(stored["s"].len(), 1);
    assert!(stored["only-old"].is_empty());
    // With the default delay of 0 the events are deleted at once: a longer
    // retention does not bring them back.
    emu.logs()
        .put_retention_policy()
        .log_group_name(g)
        .retention_in_days(30)
        .send()
        .await
        .unwrap();
    assert_eq!(messages(&read(&emu, g, "s", false).await), vec!["recent"]);
}

/// AWS deletes events past retention "typically within 72 hours"; until then
/// a longer retention keeps them. With a delay they are invisible but rescuable.
#[tokio::test(flavor = "multi_thread")]
async fn retention_expiry_delay_keeps_expired_events_rescuable_until_it_passes() {
    let emu = start().await;
    let g = "/rules/retention-delay";
    let now = now_ms();
    emu.seed(
        g,
        "s",
        &[(now - 3 * DAY_MS, "three days".into()), (now - 1000, "now".into())],
    )
    .await
    .unwrap();
    emu.set_retention_expiry_delay(72.0 * 3600.0).await.unwrap();
    let logs = emu.logs();
    logs.put_retention_policy()
        .log_group_name(g)
        .retention_in_days(1)
        .send()
        .await
        .unwrap();
    assert_eq!(messages(&read(&emu, g, "s", false).await), vec!["now"]);
    assert_eq!(describe_group(&emu, g).await.stored_bytes(), Some(3));
    let with_expired = emu.stored_events_with_expired(g).await.unwrap();
    assert!(with_expired["s"][0].expired);
    assert_eq!(emu.stored_events(g).await.unwrap()["s"].len(), 1);
    logs.put_retention_policy()
        .log_group_name(g)
        .retention_in_days(5)
        .send()
        .await
        .unwrap();
    assert_eq!(messages(&read(&emu, g, "s", false).await), vec!["three days", "now"]);
}

// ---------------------------------------------------------------------------
// S3 conditional writes
// ---------------------------------------------------------------------------

async fn concurrent_puts(
    emu: &Emulator,
    bucket: &str,
    key: &str,
    writers: usize,
    if_match: Option<String>,
) -> BTreeMap<u16, usize> {
    let s3 = emu.s3_no_retry();
    let mut set = tokio::task::JoinSet::new();
    let barrier = Arc::new(tokio::sync::Barrier::new(writers));
    for i in 0..writers {
        let s3 = s3.clone();
        let (bucket, key, if_match) = (bucket.to_string(), key.to_string(), if_match.clone());
        let barrier = Arc::clone(&barrier);
        set.spawn(async move {
            let body = vec![b'a' + (i % 26) as u8; 256 * 1024];
            let mut req = s3.put_object().bucket(bucket).key(key).body(body.into());
            req = match if_match {
                Some(etag) => req.if_match(etag),
                None => req.if_none_match("*"),
            };
            barrier.wait().await;
            match req.send().await {
                Ok(_) => 200,
                Err(e) => e.raw_response().map(|r| r.status().as_u16()).unwrap_or(0),
            }
        });
    }
    let mut statuses = BTreeMap::new();
    while let Some(status) = set.join_next().await {
        *statuses.entry(status.unwrap()).or_insert(0) += 1;
    }
    statuses
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_if_none_match_creates_a_key_exactly_once_under_concurrency() {
    let emu = start().await;
    // S3's write latency: without atomic conditional writes the writers would race.
    emu.configure(json!({"s3WriteDelayMs": 20})).await.unwrap();
    emu.s3().create_bucket().bucket("rules-lease").send().await.unwrap();
    for round in 0..3 {
        let key = format!("lease-{round}.json");
        let statuses = concurrent_puts(&emu, "rules-lease", &key, 24, None).await;
        assert_eq!(statuses.get(&200).copied(), Some(1), "round {round}: {statuses:?}");
        let others: usize = statuses
            .iter()
            .filter(|(s, _)| **s == 412 || **s == 409)
            .map(|(_, n)| n)
            .sum();
        assert_eq!(others, 23, "round {round}: {statuses:?}");
    }
    let err = emu
        .s3_no_retry()
        .put_object()
        .bucket("rules-lease")
        .key("lease-0.json")
        .if_none_match("*")
        .body(b"x".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 412);
    assert_eq!(code(&err), "PreconditionFailed");
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_if_match_replaces_only_the_current_etag() {
    let emu = start().await;
    emu.configure(json!({"s3WriteDelayMs": 20})).await.unwrap();
    let s3 = emu.s3_no_retry();
    s3.create_bucket().bucket("rules-cas").send().await.unwrap();
    let err = s3
        .put_object()
        .bucket("rules-cas")
        .key("missing")
        .if_match("\"abc\"")
        .body(b"x".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 404);
    assert_eq!(code(&err), "NoSuchKey");
    let first = s3
        .put_object()
        .bucket("rules-cas")
        .key("k")
        .body(b"v1".to_vec().into())
        .send()
        .await
        .unwrap();
    let etag = first.e_tag().unwrap().to_string();
    let err = s3
        .put_object()
        .bucket("rules-cas")
        .key("k")
        .if_match("\"0000\"")
        .body(b"v2".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 412);
    let statuses = concurrent_puts(&emu, "rules-cas", "k", 16, Some(etag.clone())).await;
    assert_eq!(statuses.get(&200).copied(), Some(1), "{statuses:?}");
    let others: usize = statuses
        .iter()
        .filter(|(s, _)| **s == 412 || **s == 409)
        .map(|(_, n)| n)
        .sum();
    assert_eq!(others, 15, "{statuses:?}");
    let err = s3
        .put_object()
        .bucket("rules-cas")
        .key("k")
        .if_match(etag)
        .body(b"v3".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 412, "the etag changed");
}

// ---------------------------------------------------------------------------
// Lambda payloads
// ---------------------------------------------------------------------------

/// A Lambda Invoke API: the function `sized` answers `{"pad": "x" * n}` for the
/// input `{"size": n}`; with `"sleepMs": t` it answers after t ms, and with
/// `"fail": true` it answers an unhandled function error.
async fn lambda_endpoint() -> String {
    use axum::response::{IntoResponse, Response};
    use axum::routing::post;

    async fn invoke(body: String) -> Response {
        let input: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if let Some(ms) = input["sleepMs"].as_u64() {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if input["fail"] == true {
            let error = json!({"errorType": "Failed", "errorMessage": "the function failed"});
            return ([("X-Amz-Function-Error", "Unhandled")], error.to_string()).into_response();
        }
        let n = input["size"].as_u64().unwrap_or(0) as usize;
        json!({"pad": "x".repeat(n)}).to_string().into_response()
    }
    let app = axum::Router::new().route("/2015-03-31/functions/{name}/invocations", post(invoke));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread")]
async fn lambda_synchronous_payloads_over_the_limit_are_refused() {
    let endpoint = lambda_endpoint().await;
    let emu = start_with_lambda(Some(endpoint)).await;
    assert_eq!(emu.config().await.unwrap()["lambdaPayloadLimitBytes"], 6_291_456);
    emu.configure(json!({"lambdaPayloadLimitBytes": 1000})).await.unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("{}/2015-03-31/functions/sized/invocations", emu.endpoint());
    let ok = http
        .post(&url)
        .body(json!({"size": 10}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert!(ok.headers().get("X-Amz-Function-Error").is_none());
    let big_request = http
        .post(&url)
        .body(json!({"size": 10, "pad": "y".repeat(1000)}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(big_request.status().as_u16(), 413);
    assert_eq!(
        big_request.headers()["X-Amzn-ErrorType"].to_str().unwrap(),
        "RequestTooLargeException"
    );
    let big_response = http
        .post(&url)
        .body(json!({"size": 2000}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(big_response.status().as_u16(), 200);
    assert_eq!(
        big_response.headers()["X-Amz-Function-Error"].to_str().unwrap(),
        "Unhandled"
    );
    let body: Value = big_response.json().await.unwrap();
    assert_eq!(body["errorType"], "Function.ResponseSizeTooLarge");
}

// ---------------------------------------------------------------------------
// Step Functions
// ---------------------------------------------------------------------------

struct Run {
    status: ExecutionStatus,
    error: Option<String>,
    cause: Option<String>,
    output: Option<Value>,
    execution_arn: String,
}

/// Creates the state machine `name` and starts `<name>-run`; its execution ARN.
async fn start_machine(emu: &Emulator, name: &str, definition: Value, input: Value) -> String {
    let sfn = emu.sfn();
    let arn = sfn
        .create_state_machine()
        .name(name)
        .definition(definition.to_string())
        .role_arn("arn:aws:iam::123456789012:role/rules")
        .send()
        .await
        .unwrap()
        .state_machine_arn()
        .to_string();
    sfn.start_execution()
        .state_machine_arn(arn)
        .name(format!("{name}-run"))
        .input(input.to_string())
        .send()
        .await
        .unwrap()
        .execution_arn()
        .to_string()
}

async fn run_machine(emu: &Emulator, name: &str, definition: Value, input: Value) -> Run {
    let sfn = emu.sfn();
    let exec = start_machine(emu, name, definition, input).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = sfn.describe_execution().execution_arn(&exec).send().await.unwrap();
        if out.status() != &ExecutionStatus::Running {
            return Run {
                status: out.status().clone(),
                error: out.error().map(str::to_string),
                cause: out.cause().map(str::to_string),
                output: out.output().and_then(|o| serde_json::from_str(o).ok()),
                execution_arn: exec,
            };
        }
        assert!(Instant::now() < deadline, "execution {name} never finished");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn history_len(emu: &Emulator, execution_arn: &str) -> (usize, String) {
    let sfn = emu.sfn();
    let mut token = None;
    let mut count = 0;
    let mut last = String::new();
    loop {
        let page = sfn
            .get_execution_history()
            .execution_arn(execution_arn)
            .max_results(1000)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        count += page.events().len();
        if let Some(e) = page.events().last() {
            last = e.r#type().as_str().to_string();
        }
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            return (count, last);
        }
    }
}

/// A Pass state whose output is `{"pad": "ppp..."}` with `n` characters.
fn big_pass(n: usize, next: Option<&str>) -> Value {
    let mut state = json!({"Type": "Pass", "Parameters": {"pad": "p".repeat(n)}});
    match next {
        Some(next) => state["Next"] = json!(next),
        None => state["End"] = json!(true),
    }
    state
}

#[tokio::test(flavor = "multi_thread")]
async fn sfn_state_output_over_the_payload_limit_fails_with_data_limit_exceeded() {
    let emu = start().await;
    assert_eq!(emu.config().await.unwrap()["sfnPayloadLimitBytes"], 262_144);
    emu.set_sfn_limits(Some(4096), None).await.unwrap();
    let small = run_machine(
        &emu,
        "small",
        json!({"StartAt": "P", "States": {"P": big_pass(100, None)}}),
        json!({}),
    )
    .await;
    assert_eq!(small.status, ExecutionStatus::Succeeded);
    let big = run_machine(
        &emu,
        "big",
        json!({"StartAt": "P", "States": {"P": big_pass(5000, None)}}),
        json!({}),
    )
    .await;
    assert_eq!(big.status, ExecutionStatus::Failed);
    assert_eq!(
        big.error.as_deref(),
        Some("States.DataLimitExceeded"),
        "{:?}",
        big.cause
    );
    // An oversized input on entering a state (here the execution input).
    let input = json!({"pad": "z".repeat(5000)});
    let entered = run_machine(
        &emu,
        "entered",
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": 1, "End": true}}}),
        input,
    )
    .await;
    assert_eq!(entered.error.as_deref(), Some("States.DataLimitExceeded"));
}

#[tokio::test(flavor = "multi_thread")]
async fn sfn_data_limit_exceeded_is_not_caught_by_states_all() {
    let emu = start().await;
    emu.set_sfn_limits(Some(4096), None).await.unwrap();
    let machine = |errors: Value| {
        json!({"StartAt": "M", "States": {
            "M": {"Type": "Map", "ItemsPath": "$.items",
                  "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "P", "States": {"P": big_pass(5000, None)}},
                  "Retry": [{"ErrorEquals": errors.clone(), "MaxAttempts": 1, "IntervalSeconds": 1}],
                  "Catch": [{"ErrorEquals": errors, "ResultPath": "$.error", "Next": "Caught"}],
                  "End": true},
            "Caught": {"Type": "Pass", "End": true}
        }})
    };
    let all = run_machine(&emu, "catch-all", machine(json!(["States.ALL"])), json!({"items": [1]})).await;
    assert_eq!(all.status, ExecutionStatus::Failed);
    assert_eq!(all.error.as_deref(), Some("States.DataLimitExceeded"));
    let named = run_machine(
        &emu,
        "catch-named",
        machine(json!(["States.DataLimitExceeded"])),
        json!({"items": [1]}),
    )
    .await;
    assert_eq!(named.status, ExecutionStatus::Succeeded);
    assert_eq!(named.output.unwrap()["error"]["Error"], "States.DataLimitExceeded");
}

#[tokio::test(flavor = "multi_thread")]
async fn sfn_lambda_result_over_the_payload_limit_fails_the_task() {
    let endpoint = lambda_endpoint().await;
    let emu = start_with_lambda(Some(endpoint)).await;
    emu.set_sfn_limits(Some(4096), None).await.unwrap();
    let machine = json!({"StartAt": "T", "States": {"T": {
        "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "sized", "Payload.$": "$"}, "OutputPath": "$.Payload", "End": true}}});
    let ok = run_machine(&emu, "lambda-ok", machine.clone(), json!({"size": 100})).await;
    assert_eq!(ok.status, ExecutionStatus::Succeeded);
    let big = run_machine(&emu, "lambda-big", machine, json!({"size": 5000})).await;
    assert_eq!(
        big.error.as_deref(),
        Some("States.DataLimitExceeded"),
        "{:?}",
        big.cause
    );
}

/// StopExecution is final: DescribeExecution says ABORTED as soon as it
/// returns, and a task that fails after the stop does not make it FAILED.
#[tokio::test(flavor = "multi_thread")]
async fn sfn_a_stopped_execution_is_aborted_at_once_and_stays_aborted() {
    let endpoint = lambda_endpoint().await;
    let emu = start_with_lambda(Some(endpoint)).await;
    let machine = json!({"StartAt": "T", "States": {"T": {
        "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "sized", "Payload.$": "$"}, "End": true}}});
    let exec = start_machine(&emu, "stop", machine, json!({"sleepMs": 1500, "fail": true})).await;
    let status = |exec: String| {
        let sfn = emu.sfn();
        async move {
            sfn.describe_execution()
                .execution_arn(exec)
                .send()
                .await
                .unwrap()
                .status()
                .clone()
        }
    };
    // The task is in flight.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(status(exec.clone()).await, ExecutionStatus::Running);
    emu.sfn().stop_execution().execution_arn(&exec).send().await.unwrap();
    assert_eq!(status(exec.clone()).await, ExecutionStatus::Aborted);
    // The task fails after the stop.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(status(exec.clone()).await, ExecutionStatus::Aborted);
}

async fn items_object(emu: &Emulator, bucket: &str, items: &[Value]) {
    let s3 = emu.s3();
    let _ = s3.create_bucket().bucket(bucket).send().await;
    s3.put_object()
        .bucket(bucket)
        .key("items.json")
        .body(Value::Array(items.to_vec()).to_string().into_bytes().into())
        .send()
        .await
        .unwrap();
}

/// A Distributed Map over `items.json` in `bucket`, with `child` as its item processor.
fn distributed_map(bucket: &str, child: Value, extra: Value) -> Value {
    let mut map = json!({
        "Type": "Map",
        "ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "JSON"},
                       "Parameters": {"Bucket": bucket, "Key": "items.json"}},
        "ItemProcessor": child,
        "ResultPath": null,
        "End": true
    });
    map["ItemProcessor"]["ProcessorConfig"] = json!({"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"});
    for (k, v) in extra.as_object().unwrap() {
        map[k] = v.clone();
    }
    json!({"StartAt": "M", "States": {"M": map}})
}

#[tokio::test(flavor = "multi_thread")]
async fn sfn_distributed_map_assembles_child_outputs_even_with_result_path_null() {
    let emu = start().await;
    emu.set_sfn_limits(Some(4096), None).await.unwrap();
    let items: Vec<Value> = (0..20).map(|i| json!({"i": i})).collect();
    items_object(&emu, "rules-assembled", &items).await;
    let child =
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {"pad": "p".repeat(400)}, "End": true}}});
    let run = run_machine(
        &emu,
        "assembled",
        distributed_map("rules-assembled", child.clone(), json!({})),
        json!({}),
    )
    .await;
    assert_eq!(run.status, ExecutionStatus::Failed);
    assert_eq!(
        run.error.as_deref(),
        Some("States.DataLimitExceeded"),
        "{:?}",
        run.cause
    );

    let writer = json!({"ResultWriter": {"Resource": "arn:aws:states:::s3:putObject",
                                         "Parameters": {"Bucket": "rules-assembled", "Prefix": "results"}},
                        "ResultPath": "$.written"});
    let run = run_machine(
        &emu,
        "written",
        distributed_map("rules-assembled", child, writer),
        json!({}),
    )
    .await;
    assert_eq!(run.status, ExecutionStatus::Succeeded, "{:?}", run.cause);
    let details = &run.output.unwrap()["written"]["ResultWriterDetails"];
    let manifest_key = details["Key"].as_str().unwrap().to_string();
    assert!(manifest_key.starts_with("results/") && manifest_key.ends_with("/manifest.json"));
    let get = |key: String| {
        let s3 = emu.s3();
        async move {
            let body = s3
                .get_object()
                .bucket("rules-assembled")
                .key(key)
                .send()
                .await
                .unwrap()
                .body;
            serde_json::from_slice::<Value>(&body.collect().await.unwrap().into_bytes()).unwrap()
        }
    };
    let manifest = get(manifest_key).await;
    let succeeded = manifest["ResultFiles"]["SUCCEEDED"].as_array().unwrap();
    assert_eq!(succeeded.len(), 1);
    assert!(succeeded[0]["Key"].as_str().unwrap().ends_with("/SUCCEEDED_0.json"));
    assert_eq!(manifest["ResultFiles"]["FAILED"], json!([]));
    let records = get(succeeded[0]["Key"].as_str().unwrap().to_string()).await;
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), 20);
    assert_eq!(records[0]["Status"], "SUCCEEDED");
    let output: Value = serde_json::from_str(records[0]["Output"].as_str().unwrap()).unwrap();
    assert_eq!(output["pad"].as_str().unwrap().len(), 400);
}

/// One worker (MaxConcurrency 1) runs every item of a Map, however many: moto's
/// workers recursed once per item and died past Python's recursion limit,
/// leaving the Map waiting forever (tests/emulator/sfn_patches.py).
#[tokio::test(flavor = "multi_thread")]
async fn sfn_one_map_worker_runs_more_items_than_the_recursion_limit() {
    let emu = start().await;
    let items: Vec<Value> = (0..1_500).map(|i| json!({"i": i})).collect();
    items_object(&emu, "rules-long-map", &items).await;
    let child = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}});
    let writer = json!({"MaxConcurrency": 1,
                        "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject",
                                         "Parameters": {"Bucket": "rules-long-map", "Prefix": "results"}},
                        "ResultPath": "$.written"});
    let run = run_machine(
        &emu,
        "long-distributed",
        distributed_map("rules-long-map", child.clone(), writer),
        json!({}),
    )
    .await;
    assert_eq!(run.status, ExecutionStatus::Succeeded, "{:?}", run.cause);

    let inline = json!({"StartAt": "M", "States": {"M": {
        "Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 1, "ItemProcessor": child,
        "ResultSelector": {"count.$": "States.ArrayLength($)"}, "End": true}}});
    let run = run_machine(&emu, "long-inline", inline, json!({ "items": items })).await;
    assert_eq!(run.status, ExecutionStatus::Succeeded, "{:?}", run.cause);
    assert_eq!(run.output.unwrap()["count"], 1_500);
}

/// A child that fails on items with `"fail": true` and otherwise waits `wait` seconds.
fn failing_child(wait: u32) -> Value {
    json!({"StartAt": "C", "States": {
        "C": {"Type": "Choice", "Choices": [{"Variable": "$.fail", "BooleanEquals": true, "Next": "F"}], "Default": "W"},
        "W": {"Type": "Wait", "Seconds": wait, "Next": "P"},
        "P": {"Type": "Pass", "End": true},
        "F": {"Type": "Fail", "Error": "Boom", "Cause": "item failed"}
    }})
}

#[tokio::test(flavor = "multi_thread")]
async fn sfn_distributed_map_fails_on_one_child_by_default_and_aborts_the_running_children() {
    let emu = start().await;
    let items: Vec<Value> = (0..6).map(|i| json!({"i": i, "fail": i == 0})).collect();
    items_object(&emu, "rules-abort", &items).await;
    let started = Instant::now();
    let run = run_machine(
        &emu,
        "abort",
        distributed_map("rules-abort", failing_child(20), json!({})),
        json!({}),
    )
    .await;
    assert_eq!(run.status, ExecutionStatus::Failed);
    assert_eq!(run.error.as_deref(), Some("States.ExceedToleratedFailureThreshold"));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the children waiting 20 s were aborted"
    );
    let sfn = emu.sfn();
    let runs = sfn
        .list_map_runs()
        .execution_arn(&run.execution_arn)
        .send()
        .await
        .unwrap();
    let described = sfn
        .describe_map_run()
        .map_run_arn(runs.map_runs()[0].map_run_arn())
        .send()
        .await
        .unwrap();
    let counts = described.item_counts().unwrap();
    assert_eq!(counts.failed(), 1);
    assert!(counts.aborted() >= 1, "{counts:?}");
    assert_eq!(counts.succeeded(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn sfn_distributed_map_tolerates_failures_up_to_the_threshold() {
    let emu = start().await;
    // 1 of 6 items fails (16.7 %); 2 of 6 in the second object.
    let one: Vec<Value> = (0..6).map(|i| json!({"i": i, "fail": i == 3})).collect();
    items_object(&emu, "rules-tolerance", &one).await;
    let cases = [
        (
            "count-1",
            json!({"ToleratedFailureCount": 1}),
            ExecutionStatus::Succeeded,
        ),
        (
            "pct-10",
            json!({"ToleratedFailurePercentage": 10.5}),
            ExecutionStatus::Failed,
        ),
        (
            "pct-20",
            json!({"ToleratedFailurePercentage": 20.5}),
            ExecutionStatus::Succeeded,
        ),
        (
            "both",
            json!({"ToleratedFailureCount": 5, "ToleratedFailurePercentage": 10.5}),
            ExecutionStatus::Failed,
        ),
    ];
    for (name, extra, expected) in cases {
        let run = run_machine(
            &emu,
            name,
            distributed_map("rules-tolerance", failing_child(0), extra),
            json!({}),
        )
        .await;
        assert_eq!(run.status, expected, "{name}: {:?} {:?}", run.error, run.cause);
        if expected == ExecutionStatus::Failed {
            assert_eq!(
                run.error.as_deref(),
                Some("States.ExceedToleratedFailureThreshold"),
                "{name}"
            );
        }
    }
    let two: Vec<Value> = (0..6).map(|i| json!({"i": i, "fail": i < 2})).collect();
    items_object(&emu, "rules-tolerance", &two).await;
    let run = run_machine(
        &emu,
        "count-1-two",
        distributed_map("rules-tolerance", failing_child(0), json!({"ToleratedFailureCount": 1})),
        json!({}),
    )
    .await;
    assert_eq!(run.error.as_deref(), Some("States.ExceedToleratedFailureThreshold"));
}

fn pass_chain(n: usize) -> Value {
    let mut states = serde_json::Map::new();
    for i in 0..n {
        let mut s = json!({"Type": "Pass"});
        if i + 1 < n {
            s["Next"] = json!(format!("P{}", i + 1));
        } else {
            s["End"] = json!(true);
        }
        states.insert(format!("P{i}"), s);
    }
    json!({"StartAt": "P0", "States": states})
}

/// A chain of k Pass states has 2k + 2 history events (ExecutionStarted,
/// entered/exited per state, ExecutionSucceeded).
#[tokio::test(flavor = "multi_thread")]
async fn sfn_history_limit_fails_an_execution_at_its_event_limit() {
    let emu = start().await;
    assert_eq!(emu.config().await.unwrap()["sfnHistoryLimit"], 25_000);
    emu.set_sfn_limits(None, Some(50)).await.unwrap();
    let exact = run_machine(&emu, "exact", pass_chain(24), json!({})).await;
    assert_eq!(
        exact.status,
        ExecutionStatus::Succeeded,
        "event 50 is ExecutionSucceeded"
    );
    assert_eq!(
        history_len(&emu, &exact.execution_arn).await,
        (50, "ExecutionSucceeded".to_string())
    );
    let over = run_machine(&emu, "over", pass_chain(25), json!({})).await;
    assert_eq!(over.status, ExecutionStatus::Failed);
    assert!(
        over.cause.as_deref().unwrap().contains("maximum number of events"),
        "{:?}",
        over.cause
    );
    assert_eq!(
        history_len(&emu, &over.execution_arn).await,
        (50, "ExecutionFailed".to_string())
    );
    // A loop is stopped at the limit, whatever Catch it has.
    let looping = json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "Next": "A"}}});
    let run = run_machine(&emu, "loop", looping, json!({})).await;
    assert_eq!(run.status, ExecutionStatus::Failed);
}

#[tokio::test(flavor = "multi_thread")]
async fn sfn_distributed_map_children_count_their_own_history() {
    let emu = start().await;
    emu.set_sfn_limits(None, Some(40)).await.unwrap();
    let items: Vec<Value> = (0..10).map(|i| json!({"i": i})).collect();
    items_object(&emu, "rules-history", &items).await;
    // 10 children of 22 events each: 220 in all, but each child under 40.
    let run = run_machine(
        &emu,
        "children-ok",
        distributed_map("rules-history", pass_chain(10), json!({})),
        json!({}),
    )
    .await;
    assert_eq!(run.status, ExecutionStatus::Succeeded, "{:?}", run.cause);
    assert!(history_len(&emu, &run.execution_arn).await.0 < 40);
    // A child of 42 events fails on its own history limit.
    let run = run_machine(
        &emu,
        "children-over",
        distributed_map("rules-history", pass_chain(20), json!({})),
        json!({}),
    )
    .await;
    assert_eq!(run.error.as_deref(), Some("States.ExceedToleratedFailureThreshold"));
}
