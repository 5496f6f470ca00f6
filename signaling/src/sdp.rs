//! The little SDP knowledge this crate needs beyond webrtc-rs: Opus as browsers describe it,
//! and reading a few attributes back out of a description.

use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_TELEPHONE_EVENT};
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters};
use webrtc::peer_connection::RTCSessionDescription;

use crate::PeerError;

/// The payload type we offer Opus on (Chrome's choice; answers mirror the offerer's).
pub(crate) const OPUS_PAYLOAD_TYPE: u8 = 111;

/// Opus the way browsers offer it: 48 kHz, two channels in the SDP (RFC 7587 requires `/2`
/// even for mono), 10 ms minimum packet time and in-band FEC.
pub(crate) fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: Vec::new(),
    }
}

pub(crate) fn opus_codec_parameters() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters { rtp_codec: opus_codec(), payload_type: OPUS_PAYLOAD_TYPE }
}

/// Opus with no fmtp parameters: consistent with, hence an exact match for, any offer's Opus
/// (Meta's says `minptime=20`, ours `minptime=10`).
pub(crate) fn opus_codec_parameters_for_any_offer() -> RTCRtpCodecParameters {
    let mut opus = opus_codec_parameters();
    opus.rtp_codec.sdp_fmtp_line = String::new();
    opus
}

/// The payload type we register `telephone-event` on (WhatsApp's choice; answers mirror the
/// offerer's).
pub(crate) const TELEPHONE_EVENT_PAYLOAD_TYPE: u8 = 126;

/// RFC 4733 events at the 8 kHz clock, the only rate WhatsApp sends DTMF at.
pub(crate) fn telephone_event_codec_parameters() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_TELEPHONE_EVENT.to_owned(),
            clock_rate: 8000,
            channels: 0,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: Vec::new(),
        },
        payload_type: TELEPHONE_EVENT_PAYLOAD_TYPE,
    }
}

/// The 8 kHz `telephone-event` payload type among negotiated codecs.
pub(crate) fn telephone_event_payload_type(codecs: &[RTCRtpCodecParameters]) -> Option<u8> {
    codecs
        .iter()
        .find(|codec| {
            codec.rtp_codec.mime_type.eq_ignore_ascii_case(MIME_TYPE_TELEPHONE_EVENT)
                && codec.rtp_codec.clock_rate == 8000
        })
        .map(|codec| codec.payload_type)
}

/// The Opus payload type among negotiated codecs.
pub(crate) fn opus_payload_type(codecs: &[RTCRtpCodecParameters]) -> Option<u8> {
    codecs
        .iter()
        .find(|codec| {
            codec.rtp_codec.mime_type.eq_ignore_ascii_case(MIME_TYPE_OPUS) && codec.rtp_codec.clock_rate == 48_000
        })
        .map(|codec| codec.payload_type)
}

/// Whether a remote description has an active audio section offering Opus 48 kHz — checked
/// before a port is spent on a peer that could never carry audio.
pub(crate) fn has_opus_audio(description: &RTCSessionDescription) -> Result<bool, PeerError> {
    let parsed = description.unmarshal().map_err(|err| PeerError::InvalidSdp(err.to_string()))?;
    Ok(parsed.media_descriptions.iter().any(|media| {
        media.media_name.media == "audio"
            && media.media_name.port.value != 0
            && media
                .codecs()
                .values()
                .any(|codec| codec.name.eq_ignore_ascii_case("opus") && codec.clock_rate == 48_000)
    }))
}

/// The value of the first `a=<name>:<value>` line of an SDP.
pub(crate) fn sdp_attribute<'a>(sdp: &'a str, name: &str) -> Option<&'a str> {
    sdp.lines().find_map(|line| line.trim_end().strip_prefix("a=")?.strip_prefix(name)?.strip_prefix(':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdp_attributes_are_found() {
        let sdp = "v=0\r\na=ice-ufrag:abcd\r\na=mid:0\r\na=mid:1\r\n";
        assert_eq!(sdp_attribute(sdp, "ice-ufrag"), Some("abcd"));
        assert_eq!(sdp_attribute(sdp, "mid"), Some("0"));
        assert_eq!(sdp_attribute(sdp, "ice-pwd"), None);
    }

    #[test]
    fn opus_is_found_whatever_its_payload_type() {
        let mut opus = opus_codec_parameters();
        opus.payload_type = 109;
        let mut pcmu = opus_codec_parameters();
        pcmu.rtp_codec.mime_type = "audio/PCMU".to_owned();
        pcmu.rtp_codec.clock_rate = 8000;
        pcmu.payload_type = 0;
        assert_eq!(opus_payload_type(&[pcmu.clone(), opus]), Some(109));
        assert_eq!(opus_payload_type(&[pcmu]), None);
    }
}
