//! Pure audio processing for the voice gateway (no I/O, no async runtime, no clock reads).
#![deny(missing_docs)]
