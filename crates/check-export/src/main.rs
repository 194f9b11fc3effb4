#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    archiver::workflow::lambda::run(check_export::handler).await
}
