#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    archiver::workflow::lambda::run(start_export::handler).await
}
