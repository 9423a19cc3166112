//! The service layer above the engine: what `narakim serve` (issue 11)
//! builds on. So far: API token format and verification ([`token`]).

pub mod token;
