#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    archiver::workflow::lambda::run(rebuild_stream::handler).await
}
