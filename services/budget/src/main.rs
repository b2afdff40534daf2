//! `tollgate-budget-service --listen 0.0.0.0:8090 --redis redis://127.0.0.1:6379`
//! (also `TOLLGATE_BUDGET_LISTEN`, `TOLLGATE_BUDGET_REDIS`).

use std::process::ExitCode;

fn arg(name: &str, env: &str, default: &str) -> String {
    let mut args = std::env::args();
    while let Some(a) = args.next() {
        if a == name {
            if let Some(v) = args.next() {
                return v;
            }
        }
    }
    std::env::var(env).unwrap_or_else(|_| default.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::args().any(|a| a == "--help" || a == "-h") {
        println!("tollgate-budget-service [--listen ADDR] [--redis URL]\n  defaults: 0.0.0.0:8090, redis://127.0.0.1:6379");
        return ExitCode::SUCCESS;
    }
    let listen = arg("--listen", "TOLLGATE_BUDGET_LISTEN", "0.0.0.0:8090");
    let redis = arg("--redis", "TOLLGATE_BUDGET_REDIS", "redis://127.0.0.1:6379");
    let service = match tollgate_budget_service::Service::connect(&redis).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tollgate-budget-service: cannot reach {redis}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("tollgate-budget-service: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("tollgate-budget-service: listening on {listen}, redis {redis}");
    // Ctrl-C, or SIGTERM from Kubernetes or a launcher.
    let shutdown = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
    };
    match axum::serve(listener, service.router())
        .with_graceful_shutdown(shutdown)
        .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tollgate-budget-service: {e}");
            ExitCode::FAILURE
        }
    }
}
