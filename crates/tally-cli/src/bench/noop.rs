//! The ingest benchmark's baseline: an HTTP/1.1 endpoint that reads each request's body
//! and answers `200` with an empty body, so that the ratio to it measures what tally adds
//! on top of the same HTTP stack (hyper) on the same machine.

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::Context as _;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

#[derive(Debug, clap::Args)]
pub struct NoopArgs {
    /// Address to listen on; the first line printed names the one bound.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
}

pub fn run(args: NoopArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("while starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        // The benchmark reads this line to find the port.
        println!("no-op endpoint listening on http://{}", listener.local_addr()?);
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true).ok();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(answer);
                // A client closing its connection ends this task; nothing to report.
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    })
}

async fn answer(req: Request<Incoming>) -> Result<Response<Empty<Bytes>>, Infallible> {
    // Read the whole body, as the collector must before it can answer.
    let _ = req.into_body().collect().await;
    Ok(Response::new(Empty::new()))
}
