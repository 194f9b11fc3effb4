//! What `start` checks before StartExecution, so that a run that cannot
//! work is refused with the flag and the fix instead of failing later in
//! Step Functions: the group, the bucket (its region and its policy for the
//! logs service), the state machine, and whether the mode suits the group
//! (data protection, retention).

use aws_sdk_cloudwatchlogs::types::PolicyType;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::aws::Aws;
use crate::error::{AwsFailure, CliError, CliResult};
use crate::flags::is_destructive;
use crate::render;

/// What the log group looks like.
#[derive(Debug, Clone, Default)]
pub struct GroupFacts {
    /// Stored bytes of the group (DescribeLogGroups; the streams' own figure is always 0 on AWS).
    pub stored_bytes: Option<i64>,
    /// Its retention, if any.
    pub retention_days: Option<i32>,
}

/// DescribeLogGroups for exactly `group`: `None` when it does not exist.
/// Transport and credential failures are errors: nothing else can work.
pub async fn describe_group(aws: &Aws, group: &str) -> CliResult<Option<GroupFacts>> {
    let logs = aws.logs();
    let mut token = None;
    loop {
        let page = logs
            .describe_log_groups()
            .log_group_name_prefix(group)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| {
                let f = AwsFailure::of("DescribeLogGroups", &e);
                if f.code() == Some("InvalidParameterException") {
                    f.input(format!(
                        "--group {group:?} is not a valid log group name: names use letters, digits and _ - / . #"
                    ))
                } else {
                    f.generic(&format!("log group {group}"))
                }
            })?;
        if let Some(g) = page.log_groups().iter().find(|g| g.log_group_name() == Some(group)) {
            return Ok(Some(GroupFacts {
                stored_bytes: g.stored_bytes(),
                retention_days: g.retention_in_days(),
            }));
        }
        match page.next_token() {
            Some(t) => token = Some(t.to_string()),
            None => return Ok(None),
        }
    }
}

/// The error of a missing group, the same for every command.
pub fn missing_group(group: &str, region: &str) -> CliError {
    CliError::input(format!(
        "--group {group}: log group {group:?} does not exist in this account and region ({region}): check the name (aws logs describe-log-groups --log-group-name-prefix {group}) and --region"
    ))
}

/// What a start would do, as far as the checks need it.
pub struct StartCheck<'a> {
    /// The group.
    pub group: &'a str,
    /// The bucket.
    pub bucket: &'a str,
    /// The prefix (no leading or trailing `/`).
    pub prefix: &'a str,
    /// The state machine.
    pub state_machine_arn: &'a str,
    /// The mode.
    pub mode: &'a str,
    /// `--allow-masked-archive`.
    pub allow_masked_archive: bool,
    /// `--retention-conflict refuse`.
    pub refuse_retention_conflict: bool,
    /// The cutoff, ms.
    pub cutoff_ms: i64,
    /// Now.
    pub now: DateTime<Utc>,
}

/// One failed check: the flag and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The flag.
    pub flag: &'static str,
    /// What is wrong and the fix.
    pub message: String,
}

impl Problem {
    /// `--flag: message`, unless the message starts with the flag already.
    pub fn line(&self) -> String {
        if self.message.starts_with(self.flag) {
            self.message.clone()
        } else {
            format!("{}: {}", self.flag, self.message)
        }
    }
}

/// Runs every check; prints the warnings; returns the group's facts, or
/// an input error naming every failed check (each on its own line).
pub async fn check_start(aws: &Aws, c: &StartCheck<'_>) -> CliResult<GroupFacts> {
    let mut problems = Vec::new();
    let mut problem = |flag: &'static str, message: String| problems.push(Problem { flag, message });
    let region = aws.region.as_str();

    let facts = describe_group(aws, c.group).await?;
    if facts.is_none() {
        problem("--group", missing_group(c.group, region).message);
    }

    // The state machine.
    if let Err(e) = aws
        .sfn()
        .describe_state_machine()
        .state_machine_arn(c.state_machine_arn)
        .send()
        .await
    {
        let f = AwsFailure::of("DescribeStateMachine", &e);
        match f.code() {
            Some("StateMachineDoesNotExist" | "InvalidArn") => {
                let arn_region = c.state_machine_arn.split(':').nth(3).unwrap_or_default();
                let hint = if !arn_region.is_empty() && arn_region != region {
                    format!(" (the ARN is in {arn_region}, the client in {region}: give --region {arn_region})")
                } else {
                    String::new()
                };
                problem(
                    "--state-machine-arn",
                    format!(
                        "{}: {} is not a state machine of this account and region{hint}; take ArchiveStateMachineArn from the stack's outputs (or CWL_ARCHIVER_STATE_MACHINE_ARN from `make stack-up`)",
                        f.code().unwrap_or_default(),
                        c.state_machine_arn
                    ),
                );
            }
            _ if f.is_access_denied() => render::warn(&format!(
                "could not check the state machine ({}): grant states:DescribeStateMachine, or StartExecution will tell",
                f.code().unwrap_or("AccessDenied")
            )),
            _ => return Err(f.generic(&format!("state machine {}", c.state_machine_arn))),
        }
    }

    // The bucket, its region, its policy.
    let s3 = aws.s3();
    let bucket_region = match s3.get_bucket_location().bucket(c.bucket).send().await {
        Ok(out) => Some(match out.location_constraint().map(|l| l.as_str()) {
            None | Some("") => "us-east-1".to_string(),
            Some("EU") => "eu-west-1".to_string(),
            Some(other) => other.to_string(),
        }),
        Err(e) => {
            let f = AwsFailure::of("GetBucketLocation", &e);
            match f.code() {
                Some("NoSuchBucket") => {
                    problem(
                        "--bucket",
                        format!(
                            "no bucket {} in this account: create it in {region} (aws s3 mb s3://{} --region {region}) with the policy of docs/deploy.md, or fix --bucket",
                            c.bucket, c.bucket
                        ),
                    );
                    None
                }
                Some("PermanentRedirect" | "AuthorizationHeaderMalformed" | "IllegalLocationConstraintException") => {
                    problem(
                        "--bucket",
                        format!(
                            "bucket {} is in another region than the group ({region}): CloudWatch Logs exports only to a bucket in the group's region; use a bucket in {region}",
                            c.bucket
                        ),
                    );
                    None
                }
                _ if f.is_access_denied() => {
                    render::warn(&format!(
                        "could not check the region of bucket {} ({}): grant s3:GetBucketLocation, or make sure it is in {region}",
                        c.bucket,
                        f.code().unwrap_or("AccessDenied")
                    ));
                    None
                }
                _ => return Err(f.generic(&format!("bucket {}", c.bucket))),
            }
        }
    };
    if let Some(bucket_region) = &bucket_region {
        if bucket_region != region {
            problem(
                "--bucket",
                format!(
                    "bucket {} is in {bucket_region}, the group in {region}: CloudWatch Logs exports only to a bucket in the group's region; use a bucket in {region} (or --region {bucket_region} if the group is there)",
                    c.bucket
                ),
            );
        } else {
            let fix = policy_fix(c.bucket, c.prefix, region);
            match s3.get_bucket_policy().bucket(c.bucket).send().await {
                Ok(out) => match out.policy() {
                    Some(text) if allows_logs_put(text, c.bucket, c.prefix, c.group, region) => {}
                    _ => problem(
                        "--bucket",
                        format!(
                            "the policy of bucket {} does not let CloudWatch Logs write the export under {}/: {fix}",
                            c.bucket, c.prefix
                        ),
                    ),
                },
                Err(e) => {
                    let f = AwsFailure::of("GetBucketPolicy", &e);
                    if f.code() == Some("NoSuchBucketPolicy") {
                        problem(
                            "--bucket",
                            format!(
                                "bucket {} has no bucket policy, so CloudWatch Logs cannot write the export: {fix}",
                                c.bucket
                            ),
                        );
                    } else {
                        render::warn(&format!(
                            "could not read the policy of bucket {} ({}): make sure it lets logs.{region}.amazonaws.com s3:PutObject under {}/",
                            c.bucket,
                            f.code().unwrap_or("no error code"),
                            c.prefix
                        ));
                    }
                }
            }
        }
    }

    // The mode against the group: data protection and retention.
    if let Some(facts) = &facts {
        if is_destructive(c.mode) && !c.allow_masked_archive {
            for (scope, protected) in data_protection(aws, c.group).await {
                if protected {
                    problem(
                        "--mode",
                        format!(
                            "{} has a data protection policy ({scope}): its export may hold masked text, and mode {} deletes the originals from CloudWatch; pass --allow-masked-archive to archive anyway, or use --mode export-only",
                            c.group, c.mode
                        ),
                    );
                    break;
                }
            }
        }
        if let Some(days) = facts.retention_days {
            let age_days = (c.now.timestamp_millis() - c.cutoff_ms) as f64 / 86_400_000.0;
            if age_days > f64::from(days) {
                let conflict = format!(
                    "{} keeps events {days} days (its retention), but the cutoff is {age_days:.1} days ago: CloudWatch would expire events the archive has not reached",
                    c.group
                );
                if c.refuse_retention_conflict {
                    problem(
                        "--retention-conflict",
                        format!(
                            "{conflict}; raise the group's retention, or drop --retention-conflict refuse to let the run raise it"
                        ),
                    );
                } else if c.mode != "plan" {
                    render::warn(&format!(
                        "{conflict}: the run raises it to protect them (the previous value is recorded; `cwl-archiver retention restore` puts it back once that is safe)"
                    ));
                } else {
                    render::warn(&conflict);
                }
            }
        }
    }

    if problems.is_empty() {
        return Ok(facts.unwrap_or_default());
    }
    // Every problem but the last as an error line; the last is the error returned.
    let mut lines: Vec<String> = problems.iter().map(Problem::line).collect();
    let last = lines.pop().unwrap_or_default();
    for line in lines {
        render::error(&CliError::input(line));
    }
    Err(CliError::input(last))
}

/// The statements a bucket needs for CloudWatch Logs exports.
fn policy_fix(bucket: &str, prefix: &str, region: &str) -> String {
    format!(
        "add statements allowing the principal logs.{region}.amazonaws.com s3:GetBucketAcl on arn:aws:s3:::{bucket} and s3:PutObject on arn:aws:s3:::{bucket}/{prefix}/* (docs/deploy.md has the policy)"
    )
}

/// Whether a data protection policy covers the group: (scope, protected)
/// for the group's own policy and the account's. A check that cannot be
/// made is a warning; an endpoint that does not implement it (an emulator)
/// is skipped.
async fn data_protection(aws: &Aws, group: &str) -> Vec<(&'static str, bool)> {
    let logs = aws.logs();
    let mut found = Vec::new();
    match logs
        .get_data_protection_policy()
        .log_group_identifier(group)
        .send()
        .await
    {
        Ok(out) => found.push((
            "on the log group",
            out.policy_document().is_some_and(|d| !d.trim().is_empty()),
        )),
        Err(e) => unchecked(
            AwsFailure::of("GetDataProtectionPolicy", &e),
            "logs:GetDataProtectionPolicy",
        ),
    }
    match logs
        .describe_account_policies()
        .policy_type(PolicyType::DataProtectionPolicy)
        .send()
        .await
    {
        Ok(out) => found.push(("for the whole account", !out.account_policies().is_empty())),
        Err(e) => unchecked(
            AwsFailure::of("DescribeAccountPolicies", &e),
            "logs:DescribeAccountPolicies",
        ),
    }
    found
}

fn unchecked(f: AwsFailure, permission: &str) {
    if f.is_not_implemented() {
        return; // an emulator without data protection
    }
    if f.code() == Some("ResourceNotFoundException") {
        return; // no policy
    }
    render::warn(&format!(
        "could not check for a data protection policy ({}: {}); grant {permission}, or make sure the group has none before a destructive mode",
        f.operation,
        f.code().unwrap_or("no error code")
    ));
}

/// Whether a bucket policy lets the logs service of `region` PutObject
/// under the group's keys of `prefix`.
pub fn allows_logs_put(policy: &str, bucket: &str, prefix: &str, group: &str, region: &str) -> bool {
    let Ok(doc) = serde_json::from_str::<Value>(policy) else {
        return false;
    };
    let statements: Vec<&Value> = match &doc["Statement"] {
        Value::Array(a) => a.iter().collect(),
        s @ Value::Object(_) => vec![s],
        _ => return false,
    };
    let list = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
            _ => Vec::new(),
        }
    };
    let key = format!(
        "{}/{}/@exports/dt=2000-01-01/task/stream/000000.gz",
        prefix.trim_matches('/'),
        group.trim_start_matches('/')
    );
    let services = [format!("logs.{region}.amazonaws.com"), "logs.amazonaws.com".to_string()];
    statements.into_iter().any(|s| {
        let allow = s["Effect"].as_str() == Some("Allow");
        let principal = match &s["Principal"] {
            Value::String(p) => p == "*",
            Value::Object(o) => {
                o.get("AWS").is_some_and(|a| list(a).iter().any(|p| p == "*"))
                    || o.get("Service")
                        .is_some_and(|v| list(v).iter().any(|p| services.contains(p)))
            }
            _ => false,
        };
        let action = list(&s["Action"])
            .iter()
            .any(|a| glob(&a.to_lowercase(), "s3:putobject"));
        let resource = list(&s["Resource"]).iter().any(|r| {
            ["aws", "aws-cn", "aws-us-gov"]
                .iter()
                .any(|p| glob(r, &format!("arn:{p}:s3:::{bucket}/{key}")))
        });
        allow && principal && action && resource
    })
}

/// IAM wildcard matching: `*` any run of characters, `?` one.
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(principal: Value, action: Value, resource: Value) -> String {
        json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*",
             "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
            {"Effect": "Allow", "Principal": principal, "Action": action, "Resource": resource,
             "Condition": {"StringEquals": {"aws:SourceAccount": "1"}}}
        ]})
        .to_string()
    }

    #[test]
    fn the_template_policy_allows_the_export() {
        let p = policy(
            json!({"Service": "logs.eu-west-1.amazonaws.com"}),
            json!("s3:PutObject"),
            json!("arn:aws:s3:::b/cwl-archiver/*"),
        );
        assert!(allows_logs_put(&p, "b", "cwl-archiver", "/aws/lambda/x", "eu-west-1"));
        assert!(
            !allows_logs_put(&p, "b", "cwl-archiver", "/x", "us-east-1"),
            "another region's service"
        );
        assert!(!allows_logs_put(&p, "b", "other", "/x", "eu-west-1"), "another prefix");
        assert!(
            !allows_logs_put(&p, "c", "cwl-archiver", "/x", "eu-west-1"),
            "another bucket"
        );
    }

    #[test]
    fn wildcards_and_lists_count() {
        let p = policy(
            json!({"Service": ["lambda.amazonaws.com", "logs.amazonaws.com"]}),
            json!(["s3:Get*", "s3:Put*"]),
            json!(["arn:aws:s3:::b", "arn:aws:s3:::b/*"]),
        );
        assert!(allows_logs_put(&p, "b", "p", "/g", "us-east-1"));
        let read_only = policy(
            json!({"Service": "logs.us-east-1.amazonaws.com"}),
            json!("s3:GetBucketAcl"),
            json!("*"),
        );
        assert!(!allows_logs_put(&read_only, "b", "p", "/g", "us-east-1"));
        assert!(!allows_logs_put("not json", "b", "p", "/g", "us-east-1"));
        assert!(glob("a*c?e", "abbbcde"));
        assert!(!glob("a*c", "abd"));
    }
}
