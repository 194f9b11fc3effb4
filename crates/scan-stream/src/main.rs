#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    archiver::lambda::run(scan_stream::handler).await
}
