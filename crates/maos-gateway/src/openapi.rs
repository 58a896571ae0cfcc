//! The OpenAPI 3.1 document served at `GET /v1/openapi.json`. Hand-written so
//! it says exactly what the handlers do; a test checks every route in it is
//! served and every served route is in it.

pub const DOCUMENT: &str = r##"{
  "openapi": "3.1.0",
  "info": {
    "title": "MAOS kernel API",
    "version": "1",
    "description": "Agents open a session with their capability token, then submit intents; every intent passes the Deterministic Security Core, is logged durably, and only then runs through the Commit Layer. Errors are {\"error\":{\"code\",\"message\"}} with stable codes (docs/errors.md)."
  },
  "servers": [{ "url": "http://127.0.0.1:7700" }],
  "components": {
    "securitySchemes": {
      "capabilityToken": { "type": "http", "scheme": "bearer", "description": "A MAOS capability token (maos1.…), only for POST /v1/sessions." },
      "session": { "type": "http", "scheme": "bearer", "description": "A session id (ses_…) returned by POST /v1/sessions." },
      "operator": { "type": "http", "scheme": "bearer", "description": "The operator secret (op_…) in <data-dir>/run/operator.token." }
    },
    "schemas": {
      "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "object", "required": ["code", "message"], "properties": { "code": { "type": "string", "examples": ["API-UNAUTHORIZED", "KERNEL-BUSY"] }, "message": { "type": "string" } } } } },
      "Resource": { "type": "object", "required": ["kind", "value"], "properties": { "kind": { "enum": ["path", "domain", "recipient", "resource"] }, "value": { "type": "string", "maxLength": 1024 } } },
      "IntentRequest": {
        "type": "object", "required": ["action"], "additionalProperties": false,
        "properties": {
          "action": { "type": "string", "pattern": "^[a-z0-9._:/-]+$", "examples": ["fs.write", "mail.send", "http.get", "mcp.files.read_text_file"], "description": "Resources, effect, sink, reads, cost and integrity are derived by the kernel from the action's descriptor; setting any of them is refused with API-FIELD-DERIVED." },
          "args": { "type": "object", "description": "Argument values: strings, integers, booleans. Role arguments (path, to, url, an MCP tool's roles) name the resources." },
          "world_state_hash": { "type": "string", "pattern": "^[0-9a-f]{64}$" },
          "wait_ms": { "type": "integer", "minimum": 0, "maximum": 60000, "description": "Default 10000; 0 answers at once with 202." }
        }
      },
      "IntentView": {
        "type": "object", "required": ["intent", "status"],
        "properties": {
          "intent": { "type": "string", "format": "uuid" },
          "status": { "enum": ["queued", "done", "denied", "pending_approval", "failed", "undone"] },
          "code": { "type": "string", "examples": ["DSC-2-PERMISSION", "HACF-PENDING", "CL-FS-PATH"] },
          "explanation": { "type": "string" },
          "decision_lsn": { "type": "integer" },
          "output": { "type": "object", "properties": { "summary": { "type": "string" }, "label": { "enum": ["trusted", "untrusted"] }, "text": { "type": "string" }, "body_base64": { "type": "string" }, "body_dropped": { "enum": ["delivered", "evicted"] } } },
          "undo_until_ms": { "type": "integer" },
          "approval": { "type": "object", "properties": { "id": { "type": "string" }, "level": { "type": "string" }, "expires_ms": { "type": "integer" } } }
        }
      }
    },
    "responses": {
      "Error": { "description": "A refusal or failure with a stable code.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "Intent": { "description": "The intent's outcome (200) or, if still queued after wait_ms, its id (202).", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/IntentView" } } } }
    }
  },
  "paths": {
    "/v1/health": { "get": { "summary": "Liveness and kernel mode (no authentication).", "responses": { "200": { "description": "{status, mode, why}" } } } },
    "/v1/openapi.json": { "get": { "summary": "This document.", "responses": { "200": { "description": "OpenAPI 3.1" } } } },
    "/v1/sessions": { "post": { "summary": "Open an agent session with a capability token.", "security": [{ "capabilityToken": [] }], "requestBody": { "required": false, "content": { "application/json": { "schema": { "type": "object", "properties": { "mission_statement": { "type": "string", "maxLength": 4096 } } } } } }, "responses": { "201": { "description": "{session, agent, token_id, expires_ms}" }, "401": { "$ref": "#/components/responses/Error" } } } },
    "/v1/sessions/current": { "delete": { "summary": "Close the calling session.", "security": [{ "session": [] }], "responses": { "204": { "description": "Closed." } } } },
    "/v1/intents": { "post": { "summary": "Submit an intent; wait for its outcome up to wait_ms.", "security": [{ "session": [] }], "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/IntentRequest" } } } }, "responses": { "200": { "$ref": "#/components/responses/Intent" }, "202": { "$ref": "#/components/responses/Intent" }, "400": { "$ref": "#/components/responses/Error" }, "429": { "$ref": "#/components/responses/Error" }, "503": { "$ref": "#/components/responses/Error" } } } },
    "/v1/intents/{id}": { "get": { "summary": "An intent's outcome (own session, or the operator); wait_ms waits for a change from queued.", "security": [{ "session": [] }, { "operator": [] }], "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }, { "name": "wait_ms", "in": "query", "schema": { "type": "integer", "maximum": 60000 } }], "responses": { "200": { "$ref": "#/components/responses/Intent" }, "404": { "$ref": "#/components/responses/Error" } } } },
    "/v1/intents/{id}/cancel": { "post": { "summary": "Cancel an intent waiting for approval (it is denied).", "security": [{ "session": [] }, { "operator": [] }], "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }], "responses": { "200": { "$ref": "#/components/responses/Intent" }, "409": { "$ref": "#/components/responses/Error" } } } },
    "/v1/intents/{id}/undo": { "post": { "summary": "Undo a committed intent inside its hold period (mail 60 min, files 24 h).", "security": [{ "operator": [] }], "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }], "responses": { "200": { "description": "{intent, undone, lsn}" }, "503": { "$ref": "#/components/responses/Error" } } } },
    "/v1/approvals": { "get": { "summary": "Open approval packets.", "security": [{ "operator": [] }], "responses": { "200": { "description": "{approvals: [packet]}" } } } },
    "/v1/approvals/{id}": { "get": { "summary": "One packet and the message (base64) the commander signs to grant it.", "security": [{ "operator": [] }], "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }], "responses": { "200": { "description": "{approval, sign}" }, "404": { "$ref": "#/components/responses/Error" } } } },
    "/v1/approvals/{id}/grant": { "post": { "summary": "Grant with the commander's signature over the packet's message; the intent then runs.", "security": [{ "operator": [] }], "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }], "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["signature"], "properties": { "signature": { "type": "string", "contentEncoding": "base64" } } } } } }, "responses": { "200": { "$ref": "#/components/responses/Intent" }, "503": { "$ref": "#/components/responses/Error" } } } },
    "/v1/approvals/{id}/deny": { "post": { "summary": "Deny an open approval.", "security": [{ "operator": [] }], "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }], "requestBody": { "required": false, "content": { "application/json": { "schema": { "type": "object", "properties": { "reason": { "type": "string" } } } } } }, "responses": { "200": { "$ref": "#/components/responses/Intent" } } } },
    "/v1/apoptosis": { "post": { "summary": "The agent reports its own compromise (apoptosis): always accepted; every request of the agent is then refused IMM-STAGE-3 until the operator releases it. Logged as kernel.immune.", "security": [{ "session": [] }], "requestBody": { "required": false, "content": { "application/json": { "schema": { "type": "object", "properties": { "reason": { "type": "string" } } } } } }, "responses": { "200": { "description": "{agent, stage, lsn}" } } } },
    "/v1/quarantine": { "get": { "summary": "Every agent with a danger signal since its last release: quarantine stage now, since when, danger score, last signal.", "security": [{ "operator": [] }], "responses": { "200": { "description": "{agents: [{agent, stage, stage_name, since_ms, score, signals, last_signal}]}" } } } },
    "/v1/quarantine/{agent}/release": { "post": { "summary": "Release an agent from quarantine (logged as kernel.immune with its standing and the reason).", "security": [{ "operator": [] }], "parameters": [{ "name": "agent", "in": "path", "required": true, "schema": { "type": "string" } }], "requestBody": { "required": false, "content": { "application/json": { "schema": { "type": "object", "properties": { "reason": { "type": "string" } } } } } }, "responses": { "200": { "description": "{agent, released, lsn}" }, "404": { "$ref": "#/components/responses/Error" } } } },
    "/v1/agents": { "get": { "summary": "Every agent the kernel knows: the ring Rule 4 holds it to (3 when unregistered), class, quarantine stage, danger score, aggregate monitoring counters; and the security fever if one is on.", "security": [{ "operator": [] }], "responses": { "200": { "description": "{agents: [{agent, ring, registered, class, stage, score, aggregate: {outbound_bytes, external_calls, recipients}}], truncated, fever: {since_ms, ends_ms} | null}" } } }, "post": { "summary": "Register an agent in ring 2 or 3 with its trust class (logged as kernel.agent). A move inward is refused KERNEL-ONBOARDING-NOT-BUILT; a changed class or one the profile keeps out of ring 2 KERNEL-AGENT-REGISTER; ring 3 for a ring-2 agent is a demotion.", "security": [{ "operator": [] }], "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["agent", "ring", "class"], "properties": { "agent": { "type": "string" }, "ring": { "type": "integer", "enum": [2, 3] }, "class": { "type": "string", "enum": ["a", "b", "c"] }, "reason": { "type": "string" } } } } } }, "responses": { "201": { "description": "{agent, ring, class, lsn}" }, "400": { "$ref": "#/components/responses/Error" }, "409": { "$ref": "#/components/responses/Error" } } } },
    "/v1/agents/{agent}/demote": { "post": { "summary": "Demote an agent to ring 3 at once: kernel.agent is logged first, then its live root tokens for ring 2 are revoked (token.revoked records) and their sessions closed; the answer lists every revoked id, descendants included.", "security": [{ "operator": [] }], "parameters": [{ "name": "agent", "in": "path", "required": true, "schema": { "type": "string" } }], "requestBody": { "required": false, "content": { "application/json": { "schema": { "type": "object", "properties": { "reason": { "type": "string" } } } } } }, "responses": { "200": { "description": "{agent, ring, revoked, lsn}" } } } },
    "/v1/fever/end": { "post": { "summary": "The commander ends the security fever (logged as kernel.immune); 404 KERNEL-NO-FEVER when none is on.", "security": [{ "operator": [] }], "requestBody": { "required": false, "content": { "application/json": { "schema": { "type": "object", "properties": { "reason": { "type": "string" } } } } } }, "responses": { "200": { "description": "{fever, lsn}" }, "404": { "$ref": "#/components/responses/Error" } } } },
    "/v1/status": { "get": { "summary": "Kernel mode and why, queue, WAL health, approvals, sessions.", "security": [{ "operator": [] }], "responses": { "200": { "description": "status object" } } } },
    "/v1/audit": { "get": { "summary": "Audit records in the export format (tokens redacted).", "security": [{ "operator": [] }], "parameters": [{ "name": "from", "in": "query", "schema": { "type": "integer", "minimum": 1 } }, { "name": "limit", "in": "query", "schema": { "type": "integer", "maximum": 1000 } }], "responses": { "200": { "description": "{records, next}" } } } },
    "/v1/tools": { "get": { "summary": "Upstream MCP tools with their pins, policies and whether they are withheld (changed or poisoned).", "security": [{ "operator": [] }], "responses": { "200": { "description": "{tools: [...]}" } } } },
    "/v1/tools/{server}/{tool}": { "get": { "summary": "One tool: its current definition, the definition the log last vouched for (pinned or approved), the pre-filter's finding and whether it is withheld.", "security": [{ "operator": [] }], "parameters": [{ "name": "server", "in": "path", "required": true, "schema": { "type": "string" } }, { "name": "tool", "in": "path", "required": true, "schema": { "type": "string" } }], "responses": { "200": { "description": "{tool, definition, vouched, poisoned}" }, "404": { "$ref": "#/components/responses/Error" } } } },
    "/v1/tools/{server}/{tool}/approve": { "post": { "summary": "Approve a tool's current definition (after a change); logged, then offered again. A definition the pre-filter flagged needs {\"allow_poisoned\": true} (else 409 MCP-TOOL-POISONED).", "security": [{ "operator": [] }], "parameters": [{ "name": "server", "in": "path", "required": true, "schema": { "type": "string" } }, { "name": "tool", "in": "path", "required": true, "schema": { "type": "string" } }], "responses": { "200": { "description": "the tool" }, "404": { "$ref": "#/components/responses/Error" } } } },
    "/v1/token-events": { "post": { "summary": "Log a token issue or revocation made by the operator's CLI while the daemon holds the log.", "security": [{ "operator": [] }], "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object" } } } }, "responses": { "201": { "description": "{lsn}" }, "409": { "$ref": "#/components/responses/Error" } } } }
  }
}"##;
