#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    archiver::workflow::lambda::run(scan_stream::handler).await
}
