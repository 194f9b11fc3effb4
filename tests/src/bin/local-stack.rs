//! `make stack-up`: the local stack in the foreground of this process (the
//! Makefile puts it in the background), with the state machine deployed and
//! an archive bucket created (with the policy CloudWatch Logs exports need,
//! as the template gives it). Prints the environment to reach it, then
//! serves until stopped.

use cwl_archiver_e2e::stack::{REGION, Stack};

/// The archive bucket the local stack creates.
const BUCKET: &str = "cwl-archiver-local";

/// The bucket policy of the template: the logs service may check the ACL
/// and write under the archive prefix.
fn bucket_policy(bucket: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "LogsExportCheckAcl", "Effect": "Allow",
             "Principal": {"Service": format!("logs.{REGION}.amazonaws.com")},
             "Action": "s3:GetBucketAcl", "Resource": format!("arn:aws:s3:::{bucket}")},
            {"Sid": "LogsExportWrite", "Effect": "Allow",
             "Principal": {"Service": format!("logs.{REGION}.amazonaws.com")},
             "Action": "s3:PutObject", "Resource": format!("arn:aws:s3:::{bucket}/cwl-archiver/*")}
        ]
    })
    .to_string()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> std::process::ExitCode {
    let export_delay = std::env::var("CWL_EXPORT_DELAY_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5.0);
    let stack = match Stack::start(export_delay).await {
        Ok(stack) => stack,
        Err(e) => {
            eprintln!("could not start the local stack: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let s3 = stack.emulator.s3();
    let created = async {
        s3.create_bucket()
            .bucket(BUCKET)
            .send()
            .await
            .map_err(|e| format!("CreateBucket {BUCKET}: {}", aws_sdk_s3::error::DisplayErrorContext(&e)))?;
        s3.put_bucket_policy()
            .bucket(BUCKET)
            .policy(bucket_policy(BUCKET))
            .send()
            .await
            .map_err(|e| {
                format!(
                    "PutBucketPolicy {BUCKET}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                )
            })
    };
    if let Err(e) = created.await {
        eprintln!("could not create the archive bucket: {e}");
        return std::process::ExitCode::FAILURE;
    }
    println!("export AWS_ENDPOINT_URL={}", stack.emulator.endpoint());
    println!(
        "export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION={REGION} AWS_DEFAULT_REGION={REGION}"
    );
    println!("export CWL_ARCHIVER_STATE_MACHINE_ARN={}", stack.state_machine_arn);
    println!("export CWL_ARCHIVER_BUCKET={BUCKET}");
    println!("# archive bucket: {BUCKET} (created, with the logs service's bucket policy)");
    println!(
        "# seeding and fault injection: {}/_emulator/ (see the README, \"The local stack\")",
        stack.emulator.endpoint()
    );
    let _ = tokio::signal::ctrl_c().await;
    std::process::ExitCode::SUCCESS
}
