//! Test support for the voice gateway.
