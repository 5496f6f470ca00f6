//! Sample rates the gateway meets, and the 20 ms frame everything is cut into.

use std::time::Duration;

use crate::MediaError;

/// Length of one frame, in milliseconds. Every stream in the gateway moves in
/// 20 ms frames: it is the Opus packet time every peer negotiates (`ptime:20`),
/// the Twilio media cadence, and the pacer's tick.
pub const FRAME_MS: u32 = 20;

/// [`FRAME_MS`] as a [`Duration`].
pub const FRAME_DURATION: Duration = Duration::from_millis(FRAME_MS as u64);

/// Samples in the largest 20 ms frame (48 kHz). Handy for stack or
/// preallocated buffers that must fit a frame at any rate.
pub const MAX_FRAME_SAMPLES: usize = 960;

/// A sample rate the gateway handles: 8 kHz (G.711 telephony), 16 kHz (Gemini
/// input), 24 kHz (OpenAI Realtime and Gemini output) and 48 kHz (Opus on
/// WebRTC). Built once at the edge with [`TryFrom<u32>`], valid from then on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SampleRate {
    /// 8 kHz: G.711 mu-law / A-law (Twilio).
    Hz8000,
    /// 16 kHz: Gemini Live input.
    Hz16000,
    /// 24 kHz: OpenAI Realtime PCM16, Gemini Live output.
    Hz24000,
    /// 48 kHz: Opus RTP clock, WebRTC.
    Hz48000,
}

impl SampleRate {
    /// All supported rates, lowest first.
    pub const ALL: [SampleRate; 4] =
        [SampleRate::Hz8000, SampleRate::Hz16000, SampleRate::Hz24000, SampleRate::Hz48000];

    /// The rate in hertz.
    pub const fn hz(self) -> u32 {
        match self {
            SampleRate::Hz8000 => 8_000,
            SampleRate::Hz16000 => 16_000,
            SampleRate::Hz24000 => 24_000,
            SampleRate::Hz48000 => 48_000,
        }
    }

    /// Samples in one millisecond (8, 16, 24 or 48).
    pub const fn samples_per_ms(self) -> usize {
        (self.hz() / 1000) as usize
    }

    /// Samples in one 20 ms frame (160, 320, 480 or 960).
    pub const fn samples_per_frame(self) -> usize {
        self.samples_per_ms() * FRAME_MS as usize
    }

    /// Whole milliseconds covered by `samples` samples at this rate (rounded down).
    pub const fn samples_to_ms(self, samples: u64) -> u64 {
        samples * 1000 / self.hz() as u64
    }

    /// The duration of `samples` samples at this rate.
    pub fn duration_of(self, samples: usize) -> Duration {
        Duration::from_nanos(samples as u64 * 1_000_000_000 / u64::from(self.hz()))
    }
}

impl TryFrom<u32> for SampleRate {
    type Error = MediaError;

    fn try_from(hz: u32) -> Result<Self, Self::Error> {
        match hz {
            8_000 => Ok(SampleRate::Hz8000),
            16_000 => Ok(SampleRate::Hz16000),
            24_000 => Ok(SampleRate::Hz24000),
            48_000 => Ok(SampleRate::Hz48000),
            other => Err(MediaError::UnsupportedSampleRate(other)),
        }
    }
}

impl From<SampleRate> for u32 {
    fn from(rate: SampleRate) -> u32 {
        rate.hz()
    }
}

impl std::fmt::Display for SampleRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} Hz", self.hz())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_rate_round_trips_through_hertz() {
        for rate in SampleRate::ALL {
            assert_eq!(SampleRate::try_from(rate.hz()), Ok(rate));
        }
    }

    #[test]
    fn sample_rate_rejects_rates_the_gateway_does_not_use() {
        for hz in [0, 11_025, 22_050, 44_100, 96_000] {
            assert_eq!(SampleRate::try_from(hz), Err(MediaError::UnsupportedSampleRate(hz)));
        }
    }

    #[test]
    fn a_frame_is_twenty_milliseconds_at_every_rate() {
        let expected = [160, 320, 480, 960];
        for (rate, n) in SampleRate::ALL.into_iter().zip(expected) {
            assert_eq!(rate.samples_per_frame(), n);
            assert_eq!(rate.duration_of(n), FRAME_DURATION);
            assert_eq!(rate.samples_to_ms(n as u64), 20);
        }
        assert_eq!(SampleRate::Hz48000.samples_per_frame(), MAX_FRAME_SAMPLES);
    }
}
