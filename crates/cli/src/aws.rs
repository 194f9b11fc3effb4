//! The AWS flags every command shares, named as the AWS CLI names them.

use archiver::workflow::Clients;
use aws_config::retry::RetryConfig;

/// `--profile`, `--region`, `--endpoint-url`, as in the AWS CLI.
#[derive(clap::Args, Debug, Clone)]
pub struct AwsArgs {
    /// Use a specific profile from your AWS credentials and config files.
    #[arg(long, env = "AWS_PROFILE", global = true, help_heading = "AWS options")]
    pub profile: Option<String>,
    /// The AWS region to use (the log group's and the bucket's region).
    #[arg(long, env = "AWS_REGION", global = true, help_heading = "AWS options")]
    pub region: Option<String>,
    /// Send every request to this URL instead of AWS (a local stack, for instance).
    #[arg(long, env = "AWS_ENDPOINT_URL", global = true, help_heading = "AWS options")]
    pub endpoint_url: Option<String>,
}

impl AwsArgs {
    /// The SDK configuration: the usual chain, overridden by the flags, with
    /// the product's retry policy.
    pub async fn config(&self) -> aws_config::SdkConfig {
        let mut loader = aws_config::from_env()
            .retry_config(RetryConfig::standard().with_max_attempts(archiver::store::aws::MAX_ATTEMPTS));
        if let Some(url) = &self.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some(profile) = &self.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(region) = &self.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        loader.load().await
    }

    /// The library's CloudWatch Logs and S3 clients.
    pub async fn clients(&self) -> Clients {
        Clients::from_config(&self.config().await)
    }

    /// A Step Functions client.
    pub async fn sfn(&self) -> aws_sdk_sfn::Client {
        aws_sdk_sfn::Client::new(&self.config().await)
    }
}
