#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    archiver::lambda::run(rebuild_stream::handler).await
}
