//! A test-only mediator (the kernel-backed one is tested in maos-gateway).
//!
//! Bearers: `bad` is refused (`API-TOKEN-INVALID`), a revoked bearer too; `alice` sees
//! tools `echo` and `danger`, anyone else only `echo`. `echo` returns its `message`;
//! `danger` is denied with a tool-level error `DSC-2-SCOPE: …`.

use std::{collections::BTreeSet, sync::Mutex};

use maos_mcp::{
    CallToolResult, ContentBlock, GetPromptResult, JsonObject, Mediator, Prompt, PromptMessage, ReadResourceResult,
    Refusal, Resource, ResourceContents, Tool, model::Role,
};
use serde_json::json;

pub const DENY_TEXT: &str = "DSC-2-SCOPE: `danger` is outside this agent's scope";
pub const NOTE_URI: &str = "maos://notes/today";

#[derive(Default)]
pub struct Fake {
    revoked: Mutex<BTreeSet<String>>,
}

impl Fake {
    /// From now on, `bearer` is refused.
    pub fn revoke(&self, bearer: &str) {
        self.revoked.lock().unwrap().insert(bearer.to_owned());
    }
}

fn tool(name: &str, description: &str) -> Tool {
    let schema = json!({"type": "object", "properties": {"message": {"type": "string"}}});
    let serde_json::Value::Object(schema) = schema else { unreachable!() };
    Tool::new(name.to_owned(), description.to_owned(), std::sync::Arc::new(schema))
}

impl Mediator for Fake {
    type Session = String;

    async fn authenticate(&self, bearer: &str) -> Result<String, Refusal> {
        if bearer == "bad" {
            return Err(Refusal::new("API-TOKEN-INVALID", "TOKEN-SIGNATURE: the token does not verify"));
        }
        if self.revoked.lock().unwrap().contains(bearer) {
            return Err(Refusal::new("API-TOKEN-INVALID", "TOKEN-REVOKED: the token was revoked"));
        }
        Ok(bearer.to_owned())
    }

    async fn list_tools(&self, session: &String) -> Result<Vec<Tool>, Refusal> {
        let mut tools = vec![tool("echo", "Returns its message")];
        if session == "alice" {
            tools.push(tool("danger", "Does something dangerous"));
        }
        Ok(tools)
    }

    async fn call_tool(&self, _session: &String, name: &str, args: JsonObject) -> Result<CallToolResult, Refusal> {
        match name {
            "echo" => {
                let message = args.get("message").and_then(|m| m.as_str()).unwrap_or_default();
                Ok(CallToolResult::success(vec![ContentBlock::text(message)]))
            }
            "danger" => Ok(CallToolResult::error(vec![ContentBlock::text(DENY_TEXT)])),
            other => Err(Refusal::new("DSC-1-UNKNOWN-TOOL", format!("no tool `{other}`"))),
        }
    }

    async fn list_resources(&self, _session: &String) -> Result<Vec<Resource>, Refusal> {
        Ok(vec![Resource::new(NOTE_URI, "today")])
    }

    async fn read_resource(&self, session: &String, uri: &str) -> Result<ReadResourceResult, Refusal> {
        if uri != NOTE_URI {
            return Err(Refusal::new("DSC-1-UNKNOWN-RESOURCE", format!("no resource `{uri}`")));
        }
        Ok(ReadResourceResult::new(vec![ResourceContents::text(format!("note for {session}"), uri)]))
    }

    async fn list_prompts(&self, _session: &String) -> Result<Vec<Prompt>, Refusal> {
        Ok(vec![Prompt::new("greet", Some("Says hello"), None)])
    }

    async fn get_prompt(
        &self,
        session: &String,
        name: &str,
        _args: Option<JsonObject>,
    ) -> Result<GetPromptResult, Refusal> {
        if name != "greet" {
            return Err(Refusal::new("DSC-1-UNKNOWN-PROMPT", format!("no prompt `{name}`")));
        }
        Ok(GetPromptResult::new(vec![PromptMessage::new_text(Role::User, format!("hello {session}"))]))
    }
}
