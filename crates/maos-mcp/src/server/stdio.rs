//! MCP over a byte stream pair (stdio, or anything `AsyncRead` + `AsyncWrite`): one
//! client, newline-delimited JSON-RPC, lines over [`REQUEST_BYTES_MAX`] dropped.

use std::sync::Arc;

use rmcp::{ServiceExt as _, transport::async_rw::AsyncRwTransport};
use tokio::io::{AsyncRead, AsyncWrite};

use super::{McpServer, Mediator, REQUEST_BYTES_MAX};
use crate::{McpError, upstream::truncate};

/// Serves MCP to one client on `reader`/`writer`, every request carrying `bearer`,
/// until the client closes its end (or the transport fails).
///
/// # Errors
///
/// `MCP-SERVE` when the client does not complete `initialize` (it closed the stream
/// first, or the mediator refused the bearer) or the service task fails.
pub async fn serve_io<M, R, W>(mediator: Arc<M>, bearer: String, reader: R, writer: W) -> Result<(), McpError>
where
    M: Mediator,
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    let transport = AsyncRwTransport::new_server(reader, writer).with_max_line_length(REQUEST_BYTES_MAX);
    let running = McpServer::with_bearer(mediator, bearer)
        .serve(transport)
        .await
        .map_err(|error| McpError::Serve { why: truncate(&error.to_string()) })?;
    let reason = running.waiting().await.map_err(|error| McpError::Serve { why: truncate(&error.to_string()) })?;
    tracing::debug!(?reason, "MCP client session ended");
    Ok(())
}

/// Serves MCP on this process's stdin and stdout with a fixed bearer: `maos mcp
/// --agent ID` is `serve_stdio(Arc::new(Bridge::connect(url, &token).await?), token)`.
/// Nothing else may write to stdout meanwhile (log to stderr).
///
/// # Errors
///
/// As [`serve_io`].
pub async fn serve_stdio<M: Mediator>(mediator: Arc<M>, bearer: String) -> Result<(), McpError> {
    serve_io(mediator, bearer, tokio::io::stdin(), tokio::io::stdout()).await
}
