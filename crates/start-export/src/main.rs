#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    archiver::lambda::run(start_export::handler).await
}
