//! The AWS flags every command shares, named as the AWS CLI names them, and
//! the SDK configuration of the command line.
//!
//! The command line has its own retry and timeout policy: the Lambdas retry
//! 8 times because throttling at 5 TPS quotas is normal for them, but a
//! person at a terminal wants a refused connection or a wrong endpoint
//! reported in seconds. Before any call, the profile, the region and the
//! credentials are checked, so each of them fails with its own fix.

use std::path::PathBuf;
use std::time::Duration;

use archiver::workflow::Clients;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

use crate::error::{CliError, CliResult};

/// Attempts per call, counting the first.
pub const ATTEMPTS: u32 = 3;
/// Attempts per read while planning: the reads are paced to the quota, but
/// other clients of the account share it.
pub const PLAN_ATTEMPTS: u32 = 6;
/// How long to wait for a TCP (and TLS) connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one attempt of a call may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long resolving credentials may take (IMDS, SSO, a process).
const CREDENTIALS_TIMEOUT: Duration = Duration::from_secs(10);

/// `--profile`, `--region`, `--endpoint-url`, as in the AWS CLI.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct AwsArgs {
    /// Use a specific profile from your AWS credentials and config files.
    #[arg(long, env = "AWS_PROFILE", global = true, help_heading = "AWS options")]
    pub profile: Option<String>,
    /// The AWS region to use (the log group's and the bucket's region); else AWS_REGION, AWS_DEFAULT_REGION or the profile's.
    #[arg(long, env = "AWS_REGION", global = true, help_heading = "AWS options")]
    pub region: Option<String>,
    /// Send every request to this URL instead of AWS (a local stack, for instance).
    #[arg(long, env = "AWS_ENDPOINT_URL", global = true, help_heading = "AWS options")]
    pub endpoint_url: Option<String>,
}

/// The loaded configuration and the clients the commands use.
#[derive(Clone)]
pub struct Aws {
    /// The SDK configuration (the command line's retry and timeouts).
    pub config: SdkConfig,
    /// The region in use.
    pub region: String,
}

impl Aws {
    /// Step Functions.
    pub fn sfn(&self) -> aws_sdk_sfn::Client {
        aws_sdk_sfn::Client::new(&self.config)
    }

    /// S3.
    pub fn s3(&self) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::new(&self.config)
    }

    /// CloudWatch Logs.
    pub fn logs(&self) -> aws_sdk_cloudwatchlogs::Client {
        aws_sdk_cloudwatchlogs::Client::new(&self.config)
    }

    /// The library's CloudWatch Logs and S3 clients.
    pub fn clients(&self) -> Clients {
        Clients::from_config(&self.config)
    }

    /// The library's clients with more attempts, for the paced reads of a plan.
    pub fn plan_clients(&self) -> Clients {
        let config = self
            .config
            .clone()
            .into_builder()
            .retry_config(RetryConfig::standard().with_max_attempts(PLAN_ATTEMPTS))
            .build();
        Clients::from_config(&config)
    }
}

impl AwsArgs {
    /// Loads the configuration: the usual chain, overridden by the flags,
    /// with the command line's retry and timeouts; an unknown profile, a
    /// missing region or missing credentials are input errors with the fix.
    pub async fn load(&self) -> CliResult<Aws> {
        if let Some(profile) = &self.profile {
            check_profile(profile)?;
        }
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::standard().with_max_attempts(ATTEMPTS))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                    .build(),
            );
        if let Some(url) = &self.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some(profile) = &self.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(region) = &self.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        let config = loader.load().await;
        let Some(region) = config.region().map(|r| r.to_string()) else {
            return Err(CliError::input(
                "no AWS region: give --region (the log group's region), or set AWS_REGION (or AWS_DEFAULT_REGION), or a region in your profile",
            ));
        };
        check_credentials(&config, self.profile.as_deref()).await?;
        Ok(Aws { config, region })
    }
}

async fn check_credentials(config: &SdkConfig, profile: Option<&str>) -> CliResult {
    let fix = match profile {
        Some(p) => format!(
            "profile {p} gives no credentials: check its keys or role in ~/.aws/config and ~/.aws/credentials, or run `aws sso login --profile {p}`"
        ),
        None => "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or use --profile (or AWS_PROFILE) with a profile of ~/.aws/config; `aws configure` sets one up".into(),
    };
    let Some(provider) = config.credentials_provider() else {
        return Err(CliError::input(format!("no AWS credentials: {fix}")));
    };
    use aws_sdk_sfn::config::ProvideCredentials;
    match tokio::time::timeout(CREDENTIALS_TIMEOUT, provider.provide_credentials()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(CliError::input(format!("no AWS credentials: {fix}"))
            .with_detail(format!("{}", aws_smithy_types::error::display::DisplayErrorContext(&e)))),
        Err(_) => Err(CliError::input(format!(
            "no AWS credentials within {} s: {fix}",
            CREDENTIALS_TIMEOUT.as_secs()
        ))),
    }
}

/// The AWS config and credentials files, as the AWS CLI finds them.
fn profile_files() -> [(PathBuf, bool); 2] {
    let home = std::env::var_os("HOME")
        .or_else(|| std::env::var_os("USERPROFILE"))
        .map(PathBuf::from)
        .unwrap_or_default();
    let config = std::env::var_os("AWS_CONFIG_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".aws").join("config"));
    let credentials = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".aws").join("credentials"));
    [(config, true), (credentials, false)]
}

/// The profile names a config (`[profile NAME]`, `[default]`) or
/// credentials (`[NAME]`) file defines.
pub fn profile_names(text: &str, config_file: bool) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix('[')?.strip_suffix(']'))
        .map(str::trim)
        .filter_map(|section| {
            if !config_file || section == "default" {
                return Some(section.to_string());
            }
            let rest = section.strip_prefix("profile")?;
            rest.starts_with(char::is_whitespace).then(|| rest.trim().to_string())
        })
        .collect()
}

/// An unknown profile is an error even when the environment has
/// credentials (the SDK would silently use those instead). `default` may be
/// absent: it means "the usual chain".
fn check_profile(profile: &str) -> CliResult {
    if profile == "default" {
        return Ok(());
    }
    let mut known = Vec::new();
    let mut looked = Vec::new();
    for (path, config_file) in profile_files() {
        looked.push(path.display().to_string());
        if let Ok(text) = std::fs::read_to_string(&path) {
            known.extend(profile_names(&text, config_file));
        }
    }
    if known.iter().any(|p| p == profile) {
        return Ok(());
    }
    known.sort();
    known.dedup();
    let have = if known.is_empty() {
        "no profiles are defined".to_string()
    } else {
        format!("the profiles are {}", known.join(", "))
    };
    Err(CliError::input(format!(
        "--profile {profile}: no such profile in {} ({have}); fix the name, or create it with `aws configure --profile {profile}`",
        looked.join(" or ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_are_read_from_both_files() {
        let config = "[default]\nregion = x\n[profile dev]\n[sso-session s]\n[ profile  ops ]\n[profiled]\n";
        assert_eq!(profile_names(config, true), vec!["default", "dev", "ops"]);
        assert_eq!(profile_names("[ci]\n[default]\n", false), vec!["ci", "default"]);
    }
}
