//! The caller side of a WebRTC call (browser widget now, WhatsApp later): a
//! [`signaling::Peer`] plus the codec chain between RTP and the provider's PCM.
//!
//! Inbound: RTP → jitter buffer → Opus decoded straight to the provider's input rate.
//! In-order packets go through at once; the buffer only waits when a packet is missing,
//! for as long as the measured jitter suggests, then conceals it (FEC or PLC).
//! Outbound: a 20 ms frame at the provider's output rate → Opus encoded straight from
//! that rate → RTP. No resampler on either path.

use std::time::Instant;

use media::{JitterBuffer, JitterConfig, JitterOutput, OpusDecoder, OpusEncoder, OpusEncoderConfig, SampleRate};
use signaling::{IceCandidate, Peer, PeerEvent, PeerEvents, PeerFactory, RtpAudio};

/// Largest Opus packet we produce (libopus never needs more for 20 ms mono).
const MAX_PACKET: usize = 1500;

/// Why the edge could not be set up or used.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error(transparent)]
    Peer(#[from] signaling::PeerError),
    #[error(transparent)]
    Media(#[from] media::MediaError),
}

/// A WebRTC caller.
pub struct WebRtcEdge {
    peer: Peer,
    events: PeerEvents,
    jitter: JitterBuffer,
    decoder: OpusDecoder,
    encoder: OpusEncoder,
    /// Caller frames decoded since the session last took them, at the input rate.
    decoded: Vec<i16>,
    /// Arrival time of each decoded frame's packet (one per frame).
    arrivals: Vec<Instant>,
    packet: Vec<u8>,
    /// Room for one decoded packet: browsers send 20 ms, but Opus allows up to 120 ms.
    scratch: Vec<i16>,
    input_frame: usize,
}

impl WebRtcEdge {
    /// Answers a browser offer; returns the edge and the SDP answer.
    pub async fn answer(
        factory: &PeerFactory,
        offer: &str,
        input_rate: SampleRate,
        output_rate: SampleRate,
    ) -> Result<(Self, String), EdgeError> {
        let jitter = JitterBuffer::new(JitterConfig::default())?;
        let decoder = OpusDecoder::new(input_rate)?;
        let encoder = OpusEncoder::new(output_rate, OpusEncoderConfig::default())?;
        let (peer, events, answer) = factory.answer(offer).await?;
        Ok((
            Self {
                peer,
                events,
                jitter,
                decoder,
                encoder,
                decoded: Vec::with_capacity(input_rate.samples_per_frame() * 8),
                arrivals: Vec::with_capacity(8),
                packet: vec![0; MAX_PACKET],
                scratch: vec![0; input_rate.samples_per_frame() * 6],
                input_frame: input_rate.samples_per_frame(),
            },
            answer,
        ))
    }

    /// The next event of the peer (None once it is gone).
    pub async fn next_event(&mut self) -> Option<PeerEvent> {
        self.events.recv().await
    }

    /// A trickled candidate from the caller.
    pub async fn add_candidate(&mut self, candidate: IceCandidate) -> Result<(), EdgeError> {
        Ok(self.peer.add_remote_candidate(candidate).await?)
    }

    /// Takes in a caller packet and decodes whatever is ready to go on.
    pub fn receive(&mut self, rtp: &RtpAudio, now: Instant) {
        self.jitter.push(rtp.sequence, rtp.timestamp, &rtp.payload, now);
        self.drain(now, rtp.arrival);
    }

    /// Conceals packets that did not come in time (call every frame).
    pub fn poll(&mut self, now: Instant) {
        self.drain(now, now);
    }

    fn drain(&mut self, now: Instant, arrival: Instant) {
        let frame = self.input_frame;
        loop {
            let result = match self.jitter.pop_ready(now) {
                None => return,
                Some(JitterOutput::Packet(payload)) => self.decoder.decode(payload, &mut self.scratch),
                Some(JitterOutput::Lost { next }) => {
                    crate::metrics::packets_lost(1);
                    self.decoder.conceal(next, &mut self.scratch)
                }
            };
            // A packet libopus cannot read (or of an odd length) is concealed rather than
            // passed on as garbage.
            let samples = match result {
                Ok(n) if n >= frame && n % frame == 0 => n,
                Ok(_) | Err(_) => match self.decoder.conceal(None, &mut self.scratch) {
                    Ok(n) if n >= frame => frame,
                    _ => continue,
                },
            };
            // One packet may carry several 20 ms frames: hand them on one by one.
            for chunk in self.scratch[..samples].chunks_exact(frame) {
                self.decoded.extend_from_slice(chunk);
                self.arrivals.push(arrival);
            }
        }
    }

    /// Takes the decoded caller frames (consecutive `frame`-sized chunks) and their
    /// arrival times. Give the buffers back with [`Self::restore`] to reuse them.
    pub fn take_frames(&mut self) -> (Vec<i16>, Vec<Instant>) {
        (std::mem::take(&mut self.decoded), std::mem::take(&mut self.arrivals))
    }

    /// Returns the buffers taken by [`Self::take_frames`], emptied.
    pub fn restore(&mut self, mut decoded: Vec<i16>, mut arrivals: Vec<Instant>) {
        decoded.clear();
        arrivals.clear();
        self.decoded = decoded;
        self.arrivals = arrivals;
    }

    /// Samples in one caller frame.
    pub fn input_frame(&self) -> usize {
        self.input_frame
    }

    /// Encodes and sends one 20 ms frame of agent audio. False before the media path is
    /// up (nothing is sent then).
    pub async fn send(&mut self, pcm: &[i16]) -> Result<bool, EdgeError> {
        let n = self.encoder.encode(pcm, &mut self.packet)?;
        Ok(self.peer.send_opus(&self.packet[..n]).await?)
    }

    /// Jitter statistics, for the end-of-call log line.
    pub fn stats(&self) -> media::JitterStats {
        self.jitter.stats()
    }

    /// Hangs up the peer.
    pub async fn close(&mut self) {
        self.peer.close().await;
    }
}
