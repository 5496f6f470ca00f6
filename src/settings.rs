//! The JSON settings documents kept on companies and chatbots, with their defaults and
//! the rules for changing them. A PATCH is parsed into a `*Patch` (every field optional,
//! unknown fields refused), applied to the stored document, and the result validated as a
//! whole, so a bad request changes nothing.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A setting that is out of range or malformed; the API answers 422 with `field`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// camelCase name of the offending field, as the client sent it.
    pub field: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

impl FieldError {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self { field, message: message.into() }
    }
}

// ---------------------------------------------------------------------------------------
// Company settings

/// `companies.settings`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompanySettings {
    /// Feature switches, set by master admins.
    #[serde(default)]
    pub features: CompanyFeatures,
    /// What happens to the company's call recordings.
    #[serde(default)]
    pub recordings: RecordingPolicy,
}

/// Days a recording is kept when a company has not chosen.
pub const DEFAULT_RETENTION_DAYS: u32 = 90;
/// Longest retention a company may choose: ten years.
pub const MAX_RETENTION_DAYS: u32 = 3650;

/// `companies.settings.recordings`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordingPolicy {
    /// Days a call recording is kept after it is stored (1–3650, default 90); the
    /// retention sweep deletes older ones.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
}

fn default_retention_days() -> u32 {
    DEFAULT_RETENTION_DAYS
}

impl Default for RecordingPolicy {
    fn default() -> Self {
        Self { retention_days: DEFAULT_RETENTION_DAYS }
    }
}

/// Recording rules to change.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecordingPolicyPatch {
    /// Days to keep recordings (1–3650).
    pub retention_days: Option<u32>,
}

impl RecordingPolicy {
    /// Applies a patch; absent fields keep their value.
    pub fn apply(&mut self, patch: RecordingPolicyPatch) {
        if let Some(days) = patch.retention_days {
            self.retention_days = days;
        }
    }

    /// Checks the retention range.
    pub fn validate(&self) -> Result<(), FieldError> {
        if !(1..=MAX_RETENTION_DAYS).contains(&self.retention_days) {
            return Err(FieldError::new("retentionDays", format!("must be between 1 and {MAX_RETENTION_DAYS} days")));
        }
        Ok(())
    }
}

/// `companies.settings.features`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompanyFeatures {
    /// Voice calls for this company's chatbots (default off).
    #[serde(default)]
    pub call_enabled: bool,
}

/// Body of `PATCH /api/admin/companies/{id}/settings`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CompanySettingsPatch {
    /// Feature switches to change.
    pub features: Option<CompanyFeaturesPatch>,
    /// Recording rules to change.
    pub recordings: Option<RecordingPolicyPatch>,
}

/// Feature switches to change.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CompanyFeaturesPatch {
    /// Turn voice calls on or off.
    pub call_enabled: Option<bool>,
}

impl CompanySettings {
    /// Applies a patch; absent fields keep their value.
    pub fn apply(&mut self, patch: CompanySettingsPatch) {
        if let Some(on) = patch.features.and_then(|f| f.call_enabled) {
            self.features.call_enabled = on;
        }
        if let Some(recordings) = patch.recordings {
            self.recordings.apply(recordings);
        }
    }

    /// Checks the ranges.
    pub fn validate(&self) -> Result<(), FieldError> {
        self.recordings.validate().map_err(|e| FieldError { field: "recordings.retentionDays", ..e })
    }
}

// ---------------------------------------------------------------------------------------
// Chatbot settings

/// `chatbots.settings`: the widget options and the call options side by side.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatbotSettings {
    /// How the embedded widget looks and behaves.
    #[serde(default)]
    pub widget: WidgetSettings,
    /// How calls behave (call chatbots only).
    #[serde(default)]
    pub call: CallSettings,
}

/// Call options of a chatbot (spec part 2.4). The model itself is the chatbot's
/// `call_model_id` column, shown here as `aiModelId`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct CallSettings {
    /// The voice the agent speaks with; must be one the model's provider offers.
    pub voice: String,
    /// Speaking rate, 0.5–2.0 (providers that cannot change speed ignore it).
    pub voice_speed: f64,
    /// What the agent says when the call connects (empty: the agent waits for the caller).
    pub greeting_message: String,
    /// A phrase that, said by the caller, ends the call after a goodbye (empty: off).
    pub end_call_phrase: String,
    /// Seconds of caller silence before the agent checks in and then hangs up (30–300).
    pub silence_timeout_seconds: u32,
    /// Longest a call may last, in minutes (1–60).
    pub max_call_duration_minutes: u32,
    /// Transcribe both sides live and keep the transcript.
    pub realtime_transcription: bool,
    /// Keep an audio recording of the call (the issue's `recordingEnabled`, accepted as
    /// an alias).
    #[serde(alias = "recordingEnabled")]
    pub call_recording: bool,
    /// Spoken before the greeting when the call is recorded (1–300 characters).
    pub recording_notice: String,
    /// Whether the recording notice is spoken (when the call is recorded).
    pub recording_notice_enabled: bool,
    /// Let the caller interrupt the agent mid-sentence.
    pub allow_interruption: bool,
    /// Let the agent search the chatbot's knowledge-base categories.
    pub knowledge_base_access: bool,
    /// Voice activity detection threshold, 0.0 (sensitive) – 1.0 (less sensitive).
    pub vad_threshold: f64,
    /// Ask the caller's browser for echo cancellation.
    pub echo_cancellation: bool,
    /// Ask the caller's browser (and the provider) for noise suppression.
    pub noise_suppression: bool,
    /// Ask the caller's browser for automatic gain control.
    pub auto_gain_control: bool,
    /// Offer the caller a human agent: the model gets the `escalate_to_human` tool.
    pub escalation_enabled: bool,
    /// How long an escalation waits for an agent to accept before the AI takes a
    /// message instead (10–300 seconds).
    pub escalation_timeout_seconds: u32,
    /// What the AI says before the caller waits for an agent (1–300 characters).
    pub hold_message: String,
}

/// The recording notice a chatbot starts with.
pub const DEFAULT_RECORDING_NOTICE: &str = "This call may be recorded.";
/// What the AI says when it hands the caller to a person, unless the chatbot says otherwise.
pub const DEFAULT_HOLD_MESSAGE: &str = "Let me connect you with a team member. Please hold.";
/// Seconds an escalation waits for an agent, unless the chatbot says otherwise.
pub const DEFAULT_ESCALATION_TIMEOUT_SECONDS: u32 = 45;

impl Default for CallSettings {
    fn default() -> Self {
        Self {
            voice: String::new(),
            voice_speed: 1.0,
            greeting_message: "Hi! I'm your AI assistant. How can I help you today?".to_owned(),
            end_call_phrase: "goodbye".to_owned(),
            silence_timeout_seconds: 180,
            max_call_duration_minutes: 10,
            realtime_transcription: true,
            call_recording: false,
            recording_notice: DEFAULT_RECORDING_NOTICE.to_owned(),
            recording_notice_enabled: true,
            allow_interruption: true,
            knowledge_base_access: true,
            vad_threshold: 0.5,
            echo_cancellation: true,
            noise_suppression: true,
            auto_gain_control: true,
            escalation_enabled: false,
            escalation_timeout_seconds: DEFAULT_ESCALATION_TIMEOUT_SECONDS,
            hold_message: DEFAULT_HOLD_MESSAGE.to_owned(),
        }
    }
}

/// Body of `PATCH /api/company/chatbots/{id}/call-settings`: any subset of the fields.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CallSettingsPatch {
    /// A call-capable model (`modelType` call or both).
    pub ai_model_id: Option<String>,
    pub voice: Option<String>,
    pub voice_speed: Option<f64>,
    pub greeting_message: Option<String>,
    pub end_call_phrase: Option<String>,
    pub silence_timeout_seconds: Option<u32>,
    pub max_call_duration_minutes: Option<u32>,
    pub realtime_transcription: Option<bool>,
    #[serde(alias = "recordingEnabled")]
    pub call_recording: Option<bool>,
    pub recording_notice: Option<String>,
    pub recording_notice_enabled: Option<bool>,
    pub allow_interruption: Option<bool>,
    pub knowledge_base_access: Option<bool>,
    pub vad_threshold: Option<f64>,
    pub echo_cancellation: Option<bool>,
    pub noise_suppression: Option<bool>,
    pub auto_gain_control: Option<bool>,
    pub escalation_enabled: Option<bool>,
    pub escalation_timeout_seconds: Option<u32>,
    pub hold_message: Option<String>,
}

macro_rules! apply_fields {
    ($target:expr, $patch:expr, $($field:ident),+) => {
        $(if let Some(value) = $patch.$field { $target.$field = value; })+
    };
}

impl CallSettings {
    /// Applies everything but the model (which lives in its own column).
    pub fn apply(&mut self, patch: CallSettingsPatch) {
        apply_fields!(
            self,
            patch,
            voice,
            voice_speed,
            greeting_message,
            end_call_phrase,
            silence_timeout_seconds,
            max_call_duration_minutes,
            realtime_transcription,
            call_recording,
            recording_notice,
            recording_notice_enabled,
            allow_interruption,
            knowledge_base_access,
            vad_threshold,
            echo_cancellation,
            noise_suppression,
            auto_gain_control,
            escalation_enabled,
            escalation_timeout_seconds,
            hold_message
        );
    }

    /// Checks the ranges of spec part 2.4. The voice is checked against the model elsewhere.
    pub fn validate(&self) -> Result<(), FieldError> {
        if !(0.5..=2.0).contains(&self.voice_speed) {
            return Err(FieldError::new("voiceSpeed", "must be between 0.5 and 2.0"));
        }
        if !(30..=300).contains(&self.silence_timeout_seconds) {
            return Err(FieldError::new("silenceTimeoutSeconds", "must be between 30 and 300 seconds"));
        }
        if !(1..=60).contains(&self.max_call_duration_minutes) {
            return Err(FieldError::new("maxCallDurationMinutes", "must be between 1 and 60 minutes"));
        }
        if !(0.0..=1.0).contains(&self.vad_threshold) {
            return Err(FieldError::new("vadThreshold", "must be between 0.0 and 1.0"));
        }
        check_len("greetingMessage", &self.greeting_message, 1000)?;
        check_len("endCallPhrase", &self.end_call_phrase, 100)?;
        check_len("voice", &self.voice, 100)?;
        check_len("recordingNotice", &self.recording_notice, 300)?;
        if self.recording_notice.trim().is_empty() {
            return Err(FieldError::new(
                "recordingNotice",
                "must not be empty (turn recordingNoticeEnabled off to say nothing)",
            ));
        }
        if !(10..=300).contains(&self.escalation_timeout_seconds) {
            return Err(FieldError::new("escalationTimeoutSeconds", "must be between 10 and 300 seconds"));
        }
        check_len("holdMessage", &self.hold_message, 300)?;
        if self.hold_message.trim().is_empty() {
            return Err(FieldError::new("holdMessage", "must not be empty"));
        }
        Ok(())
    }

    /// How long an escalation waits for an agent.
    pub fn escalation_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.escalation_timeout_seconds))
    }

    /// What the agent says before its greeting on this chatbot's calls: the recording
    /// notice when the call is recorded and the notice is on, otherwise nothing. The call
    /// session speaks it first, so the caller hears it before anything else.
    pub fn recording_notice(&self) -> Option<&str> {
        (self.call_recording && self.recording_notice_enabled).then(|| self.recording_notice.trim())
    }

    /// The silence timeout as a duration.
    pub fn silence_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.silence_timeout_seconds))
    }

    /// The maximum call duration.
    pub fn max_duration(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.max_call_duration_minutes) * 60)
    }
}

/// Audio visualizer shown during a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum VisualizerStyle {
    /// A waveform.
    Wave,
    /// A pulsing orb.
    #[default]
    Orb,
}

/// Where the widget sits on the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "kebab-case")]
pub enum WidgetPosition {
    /// Bottom right corner.
    #[default]
    BottomRight,
    /// Bottom left corner.
    BottomLeft,
}

/// Widget options: the chat widget's basics and the call button and call interface
/// options of spec part 2.5.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct WidgetSettings {
    /// Widget corner.
    pub position: WidgetPosition,
    /// Main color of the chat widget, `#rrggbb`.
    pub primary_color: String,
    /// Title shown in the widget header.
    pub title: String,
    /// Chat welcome message.
    pub welcome_message: String,
    /// Icon of the chat button (an emoji or short text).
    pub chat_button_icon: String,
    /// Origins (`scheme://host[:port]`) allowed to embed the widget and start calls.
    /// Empty: any origin.
    pub allowed_origins: Vec<String>,
    /// Icon of the call button (an emoji or short text).
    pub call_button_icon: String,
    /// Text of the call button.
    pub call_button_text: String,
    /// Color of the call button, `#rrggbb`.
    pub call_button_color: String,
    /// Audio visualizer style.
    pub visualizer_style: VisualizerStyle,
    /// Show the running call timer.
    pub show_call_duration: bool,
    /// Show the live transcript.
    pub show_live_transcript: bool,
    /// Text on the "Start Voice Call" screen.
    pub call_welcome_message: String,
}

impl Default for WidgetSettings {
    fn default() -> Self {
        Self {
            position: WidgetPosition::BottomRight,
            primary_color: "#2563eb".to_owned(),
            title: "Support".to_owned(),
            welcome_message: "Hi! How can we help?".to_owned(),
            chat_button_icon: "💬".to_owned(),
            allowed_origins: Vec::new(),
            call_button_icon: "📞".to_owned(),
            call_button_text: "Call Us".to_owned(),
            call_button_color: "#10b981".to_owned(),
            visualizer_style: VisualizerStyle::Orb,
            show_call_duration: true,
            show_live_transcript: true,
            call_welcome_message: "Press the call button to talk with our AI assistant.".to_owned(),
        }
    }
}

/// Body of `PATCH /api/company/chatbots/{id}/widget-settings`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WidgetSettingsPatch {
    pub position: Option<WidgetPosition>,
    pub primary_color: Option<String>,
    pub title: Option<String>,
    pub welcome_message: Option<String>,
    pub chat_button_icon: Option<String>,
    pub allowed_origins: Option<Vec<String>>,
    pub call_button_icon: Option<String>,
    pub call_button_text: Option<String>,
    pub call_button_color: Option<String>,
    pub visualizer_style: Option<VisualizerStyle>,
    pub show_call_duration: Option<bool>,
    pub show_live_transcript: Option<bool>,
    pub call_welcome_message: Option<String>,
}

impl WidgetSettings {
    /// Applies a patch; absent fields keep their value.
    pub fn apply(&mut self, patch: WidgetSettingsPatch) {
        apply_fields!(
            self,
            patch,
            position,
            primary_color,
            title,
            welcome_message,
            chat_button_icon,
            allowed_origins,
            call_button_icon,
            call_button_text,
            call_button_color,
            visualizer_style,
            show_call_duration,
            show_live_transcript,
            call_welcome_message
        );
    }

    /// Checks colors, lengths and origins.
    pub fn validate(&self) -> Result<(), FieldError> {
        check_color("primaryColor", &self.primary_color)?;
        check_color("callButtonColor", &self.call_button_color)?;
        check_len("title", &self.title, 100)?;
        check_len("welcomeMessage", &self.welcome_message, 1000)?;
        check_len("callWelcomeMessage", &self.call_welcome_message, 1000)?;
        check_len("callButtonText", &self.call_button_text, 40)?;
        check_len("chatButtonIcon", &self.chat_button_icon, 16)?;
        check_len("callButtonIcon", &self.call_button_icon, 16)?;
        if self.call_button_text.trim().is_empty() {
            return Err(FieldError::new("callButtonText", "must not be empty"));
        }
        if self.allowed_origins.len() > 50 {
            return Err(FieldError::new("allowedOrigins", "at most 50 origins"));
        }
        for origin in &self.allowed_origins {
            if normalize_origin(origin).is_none() {
                return Err(FieldError::new(
                    "allowedOrigins",
                    format!("{origin:?} is not an origin like https://www.example.com"),
                ));
            }
        }
        Ok(())
    }

    /// Whether a request from `origin` (the `Origin` header) may use this chatbot's widget.
    pub fn allows_origin(&self, origin: Option<&str>) -> bool {
        if self.allowed_origins.is_empty() {
            return true;
        }
        let Some(origin) = origin.and_then(normalize_origin) else { return false };
        self.allowed_origins.iter().filter_map(|o| normalize_origin(o)).any(|o| o == origin)
    }
}

/// `scheme://host[:port]` in lower case, or None if `text` is not an http(s) origin.
pub fn normalize_origin(text: &str) -> Option<String> {
    let url = url::Url::parse(text.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.path().len() > 1 || url.query().is_some() {
        return None;
    }
    Some(url.origin().ascii_serialization())
}

fn check_len(field: &'static str, value: &str, max_chars: usize) -> Result<(), FieldError> {
    if value.chars().count() > max_chars {
        return Err(FieldError::new(field, format!("must be at most {max_chars} characters")));
    }
    Ok(())
}

fn check_color(field: &'static str, value: &str) -> Result<(), FieldError> {
    let hex = value.strip_prefix('#').unwrap_or("");
    if hex.len() != 6 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(FieldError::new(field, "must be a color like #10b981"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_settings_default_to_the_spec_values() {
        let s = CallSettings::default();
        assert_eq!((s.silence_timeout_seconds, s.max_call_duration_minutes), (180, 10));
        assert_eq!(s.vad_threshold, 0.5);
        assert!(s.validate().is_ok());
    }

    #[test]
    fn partial_patch_keeps_other_fields() {
        let mut s = CallSettings::default();
        let patch: CallSettingsPatch = serde_json::from_str(r#"{"voiceSpeed":1.5}"#).unwrap();
        s.apply(patch);
        assert_eq!(s.voice_speed, 1.5);
        assert_eq!(s.silence_timeout_seconds, 180);
    }

    #[test]
    fn out_of_range_settings_name_their_field() {
        for (json, field) in [
            (r#"{"voiceSpeed":2.5}"#, "voiceSpeed"),
            (r#"{"voiceSpeed":0.4}"#, "voiceSpeed"),
            (r#"{"silenceTimeoutSeconds":29}"#, "silenceTimeoutSeconds"),
            (r#"{"silenceTimeoutSeconds":301}"#, "silenceTimeoutSeconds"),
            (r#"{"maxCallDurationMinutes":0}"#, "maxCallDurationMinutes"),
            (r#"{"maxCallDurationMinutes":61}"#, "maxCallDurationMinutes"),
            (r#"{"vadThreshold":1.01}"#, "vadThreshold"),
            (r#"{"vadThreshold":-0.1}"#, "vadThreshold"),
        ] {
            let mut s = CallSettings::default();
            s.apply(serde_json::from_str(json).unwrap());
            assert_eq!(s.validate().unwrap_err().field, field, "{json}");
        }
    }

    #[test]
    fn a_recorded_call_speaks_its_notice_unless_it_is_switched_off() {
        let mut s = CallSettings::default();
        assert_eq!(s.recording_notice(), None, "not recorded by default");
        s.apply(serde_json::from_str(r#"{"recordingEnabled":true}"#).unwrap());
        assert!(s.call_recording, "the issue's name is accepted");
        assert_eq!(s.recording_notice(), Some("This call may be recorded."), "on by default");
        s.apply(serde_json::from_str(r#"{"recordingNotice":"  Calls are recorded for quality.  "}"#).unwrap());
        assert_eq!(s.recording_notice(), Some("Calls are recorded for quality."));
        s.apply(serde_json::from_str(r#"{"recordingNoticeEnabled":false}"#).unwrap());
        assert_eq!(s.recording_notice(), None);
        let stored: CallSettings = serde_json::from_str(r#"{"callRecording":true}"#).unwrap();
        assert_eq!(stored.recording_notice(), Some("This call may be recorded."), "older documents get the default");
    }

    #[test]
    fn the_recording_notice_is_bounded_and_not_blank() {
        for (notice, ok) in [("x".repeat(300), true), ("x".repeat(301), false), ("   ".to_owned(), false)] {
            let s = CallSettings { recording_notice: notice, ..CallSettings::default() };
            assert_eq!(s.validate().is_ok(), ok);
            if !ok {
                assert_eq!(s.validate().unwrap_err().field, "recordingNotice");
            }
        }
    }

    #[test]
    fn escalation_is_off_by_default_and_older_documents_get_the_defaults() {
        let stored: CallSettings = serde_json::from_str(r#"{"callRecording":true}"#).unwrap();
        assert!(!stored.escalation_enabled);
        assert_eq!(stored.escalation_timeout_seconds, 45);
        assert_eq!(stored.hold_message, "Let me connect you with a team member. Please hold.");
        assert_eq!(stored.escalation_timeout(), std::time::Duration::from_secs(45));
        let mut s = stored;
        s.apply(serde_json::from_str(r#"{"escalationEnabled":true,"escalationTimeoutSeconds":10}"#).unwrap());
        assert!(s.escalation_enabled && s.validate().is_ok());
    }

    #[test]
    fn escalation_settings_are_bounded_and_name_their_field() {
        for (json, field) in [
            (r#"{"escalationTimeoutSeconds":9}"#, Some("escalationTimeoutSeconds")),
            (r#"{"escalationTimeoutSeconds":301}"#, Some("escalationTimeoutSeconds")),
            (r#"{"escalationTimeoutSeconds":300}"#, None),
            (r#"{"holdMessage":"  "}"#, Some("holdMessage")),
            (r#"{"holdMessage":"One moment."}"#, None),
        ] {
            let mut s = CallSettings::default();
            s.apply(serde_json::from_str(json).unwrap());
            assert_eq!(s.validate().err().map(|e| e.field), field, "{json}");
        }
        let long = CallSettings { hold_message: "x".repeat(301), ..CallSettings::default() };
        assert_eq!(long.validate().unwrap_err().field, "holdMessage");
    }

    #[test]
    fn recordings_are_kept_ninety_days_unless_the_company_chooses() {
        let mut s: CompanySettings = serde_json::from_str(r#"{"features":{"callEnabled":true}}"#).unwrap();
        assert_eq!(s.recordings.retention_days, 90);
        s.apply(serde_json::from_str(r#"{"recordings":{"retentionDays":30}}"#).unwrap());
        assert_eq!(s.recordings.retention_days, 30);
        assert!(s.validate().is_ok());
        for days in [0, 3651] {
            s.recordings.retention_days = days;
            assert_eq!(s.validate().unwrap_err().field, "recordings.retentionDays");
        }
        assert!(serde_json::from_str::<CompanySettingsPatch>(r#"{"recordings":{"days":3}}"#).is_err());
    }

    #[test]
    fn unknown_call_setting_is_refused() {
        assert!(serde_json::from_str::<CallSettingsPatch>(r#"{"volume":3}"#).is_err());
    }

    #[test]
    fn widget_colors_must_be_hex() {
        let mut w = WidgetSettings::default();
        w.apply(WidgetSettingsPatch { call_button_color: Some("green".into()), ..Default::default() });
        assert_eq!(w.validate().unwrap_err().field, "callButtonColor");
    }

    #[test]
    fn origins_are_compared_normalised() {
        let mut w = WidgetSettings::default();
        assert!(w.allows_origin(None), "no list: any origin");
        w.allowed_origins = vec!["https://Shop.Example.com".into()];
        assert!(w.validate().is_ok());
        assert!(w.allows_origin(Some("https://shop.example.com")));
        assert!(!w.allows_origin(Some("https://evil.example.com")));
        assert!(!w.allows_origin(None));
        w.allowed_origins = vec!["https://shop.example.com/path".into()];
        assert_eq!(w.validate().unwrap_err().field, "allowedOrigins");
    }

    #[test]
    fn company_patch_switches_calls_on() {
        let mut s = CompanySettings::default();
        assert!(!s.features.call_enabled);
        s.apply(serde_json::from_str(r#"{"features":{"callEnabled":true}}"#).unwrap());
        assert!(s.features.call_enabled);
        assert!(serde_json::from_str::<CompanySettingsPatch>(r#"{"features":{"x":1}}"#).is_err());
    }
}
