//! WebRTC peers for the voice gateway, built on webrtc-rs.
