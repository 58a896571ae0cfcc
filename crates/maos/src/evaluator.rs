//! The semantic evaluator over HTTP (`[evaluator] url` in `maos.toml`): the
//! kernel posts an [`EvalRequest`] as JSON and reads an [`EvalAnswer`]; the
//! schema is in `docs/resilience.md`. The kernel bounds the wait, keeps the
//! breaker and logs every answer; this only speaks HTTP (no proxy, no
//! redirect), and reads at most [`ANSWER_BYTES_MAX`] of an answer.

use maos_kernel::{EvalAnswer, EvalError, EvalRequest, SemanticEvaluator};
use std::future::Future;
use std::pin::Pin;

/// Longest answer read.
pub const ANSWER_BYTES_MAX: usize = 64 * 1024;

#[derive(Debug)]
pub struct HttpEvaluator {
    url: String,
    client: reqwest::Client,
}

impl HttpEvaluator {
    pub fn new(url: &str) -> anyhow::Result<Self> {
        // No proxy from the environment: the intent goes to the URL checked, nowhere else.
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).no_proxy().build()?;
        Ok(Self { url: url.to_owned(), client })
    }
}

impl SemanticEvaluator for HttpEvaluator {
    /// Not reached, or a 5xx: unreachable (rule-based in Standard). Any other
    /// status, an oversized or unparseable answer: invalid (the effect is refused).
    fn evaluate(&self, request: EvalRequest) -> Pin<Box<dyn Future<Output = Result<EvalAnswer, EvalError>> + Send>> {
        let (client, url) = (self.client.clone(), self.url.clone());
        Box::pin(async move {
            let unreachable = |e: reqwest::Error| EvalError::Unreachable(format!("request failed: {e}"));
            let mut response = client.post(&url).json(&request).send().await.map_err(unreachable)?;
            let status = response.status();
            if status.is_server_error() {
                return Err(EvalError::Unreachable(format!("HTTP {status}")));
            }
            if !status.is_success() {
                return Err(EvalError::Invalid(format!("HTTP {status}")));
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
                if body.len().saturating_add(chunk.len()) > ANSWER_BYTES_MAX {
                    return Err(EvalError::Invalid(format!("the answer is over {ANSWER_BYTES_MAX} bytes")));
                }
                body.extend_from_slice(&chunk);
            }
            serde_json::from_slice(&body).map_err(|e| EvalError::Invalid(format!("the answer does not parse: {e}")))
        })
    }

    fn describe(&self) -> String {
        self.url.clone()
    }
}
