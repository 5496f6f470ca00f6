//! The voice gateway service.
