//! `make stack-up`: the local stack in the foreground of this process (the
//! Makefile puts it in the background), with the state machine deployed.
//! Prints the environment to reach it, then serves until stopped.

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> std::process::ExitCode {
    let export_delay = std::env::var("CWL_EXPORT_DELAY_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5.0);
    let stack = match cwl_archiver_e2e::stack::Stack::start(export_delay).await {
        Ok(stack) => stack,
        Err(e) => {
            eprintln!("could not start the local stack: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("export AWS_ENDPOINT_URL={}", stack.emulator.endpoint());
    println!("export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1");
    println!("export CWL_ARCHIVER_STATE_MACHINE_ARN={}", stack.state_machine_arn);
    println!(
        "# fault injection and seeding: {}/_emulator/ (see README)",
        stack.emulator.endpoint()
    );
    let _ = tokio::signal::ctrl_c().await;
    std::process::ExitCode::SUCCESS
}
