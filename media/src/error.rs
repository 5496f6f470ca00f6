//! The one error type of the crate.

/// Everything that can go wrong in `media`.
///
/// Every variant is a caller mistake (a wrong size or an unsupported rate) or a
/// codec refusing its input; nothing here is an I/O error, because the crate
/// does no I/O. An operation that fails leaves its state as it was, unless its
/// documentation says otherwise.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The rate is not one of 8, 16, 24 or 48 kHz.
    #[error("unsupported sample rate {0} Hz (expected 8000, 16000, 24000 or 48000)")]
    UnsupportedSampleRate(u32),
    /// A frame had the wrong number of samples for its rate.
    #[error("frame has {actual} samples, expected {expected} (one 20 ms frame)")]
    FrameSize {
        /// Samples in one 20 ms frame at the rate in use.
        expected: usize,
        /// Samples that were passed.
        actual: usize,
    },
    /// An output buffer cannot hold the result.
    #[error("output buffer holds {actual} elements, needs {needed}")]
    BufferTooSmall {
        /// Elements the operation needs to write.
        needed: usize,
        /// Elements the buffer holds.
        actual: usize,
    },
    /// PCM16 byte input whose length is not a multiple of two.
    #[error("PCM16 input has an odd number of bytes ({0})")]
    OddByteCount(usize),
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
    /// libopus rejected an operation.
    #[error("opus {op} failed: {message}")]
    Opus {
        /// What was being done (`"encode"`, `"decode"`, ...).
        op: &'static str,
        /// libopus's own description of the error.
        message: &'static str,
    },
    /// An Ogg Opus stream that does not parse, or breaks the format's rules.
    #[error("invalid Ogg Opus stream: {0}")]
    InvalidStream(String),
    /// The resampler could not be built or run.
    #[error("resampler: {0}")]
    Resampler(String),
}
