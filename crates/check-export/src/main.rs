#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    archiver::lambda::run(check_export::handler).await
}
