//! The semantic evaluator over HTTP (`[evaluator] url` in `maos.toml`): the
//! kernel posts an [`EvalRequest`] as JSON and reads an [`EvalAnswer`]; the
//! schema is in `docs/resilience.md`. The kernel bounds the wait, keeps the
//! breaker and logs every answer; this only speaks HTTP, and reads at most
//! [`ANSWER_BYTES_MAX`] of an answer.

use maos_kernel::{EvalAnswer, EvalRequest, SemanticEvaluator};
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
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
        Ok(Self { url: url.to_owned(), client })
    }
}

impl SemanticEvaluator for HttpEvaluator {
    fn evaluate(&self, request: EvalRequest) -> Pin<Box<dyn Future<Output = Result<EvalAnswer, String>> + Send>> {
        let (client, url) = (self.client.clone(), self.url.clone());
        Box::pin(async move {
            let mut response =
                client.post(&url).json(&request).send().await.map_err(|e| format!("request failed: {e}"))?;
            if !response.status().is_success() {
                return Err(format!("HTTP {}", response.status()));
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| format!("reading the answer: {e}"))? {
                if body.len().saturating_add(chunk.len()) > ANSWER_BYTES_MAX {
                    return Err(format!("the answer is over {ANSWER_BYTES_MAX} bytes"));
                }
                body.extend_from_slice(&chunk);
            }
            serde_json::from_slice(&body).map_err(|e| format!("the answer does not parse: {e}"))
        })
    }

    fn describe(&self) -> String {
        self.url.clone()
    }
}
