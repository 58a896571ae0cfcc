//! Integration tests of maos-token: golden vectors, properties, lifecycle.
//! One test binary with modules, so fixtures are shared and built once.

#[cfg(test)]
mod common;
#[cfg(test)]
mod golden;
#[cfg(test)]
mod lifecycle;
#[cfg(test)]
mod properties;
