//! Integration tests of the Commit Layer through its public API. Named after
//! the conformance rows (CT-CL-*, CT-WAL-*) where they match.

#![expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "test helpers: a panic is a failed test")]

mod common;
mod effectors_fs;
mod effectors_http;
mod effectors_mail;
mod recovery;
mod simulation;
mod stages;
